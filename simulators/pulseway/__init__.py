"""A Pulseway PSA (Kaseya BMS v2 API) simulator for tests, benchmarks and local runs.

See ``README.md`` in this folder for the endpoints and the assumptions made where Pulseway's
documentation is silent.
"""

from simulators.pulseway.app import ApiCredentials, PulsewaySimulator, create_app
from simulators.pulseway.dataset import DatasetSpec, generate_dataset
from simulators.pulseway.faults import CallBudget, Faults, Traffic
from simulators.pulseway.reference import API_USER_ID, UI_USER_ID
from simulators.pulseway.server import run_standalone, serve_in_thread
from simulators.pulseway.store import Change, Clock, PulsewayStore
from simulators.pulseway.webhooks import WebhookConfig, Webhooks

__all__ = [
    "API_USER_ID",
    "UI_USER_ID",
    "ApiCredentials",
    "CallBudget",
    "Change",
    "Clock",
    "DatasetSpec",
    "Faults",
    "PulsewaySimulator",
    "PulsewayStore",
    "Traffic",
    "WebhookConfig",
    "Webhooks",
    "create_app",
    "generate_dataset",
    "run_standalone",
    "serve_in_thread",
]
