"""Memory per cached token: a packed record, measured with tracemalloc as benchmark d does.

The token strings are what they are (~1 KB each); these tests bound what aiomsal keeps
*besides* them, after every token was served once (the result hits return and the
background-refresh schedule included), and check that later hits allocate nothing.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest

from aiomsal import ConfidentialClientApplication, PublicClientApplication
from aiomsal._protocol._http import HttpRequest, HttpResponse
from aiomsal._protocol._token_response import TokenResponse
from aiomsal.testing import FakeAuthority
from tests.helpers import SECRET

pytestmark = pytest.mark.anyio

API = "memory-api"
FRONTEND = "memory-frontend"
TOKENS = 3_000
USERS = 300
#: Bytes per client-credentials token besides its token string, after one hit each
#: (a packed record and times shared by the tokens of one second: ~575 here; the entry,
#: record, result and schedule tuple it replaced kept ~1,020).
CLIENT_TOKEN_BOOKKEEPING = 620
#: Bytes per on-behalf-of user besides the access and refresh token strings (~1,240
#: here, with the account's strings, and ~60 more for the remembered ``exp`` of the
#: user's assertion that refuses expired ones; ~2,020 before).
OBO_USER_BOOKKEEPING = 1_340


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority() as authority:
        authority.add_client(API, secret=SECRET)
        authority.add_client(FRONTEND)
        for i in range(USERS):
            authority.add_user(f"user{i}", f"pw-{i}")
        yield authority


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_client_token_bookkeeping_after_first_hit(fake: FakeAuthority) -> None:
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"),
        instance_discovery=False,
    ) as app:
        template = (await app.acquire_token_for_client(["api://warm/.default"])).access_token
        key = next(iter(app._app_keys.values()))
        secrets = [template[:-10] + format(i, "010d") for i in range(TOKENS)]
        scopes = [f"api://mem-{i:06d}/.default" for i in range(TOKENS)]
        tracemalloc.start()
        try:
            base = traced()
            now = time.time()
            for i, scope in enumerate(scopes):
                # What a fetch stores (the benchmark seeds the same way).
                requested = (scope,)
                token_key = key._replace(target=scope)
                response = TokenResponse(
                    access_token=secrets[i], token_type="Bearer", expires_in=3600,
                    ext_expires_in=3600, refresh_in=None, scope=requested,
                )
                app._app_tokens.put(app._new_token(token_key, response, requested_at=now,
                                                   scopes=requested))
                app._remember_app_key(requested, None, token_key)
            del scopes, requested, response
            for i in range(TOKENS):
                result = await app.acquire_token_for_client([f"api://mem-{i:06d}/.default"])
                assert result.access_token is secrets[i] and result.token_source == "cache"
            del result
            hot = traced() - base
            per_token = hot / TOKENS  # the token strings were made before tracing
            assert per_token <= CLIENT_TOKEN_BOOKKEEPING, f"{per_token:.0f} bytes per token"
            assert len(app._refresher) == TOKENS  # every token scheduled once
            # Later hits allocate nothing that stays.
            before = traced()
            for _ in range(3):
                for i in range(0, TOKENS, 7):
                    await app.acquire_token_for_client([f"api://mem-{i:06d}/.default"])
            assert traced() - before <= 64
        finally:
            tracemalloc.stop()
        assert app.statistics().requests_sent == 1


class _Replay:
    """A transport that records on-behalf-of answers by assertion, then replays them."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.answers: dict[str, HttpResponse] = {}
        self.replaying = False

    async def send(self, request: HttpRequest) -> HttpResponse:
        assertion = (request.form or {}).get("assertion")
        if self.replaying and assertion is not None:
            answer = self.answers[assertion]
            return HttpResponse(answer.status, dict(answer.headers), bytes(bytearray(answer.body)))
        response: HttpResponse = await self.inner.send(request)  # type: ignore[attr-defined]
        if assertion is not None:
            self.answers[assertion] = response
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()  # type: ignore[attr-defined]


async def test_obo_user_bookkeeping_after_first_hit(fake: FakeAuthority) -> None:
    authority = fake.authority("contoso")
    async with PublicClientApplication(
        FRONTEND, authority=authority, instance_discovery=False
    ) as frontend:
        assertions = [
            (await frontend.acquire_token_by_username_password(
                f"user{i}", f"pw-{i}", [f"api://{API}/access_as_user"]
            )).access_token
            for i in range(USERS)
        ]
    warm, users = assertions[:20], assertions[20:]
    scope = ["api://downstream/.default"]
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=authority, instance_discovery=False
    ) as recorder:
        recording = _Replay(recorder._transport)
        setattr(recorder, "_transport", recording)  # noqa: B010 - records the answers
        for assertion in users:
            await recorder.acquire_token_on_behalf_of(assertion, scope)
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=authority, instance_discovery=False
    ) as app:
        for assertion in warm:
            await app.acquire_token_on_behalf_of(assertion, scope)
        replay = _Replay(app._transport)
        replay.answers, replay.replaying = recording.answers, True
        setattr(app, "_transport", replay)  # noqa: B010 - the answers without sockets
        strings = 0
        for assertion in users:
            body = json.loads(recording.answers[assertion].body)
            strings += sys.getsizeof(body["access_token"]) + sys.getsizeof(body["refresh_token"])
        tracemalloc.start()
        try:
            base = traced()
            for assertion in users:
                await app.acquire_token_on_behalf_of(assertion, scope)  # a miss, replayed
            for assertion in users:
                result = await app.acquire_token_on_behalf_of(assertion, scope)  # a hit
                assert result.token_source == "cache"
            del result
            # One turn of the loop: it drops the timers its flights cancelled (and what they
            # hold). A flight that never suspends (these replayed answers, on Python 3.12's
            # eager start) never gave it one; a live service's loop turns all the time.
            await anyio.lowlevel.checkpoint()
            per_user = (traced() - base - strings) / len(users)
            assert per_user <= OBO_USER_BOOKKEEPING, f"{per_user:.0f} bytes per user"
            before = traced()
            for _ in range(3):
                for assertion in users:
                    await app.acquire_token_on_behalf_of(assertion, scope)
            assert traced() - before <= 64
        finally:
            tracemalloc.stop()
        assert app.statistics().requests_sent == len(warm) + len(users)
