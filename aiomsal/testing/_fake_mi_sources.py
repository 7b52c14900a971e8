"""Fakes of each managed identity source: IMDS, App Service, Azure Arc, Cloud Shell,
Service Fabric (over TLS with a throwaway certificate) and Azure Machine Learning.

Each checks the request shape its real source demands (method, api-version,
headers, the user-assigned identity's parameter name) and answers in its
real response shape (``expires_in`` or ``expires_on`` as that source sends it).
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Mapping
from typing import Any, Literal

import anyio.to_thread
from aiohttp import web

from ._certificates import TestCertificate, generate_certificate
from ._fake_managed_identity import FakeManagedIdentityEndpoint, RegisteredIdentity, Reject

__all__ = [
    "FakeAppService",
    "FakeAzureArc",
    "FakeAzureML",
    "FakeCloudShell",
    "FakeImds",
    "FakeServiceFabric",
]


def _require_api_version(request: web.Request, version: str, error: Reject) -> None:
    if request.query.get("api-version") != version:
        raise error


def _select(
    fake: FakeManagedIdentityEndpoint, names: Mapping[str, str], values: Mapping[str, str]
) -> RegisteredIdentity:
    """The identity the request's parameters (``names``: wire name -> kind) select."""
    chosen = [(kind, values[name]) for name, kind in names.items() if values.get(name)]
    if len(chosen) > 1:
        raise Reject(400, fake.error_body(400, "invalid_request", "more than one identity named"))
    kind, value = chosen[0] if chosen else (None, None)
    identity = fake.find_identity(kind, value)
    if identity is None:
        raise Reject(400, fake.error_body(400, "invalid_request", "Identity not found"))
    return identity


def _resource(fake: FakeManagedIdentityEndpoint, value: str | None) -> str:
    if not value:
        raise Reject(400, fake.error_body(400, "invalid_request", "resource is required"))
    return value


class FakeImds(FakeManagedIdentityEndpoint):
    """The VM/VMSS Instance Metadata Service (api-version 2018-02-01, ``Metadata: true``).

    Point a client at it with ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` (:meth:`environ`).
    """

    def environ(self) -> dict[str, str]:
        return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": self.base_url}

    async def check(
        self, request: web.Request, form: Mapping[str, str]
    ) -> tuple[str, RegisteredIdentity]:
        if request.headers.get("Metadata") != "true":
            raise Reject(
                400,
                {"error": "bad_request_102", "error_description": "Required metadata header "
                 "not specified"},
            )
        _require_api_version(
            request, "2018-02-01", Reject(400, self.error_body(400, "invalid_request", "api"))
        )
        identity = _select(
            self,
            {"client_id": "client_id", "object_id": "object_id", "msi_res_id": "resource_id"},
            request.query,
        )
        return _resource(self, request.query.get("resource")), identity

    def success_body(
        self, token: str, resource: str, identity: RegisteredIdentity, now: int
    ) -> dict[str, Any]:
        lifetime = self.token_lifetime
        return {
            "access_token": token,
            "refresh_token": "",
            "expires_in": str(lifetime),
            "expires_on": str(now + lifetime),
            "ext_expires_in": str(lifetime),
            "not_before": str(now),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }


class FakeAppService(FakeManagedIdentityEndpoint):
    """App Service / Functions (2019-08-01, ``X-IDENTITY-HEADER``); ``expires_on`` an epoch
    string, or with ``legacy_dates=True`` the 2017 protocol's date string."""

    def __init__(self, *, legacy_dates: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.legacy_dates = legacy_dates
        self.secret = secrets.token_urlsafe(16)

    def environ(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.secret}

    async def check(
        self, request: web.Request, form: Mapping[str, str]
    ) -> tuple[str, RegisteredIdentity]:
        if request.headers.get("X-IDENTITY-HEADER") != self.secret:
            raise Reject(401, {"statusCode": 401, "message": "Unauthorized"})
        _require_api_version(
            request, "2019-08-01", Reject(400, {"statusCode": 400, "message": "api-version"})
        )
        identity = _select(
            self,
            {
                "client_id": "client_id",
                "principal_id": "object_id",
                "object_id": "object_id",
                "mi_res_id": "resource_id",
            },
            request.query,
        )
        return _resource(self, request.query.get("resource")), identity

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        return {"statusCode": status, "message": message}

    def success_body(
        self, token: str, resource: str, identity: RegisteredIdentity, now: int
    ) -> dict[str, Any]:
        expires = now + self.token_lifetime
        expires_on = str(expires)
        if self.legacy_dates:
            moment = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)
            expires_on = moment.strftime("%m/%d/%Y %H:%M:%S +00:00")
        return {
            "access_token": token,
            "expires_on": expires_on,
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }


