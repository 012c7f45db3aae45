"""Wire conventions of Pulseway PSA's v2 API (Kaseya BMS): camelCase names, the
``{success, error, result[, totalRecords]}`` envelope, timestamps, and the API's errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

_UPPER_RUN = re.compile(r"^[A-Z]+(?=[A-Z][a-z]|$|[0-9])|^[A-Z]")


def camel(name: str) -> str:
    """System.Text.Json's camelCase: ``IPAddress``→``ipAddress``, ``HasMetSLA``→``hasMetSLA``."""
    match = _UPPER_RUN.match(name)
    if match is None:
        return name
    run = match.group(0)
    return run.lower() + name[len(run) :]


def stamp(moment: datetime) -> str:
    """A timestamp on the wire: UTC, second precision, ``Z`` (an assumption; see README).

    Years are always four digits (``0999-01-01T00:00:00Z``): glibc's ``strftime('%Y')`` would
    write ``999``, which is not ISO 8601.
    """
    m = moment.astimezone(UTC)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z"


def parse_time(text: str) -> datetime:
    """An ISO date or date-time from a filter or a body; no zone means UTC.

    Raises ValueError when `text` is no date-time, or its UTC equivalent is outside years
    1-9999.
    """
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None


class ApiError(Exception):
    """A failure answered with ``success: false``; `status` is the HTTP status (200 unless
    the failure is authentication or throttling)."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        sub_errors: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers or {}
        self.sub_errors = sub_errors

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.sub_errors:
            error["subErrors"] = self.sub_errors
        return {"success": False, "error": error, "result": None}


def invalid(field: str, problem: str = "is required") -> ApiError:
    """A validation error naming the (camelCase) field."""
    return ApiError(400, f"{field} {problem}.", sub_errors=[f"{field}: {problem}"])


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, f"{what} with id {ident} was not found.")


def envelope(result: Any, total: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "error": None, "result": result}
    if total is not None:
        body["totalRecords"] = total
    return body


def parse_form(content_type: str, raw: bytes) -> dict[str, str]:
    """Fields of an ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body,
    names lower-cased (ASP.NET binds form fields case-insensitively)."""
    if content_type.lower().startswith("multipart/"):
        header = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(header + raw)
        fields: dict[str, str] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                # Bytes that are not UTF-8 become U+FFFD, as ASP.NET's form reader does.
                fields[name.lower()] = payload.decode("utf-8", "replace")
        return fields
    text = raw.decode("utf-8", "replace")
    return {k.lower(): v for k, v in parse_qsl(text, keep_blank_values=True)}
