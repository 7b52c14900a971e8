"""The faults a FakeAuthority can serve instead of a token answer, and their canned answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from aiohttp import web

from ._fake_tokens import html_error_page, retry_after_value

__all__ = ["Fault", "FaultKind", "canned_response", "make_fault"]

#: What :meth:`FakeAuthority.fail_next` does to a token request.
FaultKind = Literal["status", "hang", "malformed_json", "html", "drop", "body", "patch"]


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    status: int
    retry_after: float | None
    body: bytes = b""
    content_type: str = "application/json"
    patch: Mapping[str, Any] | None = None


def make_fault(
    kind: FaultKind,
    status: int,
    retry_after: float | None,
    body: bytes | str | None,
    content_type: str,
    patch: Mapping[str, Any] | None,
) -> Fault:
    """Check the arguments of :meth:`FakeAuthority.fail_next` and make its fault."""
    if kind not in get_args(FaultKind):
        raise ValueError(f"unknown fault {kind!r}")
    if kind == "status" and status < 400:
        raise ValueError("a 'status' fault needs an error status (400 or more)")
    if kind == "body" and body is None:
        raise ValueError("a 'body' fault needs the body to answer with")
    if kind == "patch" and not patch:
        raise ValueError("a 'patch' fault needs the fields to change")
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body or b""
    return Fault(kind, status, retry_after, raw, content_type, dict(patch) if patch else None)


def canned_response(fault: Fault, headers: dict[str, str]) -> web.Response | None:
    """The answer of a fault that needs no grant ("malformed_json", "body", "html"), or None."""
    if fault.kind == "malformed_json":
        text = '{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "acc'
        return web.Response(text=text, content_type="application/json", headers=headers)
    if fault.retry_after is not None:
        headers["Retry-After"] = retry_after_value(fault.retry_after)
    if fault.kind == "body":
        headers["Content-Type"] = fault.content_type
        return web.Response(status=fault.status, body=fault.body, headers=headers)
    if fault.kind == "html":
        page = html_error_page(fault.status)
        return web.Response(
            status=fault.status, text=page, content_type="text/html", headers=headers
        )
    return None
