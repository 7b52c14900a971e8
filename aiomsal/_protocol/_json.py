"""The one bounded JSON decoder that every parser of an authority's answers uses (sans-I/O).

An authority's answer is untrusted input. :func:`decode_json` reads it as
strict RFC 8259 JSON in UTF-8, within limits, and raises :class:`JsonRejected`
(a ``ValueError``) for anything else, so that a parser turns every bad answer
into ``MsalServiceError("invalid_response")``:

* at most :data:`MAX_BODY_BYTES` bytes (the transport reads no more than
  that, plus one byte to tell);
* nesting at most :data:`MAX_DEPTH` deep (no ``RecursionError``);
* no ``NaN``/``Infinity`` and no number that does not fit a float (``1e999``),
  no integer longer than :data:`MAX_INT_DIGITS` digits (no ``OverflowError``
  or slow conversion later);
* UTF-8 only, and no lone surrogate escape (``"\\ud800"``) that would fail when
  the text is encoded again.

:func:`json_seconds` reads a number of seconds (``expires_in``, ``interval``)
from such a document.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_LIFETIME_SECONDS",
    "JsonRejected",
    "decode_json",
    "decode_json_object",
    "json_seconds",
]

#: The largest answer body read and decoded (1 MiB; a token answer is a few KiB).
MAX_BODY_BYTES: Final = 1 << 20
#: The deepest nesting of arrays and objects accepted.
MAX_DEPTH: Final = 32
#: The longest integer accepted, in digits (a sign not counted).
MAX_INT_DIGITS: Final = 20
#: The longest lifetime an answer may give, in seconds (ten years).
MAX_LIFETIME_SECONDS: Final = 10 * 366 * 24 * 3600

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_DIGITS = re.compile(r"[0-9]{1,20}")


class JsonRejected(ValueError):
    """Raised when a body is not JSON that aiomsal accepts; the message names why."""


def _reject_constant(name: str) -> Any:
    raise JsonRejected(f"the JSON holds {name}")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonRejected(f"the JSON holds an integer longer than {MAX_INT_DIGITS} digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRejected("the JSON holds a number too large for a float")
    return value


_DECODER = json.JSONDecoder(
    parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_reject_constant
)


def decode_json(body: bytes | str, *, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """Decode ``body`` as bounded JSON, or raise :class:`JsonRejected`."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        if len(body) > max_bytes:
            raise JsonRejected(f"the body is larger than {max_bytes} bytes")
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRejected("the body is not UTF-8") from None
    elif isinstance(body, str):
        text = body
        if len(text) > max_bytes:
            raise JsonRejected(f"the body is larger than {max_bytes} bytes")
    else:
        raise JsonRejected(f"the body is a {type(body).__name__}, not text")
    _check_depth(text)
    try:
        value = _DECODER.decode(text)
    except JsonRejected:
        raise
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise JsonRejected("the body is not valid JSON") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise JsonRejected("the JSON holds a lone surrogate escape") from None
    return value


def decode_json_object(body: bytes | str) -> dict[str, Any] | None:
    """Decode ``body`` as a bounded JSON object; ``None`` when it is not one."""
    try:
        value = decode_json(body)
    except JsonRejected:
        return None
    return value if isinstance(value, dict) else None


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` before the decoder recurses into it."""
    opening = text.count("[") + text.count("{")
    if opening <= MAX_DEPTH:
        return
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise JsonRejected(f"the JSON is nested deeper than {MAX_DEPTH} levels")
        else:
            depth -= 1


def json_seconds(value: object, *, maximum: float = MAX_LIFETIME_SECONDS) -> int | None:
    """A positive whole number of seconds from a JSON number or a string of digits.

    Entra sends numbers; ADFS and older endpoints send numeric strings. Returns
    ``None`` for anything else: a bool, a non-finite, fractional-string,
    zero, negative or larger-than-``maximum`` value.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        seconds = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        seconds = int(value.strip())
    else:
        return None
    return seconds if 0 < seconds <= maximum else None