class FakeAzureArc(FakeManagedIdentityEndpoint):
    """The Azure Arc agent (2020-06-01): a 401 naming a key file it writes into
    ``key_directory`` (a temporary directory), then a token for its content.

    ``challenge_path`` overrides the path the challenge names (to test a bad
    one); ``echo_identity=False`` answers like a legacy agent that ignores a
    user-assigned identity.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.key_directory = tempfile.mkdtemp(prefix="aiomsal-fake-arc-")
        self.challenge_path: str | None = None
        self.echo_identity = True
        self.challenges = 0
        self._keys: set[str] = set()

    def environ(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.endpoint, "IMDS_ENDPOINT": self.base_url}

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            shutil.rmtree(self.key_directory, ignore_errors=True)

    def _write_key(self) -> str:
        key = secrets.token_urlsafe(24)
        path = os.path.join(self.key_directory, f"{secrets.token_hex(8)}.key")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(key)
        self._keys.add(key)
        return path

    async def check(
        self, request: web.Request, form: Mapping[str, str]
    ) -> tuple[str, RegisteredIdentity]:
        if request.headers.get("Metadata") != "true":
            raise Reject(400, self.error_body(400, "invalid_request", "Metadata header"))
        _require_api_version(
            request, "2020-06-01", Reject(400, self.error_body(400, "invalid_request", "api"))
        )
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Basic ") or authorization[6:] not in self._keys:
            self.challenges += 1
            path = await anyio.to_thread.run_sync(self._write_key)
            realm = self.challenge_path or path
            raise Reject(
                401,
                self.error_body(401, "unauthorized", "challenge"),
                {"WWW-Authenticate": f"Basic realm={realm}"},
            )
        self._keys.discard(authorization[6:])
        identity = _select(
            self,
            {"client_id": "client_id", "object_id": "object_id", "msi_res_id": "resource_id"},
            request.query,
        )
        if not self.echo_identity:
            identity = self.system_assigned or identity
        return _resource(self, request.query.get("resource")), identity

    def success_body(
        self, token: str, resource: str, identity: RegisteredIdentity, now: int
    ) -> dict[str, Any]:
        lifetime = self.token_lifetime
        body = {
            "access_token": token,
            "expires_in": str(lifetime),
            "expires_on": str(now + lifetime),
            "resource": resource,
            "token_type": "Bearer",
        }
        if identity is not self.system_assigned:
            body.update(
                client_id=identity.client_id,
                object_id=identity.object_id,
                msi_res_id=identity.resource_id,
            )
        return body


class FakeCloudShell(FakeManagedIdentityEndpoint):
    """Cloud Shell: a form POST of ``resource`` with ``Metadata: true``; ``MSI_ENDPOINT`` alone."""

    token_path = "/oauth2/token"
    method = "POST"

    def environ(self) -> dict[str, str]:
        return {"MSI_ENDPOINT": self.endpoint}

    async def check(
        self, request: web.Request, form: Mapping[str, str]
    ) -> tuple[str, RegisteredIdentity]:
        if request.headers.get("Metadata") != "true":
            raise Reject(400, self.error_body(400, "BadRequest", "Metadata header"))
        identity = self.system_assigned
        if identity is None:
            raise Reject(400, self.error_body(400, "BadRequest", "no signed-in user"))
        return _resource(self, form.get("resource")), identity

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        return {"error": {"code": code, "message": message}}

    def success_body(
        self, token: str, resource: str, identity: RegisteredIdentity, now: int
    ) -> dict[str, Any]:
        lifetime = self.token_lifetime
        return {
            "access_token": token,
            "expires_in": lifetime,
            "expires_on": now + lifetime,
            "resource": resource,
            "token_type": "Bearer",
        }


class FakeServiceFabric(FakeManagedIdentityEndpoint):
    """Service Fabric (2019-07-01-preview, ``Secret``) over https with a throwaway
    self-signed certificate, whose SHA-1 :meth:`environ` gives as the thumbprint."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.secret = secrets.token_urlsafe(16)
        self._certificate: TestCertificate | None = None

    @property
    def certificate(self) -> TestCertificate:
        """The server's throwaway self-signed certificate (made when the fake starts)."""
        if self._certificate is None:
            raise RuntimeError("this fake is not running: use 'async with' or start()")
        return self._certificate

    def environ(self) -> dict[str, str]:
        return {
            "IDENTITY_ENDPOINT": self.endpoint,
            "IDENTITY_HEADER": self.secret,
            "IDENTITY_SERVER_THUMBPRINT": self.certificate.thumbprint_sha1,
        }

    def _server_ssl(self) -> ssl.SSLContext:
        """A new certificate and the server context (in a worker thread: key generation)."""
        self._certificate = generate_certificate(
            "aiomsal fake Service Fabric", ip_addresses=("127.0.0.1",), dns_names=("localhost",)
        )
        directory = tempfile.mkdtemp(prefix="aiomsal-fake-sf-")
        try:
            cert, key = os.path.join(directory, "c.pem"), os.path.join(directory, "k.pem")
            with open(cert, "wb") as f:
                f.write(self.certificate.certificate_pem)
            with open(key, "wb") as f:
                f.write(self.certificate.private_key_pem)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return context

    async def check(
        self, request: web.Request, form: Mapping[str, str]
    ) -> tuple[str, RegisteredIdentity]:
        if request.headers.get("Secret") != self.secret:
            raise Reject(401, self.error_body(401, "SecretHeaderNotFound", "Secret is missing"))
        _require_api_version(
            request,
            "2019-07-01-preview",
            Reject(400, self.error_body(400, "InvalidApiVersion", "api-version")),
        )
        identity = self.system_assigned
        if identity is None:
            raise Reject(404, self.error_body(404, "ManagedIdentityNotFound", "no identity"))
        return _resource(self, request.query.get("resource")), identity

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        return {"error": {"correlationId": "00000000", "code": code, "message": message}}

    def success_body(
        self, token: str, resource: str, identity: RegisteredIdentity, now: int
    ) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "access_token": token,
            "expires_on": now + self.token_lifetime,
            "resource": resource,
        }


