"""Generic OpenID Connect issuers with multi-segment paths, in front of a FakeAuthority.

Keycloak names its issuers ``https://host/realms/{realm}``, Okta
``https://host/oauth2/{server}``: several issuers on one host that differ in
the path after its first segment, or only in the port. An :class:`OidcFront`
serves the discovery document of any such path on its own loopback port and
points its endpoints at a FakeAuthority tenant of its own (named after the
port and the path), so that every issuer issues its own tokens and the
fake's ``token_requests`` tell them apart by tenant.
"""

from __future__ import annotations

import re
import socket
from types import TracebackType

from aiohttp import web

from aiomsal.testing import FakeAuthority
from aiomsal.testing._fake_tokens import openid_configuration


class OidcFront:
    """An aiohttp server on 127.0.0.1 answering ``/{any/path}/.well-known/openid-configuration``."""

    def __init__(self, fake: FakeAuthority) -> None:
        self._fake = fake
        self._runner: web.AppRunner | None = None
        self.port = 0
        #: Discovery documents served.
        self.discovery_requests = 0

    async def __aenter__(self) -> OidcFront:
        app = web.Application()
        app.add_routes([web.get("/{path:.+}/.well-known/openid-configuration", self._config)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def issuer(self, path: str) -> str:
        """The ``oidc_authority`` of the issuer at ``path`` (such as ``realms/a``)."""
        return f"http://127.0.0.1:{self.port}/{path.strip('/')}"

    def tenant(self, path: str) -> str:
        """The FakeAuthority tenant that issues the tokens of the issuer at ``path``."""
        return f"p{self.port}-" + re.sub(r"[^A-Za-z0-9]", "-", path.strip("/"))

    async def _config(self, request: web.Request) -> web.Response:
        self.discovery_requests += 1
        tenant = self.tenant(request.match_info["path"])
        document = openid_configuration(self._fake.base_url, tenant, self._fake.tenant_id(tenant))
        document["issuer"] = self.issuer(request.match_info["path"])
        return web.json_response(document)
