"""The suite's network guard refuses every non-loopback address before anything is sent."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import pytest

from aiomsal import (
    ImdsRetryPolicy,
    ManagedIdentityClient,
    MsalTransportError,
    SystemAssignedManagedIdentity,
)
from tests import network_guard


@pytest.mark.parametrize(
    ("family", "address"),
    [
        (socket.AF_INET, ("169.254.169.254", 80)),
        (socket.AF_INET, ("8.8.8.8", 53)),
        (socket.AF_INET, ("10.0.0.1", 443)),
        (socket.AF_INET6, ("2001:4860:4860::8888", 443, 0, 0)),
        (socket.AF_INET6, ("::ffff:169.254.169.254", 80, 0, 0)),
    ],
)
@pytest.mark.parametrize("how", ["connect", "connect_ex", "sendto"])
def test_non_loopback_addresses_are_refused_before_any_packet(
    family: int, address: Any, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached: list[Any] = []
    for name in ("_real_connect", "_real_connect_ex", "_real_sendto"):
        monkeypatch.setattr(network_guard, name, lambda *a: reached.append(a))
    kind = socket.SOCK_DGRAM if how == "sendto" else socket.SOCK_STREAM
    with socket.socket(family, kind) as sock:
        call = (lambda: sock.sendto(b"x", address)) if how == "sendto" else (
            lambda: getattr(sock, how)(address)
        )
        with pytest.raises(network_guard.NetworkGuardError):
            call()
    assert reached == []  # the real call was never made
    assert network_guard.take_violations() == [f"{address[0]}:{address[1]}"]


def test_loopback_is_allowed() -> None:
    assert network_guard.allowed(("127.0.0.1", 1))
    assert network_guard.allowed(("127.8.9.10", 1))
    assert network_guard.allowed(("::1", 1, 0, 0))
    assert not network_guard.allowed(("169.254.169.254", 80))
    assert not network_guard.allowed(("192.168.1.1", 80))


@pytest.mark.anyio
async def test_an_unconfigured_managed_identity_client_cannot_reach_imds() -> None:
    """The default IMDS endpoint is link-local: the guard stops it and records it."""
    async with ManagedIdentityClient(
        SystemAssignedManagedIdentity(), environ={}, imds_retry=ImdsRetryPolicy(max_retries=0)
    ) as client:
        with pytest.raises(MsalTransportError):
            await client.acquire_token_for_client(resource="https://vault.azure.net")
    assert network_guard.take_violations() == ["169.254.169.254:80"]



def test_a_test_that_swallows_the_refusal_still_fails() -> None:
    with contextlib.suppress(OSError):  # code under test that hides connection errors
        socket.create_connection(("169.254.169.254", 80), timeout=1)
    with pytest.raises(pytest.fail.Exception, match=r"169\.254\.169\.254:80"):
        network_guard.fail_on_violations()
    network_guard.fail_on_violations()  # the record is consumed: nothing left to fail on
