"""Helpers of the lifetime tests: a FakeAuthority on a thread of its own, incoming user tokens."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar, cast

from aiomsal.testing import FakeAuthority, VirtualClock

T = TypeVar("T")


class ThreadedFake:
    """A FakeAuthority serving from its own thread and event loop, outliving the test's loops."""

    def __init__(self, fake: FakeAuthority, loop: asyncio.AbstractEventLoop) -> None:
        self.fake = fake
        self._loop = loop

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the fake's loop (to script faults safely) and return what it returns."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed to the caller
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(timeout=10)


@contextmanager
def fake_in_thread(*clients: str, secret: str) -> Iterator[ThreadedFake]:
    """A FakeAuthority on a thread of its own, with ``clients`` registered (secret ``secret``)."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        async with FakeAuthority() as fake:
            for client in clients:
                fake.add_client(client, secret=secret)
            holder.update(fake=fake, loop=asyncio.get_running_loop(), stop=stop)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the threaded FakeAuthority did not start")
    try:
        yield ThreadedFake(holder["fake"], holder["loop"])
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


def incoming_assertions(
    fake: FakeAuthority, clock: VirtualClock, api: str, count: int, *, lifetime: float = 3600
) -> list[str]:
    """User access tokens for ``api`` (its on-behalf-of assertions), one per new user.

    Signed with the fake's own key, as its sign-ins sign them, without a
    sign-in per user, so that thousands of users cost no requests.
    """
    tenant_id = fake.tenant_id("contoso")
    issuer = f"{fake.base_url}/{tenant_id}/v2.0"
    now = int(clock.time())
    tokens = []
    for i in range(count):
        user = fake.add_user(f"hot-user-{i}@contoso.com", password="pw", tenant="contoso")
        claims = {
            "aud": f"api://{api}",
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "oid": user.oid,
            "sub": f"sub-{i}",
            "tid": tenant_id,
            "scp": "access_as_user",
            "ver": "2.0",
        }
        tokens.append(fake._signer.sign(claims))
    return tokens


@asynccontextmanager
async def serving(*confidential: str, secret: str, public: str) -> AsyncIterator[FakeAuthority]:
    """A FakeAuthority on a VirtualClock of its own (``fake_clock(fake)``), clients registered."""
    async with FakeAuthority(clock=VirtualClock()) as authority:
        for client in confidential:
            authority.add_client(client, secret=secret)
        authority.add_client(public, redirect_uris=["http://localhost"])
        yield authority


def fake_clock(fake: FakeAuthority) -> VirtualClock:
    return cast(VirtualClock, fake.clock)
