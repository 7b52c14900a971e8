"""Documents as text: parsing, writing, and merging two partition documents (sans-I/O)."""

from __future__ import annotations

import json
from typing import Any

from .._errors import MsalConfigurationError
from ._msal_format import ACCESS_TOKEN, REFRESH_TOKEN, Unreadable, number

__all__ = ["Document", "dump_document", "merge_documents", "parse_document"]

Document = dict[str, Any]

_FLAT = frozenset({str, int, float, bool, type(None)})
_ENTRY = json.JSONEncoder(separators=(",\n" + " " * 12, ": "))
_KEY = json.JSONEncoder()


def dump_document(document: Document) -> str:
    """``json.dumps(document, indent=4)``, as MSAL writes it, character for character.

    The standard library indents in pure Python; entries made of plain values
    (all that aiomsal writes) go through its C encoder instead, with the
    indentation as separators: the same text, in a fraction of the time.
    """
    if not document:
        return "{}"
    parts = ["{"]
    for name, entries in document.items():
        parts.append(f"\n    {_KEY.encode(name)}: ")
        if not isinstance(entries, dict) or not entries:
            parts.append(_indented(entries, 4) + ",")
        else:
            parts.append("{")
            for key, entry in entries.items():
                parts.append(f"\n        {_KEY.encode(key)}: ")
                if isinstance(entry, dict) and entry and set(map(type, entry.values())) <= _FLAT:
                    parts.append("{\n            ")
                    parts.append(_ENTRY.encode(entry)[1:-1])
                    parts.append("\n        },")
                else:
                    parts.append(_indented(entry, 8) + ",")
            parts[-1] = parts[-1][:-1]
            parts.append("\n    },")
    parts[-1] = parts[-1][:-1]
    parts.append("\n}")
    return "".join(parts)


def _indented(value: Any, depth: int) -> str:
    return json.dumps(value, indent=4).replace("\n", "\n" + " " * depth)


#: How deeply a cache document may nest (MSAL writes 3 levels; other SDKs' fields a few more).
MAX_DEPTH = 32


def parse_document(state: str | bytes) -> Document:
    """The JSON object of a cache document; raises :class:`MsalConfigurationError`.

    A document nested deeper than :data:`MAX_DEPTH` is refused, so that
    whatever was read can always be written again.
    """
    if not isinstance(state, (str, bytes, bytearray)):
        raise MsalConfigurationError("the cache state must be str or bytes")
    try:
        document = json.loads(state)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, ...
        # Not chained: a JSONDecodeError holds the whole document, secrets included.
        raise MsalConfigurationError("the cache state is not MSAL's token cache format") from None
    if not isinstance(document, dict) or _too_deep(document):
        raise MsalConfigurationError("the cache state is not MSAL's token cache format")
    return document


def _too_deep(document: Document) -> bool:
    level: list[Any] = [document]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True

# -- merging ------------------------------------------------------------------------------


def _timestamp(fields: Any, name: str) -> int:
    try:
        return number(fields.get(name)) if isinstance(fields, dict) else -1
    except Unreadable:
        return -1


def merge_documents(current: bytes | None, ours: bytes | None, now: float) -> bytes | None:
    """The union of two documents per entry key: the newer entry wins, ``ours`` on a tie.

    Expired access tokens are dropped; a malformed document counts as empty.
    None when neither access nor refresh tokens remain.
    """
    theirs_doc, ours_doc = _lenient(current), _lenient(ours)
    merged: Document = {}
    for name in [*ours_doc, *(n for n in theirs_doc if n not in ours_doc)]:
        mine, other = ours_doc.get(name), theirs_doc.get(name)
        if not isinstance(mine, dict) or not isinstance(other, dict):
            merged[name] = mine if name in ours_doc else other
            continue
        newer = {ACCESS_TOKEN: "expires_on", REFRESH_TOKEN: "last_modification_time"}.get(name)
        section = dict(other)
        for key, fields in mine.items():
            if newer is None or key not in section or (
                _timestamp(fields, newer) >= _timestamp(section[key], newer)
            ):
                section[key] = fields
        merged[name] = section
    access = merged.get(ACCESS_TOKEN)
    if isinstance(access, dict):
        merged[ACCESS_TOKEN] = {
            key: fields for key, fields in access.items()
            if _timestamp(fields, "expires_on") > now
        }
    if not any(merged.get(name) for name in (ACCESS_TOKEN, REFRESH_TOKEN)):
        return None
    return dump_document({k: v for k, v in merged.items() if v != {}}).encode("utf-8")


def _lenient(blob: bytes | None) -> Document:
    if not blob:
        return {}
    try:
        return parse_document(blob)
    except MsalConfigurationError:
        return {}
