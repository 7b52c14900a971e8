"""Heavy modules (aiohttp) imported in a worker thread, so that the event loop keeps serving.

``import aiomsal`` leaves aiohttp out: a token served from a warm cache never
needs it. The first request that does imports it with :func:`import_off_loop`:
the import (a hundred milliseconds or more) runs in a worker thread while the
loop serves other tasks; concurrent first requests on a loop wait for the same
import; each waits at most its own budget, and a waiter that gives up
leaves the import running for the others.
"""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType

import anyio
import anyio.to_thread

__all__ = ["import_off_loop"]

#: Modules this helper has imported (completely: ``sys.modules`` also holds those under way).
_imported: dict[str, ModuleType] = {}
#: Imports under way, by module name and event loop (each loop awaits its own task).
_pending: dict[tuple[str, asyncio.AbstractEventLoop], asyncio.Task[ModuleType]] = {}


async def import_off_loop(name: str, budget: float) -> ModuleType:
    """The module ``name``, imported in a worker thread; TimeoutError after ``budget`` seconds.

    An import that failed is tried again by the next call.
    """
    module = _imported.get(name)
    if module is not None:
        return module
    loop = asyncio.get_running_loop()
    key = (name, loop)
    task = _pending.get(key)
    if task is None:
        task = loop.create_task(anyio.to_thread.run_sync(importlib.import_module, name))
        _pending[key] = task

        def settled(done: asyncio.Task[ModuleType]) -> None:
            _pending.pop(key, None)
            if not done.cancelled() and done.exception() is None:  # retrieved, if it failed
                _imported[name] = done.result()

        task.add_done_callback(settled)
    with anyio.fail_after(max(budget, 0.0)):
        return await asyncio.shield(task)
