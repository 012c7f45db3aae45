"""Sync errors, grouped by what the runner does with them.

    SyncError
    ├── RetriableError        transient: back off and try again (429, 502-504, timeouts)
    │   └── UnreachableError  the PSA host did not answer at all
    ├── FatalError            the run cannot go on; the integration shows ERROR
    │   ├── CredentialsError  401: the PSA refused our keys
    │   ├── PermissionDenied  403: the API user's security role lacks an area (``area``,
    │   │                     ``access``); never retried. Setup and runs report it by area
    │   │                     (``sync.permissions``); a push refused with it is FAILED
    │   ├── InsecureUrlError  the PSA URL is not https, or points at a private address
    │   └── ProtocolError     the PSA broke its own contract (e.g. a pagination loop)
    └── RecordError           one record failed (400/404/409); skip it, report it, go on

The runner decides by class, never by message text.
"""

from __future__ import annotations

from typing import Any


class SyncError(Exception):
    """Base of every error the sync engine knows how to handle."""

    code = "sync_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetriableError(SyncError):
    code = "retriable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnreachableError(RetriableError):
    code = "unreachable"


class FatalError(SyncError):
    code = "fatal"


class CredentialsError(FatalError):
    code = "invalid_credentials"


class PermissionDenied(FatalError):
    """The PSA answered 403: the API user may not ``access`` ("read" or "write") ``area``
    (named in the PSA's words: ``companies``, ``configurations``, ``accounts``…; None when
    the request belongs to no known area). Not an outage: sending again changes nothing
    until an administrator changes the role."""

    code = "permission_denied"

    def __init__(self, message: str, *, area: str | None, access: str) -> None:
        super().__init__(message)
        self.area = area
        self.access = access


class InsecureUrlError(FatalError):
    code = "insecure_url"


class ProtocolError(FatalError):
    code = "protocol_error"


class RecordError(SyncError):
    """A PSA refused one record; ``errors`` keeps the PSA's own error list verbatim."""

    code = "record_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        psa_code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.psa_code = psa_code
        self.errors = errors or []


class RunPreempted(Exception):
    """The run is no longer this worker's: it was paused, cancelled or deleted meanwhile.

    Raised inside a page's transaction, so the page is rolled back; the worker drops the run
    without finishing it (whoever took it away decides what it becomes).
    """


class LeaseLost(Exception):
    """The job's lease (``sync.leases.Fence``) is no longer this holder's: it expired while
    the holder stalled, or the integration was paused or deleted. Nothing more may be sent
    and nothing more written; the new holder starts from what is in the database.

    Not a ``SyncError``: code that handles PSA errors must let it through.
    """
