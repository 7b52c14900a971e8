"""A token cache kept in one local file, shared safely by the processes of one user.

Writes are atomic (a 0600 temporary file in the same directory, fsynced, then
:func:`os.replace` and a directory fsync), so a reader always opens a complete
file, old or new. :meth:`FileCacheStorage.update` holds an exclusive
:func:`fcntl.flock` on ``<path>.lock`` while it reads, merges and writes, so
concurrent writers never lose each other's changes. :meth:`~FileCacheStorage.load`
takes no lock: the atomic rename already guarantees it a complete file, and it
never waits behind a writer. Every file operation runs in a worker thread of
the storage's own small pool, bounded by ``operation_timeout``: a file whose
open blocks (a hung network home directory, a FIFO) fails the call in time
(:class:`~aiomsal.MsalTransportError`, a transient fault) instead of stalling
its callers, and cannot starve other users of threads.

What no retry can fix is a configuration error, raised as
:class:`~aiomsal.MsalConfigurationError`: a file that cannot be decrypted with
the key given (with ``on_corrupt="raise"``), a path that cannot be read or
written for lack of permission, a directory (or a device) at the path.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from stat import S_ISDIR, S_ISREG
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar

import anyio
import anyio.to_thread

from .._cache._storage import Merge
from .._concurrency._clock import Clock, SystemClock
from .._errors import MsalConfigurationError, MsalError, MsalTransportError
from ._file_locks import (
    HAVE_FLOCK,
    HeldFlock,
    LockRecord,
    apply_records,
    open_lock_file,
    poll_flock,
    write_all,
)
from ._queued import LockQueue

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["FileCacheStorage"]

_log = logging.getLogger("aiomsal")
_T = TypeVar("_T")
_Partitions = dict[str, tuple[bytes, float | None]]

_MAGIC = b"AIOMSAL1"
_NONCE_SIZE = 12
_TAG_SIZE = 16
_VERSION = 1
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")
#: Longest single wait for a lock inside one worker thread, so cancellation stays prompt.
_POLL_SLICE = 0.1
#: Worker threads one storage may occupy (a blocked file system holds them until it answers).
_THREADS = 4
#: OS errors that a retry cannot fix: the path is not a file this user can use.
_CONFIG_ERRORS = (PermissionError, IsADirectoryError, NotADirectoryError)


class _NotAFile(OSError):
    """Something other than a regular file (a directory, a FIFO, a device) is at the path."""


class _CorruptFile(Exception):
    def __init__(self, reason: str, file_id: tuple[int, int, int] | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.file_id = file_id


def _parse_key(key: bytes | str, source: str) -> bytes:
    if isinstance(key, str):
        text = key.strip()
        raw = b""
        if _URLSAFE_B64.fullmatch(text):
            with contextlib.suppress(binascii.Error, ValueError):
                raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = raw
    if len(key) != 32:
        raise MsalConfigurationError(
            f"{source} must be 32 raw bytes, or a str holding the urlsafe base64 of 32 bytes "
            "(make one with: base64.urlsafe_b64encode(os.urandom(32)).decode())"
        )
    return key


class FileCacheStorage:
    """A :class:`~aiomsal.CacheStorage` (and ``DistributedLock``) kept in one local file.

    ``path``: the cache file (its directory is created with mode 0700 if
    missing), beside ``<path>.lock`` (the writers' lock) and ``<path>.locks/``
    (the records of :meth:`try_lock`). Needs :func:`fcntl.flock` (POSIX).

    ``encryption_key``: 32 raw bytes, or a str holding the urlsafe base64 of 32
    bytes, to encrypt the file with AES-256-GCM. If None, the key is read at
    construction from the environment variable ``key_env_var`` when that is set
    and not empty (``key_env_var=None`` disables this). A malformed key raises
    :class:`~aiomsal.MsalConfigurationError`.

    ``on_corrupt``: for a file that is not a token cache or cannot be decrypted
    (wrong key, altered, encrypted without a key or the reverse): ``"raise"``
    :class:`~aiomsal.MsalError` from :meth:`load` and :meth:`update`, or
    ``"reset"``: log a warning, read it as empty, and let the next update replace it.

    ``lock_timeout``: seconds to wait for another process's lock before
    :class:`~aiomsal.MsalError`. ``operation_timeout``: seconds any one file
    operation may take before :class:`~aiomsal.MsalTransportError`. ``clock``:
    the time of expiries (default: the wall clock).

    A configuration error (a file that cannot be decrypted, with
    ``on_corrupt="raise"``; no permission; a directory or FIFO at the path)
    raises :class:`~aiomsal.MsalConfigurationError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        encryption_key: bytes | str | None = None,
        key_env_var: str | None = "AIOMSAL_CACHE_KEY",
        on_corrupt: Literal["raise", "reset"] = "raise",
        lock_timeout: float = 10.0,
        operation_timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        if not HAVE_FLOCK:  # pragma: no cover - Windows
            raise MsalConfigurationError(
                "FileCacheStorage needs fcntl.flock, available on Linux, macOS and other "
                "POSIX systems only; use another cache storage on this platform"
            )
        if on_corrupt not in ("raise", "reset"):
            raise MsalConfigurationError("on_corrupt must be 'raise' or 'reset'")
        if not lock_timeout > 0:
            raise MsalConfigurationError("lock_timeout must be a positive number of seconds")
        if not 0 < operation_timeout < float("inf"):
            raise MsalConfigurationError("operation_timeout must be a positive number of seconds")
        self._timeout = operation_timeout
        self._threads = anyio.CapacityLimiter(_THREADS)
        self._path = os.path.abspath(os.fspath(path))
        self._dir = os.path.dirname(self._path)
        self._lock_path = self._path + ".lock"
        self._locks_dir = self._path + ".locks"
        self._tmp_prefix = f".{os.path.basename(self._path)}.aiomsal-"
        key: bytes | None = None
        if encryption_key is not None:
            key = _parse_key(encryption_key, "encryption_key")
        elif key_env_var and os.environ.get(key_env_var):
            key = _parse_key(os.environ[key_env_var], f"the environment variable {key_env_var}")
        self._aead: AESGCM | None = None
        if key is not None:  # cryptography is imported when a key is given
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(key)
        self._on_corrupt = on_corrupt
        self._lock_timeout = lock_timeout
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._write_lock = anyio.Lock()
        self._record_lock = anyio.Lock()
        #: Updates waiting for the writer, and lock records waiting for the guard:
        #: the next holder does them all in one round.
        self._writes: LockQueue[_Write] = LockQueue(
            self._write_lock, self._write_batch,
            f"token cache file {self._path!r}: the write was interrupted",
        )
        #: Concurrent loads share one read of the file (loads take no flock).
        self._reads: LockQueue[None] = LockQueue(
            anyio.Lock(), self._read_round,
            f"token cache file {self._path!r}: the read was interrupted",
        )
        self._records: LockQueue[LockRecord] = LockQueue(
            self._record_lock, self._record_batch,
            f"token cache file {self._path!r}: a lock record was interrupted",
        )
        self._warned: tuple[int, int, int] | None = None
        self._swept = False
        self._closed = False

    async def __aenter__(self) -> FileCacheStorage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"FileCacheStorage({self._path!r}, encrypted={self._aead is not None})"

    @property
    def path(self) -> str:
        """The absolute path of the cache file."""
        return self._path

    # -- CacheStorage ---------------------------------------------------------------

    async def load(self, partition: str) -> bytes | None:
        """The stored bytes of ``partition``, or None (absent or expired)."""
        self._check_open()
        parts = await self._read_shared()
        if isinstance(parts, _CorruptFile):
            self._corrupt(parts, "treating it as empty")
            return None
        stored = parts.get(partition)
        if stored is None or self._expired(stored[1]):
            return None
        return stored[0]

    async def partitions(self, prefix: str) -> list[str]:
        """The names of the stored (unexpired) partitions that start with ``prefix``."""
        self._check_open()
        parts = await self._read_shared()
        if isinstance(parts, _CorruptFile):
            self._corrupt(parts, "treating it as empty")
            return []
        return [
            name for name, (_, expires_at) in parts.items()
            if name.startswith(prefix) and not self._expired(expires_at)
        ]

    async def update(self, partition: str, merge: Merge, *, ttl: float | None = None) -> None:
        """Store ``merge(current)`` in ``partition`` (None deletes it), holding the file's lock.

        ``merge`` runs in the event loop (not in a thread) while the lock is held.
        The updates waiting for this storage's writer when it is free go into one
        rewrite of the file (in the order they came), so that a burst of saves
        costs a few writes, not one each.
        """
        self._check_open()
        await self._writes.submit(_Write(partition, merge, ttl), self._check_open)

    async def _read_shared(self) -> _Partitions | _CorruptFile:
        """The file's partitions, read once for every reader waiting at the moment."""
        result: _Partitions | _CorruptFile = await self._reads.submit(None, self._check_open)
        return result

    async def _read_round(self, batch: list[None]) -> list[_Partitions | _CorruptFile]:
        try:
            parts: _Partitions | _CorruptFile = await self._io(self._read_sync)
        except _CorruptFile as corrupt:
            parts = corrupt
        return [parts] * len(batch)

    async def _write_batch(self, batch: list[_Write]) -> list[None]:
        async with self._flocked(self._lock_path) as held:
            try:
                parts = await self._io(self._read_sync)
            except _CorruptFile as corrupt:
                self._corrupt(corrupt, "it will be replaced")
                parts = {}
            now = self._clock.time()
            parts = {k: v for k, v in parts.items() if v[1] is None or v[1] >= now}
            for write in batch:
                current = parts.get(write.partition)
                new = write.merge(current[0] if current is not None else None)
                if new is None:
                    parts.pop(write.partition, None)
                else:
                    expires_at = None if write.ttl is None else now + write.ttl
                    parts[write.partition] = (bytes(new), expires_at)
            # Under the lock to the end: a rewrite abandoned by its timeout keeps the lock
            # until it is done, so that it cannot replace the file after a newer save.
            await self._io(held.run, self._write_sync, parts)
        return [None] * len(batch)

    async def aclose(self) -> None:
        """Wait for a write in progress, then refuse further use. Idempotent."""
        async with self._write_lock, self._record_lock:
            self._closed = True

    # -- DistributedLock ------------------------------------------------------------

    async def try_lock(self, name: str, ttl: float) -> str | None:
        """Take the lock ``name`` for ``ttl`` seconds: its token, or None while another holds it.

        A record whose holder let it expire (a crashed process) is taken over.
        """
        self._check_open()
        if not ttl > 0:
            raise MsalConfigurationError("a lock's ttl must be a positive number of seconds")
        token = secrets.token_urlsafe(24)
        record = LockRecord(self._record_path(name), token, ttl)
        taken = await self._records.submit(record, self._check_open)
        return token if taken else None

    async def unlock(self, name: str, token: str) -> None:
        """Release the lock ``name`` if ``token`` still holds it; otherwise do nothing."""
        self._check_open()
        record = LockRecord(self._record_path(name), token, None)
        await self._records.submit(record, self._check_open)

    async def _record_batch(self, batch: list[LockRecord]) -> list[bool]:
        """Take and release lock records in one pass, under the guard of every process's."""
        async with self._guard() as held:
            results = await self._io(held.run, apply_records, batch, self._clock.time())
        for result in results:
            if isinstance(result, OSError):
                raise MsalError(f"token cache file {self._path!r}: a lock record failed: {result}")
        return [bool(result) for result in results]

    # -- internals (the *_sync methods run in worker threads) ------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise MsalError(f"{self!r} is closed")

    async def _io(self, func: Callable[..., _T], *args: object) -> _T:
        """Run a blocking file operation in a worker thread, bounded by the operation timeout.

        A thread whose call blocks past the bound is abandoned (it holds one of
        the storage's few threads until the file system answers). An OSError
        becomes an :class:`MsalError`, or an :class:`MsalConfigurationError`
        when no retry can fix it.
        """
        try:
            with anyio.fail_after(self._timeout):
                return await anyio.to_thread.run_sync(
                    func, *args, abandon_on_cancel=True, limiter=self._threads
                )
        except TimeoutError:
            raise MsalTransportError(
                f"token cache file {self._path!r}: no answer from the file system within "
                f"{self._timeout:g}s"
            ) from None
        except _NotAFile as exc:
            raise MsalConfigurationError(
                f"token cache file {self._path!r}: {exc.strerror}"
            ) from None
        except _CONFIG_ERRORS as exc:
            raise MsalConfigurationError(
                f"token cache file {self._path!r}: {exc.strerror or type(exc).__name__}"
                " (check the path and its permissions)"
            ) from None
        except OSError as exc:
            raise MsalError(f"token cache file {self._path!r}: I/O failed: {exc}") from exc

    def _expired(self, expires_at: float | None) -> bool:
        return expires_at is not None and expires_at < self._clock.time()

    def _corrupt(self, corrupt: _CorruptFile, consequence: str) -> None:
        message = f"the token cache file {self._path!r} {corrupt.reason}"
        if self._on_corrupt == "raise":
            raise MsalConfigurationError(
                f"{message} (on_corrupt='raise'; give the right key, or on_corrupt='reset')"
            ) from None
        if corrupt.file_id is None or corrupt.file_id != self._warned:
            self._warned = corrupt.file_id
            _log.warning("%s; %s (on_corrupt='reset')", message, consequence)

    @contextlib.asynccontextmanager
    async def _flocked(self, lock_path: str) -> AsyncIterator[HeldFlock]:
        """Hold an exclusive flock on ``lock_path``, polling for at most lock_timeout seconds.

        Work that must stay under the lock even if its caller stops waiting
        for it runs through the :class:`HeldFlock` yielded.
        """
        fd: int = await self._io(open_lock_file, lock_path)
        held = HeldFlock(fd)
        try:
            deadline = time.monotonic() + self._lock_timeout
            while True:
                remaining = deadline - time.monotonic()
                budget = min(_POLL_SLICE, max(remaining, 0.0))
                if await self._io(poll_flock, fd, budget):
                    break
                if remaining <= 0:
                    raise MsalError(
                        f"could not lock {lock_path!r} within {self._lock_timeout:g}s: "
                        "another process holds it"
                    )
            yield held
        finally:
            if held.release():  # else the thread still working under it closes it
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(os.close, fd)  # closing releases the flock

    def _guard(self) -> contextlib.AbstractAsyncContextManager[HeldFlock]:
        """The flock serializing every process's lock records, so a takeover cannot race."""
        return self._flocked(os.path.join(self._locks_dir, ".guard"))

    def _record_path(self, name: str) -> str:
        return os.path.join(self._locks_dir, hashlib.sha256(name.encode()).hexdigest())

    def _read_sync(self) -> _Partitions:
        try:
            # May block (a hung network file system, a FIFO): _io bounds the wait.
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return {}
        with open(fd, "rb") as file:
            stat = os.fstat(fd)
            if S_ISDIR(stat.st_mode):
                raise IsADirectoryError(errno.EISDIR, "Is a directory")
            if not S_ISREG(stat.st_mode):
                raise _NotAFile(0, "is not a regular file (a FIFO or a device)")
            raw = file.read()
        file_id = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if not raw:
            return {}
        try:
            return self._decode(raw)
        except _CorruptFile as corrupt:
            corrupt.file_id = file_id
            raise

    def _decode(self, raw: bytes) -> _Partitions:
        if raw.startswith(_MAGIC):
            if self._aead is None:
                raise _CorruptFile("is encrypted, and no encryption key was given", None)
            body = raw[len(_MAGIC) :]
            from cryptography.exceptions import InvalidTag

            try:
                if len(body) < _NONCE_SIZE + _TAG_SIZE:
                    raise InvalidTag
                plain = self._aead.decrypt(body[:_NONCE_SIZE], body[_NONCE_SIZE:], _MAGIC)
            except InvalidTag:
                raise _CorruptFile(
                    "cannot be decrypted with this key (wrong key, or the file was altered)", None
                ) from None
        elif self._aead is not None:
            raise _CorruptFile("is not encrypted, though an encryption key was given", None)
        else:
            plain = raw
        not_cache = _CorruptFile("is not a token cache file", None)
        try:
            doc = json.loads(plain)
        except (ValueError, RecursionError):
            raise not_cache from None
        if not isinstance(doc, dict):
            raise not_cache
        version = doc.get("version")
        if type(version) is int and version != _VERSION:
            raise _CorruptFile(f"has an unsupported format version {version}", None)
        if version != _VERSION or not isinstance(doc.get("partitions"), dict):
            raise not_cache
        parts: _Partitions = {}
        for name, entry in doc["partitions"].items():
            try:
                data, expires_at = entry["data"], entry["expires_at"]
                if expires_at is not None and (
                    type(expires_at) not in (int, float) or not math.isfinite(expires_at)
                ):
                    raise TypeError
                parts[name] = (base64.b64decode(data, validate=True), expires_at)
            except (TypeError, KeyError, ValueError):  # binascii.Error is a ValueError
                raise not_cache from None
        return parts

    def _write_sync(self, parts: _Partitions) -> None:
        doc = {
            "version": _VERSION,
            "partitions": {
                name: {"data": base64.b64encode(data).decode("ascii"), "expires_at": expires_at}
                for name, (data, expires_at) in parts.items()
            },
        }
        payload = json.dumps(doc, separators=(",", ":")).encode()
        if self._aead is not None:
            nonce = os.urandom(_NONCE_SIZE)
            payload = _MAGIC + nonce + self._aead.encrypt(nonce, payload, _MAGIC)
        if not self._swept:
            self._sweep_orphans()
        tmp = os.path.join(self._dir, f"{self._tmp_prefix}{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.fchmod(fd, 0o600)
                write_all(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self._dir, os.O_RDONLY)
        with contextlib.suppress(OSError):  # not every file system syncs directories
            os.fsync(dir_fd)
        os.close(dir_fd)

    def _sweep_orphans(self) -> None:
        """Remove temporary files left by a writer that crashed (we hold the lock: none is live)."""
        self._swept = True
        with contextlib.suppress(OSError), os.scandir(self._dir) as entries:
            for entry in entries:
                if entry.name.startswith(self._tmp_prefix) and entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


class _Write(NamedTuple):
    """An update waiting for the writer."""

    partition: str
    merge: Merge
    ttl: float | None
