"""The sans-I/O throttling memory and the Retry-After parser."""

from __future__ import annotations

import email.utils

import pytest

from aiomsal._protocol._http import HttpRequest, HttpResponse
from aiomsal._protocol._throttling import ThrottleMemory, parse_retry_after

NOW = 1_800_000_000.0
TOKEN_URL = "https://login.example.test/tenant/oauth2/v2.0/token"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def token_request(scope: str = "api://x/.default", *, throttle: bool = True) -> HttpRequest:
    return HttpRequest(
        "POST",
        TOKEN_URL,
        form={
            "grant_type": "client_credentials",
            "client_id": "app",
            "client_secret": "s3cr3t-value",
            "scope": scope,
        },
        throttle=throttle,
    )


def answer(status: int, retry_after: str | None = None, body: bytes = b"{}") -> HttpResponse:
    headers = {"content-type": "application/json", "x-ms-request-id": "trace-1"}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    return HttpResponse(status=status, headers=headers, body=body)


def http_date(at: float) -> str:
    return email.utils.formatdate(at, usegmt=True)


# -- parse_retry_after --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30", 30.0), (" 7 ", 7.0), ("0", 0.0), ("1.5", 1.5), ("3600", 3600.0)],
)
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_http_date_is_relative_to_now() -> None:
    assert parse_retry_after(http_date(NOW + 120), NOW) == pytest.approx(120.0)
    assert parse_retry_after(http_date(NOW + 120), NOW + 20) == pytest.approx(100.0)


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after(http_date(NOW - 300), NOW) == 0.0


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "-5", "1e3", "30 seconds", "Mon, 99 Foo 2020", "nan"]
)
def test_parse_retry_after_junk_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


# -- remembering --------------------------------------------------------------


def test_429_with_retry_after_is_replayed_with_the_remaining_time() -> None:
    memory = ThrottleMemory()
    request = token_request()
    response = answer(429, "30", body=b'{"error":"throttled"}')
    assert memory.check(request, NOW) is None
    memory.record(request, response, NOW)

    replay = memory.check(request, NOW + 10.2)
    assert replay is not None
    assert replay.status == 429
    assert replay.body == b'{"error":"throttled"}'
    assert replay.headers["retry-after"] == "20"  # 19.8 rounded up
    assert replay.headers["x-ms-request-id"] == "trace-1"
    # The remembered response itself is not altered.
    assert response.headers["retry-after"] == "30"


def test_replay_retry_after_is_at_least_one_second() -> None:
    memory = ThrottleMemory()
    request = token_request()
    memory.record(request, answer(429, "30"), NOW)
    replay = memory.check(request, NOW + 29.9)
    assert replay is not None
    assert replay.headers["retry-after"] == "1"


def test_expired_entries_are_dropped() -> None:
    memory = ThrottleMemory()
    request = token_request()
    memory.record(request, answer(429, "30"), NOW)
    assert len(memory) == 1
    assert memory.check(request, NOW + 30) is None
    assert len(memory) == 0


def test_429_without_retry_after_uses_the_default() -> None:
    memory = ThrottleMemory(default_retry_after=7)
    request = token_request()
    memory.record(request, answer(429), NOW)
    replay = memory.check(request, NOW + 1)
    assert replay is not None
    assert replay.headers["retry-after"] == "6"
    assert memory.check(request, NOW + 7) is None


def test_429_with_unreadable_retry_after_uses_the_default() -> None:
    memory = ThrottleMemory(default_retry_after=5)
    request = token_request()
    memory.record(request, answer(429, "later"), NOW)
    replay = memory.check(request, NOW)
    assert replay is not None
    assert replay.headers["retry-after"] == "5"


def test_retry_after_as_http_date() -> None:
    memory = ThrottleMemory()
    request = token_request()
    memory.record(request, answer(503, http_date(NOW + 60)), NOW)
    replay = memory.check(request, NOW + 15)
    assert replay is not None
    assert replay.headers["retry-after"] == "45"


def test_retry_after_is_capped() -> None:
    memory = ThrottleMemory(max_retry_after=100)
    request = token_request()
    memory.record(request, answer(429, "86400"), NOW)
    replay = memory.check(request, NOW)
    assert replay is not None
    assert replay.headers["retry-after"] == "100"
    assert memory.check(request, NOW + 100) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_with_retry_after_is_remembered(status: int) -> None:
    memory = ThrottleMemory()
    request = token_request()
    memory.record(request, answer(status, "10"), NOW)
    replay = memory.check(request, NOW + 1)
    assert replay is not None
    assert replay.status == status


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_without_retry_after_is_not_remembered(status: int) -> None:
    memory = ThrottleMemory()
    request = token_request()
    memory.record(request, answer(status), NOW)
    assert memory.check(request, NOW) is None
    assert len(memory) == 0


