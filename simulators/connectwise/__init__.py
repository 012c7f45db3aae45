"""A ConnectWise Manage REST API simulator: store, API app, faults, dataset and server.

store = generate_dataset(DatasetSpec(companies=50, seed=1))
simulator = ConnectWiseSimulator(store, credentials=ApiCredentials("acme", "pub", "priv"))
async with serve_in_thread(simulator) as base_url:
    ...  # point a ConnectWise client at base_url (codebase v4_6_release/ or v2025_1/)
    store.update("companies", 250, {"name": "Renamed"})  # edit as a ConnectWise user would
    simulator.faults.rate_limit_every = 3                 # every third API request gets 429
    simulator.faults.drop_after_write_every = 2           # every second write: applied, unanswered
    simulator.before_write.append(hook)                   # hook(request) just before a write
    simulator.callbacks.retry_scale = 0.01                # webhooks: retry delays / 100
    await simulator.callbacks.drain()                     # wait until callbacks were delivered
"""

from simulators.connectwise.app import ApiCredentials, ConnectWiseSimulator, create_app
from simulators.connectwise.callbacks import Callbacks, Delivery
from simulators.connectwise.conditions import compile_conditions, parse
from simulators.connectwise.dataset import DatasetSpec, generate_dataset
from simulators.connectwise.errors import (
    ApiError,
    BadRequest,
    ConditionError,
    FieldError,
    InvalidObject,
    NotFound,
)
from simulators.connectwise.faults import Faults, Traffic
from simulators.connectwise.server import run, run_standalone, serve_in_thread
from simulators.connectwise.store import ConnectWiseStore

__all__ = [
    "ApiCredentials",
    "ApiError",
    "BadRequest",
    "Callbacks",
    "ConditionError",
    "ConnectWiseSimulator",
    "ConnectWiseStore",
    "DatasetSpec",
    "Delivery",
    "Faults",
    "FieldError",
    "InvalidObject",
    "NotFound",
    "Traffic",
    "compile_conditions",
    "create_app",
    "generate_dataset",
    "parse",
    "run",
    "run_standalone",
    "serve_in_thread",
]
