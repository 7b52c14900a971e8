"""Shared helpers for aiomsal's tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import requests
import requests.adapters

import aiomsal
from aiomsal.testing import VirtualClock

T = TypeVar("T")

SECRET = "s3cr3t-value-never-shown"
GRAPH = ["https://graph.microsoft.com/.default"]


async def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Let other tasks (and loopback I/O) run until ``condition()`` holds.

    Fails the test after ``limit`` seconds. This waits for work in flight,
    never for a token to expire: expiry is simulated with a VirtualClock.
    """
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - the state lives in other objects
            await anyio.sleep(0.001)


def aiomsal_tasks() -> list[asyncio.Task[object]]:
    """The tasks aiomsal started that are still alive."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and _runs_aiomsal_code(task.get_coro())
    ]


#: The directory of the aiomsal package, and of its test fakes (whose tasks are not aiomsal's).
PACKAGE_DIR = os.path.dirname(os.path.abspath(aiomsal.__file__)) + os.sep
TESTING_DIR = os.path.join(PACKAGE_DIR, "testing") + os.sep


def runs_package_code(filename: str) -> bool:
    """Whether ``filename`` is a module of the aiomsal package (not its fakes).

    Compared with the package's directory, not with a ``/aiomsal/`` substring:
    in a checkout named ``aiomsal`` every file of the virtualenv under it
    (anyio's, aiohttp's) has that substring too.
    """
    path = os.path.abspath(filename)
    return path.startswith(PACKAGE_DIR) and not path.startswith(TESTING_DIR)


def _runs_aiomsal_code(coro: object) -> bool:
    code = getattr(coro, "cr_code", None)
    filename = getattr(code, "co_filename", "")
    return bool(filename) and runs_package_code(filename)


class NoUserRealm(requests.adapters.BaseAdapter):
    """Answers MSAL's user realm discovery with 404 ("none here"), as hosts without it do.

    MSAL asks ``https://{host}/common/userrealm/...`` before a password grant,
    on the default port, where the fake (on a random port) is not listening.
    """

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        response = requests.Response()
        response.status_code = 404
        response.url = request.url or ""
        response.request = request
        response._content = b"{}"
        return response

    def close(self) -> None:
        pass


async def drive(clock: VirtualClock, call: Awaitable[T]) -> T:
    """Await ``call`` while moving the clock past the transport's retry backoff.

    The loop yields to the event loop (1 ms at a time) while the call waits on
    loopback I/O, and advances the virtual clock only when a task sleeps on it.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = anyio.Event()

    async def run() -> None:
        try:
            outcome.append(await call)
        except Exception as exc:  # handed to the caller below
            failure.append(exc)
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        while not done.is_set():
            if clock.sleepers:
                await clock.advance(1.0)
            else:
                await anyio.sleep(0.001)
    if failure:
        raise failure[0]
    return outcome[0]


async def advance_until(
    clock: VirtualClock, condition: Callable[[], bool], *, step: float, limit: float
) -> None:
    """Move ``clock`` on by ``step`` until ``condition()`` holds (at most ``limit`` seconds).

    After each step the tasks it woke finish their loopback I/O and sleep on the clock
    again before the condition is read, so jittered background work is seen step by step.
    """
    moved = 0.0
    while not condition():
        if moved >= limit:
            raise AssertionError(f"condition not met within {limit:g} clock seconds")
        await clock.advance(step)
        moved += step
        await wait_until(lambda: clock.sleepers >= 1)
