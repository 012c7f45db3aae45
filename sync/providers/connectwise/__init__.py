"""ConnectWise Manage (PSA) provider: REST client, credentials and condition builders."""

from __future__ import annotations

from .client import CompanyInfo, ConnectWiseClient, Page, Record, Resource
from .credentials import ConnectWiseCredentials

__all__ = [
    "CompanyInfo",
    "ConnectWiseClient",
    "ConnectWiseCredentials",
    "Page",
    "Record",
    "Resource",
]
