"""Reading hostile request bodies and credentials without falling over.

Both simulators answer a body they cannot use with their PSA's 4xx, never a 500: `load_json`
turns every way a body can be unusable into a ValueError, and `same_secret` compares credentials
of any content (``hmac.compare_digest`` refuses non-ASCII ``str``).
"""

from __future__ import annotations

import hmac
import json
import math
import re
from typing import Any

# A JSON ``\\uD800``-``\\uDFFF`` escape. Pairs are fine (an escaped emoji); only when one shows up
# is the decoded value checked for a lone surrogate, which no UTF-8 answer could carry.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def load_json(raw: bytes) -> Any:
    """The JSON value of `raw`; raises ValueError with a reason when there is none.

    Refused besides malformed JSON: text that is not UTF-8, nesting beyond the parser's
    recursion limit, ``NaN``/``Infinity`` and numbers too large for a double (.NET's readers
    refuse both), integers too long to convert, and unpaired surrogate escapes.
    """
    try:
        value = json.loads(raw, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(value):
        raise ValueError("the JSON contains an unpaired UTF-16 surrogate")
    return value


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two credentials, whatever characters they hold."""
    return hmac.compare_digest(_utf8(given), _utf8(expected))


def _utf8(text: str) -> bytes:
    # surrogatepass: a value from surrogate-escaped argv or bytes must not raise here.
    return text.encode("utf-8", "surrogatepass")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:  # iterative: the value may be nested close to the recursion limit
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
