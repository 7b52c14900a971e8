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
import time
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    HAVE_FLOCK = False
else:
    HAVE_FLOCK = True

__all__ = [
    "HAVE_FLOCK",
    "LockRecord",
    "apply_records",
    "open_lock_file",
    "poll_flock",
    "try_lock_sync",
    "unlock_sync",
    "write_all",
]


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