class FakeAzureML(FakeManagedIdentityEndpoint):
    """Azure Machine Learning (2017-09-01, ``secret`` header, ``clientid``); ``expires_on``
    as ``expiry_format``: an epoch string (default), an int, or a date string."""

    def __init__(
        self, *, expiry_format: Literal["epoch_string", "int", "date"] = "epoch_string",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.expiry_format = expiry_format
        self.secret = secrets.token_urlsafe(16)

    def environ(self) -> dict[str, str]:
        return {"MSI_ENDPOINT": self.endpoint, "MSI_SECRET": self.secret}

    async def check(
        self, request: web.Request, form: Mapping[str, str]
    ) -> tuple[str, RegisteredIdentity]:
        if request.headers.get("secret") != self.secret:
            raise Reject(401, self.error_body(401, "invalid_client", "secret"))
        _require_api_version(
            request, "2017-09-01", Reject(400, self.error_body(400, "invalid_request", "api"))
        )
        identity = _select(self, {"clientid": "client_id"}, request.query)
        return _resource(self, request.query.get("resource")), identity

    def success_body(
        self, token: str, resource: str, identity: RegisteredIdentity, now: int
    ) -> dict[str, Any]:
        expires = now + self.token_lifetime
        expires_on: object = str(expires)
        if self.expiry_format == "int":
            expires_on = expires
        elif self.expiry_format == "date":
            moment = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)
            expires_on = moment.strftime("%m/%d/%Y %I:%M:%S %p +00:00")
        return {
            "access_token": token,
            "expires_on": expires_on,
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }
