from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiomsal
from aiomsal._cache._storage import CacheStorage, DistributedLock
from aiomsal._errors import MsalConfigurationError, MsalError
from aiomsal._storage._file_storage import FileCacheStorage

KEY = bytes(range(32))
KEY_TEXT = base64.urlsafe_b64encode(KEY).decode()
OTHER_KEY = bytes(range(1, 33))


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOMSAL_CACHE_KEY", raising=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read_doc(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_bytes())
    assert isinstance(doc, dict)
    return doc


def constant(value: bytes) -> Callable[[bytes | None], bytes]:
    return lambda current: value


def test_implements_the_protocols(tmp_path: Path) -> None:
    storage = FileCacheStorage(tmp_path / "cache.json")
    assert isinstance(storage, CacheStorage)
    assert isinstance(storage, DistributedLock)


@pytest.mark.anyio
async def test_round_trip_of_several_partitions(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.json"
    storage = FileCacheStorage(path)
    assert await storage.load("a") is None
    blobs = {"a": b"\x00\xffbinary", "b": b"{}", "c": bytes(range(256))}
    for name, blob in blobs.items():
        await storage.update(name, constant(blob))
    for name, blob in blobs.items():
        assert await storage.load(name) == blob
    again = FileCacheStorage(path)  # a restart reads the same file
    assert {n: await again.load(n) for n in blobs} == blobs
    doc = read_doc(path)
    assert doc["version"] == 1
    assert doc["partitions"] == {
        n: {"data": base64.b64encode(b).decode(), "expires_at": None} for n, b in blobs.items()
    }


@pytest.mark.anyio
async def test_merge_sees_current_bytes_and_none_deletes(tmp_path: Path) -> None:
    storage = FileCacheStorage(tmp_path / "cache.json")
    seen: list[bytes | None] = []

    def append(current: bytes | None) -> bytes:
        seen.append(current)
        return (current or b"") + b"x"

    await storage.update("p", append)
    await storage.update("p", append)
    assert seen == [None, b"x"]
    assert await storage.load("p") == b"xx"
    await storage.update("q", lambda current: b"keep")
    await storage.update("p", lambda current: None)
    assert await storage.load("p") is None
    assert await storage.load("q") == b"keep"
    await storage.update("absent", lambda current: None)  # deleting nothing is fine


@pytest.mark.anyio
async def test_a_failing_merge_writes_nothing_and_releases_the_lock(tmp_path: Path) -> None:
    storage = FileCacheStorage(tmp_path / "cache.json", lock_timeout=0.5)
    await storage.update("p", lambda current: b"1")

    def boom(current: bytes | None) -> bytes:
        raise RuntimeError("merge failed")

    with pytest.raises(RuntimeError):
        await storage.update("p", boom)
    assert await storage.load("p") == b"1"
    await storage.update("p", lambda current: b"2")
    assert await storage.load("p") == b"2"


@pytest.mark.anyio
async def test_files_are_private_and_no_temp_file_remains(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "cache.json"
    storage = FileCacheStorage(path)
    for i in range(3):
        await storage.update(f"p{i}", lambda current: b"token")
    token = await storage.try_lock("refresh", 30)
    assert token is not None
    assert mode(path.parent) == 0o700
    assert mode(path) == 0o600
    assert mode(Path(f"{path}.lock")) == 0o600
    locks = Path(f"{path}.locks")
    assert mode(locks) == 0o700
    assert all(mode(locks / name) == 0o600 for name in os.listdir(locks))
    assert sorted(os.listdir(path.parent)) == ["cache.json", "cache.json.lock", "cache.json.locks"]


@pytest.mark.anyio
async def test_temp_files_of_a_crashed_writer_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    orphan = tmp_path / ".cache.json.aiomsal-deadbeefdeadbeef.tmp"
    orphan.write_bytes(b"half a cache")
    unrelated = tmp_path / "notes.tmp"
    unrelated.write_bytes(b"mine")
    await FileCacheStorage(path).update("p", lambda current: b"1")
    assert not orphan.exists()
    assert unrelated.exists()


@pytest.mark.anyio
async def test_expired_partitions_read_as_absent_and_are_dropped(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "cache.json"
    storage = FileCacheStorage(path, clock=clock)
    await storage.update("short", lambda current: b"s", ttl=60)
    await storage.update("long", lambda current: b"l", ttl=3600)
    await storage.update("forever", lambda current: b"f")
    assert read_doc(path)["partitions"]["short"]["expires_at"] == clock.now + 60
    clock.now += 61
    assert await storage.load("short") is None
    assert await storage.load("long") == b"l"
    seen: list[bytes | None] = []

    def record(current: bytes | None) -> None:
        seen.append(current)

    await storage.update("short", record)
    assert seen == [None]
    await storage.update("other", lambda current: b"o")
    assert set(read_doc(path)["partitions"]) == {"long", "forever", "other"}


@pytest.mark.anyio
async def test_encrypted_file_hides_the_partitions(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    storage = FileCacheStorage(path, encryption_key=KEY)
    secret = b"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.secret-access-token"
    await storage.update("tenant-partition", lambda current: secret)
    raw = path.read_bytes()
    assert raw.startswith(b"AIOMSAL1")
    for needle in (secret, base64.b64encode(secret), b"tenant-partition", b"partitions"):
        assert needle not in raw
    assert await FileCacheStorage(path, encryption_key=KEY_TEXT).load("tenant-partition") == secret
    await storage.update("tenant-partition", lambda current: secret)
    assert path.read_bytes()[8:20] != raw[8:20]  # a fresh nonce per write
    assert "encrypted=True" in repr(storage)
    assert KEY_TEXT not in repr(storage)


@pytest.mark.anyio
async def test_wrong_key_raises_by_default(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    await FileCacheStorage(path, encryption_key=KEY).update("p", lambda current: b"1")
    wrong = FileCacheStorage(path, encryption_key=OTHER_KEY)
    with pytest.raises(MsalError, match="cannot be decrypted with this key") as caught:
        await wrong.load("p")
    assert KEY_TEXT not in str(caught.value)
    with pytest.raises(MsalError, match="cannot be decrypted"):
        await wrong.update("p", lambda current: b"2")
    with pytest.raises(MsalError, match="no encryption key"):
        await FileCacheStorage(path).load("p")
    assert await FileCacheStorage(path, encryption_key=KEY).load("p") == b"1"  # untouched


@pytest.mark.anyio
async def test_tampered_file_cannot_be_decrypted(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    await FileCacheStorage(path, encryption_key=KEY).update("p", lambda current: b"1")
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(MsalError, match="cannot be decrypted"):
        await FileCacheStorage(path, encryption_key=KEY).load("p")
    path.write_bytes(b"AIOMSAL1short")
    with pytest.raises(MsalError, match="cannot be decrypted"):
        await FileCacheStorage(path, encryption_key=KEY).load("p")


@pytest.mark.anyio
async def test_wrong_key_resets_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.json"
    await FileCacheStorage(path, encryption_key=KEY).update("p", lambda current: b"1")
    wrong = FileCacheStorage(path, encryption_key=OTHER_KEY, on_corrupt="reset")
    with caplog.at_level(logging.WARNING, logger="aiomsal"):
        assert await wrong.load("p") is None
        assert await wrong.load("p") is None
    warnings = [r for r in caplog.records if r.name == "aiomsal"]
    assert len(warnings) == 1  # once per corrupt file, not per read
    assert "cannot be decrypted" in warnings[0].getMessage()
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> bytes:
        seen.append(current)
        return b"2"

    await wrong.update("p", merge)
    assert seen == [None]
    assert await wrong.load("p") == b"2"
    assert await FileCacheStorage(path, encryption_key=OTHER_KEY).load("p") == b"2"


@pytest.mark.anyio
async def test_plaintext_file_with_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    await FileCacheStorage(path).update("p", lambda current: b"1")
    with pytest.raises(MsalError, match="is not encrypted"):
        await FileCacheStorage(path, encryption_key=KEY).load("p")


@pytest.mark.anyio
async def test_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cache.json"
    monkeypatch.setenv("AIOMSAL_CACHE_KEY", KEY_TEXT + "\n")
    storage = FileCacheStorage(path)
    assert "encrypted=True" in repr(storage)
    await storage.update("p", lambda current: b"1")
    assert path.read_bytes().startswith(b"AIOMSAL1")
    monkeypatch.delenv("AIOMSAL_CACHE_KEY")
    assert await FileCacheStorage(path, encryption_key=KEY).load("p") == b"1"
    monkeypatch.setenv("MY_KEY", KEY_TEXT)
    assert await FileCacheStorage(path, key_env_var="MY_KEY").load("p") == b"1"
    monkeypatch.setenv("AIOMSAL_CACHE_KEY", "")  # empty: as if unset
    assert "encrypted=False" in repr(FileCacheStorage(path))
    monkeypatch.setenv("AIOMSAL_CACHE_KEY", KEY_TEXT)
    assert "encrypted=False" in repr(FileCacheStorage(path, key_env_var=None))
    # An explicit key wins over the environment.
    assert await FileCacheStorage(path, encryption_key=KEY).load("p") == b"1"


@pytest.mark.parametrize(
    "key",
    [
        b"short",
        bytes(33),
        KEY_TEXT.encode(),
        "not base64 !",
        base64.urlsafe_b64encode(bytes(16)).decode(),
        base64.b64encode(b"\xfb" * 32).decode(),  # standard, not urlsafe, alphabet
        "",
    ],
)
def test_malformed_key_is_a_configuration_error(tmp_path: Path, key: bytes | str) -> None:
    with pytest.raises(MsalConfigurationError, match="32") as caught:
        FileCacheStorage(tmp_path / "cache.json", encryption_key=key)
    assert isinstance(caught.value, ValueError)
    if isinstance(key, str) and key:
        assert key not in str(caught.value)


def test_malformed_key_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOMSAL_CACHE_KEY", "too-short")
    with pytest.raises(MsalConfigurationError, match="AIOMSAL_CACHE_KEY") as caught:
        FileCacheStorage(tmp_path / "cache.json")
    assert "too-short" not in str(caught.value)


def test_unpadded_key_text_is_accepted(tmp_path: Path) -> None:
    storage = FileCacheStorage(tmp_path / "c", encryption_key=KEY_TEXT.rstrip("="))
    assert "encrypted=True" in repr(storage)


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(MsalConfigurationError):
        FileCacheStorage(tmp_path / "c", on_corrupt="ignore")  # type: ignore[arg-type]
    with pytest.raises(MsalConfigurationError):
        FileCacheStorage(tmp_path / "c", lock_timeout=0)


CORRUPT_FILES = [
    b"{not json",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'{"version": 1}',
    b'{"version": 1, "partitions": {"p": "x"}}',
    b'{"version": 1, "partitions": {"p": {"data": "!!!", "expires_at": null}}}',
    b'{"version": 1, "partitions": {"p": {"data": "AA==", "expires_at": "soon"}}}',
    b"[" * 100_000,
    b'{"version": "1", "partitions": {}}',
    b'{"partitions": {}}',
]


@pytest.mark.anyio
@pytest.mark.parametrize("content", CORRUPT_FILES)
async def test_corrupt_file_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "cache.json"
    path.write_bytes(content)
    storage = FileCacheStorage(path)
    with pytest.raises(MsalError, match="is not a token cache file") as caught:
        await storage.load("p")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(MsalError, match="is not a token cache file"):
        await storage.update("p", lambda current: b"1")
    assert path.read_bytes() == content  # never overwritten under on_corrupt="raise"


@pytest.mark.anyio
async def test_unsupported_version(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    path.write_bytes(b'{"version": 2, "partitions": {}}')
    with pytest.raises(MsalError, match="unsupported format version 2"):
        await FileCacheStorage(path).load("p")


@pytest.mark.anyio
async def test_a_path_that_cannot_hold_the_file_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(MsalConfigurationError, match="Not a directory"):
        await FileCacheStorage(tmp_path / "a-file" / "cache.json").update("p", constant(b"1"))
    (tmp_path / "a-dir").mkdir()
    with pytest.raises(MsalConfigurationError, match="Is a directory"):
        await FileCacheStorage(tmp_path / "a-dir").load("p")


@pytest.mark.anyio
async def test_corrupt_file_resets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cache.json"
    path.write_bytes(b"{not json")
    storage = FileCacheStorage(path, on_corrupt="reset")
    with caplog.at_level(logging.WARNING, logger="aiomsal"):
        assert await storage.load("p") is None
        await storage.update("p", lambda current: b"1")
    assert any("is not a token cache file" in r.getMessage() for r in caplog.records)
    assert await storage.load("p") == b"1"
    assert read_doc(path)["version"] == 1


@pytest.mark.anyio
async def test_empty_file_is_an_empty_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    path.touch()
    storage = FileCacheStorage(path)
    assert await storage.load("p") is None
    await storage.update("p", lambda current: b"1")
    assert await storage.load("p") == b"1"


@pytest.mark.anyio
async def test_lock_timeout_does_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    storage = FileCacheStorage(path, lock_timeout=0.3)
    await storage.update("p", lambda current: b"1")
    fd = os.open(f"{path}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process's writer
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as group:
            group.start_soon(tick)
            with pytest.raises(MsalError, match="could not lock"):
                await storage.update("p", lambda current: b"2")
            group.cancel_scope.cancel()
        assert ticks >= 10
        assert await storage.load("p") == b"1"  # reads never wait for the lock

        async def release_soon() -> None:
            await anyio.sleep(0.1)
            fcntl.flock(fd, fcntl.LOCK_UN)

        async with anyio.create_task_group() as group:
            group.start_soon(release_soon)
            await storage.update("p", lambda current: b"3")
        assert await storage.load("p") == b"3"
    finally:
        os.close(fd)


@pytest.mark.anyio
async def test_cancelled_update_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    storage = FileCacheStorage(path, lock_timeout=5)
    await storage.update("p", lambda current: b"1")
    fd = os.open(f"{path}.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    started = time.monotonic()
    with anyio.move_on_after(0.1):
        await storage.update("p", lambda current: b"2")
    assert time.monotonic() - started < 1
    os.close(fd)
    other = FileCacheStorage(path, lock_timeout=0.5)
    await other.update("p", lambda current: b"3")
    await storage.update("p", lambda current: (current or b"") + b"4")
    assert await storage.load("p") == b"34"


@pytest.mark.anyio
async def test_concurrent_tasks_lose_nothing(tmp_path: Path) -> None:
    storage = FileCacheStorage(tmp_path / "cache.json")

    async def add(i: int) -> None:
        await storage.update("shared", lambda current: (current or b"") + b"%d," % i)

    async with anyio.create_task_group() as group:
        for i in range(30):
            group.start_soon(add, i)
    stored = await storage.load("shared")
    assert stored is not None
    assert sorted(int(x) for x in stored.decode().split(",") if x) == list(range(30))


@pytest.mark.anyio
async def test_aclose_is_idempotent_and_final(tmp_path: Path) -> None:
    storage = FileCacheStorage(tmp_path / "cache.json")
    await storage.update("p", lambda current: b"1")
    await storage.aclose()
    await storage.aclose()
    with pytest.raises(MsalError, match="closed"):
        await storage.load("p")
    with pytest.raises(MsalError, match="closed"):
        await storage.update("p", lambda current: b"2")
    with pytest.raises(MsalError, match="closed"):
        await storage.try_lock("x", 1)


def test_repr(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    assert repr(FileCacheStorage(path)) == f"FileCacheStorage({str(path)!r}, encrypted=False)"
    assert FileCacheStorage(path).path == str(path)


@pytest.mark.anyio
async def test_try_lock_and_unlock(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "cache.json"
    first = FileCacheStorage(path, clock=clock)
    second = FileCacheStorage(path, clock=clock)  # another process, as far as files go
    token = await first.try_lock("refresh:tenant", 30)
    assert token is not None
    assert await second.try_lock("refresh:tenant", 30) is None
    assert await first.try_lock("refresh:tenant", 30) is None  # not reentrant
    other = await second.try_lock("refresh:other", 30)  # names are independent
    assert other is not None
    await second.unlock("refresh:tenant", "wrong-token")  # refused: still held
    assert await second.try_lock("refresh:tenant", 30) is None
    await second.unlock("refresh:tenant", token)
    again = await second.try_lock("refresh:tenant", 30)
    assert again is not None and again != token
    await first.unlock("refresh:tenant", token)  # a stale token releases nothing
    assert await first.try_lock("refresh:tenant", 30) is None
    await second.unlock("never-locked", "x")
    with pytest.raises(MsalConfigurationError):
        await first.try_lock("x", 0)


@pytest.mark.anyio
async def test_expired_lock_is_taken_over(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "cache.json"
    crashed = FileCacheStorage(path, clock=clock)
    survivor = FileCacheStorage(path, clock=clock)
    stale = await crashed.try_lock("refresh", 10)
    assert stale is not None
    clock.now += 9
    assert await survivor.try_lock("refresh", 10) is None
    clock.now += 2
    fresh = await survivor.try_lock("refresh", 10)
    assert fresh is not None
    await crashed.unlock("refresh", stale)  # the late holder cannot release the new one
    assert await crashed.try_lock("refresh", 10) is None
    await survivor.unlock("refresh", fresh)
    assert await crashed.try_lock("refresh", 10) is not None


@pytest.mark.anyio
async def test_unreadable_lock_record_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    storage = FileCacheStorage(path)
    assert await storage.try_lock("refresh", 10) is not None
    locks = Path(f"{path}.locks")
    (name,) = [n for n in os.listdir(locks) if n != ".guard"]
    assert "refresh" not in name  # hashed
    record = locks / name
    record.write_bytes(b"")  # a holder that crashed while writing its record
    assert await storage.try_lock("refresh", 10) is not None


WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import anyio
    from aiomsal._storage._file_storage import FileCacheStorage

    path, ident, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    def append(entry):
        def merge(current):
            items = json.loads(current) if current else []
            items.append(entry)
            return json.dumps(items).encode()
        return merge

    async def main():
        storage = FileCacheStorage(path, lock_timeout=30)
        while not os.path.exists(go):
            time.sleep(0.005)
        for i in range(count):
            await storage.update("own-" + ident, append(i))
            await storage.update("shared", append(ident + "-" + str(i)), ttl=3600)
        await storage.aclose()

    anyio.run(main)
    """
)


def test_eight_processes_writing_concurrently_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    go = tmp_path / "go"
    workers, count = 8, 25
    root = str(Path(aiomsal.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": root}
    env.pop("AIOMSAL_CACHE_KEY", None)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(w), str(count), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(workers)
    ]
    try:
        go.touch()
        reads = 0
        deadline = time.monotonic() + 60
        while any(p.poll() is None for p in processes):
            assert time.monotonic() < deadline, "workers did not finish"
            if path.exists():
                doc = read_doc(path)  # always a complete document
                assert doc["version"] == 1 and isinstance(doc["partitions"], dict)
                reads += 1
            time.sleep(0.001)
        for p in processes:
            _, err = p.communicate()
            assert p.returncode == 0, err.decode()
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert reads > 0

    async def check() -> None:
        storage = FileCacheStorage(path)
        shared = await storage.load("shared")
        assert shared is not None
        expected = {f"{w}-{i}" for w in range(workers) for i in range(count)}
        entries = json.loads(shared)
        assert len(entries) == len(expected) and set(entries) == expected
        for w in range(workers):
            own = await storage.load(f"own-{w}")
            assert own is not None and json.loads(own) == list(range(count))

    anyio.run(check)
    assert sorted(os.listdir(tmp_path)) == ["cache.json", "cache.json.lock", "go"]
    assert mode(path) == 0o600
