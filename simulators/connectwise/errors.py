"""ConnectWise-shaped API errors.

    ApiError                any failure with an HTTP status and a ConnectWise body
     ├── NotFound           404 code "NotFound", "Company 57 not found"
     ├── EndpointNotFound   404 code "ConnectWiseApi", "The endpoint does not exist."
     ├── Unauthorized       401 code "Unauthorized"
     ├── Forbidden          403 code "Forbidden" (a security role without the access)
     └── BadRequest         400 with a caller-chosen code
          ├── InvalidObject   400 code "InvalidObject" + "errors": [FieldError, ...]
          └── ConditionError  400 a conditions/childConditions/orderBy/fields error

The store raises these too, so Python callers (tests acting as a ConnectWise user) see the same
errors an API client would.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One entry of an error body's `errors` array."""

    code: str
    message: str
    resource: str
    field: str


class ApiError(Exception):
    """An error the API reports with `status` and a ConnectWise JSON body."""

    status = 500
    code = "ConnectWiseApi"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON body ConnectWise sends for this error."""
        return {"code": self.code, "message": self.message}


class NotFound(ApiError):
    status = 404
    code = "NotFound"

    def __init__(self, title: str, record_id: int | str) -> None:
        super().__init__(f"{title} {record_id} not found")


class EndpointNotFound(ApiError):
    status = 404

    def __init__(self) -> None:
        super().__init__("The endpoint does not exist.")


class Unauthorized(ApiError):
    status = 401
    code = "Unauthorized"


class Forbidden(ApiError):
    """The API member's security role lacks the access (a `Denials` fault).

    ConnectWise's text for it is not documented (psa-apis.md lists 403 only as a status);
    the body keeps the documented error shape, `errors` null, and an assumed message.
    """

    status = 403
    code = "Forbidden"

    def __init__(self, area: str, write: bool) -> None:
        level = "Add/Edit/Delete" if write else "Inquire"
        super().__init__(
            f"You do not have access to {area}: your security role does not grant "
            f"{level} rights. Please contact your administrator."
        )

    def body(self) -> dict[str, Any]:
        return {**super().body(), "errors": None}


class BadRequest(ApiError):
    status = 400
    code = "InvalidObject"


class ConditionError(BadRequest):
    """A query parameter (conditions, orderBy, fields...) that cannot be parsed or applied."""


class InvalidObject(BadRequest):
    """A write rejected by validation; `errors` names each offending field."""

    def __init__(self, noun: str, errors: list[FieldError]) -> None:
        super().__init__(f"{noun} object is invalid")
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return {**super().body(), "errors": [asdict(e) for e in self.errors]}
