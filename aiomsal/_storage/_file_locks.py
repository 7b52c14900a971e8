"""The blocking side of FileCacheStorage: lock files and lock records, run in worker threads.

:func:`poll_flock` takes the writers' ``flock`` in short slices (so that a
cancelled caller is not held for long); lock records (``try_lock``) are small
JSON files created with ``O_EXCL``, read leniently (a crashed writer may
leave one half-written) and taken over once expired.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
from collections.abc import Callable
from typing import NamedTuple, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    HAVE_FLOCK = False
else:
    HAVE_FLOCK = True

__all__ = [
    "HAVE_FLOCK",
    "HeldFlock",
    "LockRecord",
    "apply_records",
    "open_lock_file",
    "poll_flock",
    "try_lock_sync",
    "unlock_sync",
    "write_all",
]


_T = TypeVar("_T")


class LockGivenUp(Exception):
    """The holder let go of the flock before a worker thread began its work under it."""


class HeldFlock:
    """An flock held by this process, kept by a worker thread still working under it.

    The holder (the event loop) gives the lock up with :meth:`release`; work
    done under the lock in a worker thread goes through :meth:`run`. A thread
    whose caller gave up waiting for it (the storage's operation timeout)
    keeps the lock until its work is finished, and closes the descriptor
    itself: a rewrite that was abandoned can never land after the next
    writer's. Work that had not begun when the lock was given up is skipped.
    """

    __slots__ = ("_busy", "_fd", "_mutex", "_released")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._mutex = threading.Lock()
        self._busy = 0
        self._released = False

    def run(self, func: Callable[..., _T], *args: object) -> _T:
        """Call ``func(*args)`` under the lock (in a worker thread)."""
        with self._mutex:
            if self._released:
                raise LockGivenUp
            self._busy += 1
        try:
            return func(*args)
        finally:
            with self._mutex:
                self._busy -= 1
                close = self._released and not self._busy
            if close:
                os.close(self._fd)

    def release(self) -> bool:
        """Give the lock up: True if the caller is to close the descriptor now.

        False while a thread is still working under it: that thread closes it.
        """
        with self._mutex:
            self._released = True
            return not self._busy


def open_lock_file(path: str) -> int:
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    except FileExistsError:  # a file where a directory of the path should be
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory") from None
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def poll_flock(fd: int, budget: float) -> bool:
    """Try to flock ``fd`` exclusively for up to ``budget`` seconds; True once held."""
    deadline = time.monotonic() + budget
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.02)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_record(path: str) -> tuple[str, float] | None:
    """A lock record's (token, expires_at); None if absent or unreadable (a crashed writer)."""
    try:
        with open(path, "rb") as file:
            record = json.loads(file.read())
        token, expires_at = record["token"], record["expires_at"]
    except (FileNotFoundError, ValueError, TypeError, KeyError, RecursionError):
        return None
    if not isinstance(token, str) or not isinstance(expires_at, (int, float)):
        return None
    return token, float(expires_at)


def try_lock_sync(record: str, token: str, now: float, expires_at: float) -> bool:
    held = _read_record(record)
    if held is not None and held[1] >= now:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record)  # absent, expired, or left unreadable by a crashed writer
    try:
        fd = os.open(record, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except FileExistsError:  # a writer that does not take the guard
        return False
    try:
        write_all(fd, json.dumps({"token": token, "expires_at": expires_at}).encode())
    finally:
        os.close(fd)
    return True


def unlock_sync(record: str, token: str) -> None:
    held = _read_record(record)
    if held is not None and held[0] == token:
        os.unlink(record)


class LockRecord(NamedTuple):
    """Take the lock record at ``path`` for ``ttl`` seconds, or release it (``ttl`` None)."""

    path: str
    token: str
    ttl: float | None


def apply_records(records: list[LockRecord], now: float) -> list[bool | OSError]:
    """Take or release each record in turn: whether each lock was taken, or its OS error."""
    results: list[bool | OSError] = []
    for record in records:
        try:
            if record.ttl is None:
                unlock_sync(record.path, record.token)
                results.append(True)
            else:
                results.append(try_lock_sync(record.path, record.token, now, now + record.ttl))
        except OSError as exc:
            results.append(exc)
    return results
