"""Claims requests: a server's claims challenge merged with the client's capabilities."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .._errors import MsalConfigurationError
from ._json import JsonRejected, decode_json

__all__ = ["merge_claims"]


def merge_claims(claims_challenge: str | None, capabilities: Sequence[str]) -> str | None:
    """The ``claims`` parameter to send: the challenge plus ``xms_cc`` for the capabilities.

    A client that declares capabilities (``["cp1"]``: it can handle claims
    challenges, for Continuous Access Evaluation) says so in every request.
    """
    if not claims_challenge and not capabilities:
        return None
    merged: dict[str, Any] = {}
    if capabilities:
        merged["access_token"] = {"xms_cc": {"values": list(capabilities)}}
    if claims_challenge:
        if not isinstance(claims_challenge, str):
            raise MsalConfigurationError("claims_challenge must be a JSON object in a str")
        try:
            challenge = decode_json(claims_challenge)  # bounded: no RecursionError
        except JsonRejected:
            raise MsalConfigurationError("claims_challenge must be a JSON object") from None
        if not isinstance(challenge, dict):
            raise MsalConfigurationError("claims_challenge must be a JSON object")
        _deep_merge(merged, challenge)
    return json.dumps(merged, separators=(",", ":"))


def _deep_merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for name, value in other.items():
        current = into.get(name)
        if isinstance(current, dict) and isinstance(value, dict):
            _deep_merge(current, value)
        else:
            into[name] = value
