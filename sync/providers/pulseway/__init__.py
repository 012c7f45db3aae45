"""Pulseway PSA (Kaseya BMS v2 API) provider: REST client, credentials and call budget."""

from __future__ import annotations

from .budget import EndpointBudget
from .client import (
    Endpoint,
    LookupTable,
    Page,
    PulsewayClient,
    QueryValue,
    Record,
    format_filter_datetime,
)
from .credentials import DEFAULT_HOST, PulsewayCredentials

__all__ = [
    "DEFAULT_HOST",
    "Endpoint",
    "EndpointBudget",
    "LookupTable",
    "Page",
    "PulsewayClient",
    "PulsewayCredentials",
    "QueryValue",
    "Record",
    "format_filter_datetime",
]
