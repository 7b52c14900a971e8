"""A loopback authority whose every answer a test scripts: what FakeAuthority cannot express.

It serves Entra-shaped instance discovery, OpenID metadata (Entra's
``/{tenant}/v2.0/...`` path and the generic ``/{path}/.well-known/...`` one),
a device authorization endpoint and a token endpoint. Each answers with a good
default unless a scripted :class:`Answer` is queued for it: any status,
headers and bytes, a redirect, a body cut short, or a body that never ends.
"""

from __future__ import annotations

import asyncio
import collections
import json
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from aiomsal.testing import generate_certificate

__all__ = ["Answer", "Endpoint", "HostileAuthority", "good_token"]

Endpoint = Literal["metadata", "discovery", "token", "devicecode"]


@dataclass(frozen=True)
class Answer:
    """One scripted answer. ``mode``: ``"normal"``; ``"truncate"`` (a Content-Length
    longer than the bytes sent, then the connection closes); ``"stall"`` (the
    headers and the first bytes, then nothing until the server stops)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    mode: Literal["normal", "truncate", "stall"] = "normal"


def good_token(**extra: Any) -> dict[str, Any]:
    token = {"access_token": "good-access-token", "token_type": "Bearer", "expires_in": 3600}
    return {**token, **extra}


class HostileAuthority:
    """Start with ``async with``; ``script(endpoint, answer, n)`` queues answers."""

    def __init__(self, *, tls: bool = False) -> None:
        self._tls = tls
        #: With ``tls=True``: a client context that trusts this server's throwaway CA.
        self.client_ssl: ssl.SSLContext | None = None
        self.requests: collections.Counter[Endpoint] = collections.Counter()
        self.token_forms: list[dict[str, str]] = []
        self._scripts: dict[Endpoint, collections.deque[Answer]] = collections.defaultdict(
            collections.deque
        )
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url = ""

    @property
    def base_url(self) -> str:
        return self._base_url

    def authority(self, tenant: str = "contoso") -> str:
        return f"{self._base_url}/{tenant}"

    def script(self, endpoint: Endpoint, answer: Answer, n: int = 1) -> None:
        self._scripts[endpoint].extend([answer] * n)

    def clear(self) -> None:
        self._scripts.clear()

    async def __aenter__(self) -> HostileAuthority:
        app = web.Application()
        app.add_routes(
            [
                web.get("/common/discovery/instance", self._discovery),
                web.get("/{tenant}/v2.0/.well-known/openid-configuration", self._metadata),
                web.get("/{tenant}/.well-known/openid-configuration", self._metadata),
                web.post("/{tenant}/oauth2/v2.0/token", self._token),
                web.post("/{tenant}/oauth2/v2.0/devicecode", self._devicecode),
            ]
        )
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._server_ssl())
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._base_url = f"{'https' if self._tls else 'http'}://127.0.0.1:{port}"
        return self

    def _server_ssl(self) -> ssl.SSLContext | None:
        if not self._tls:
            return None
        ca = generate_certificate("hostile test CA", is_ca=True)
        server = generate_certificate("hostile", issuer=ca, ip_addresses=("127.0.0.1",))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            chain, key = Path(folder, "chain.pem"), Path(folder, "key.pem")
            chain.write_bytes(server.certificate_pem + ca.certificate_pem)
            key.write_bytes(server.private_key_pem)
            context.load_cert_chain(chain, key)
        self.client_ssl = ssl.create_default_context(cadata=ca.certificate_pem.decode())
        self.client_ssl.verify_flags &= ~ssl.VERIFY_X509_STRICT
        return context

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the endpoints ------------------------------------------------------------------

    def metadata(self, tenant: str) -> dict[str, Any]:
        base = f"{self._base_url}/{tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
        }

    async def _metadata(self, request: web.Request) -> web.StreamResponse:
        self.requests["metadata"] += 1
        default = self.metadata(request.match_info["tenant"])
        return await self._answer(request, "metadata", default)

    async def _discovery(self, request: web.Request) -> web.StreamResponse:
        self.requests["discovery"] += 1
        host = self._base_url.split("://", 1)[1]
        default = {
            "tenant_discovery_endpoint": "unused",
            "api-version": "1.1",
            "metadata": [
                {"preferred_network": host, "preferred_cache": host, "aliases": [host]},
            ],
        }
        return await self._answer(request, "discovery", default)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.requests["token"] += 1
        posted = await request.post()
        self.token_forms.append({k: v for k, v in posted.items() if isinstance(v, str)})
        return await self._answer(request, "token", good_token())

    async def _devicecode(self, request: web.Request) -> web.StreamResponse:
        self.requests["devicecode"] += 1
        default = {
            "device_code": "good-device-code",
            "user_code": "ABCD-EFGH",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": 5,
        }
        return await self._answer(request, "devicecode", default)

    async def _answer(
        self, request: web.Request, endpoint: Endpoint, default: dict[str, Any]
    ) -> web.StreamResponse:
        queue = self._scripts.get(endpoint)
        if not queue:
            return web.json_response(default)
        answer = queue.popleft()
        headers = {"Content-Type": "application/json", **answer.headers}
        if answer.mode == "normal":
            return web.Response(status=answer.status, body=answer.body, headers=headers)
        response = web.StreamResponse(status=answer.status, headers=headers)
        if answer.mode == "truncate":
            response.content_length = len(answer.body) + 1000
        await response.prepare(request)
        await response.write(answer.body)
        if answer.mode == "stall":
            await self._stopping.wait()
        if request.transport is not None:
            request.transport.close()
        return response


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()
