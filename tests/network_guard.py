"""A guard that keeps the test suite on loopback: any socket aimed elsewhere fails the test.

``socket.socket.connect``, ``connect_ex`` and ``sendto`` are patched for the
whole session (asyncio's loops connect through them), so a connection to a
link-local address such as 169.254.169.254, a private network or the
internet is refused *before* the real call: no packet leaves. The refusal is
also recorded, and the autouse fixture in ``conftest.py`` fails the test even
when the code under test swallowed the error. ``benchmarks/run.py`` installs
the same guard, so a benchmark that would reach another address fails instead.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

__all__ = ["NetworkGuardError", "allowed", "fail_on_violations", "install", "take_violations"]


class NetworkGuardError(ConnectionRefusedError):
    """A test tried to reach an address outside 127.0.0.0/8 and ::1."""


_violations: list[str] = []
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto


def allowed(address: Any) -> bool:
    """Whether ``address`` (a socket address) is loopback or not an internet address at all."""
    if isinstance(address, (str, bytes)):  # AF_UNIX paths
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return bool(host == "localhost")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not allowed(address):
        where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else repr(address)
        _violations.append(where)
        raise NetworkGuardError(f"tests and benchmarks may not reach {where} (loopback only)")


def _connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    _check(self, args[-1])
    return _real_sendto(self, data, *args)


def install() -> None:
    """Patch the socket class (idempotent)."""
    socket.socket.connect = _connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign, assignment]
    socket.socket.sendto = _sendto  # type: ignore[assignment]


def take_violations() -> list[str]:
    """The refused addresses since the last call, forgetting them."""
    found = list(_violations)
    _violations.clear()
    return found


def fail_on_violations() -> None:
    """Fail the running test if it tried to reach a non-loopback address (even if it
    swallowed the refusal)."""
    import pytest  # here, so that the benchmarks can install the guard without pytest

    refused = take_violations()
    if refused:
        pytest.fail(f"the test tried to reach non-loopback addresses: {refused}")