@pytest.mark.parametrize("status", [200, 400, 401, 404])
def test_other_answers_are_not_remembered(status: int) -> None:
    memory = ThrottleMemory()
    request = token_request()
    memory.record(request, answer(status, "30"), NOW)
    assert memory.check(request, NOW) is None


def test_retry_after_zero_is_not_remembered() -> None:
    memory = ThrottleMemory()
    request = token_request()
    memory.record(request, answer(429, "0"), NOW)
    assert memory.check(request, NOW) is None
    assert len(memory) == 0


def test_a_later_success_clears_the_entry() -> None:
    memory = ThrottleMemory()
    request = token_request()
    memory.record(request, answer(429, "30"), NOW)
    memory.record(request, answer(200), NOW + 1)
    assert memory.check(request, NOW + 2) is None
    assert len(memory) == 0


def test_a_later_throttle_replaces_the_entry() -> None:
    memory = ThrottleMemory()
    request = token_request()
    memory.record(request, answer(429, "30"), NOW)
    memory.record(request, answer(429, "300"), NOW + 1)
    replay = memory.check(request, NOW + 100)
    assert replay is not None
    assert replay.headers["retry-after"] == "201"


def test_requests_that_do_not_ask_for_throttling_are_never_remembered() -> None:
    memory = ThrottleMemory()
    unthrottled = token_request(throttle=False)
    memory.record(unthrottled, answer(429, "30"), NOW)
    assert len(memory) == 0
    assert memory.check(unthrottled, NOW) is None
    # Even when the same request was remembered as a throttled one.
    memory.record(token_request(), answer(429, "30"), NOW)
    assert memory.check(unthrottled, NOW) is None


def test_another_form_is_not_throttled() -> None:
    memory = ThrottleMemory()
    memory.record(token_request("api://x/.default"), answer(429, "30"), NOW)
    assert memory.check(token_request("api://y/.default"), NOW) is None
    assert memory.check(token_request("api://x/.default"), NOW) is not None


def test_another_url_or_method_is_not_throttled() -> None:
    memory = ThrottleMemory()
    memory.record(token_request(), answer(429, "30"), NOW)
    other_url = HttpRequest(
        "POST", TOKEN_URL.replace("tenant", "other"), form=token_request().form, throttle=True
    )
    assert memory.check(other_url, NOW) is None
    get = HttpRequest("GET", TOKEN_URL, throttle=True)
    assert memory.check(get, NOW) is None


def test_form_order_does_not_matter() -> None:
    memory = ThrottleMemory()
    request = token_request()
    assert request.form is not None
    reordered = HttpRequest(
        "POST", TOKEN_URL, form=dict(reversed(list(request.form.items()))), throttle=True
    )
    memory.record(request, answer(429, "30"), NOW)
    assert memory.check(reordered, NOW) is not None


def test_key_encoding_is_unambiguous() -> None:
    memory = ThrottleMemory()
    a = HttpRequest("POST", TOKEN_URL, form={"a": "b,c", "d": "e"}, throttle=True)
    b = HttpRequest("POST", TOKEN_URL, form={"a": "b", "c": "d,e"}, throttle=True)
    memory.record(a, answer(429, "30"), NOW)
    assert memory.check(b, NOW) is None


def test_the_oldest_entry_is_evicted_beyond_the_bound() -> None:
    memory = ThrottleMemory(max_entries=3)
    requests = [token_request(f"scope-{i}") for i in range(4)]
    for i, request in enumerate(requests):
        memory.record(request, answer(429, "60"), NOW + i)
    assert len(memory) == 3
    assert memory.check(requests[0], NOW + 5) is None
    for request in requests[1:]:
        assert memory.check(request, NOW + 5) is not None


def test_expired_entries_go_before_live_ones_when_full() -> None:
    memory = ThrottleMemory(max_entries=2)
    short, long_, new = token_request("a"), token_request("b"), token_request("c")
    memory.record(long_, answer(429, "600"), NOW)
    memory.record(short, answer(429, "5"), NOW)
    memory.record(new, answer(429, "60"), NOW + 10)
    assert memory.check(long_, NOW + 11) is not None
    assert memory.check(new, NOW + 11) is not None


def test_secrets_are_not_kept_in_the_keys() -> None:
    memory = ThrottleMemory()
    memory.record(token_request(), answer(429, "30"), NOW)
    keys = list(memory._entries)
    assert len(keys) == 1
    assert isinstance(keys[0], bytes)
    assert len(keys[0]) == 32  # a SHA-256 digest
    assert b"s3cr3t" not in keys[0]
    assert "s3cr3t" not in repr(memory)


def test_clear_forgets_everything() -> None:
    memory = ThrottleMemory()
    memory.record(token_request(), answer(429, "30"), NOW)
    memory.clear()
    assert memory.check(token_request(), NOW) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_retry_after": -1},
        {"max_retry_after": float("nan")},
        {"max_entries": 0},
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        ThrottleMemory(**kwargs)  # type: ignore[arg-type]
