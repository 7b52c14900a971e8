from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp runs on asyncio only, and so does aiomsal."""
    return "asyncio"


# -- a private redis-server (tests/redis_server.py) ---------------------------

import os  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from tests.redis_server import (  # noqa: E402
    RedisServer,
    missing_redis_server_message,
    redis_server_binary,
)
from tests.redis_server import redis_server as _start_redis_server  # noqa: E402


def require_redis_server() -> None:
    """Skip the test when redis-server is missing, or fail it under CI (``CI`` set)."""
    if redis_server_binary() is None:
        if os.environ.get("CI"):
            pytest.fail(missing_redis_server_message())
        pytest.skip(missing_redis_server_message())


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for this test only (it may kill and restart it)."""
    require_redis_server()
    with _start_redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """A redis-server shared by a module's tests (each keeps to its own key prefix)."""
    require_redis_server()
    with _start_redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of this test's private redis-server."""
    return redis_server.url


# -- a private Azurite (tests/azurite_server.py) -------------------------------

from tests.azurite_server import (  # noqa: E402
    AzuriteServer,
    azurite_binary,
    azurite_server,
    missing_azurite_message,
)


@pytest.fixture
def azurite() -> Iterator[AzuriteServer]:
    """A private Azurite blob service; skipped without one locally, failed under CI."""
    binary = azurite_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(missing_azurite_message())
        pytest.skip(missing_azurite_message())
    with azurite_server(binary) as server:
        yield server


# -- loopback only (tests/network_guard.py) ------------------------------------

from tests import network_guard  # noqa: E402

network_guard.install()


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """Fail any test that tried to reach an address outside 127.0.0.0/8 and ::1."""
    network_guard.take_violations()
    yield
    network_guard.fail_on_violations()
