"""Running the simulator on a port: in a background thread for tests and benchmarks, in the
foreground for ``psasync simulate connectwise``."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from simulators.connectwise.app import CODEBASE, ApiCredentials, ConnectWiseSimulator
from simulators.connectwise.dataset import DatasetSpec, generate_dataset
from simulators.connectwise.soap.service import IntegratorLogin
from simulators.connectwise.store import ConnectWiseStore
from simulators.transport import quiet_dropped_answers

Servable = ConnectWiseSimulator | ConnectWiseStore | ASGIApp
_START_TIMEOUT = 10.0


@asynccontextmanager
async def serve_in_thread(
    target: Servable, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve `target` with uvicorn in a thread (own event loop); yields ``http://host:port``.

    Port 0 picks a free port. The server stops, and the thread ends, when the block exits.
    """
    sock = bind(host, port)
    server = uvicorn.Server(_config(target, host, _base_url(sock)))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="connectwise-simulator", daemon=True
    )
    thread.start()
    try:
        waited = 0.0
        while not server.started:
            if not thread.is_alive() or waited > _START_TIMEOUT:
                raise RuntimeError("the ConnectWise simulator did not start")
            await asyncio.sleep(0.01)
            waited += 0.01
        yield _base_url(sock)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, _START_TIMEOUT)
        sock.close()


def run(target: Servable, host: str = "127.0.0.1", port: int = 8081) -> None:
    """Serve `target` in the foreground until interrupted (Ctrl+C)."""
    serve(target, bind(host, port))


def serve(target: Servable, sock: socket.socket) -> None:
    """Serve `target` on an already bound socket until interrupted."""
    uvicorn.Server(_config(target, sock.getsockname()[0], _base_url(sock))).run(sockets=[sock])


def run_standalone(
    host: str,
    port: int,
    companies: int,
    company_id: str | None,
    public_key: str | None,
    private_key: str | None,
    seed: int,
    print_fn: Callable[[str], object] = print,
    integrator: IntegratorLogin | None = None,
    denied: Mapping[str, Any] | None = None,
) -> None:
    """Generate a dataset, print how to connect, and serve until interrupted.

    Missing credentials are generated. `denied` names areas the API member's security role
    does not reach (``{"tickets": "read"}``; see `faults.Denials`). This is what ``psasync
    simulate connectwise`` runs.
    """
    credentials = ApiCredentials(
        company_id=company_id or "simulated",
        public_key=public_key or secrets.token_hex(8),
        private_key=private_key or secrets.token_hex(16),
    )
    store = generate_dataset(DatasetSpec(companies=companies, seed=seed))
    simulator = ConnectWiseSimulator(
        store, credentials=credentials, integrator=integrator, denied=denied
    )
    login = simulator.integrator
    sock = bind(host, port)
    base_url = _base_url(sock)
    sizes = ", ".join(
        f"{store.count(name)} {name}"
        for name in ("companies", "contacts", "configurations", "tickets", "members")
    )
    print_fn(f"ConnectWise Manage simulator listening on {base_url} ({sizes})")
    print_fn(f"  site URL for psasync: {base_url}  (codebase {CODEBASE}, also v4_6_release/)")
    print_fn(f"  API root:    {base_url}/{CODEBASE}apis/3.0/")
    print_fn(f"  company id:  {credentials.company_id}")
    print_fn(f"  public key:  {credentials.public_key}")
    print_fn(f"  private key: {credentials.private_key}")
    print_fn("  client id:   any value (recorded, not checked)")
    print_fn(f"  SOAP (legacy): {base_url}/v4_6_release/apis/1.5/CompanyApi.asmx?wsdl")
    print_fn("               (also ContactApi, ConfigurationApi; /apis/2.0/ too)")
    print_fn(f"  integrator:  {login.login_id} / {login.password}")
    print_fn(f"  faults:      {base_url}/__simulator/faults  (GET to read, POST JSON to change)")
    print_fn(f"  callbacks:   {base_url}/__simulator/callbacks  (deliveries; POST to change)")
    if simulator.denials.denied:
        print_fn(
            f'  denied:      {simulator.denials.as_dict()}  (403; POST {{"deny": {{}}}} to lift)'
        )
    serve(simulator, sock)


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on `host`:`port` (0 = any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it small responses wait ~40 ms for delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _simulator_of(target: Servable) -> ConnectWiseSimulator | None:
    if isinstance(target, ConnectWiseSimulator):
        return target
    if isinstance(target, ConnectWiseStore):
        return ConnectWiseSimulator(target)
    found = getattr(getattr(target, "state", None), "simulator", None)  # from create_app
    return found if isinstance(found, ConnectWiseSimulator) else None


def _config(target: Servable, host: str, base_url: str) -> uvicorn.Config:
    simulator = _simulator_of(target)
    app: ASGIApp
    if simulator is None:
        app = target  # type: ignore[assignment]  # neither store nor simulator: an ASGI app
    else:
        app = simulator.app
        # Store-level edits have no request to learn the URL from; callbacks must link back.
        simulator.callbacks.base_url = base_url
    quiet_dropped_answers()  # a dropped answer is a fault we inject, not a crash to log
    return uvicorn.Config(
        app,
        host=host,
        # The simulator's lifespan starts and stops callback delivery; other apps get none.
        lifespan="off" if simulator is None else "on",
        ws="none",
        http="auto",  # httptools when installed: the benchmark serves 20k site lists
        # No logging config and no level: uvicorn would set them on the process-wide
        # "uvicorn.*" loggers, silencing a service that runs the simulator in a thread.
        log_config=None,
        log_level=None,
        access_log=False,
    )
