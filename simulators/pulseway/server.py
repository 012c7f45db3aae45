"""Running the Pulseway simulator on a port. `serve_in_thread` is the ConnectWise simulator's,
which serves any ASGI app: pass ``simulator.app``."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from simulators.connectwise.server import _base_url, bind, serve, serve_in_thread
from simulators.pulseway.app import ApiCredentials, PulsewaySimulator
from simulators.pulseway.dataset import DatasetSpec, generate_dataset
from simulators.pulseway.store import PulsewayStore

__all__ = ["run_standalone", "serve_in_thread"]


def run_standalone(
    host: str,
    port: int,
    accounts: int,
    tenant: str | None,
    username: str | None,
    password: str | None,
    seed: int,
    calls_per_hour: int = 1500,
    print_fn: Callable[[str], object] = print,
    denied: Mapping[str, Any] | None = None,
) -> None:
    """Generate a dataset, print how to connect, and serve until interrupted.

    A missing password is generated. `denied` names areas the API employee may not use
    (``{"tickets": "read"}``; see `app.AREAS`). This is what ``psasync simulate pulseway`` runs.
    """
    credentials = ApiCredentials(
        tenant=tenant or "simulated",
        username=username or "psasync.api",
        password=password or secrets.token_hex(12),
    )
    store = generate_dataset(
        DatasetSpec(accounts=accounts, seed=seed), PulsewayStore(tenant=credentials.tenant)
    )
    simulator = PulsewaySimulator(
        store, credentials=credentials, calls_per_hour=calls_per_hour, denied=denied
    )
    sock = bind(host, port)
    base_url = _base_url(sock)
    sizes = ", ".join(
        f"{store.count(kind)} {kind}"
        for kind in ("accounts", "locations", "contacts", "assets", "tickets")
    )
    print_fn(f"Pulseway PSA simulator listening on {base_url} ({sizes})")
    print_fn(f"  API root:  {base_url}/v2/  (POST /v2/security/authenticate first)")
    print_fn(f"  tenant:    {credentials.tenant}")
    print_fn(f"  user name: {credentials.username}")
    print_fn(f"  password:  {credentials.password}")
    print_fn(f"  budget:    {calls_per_hour} calls per hour per endpoint (0 = unlimited)")
    print_fn(f"  faults:    {base_url}/__simulator/faults  (GET to read, POST JSON to change)")
    if simulator.denials.denied:
        print_fn(f"  denied:    {simulator.denials.as_dict()}  (403 until lifted)")
    serve(simulator.app, sock)
