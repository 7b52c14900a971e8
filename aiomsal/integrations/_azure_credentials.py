"""The Azure SDK credentials over a confidential client: secret, certificate, assertion,
on-behalf-of, workload identity, and the environment's choice between them.

Names, constructor parameters and environment variables are azure-identity's
``aio`` ones. Credentials of the same configuration (the secret compared by its
SHA-256) share one application, so one cache and one single-flight.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

from .._apps._confidential import ConfidentialClientApplication
from .._apps._workload_identity import workload_identity_application
from .._concurrency._clock import Clock
from .._errors import MsalConfigurationError
from .._protocol._credentials import (
    ClientAssertion,
    ClientCertificate,
    ClientCredential,
    ClientSecret,
)
from .._result import AuthenticationResult
from ._azure_common import (
    SHARED,
    AzureCredential,
    CredentialUnavailableError,
    authority_host,
    fingerprint,
    resolve_tenant,
)

__all__ = [
    "CertificateCredential",
    "ClientAssertionCredential",
    "ClientSecretCredential",
    "EnvironmentCredential",
    "OnBehalfOfCredential",
    "WorkloadIdentityCredential",
]

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)


def _options_key(options: Mapping[str, Any]) -> tuple[Hashable, ...]:
    verify = options.get("verify", True)
    return (
        id(options.get("clock")) if options.get("clock") is not None else None,
        verify if isinstance(verify, (bool, str)) else id(verify),
        options.get("instance_discovery", True),
        options.get("timeout", 10.0),
    )


def _app_options(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """aiomsal application options from azure-identity's keyword arguments (others ignored)."""
    options: dict[str, Any] = {}
    verify = kwargs.get("verify", kwargs.get("connection_verify"))
    if verify is not None:
        if not isinstance(verify, (bool, str, ssl.SSLContext)):
            raise MsalConfigurationError("connection_verify must be a bool, a CA path or a context")
        options["verify"] = verify
    if kwargs.get("disable_instance_discovery"):
        options["instance_discovery"] = False
    for name in ("clock", "timeout", "max_cache_entries", "http_session"):
        if kwargs.get(name) is not None:
            options[name] = kwargs[name]
    clock = options.get("clock")
    if clock is not None and not isinstance(clock, Clock):
        raise MsalConfigurationError("clock must be an aiomsal Clock")
    return options


class _ConfidentialCredential(AzureCredential):
    """A credential backed by a shared :class:`ConfidentialClientApplication`."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        credential: Callable[[], ClientCredential],
        secret_key: Hashable,
        kwargs: Mapping[str, Any],
    ) -> None:
        super().__init__()
        if not isinstance(tenant_id, str) or not re.fullmatch(r"[A-Za-z0-9.\-]+", tenant_id):
            raise MsalConfigurationError(
                "tenant_id must be a tenant id or domain (letters, digits, '-' and '.')"
            )
        if not isinstance(client_id, str) or not client_id:
            raise MsalConfigurationError("client_id must be a non-empty string")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._host = authority_host(kwargs.get("authority"))
        self._allowed = tuple(kwargs.get("additionally_allowed_tenants") or ())
        self._options = _app_options(kwargs)
        self._credential = credential
        self._base_key = (
            "confidential", self._host, tenant_id, client_id, secret_key,
            _options_key(self._options),
        )
        self._apps: dict[bool, ConfidentialClientApplication] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"

    def _build(self, cae: bool) -> ConfidentialClientApplication:
        return ConfidentialClientApplication(
            self.client_id,
            self._credential(),
            authority=f"{self._host}/{self.tenant_id}",
            client_capabilities=["cp1"] if cae else (),
            **self._options,
        )

    def _app(self, cae: bool) -> ConfidentialClientApplication:
        app = self._apps.get(cae)
        if app is None:
            app = self._apps[cae] = SHARED.acquire(
                (*self._base_key, cae), lambda: self._build(cae)
            )
        return app

    def _tenant(self, tenant_id: str | None) -> str | None:
        if tenant_id is None:
            return None
        return resolve_tenant(
            self.tenant_id, tenant_id, self._allowed, credential=type(self).__name__
        )

    def _acquire(
        self, scopes: tuple[str, ...], claims: str | None, tenant_id: str | None, cae: bool
    ) -> Awaitable[AuthenticationResult]:
        app = self._apps.get(cae) or self._app(cae)
        if tenant_id is None and claims is None:
            return app.acquire_token_for_client(scopes)
        tenant = None if tenant_id is None else self._tenant(tenant_id)
        return app.acquire_token_for_client(scopes, tenant=tenant, claims_challenge=claims)

    async def close(self) -> None:
        apps, self._apps = self._apps, {}
        for cae, app in apps.items():
            await SHARED.release((*self._base_key, cae), app)
        await super().close()


class ClientSecretCredential(_ConfidentialCredential):
    """azure-identity's ``ClientSecretCredential``: a service principal's secret."""

    def __init__(self, tenant_id: str, client_id: str, client_secret: str, **kwargs: Any) -> None:
        if not isinstance(client_secret, str) or not client_secret:
            raise MsalConfigurationError("client_secret must be a non-empty string")
        secret = ClientSecret(client_secret)
        super().__init__(
            tenant_id, client_id, lambda: secret, ("secret", fingerprint(client_secret)), kwargs
        )


def _certificate(data: bytes, password: str | bytes | None, send_chain: bool) -> ClientCertificate:
    """A PEM holding key and certificate(s), or a PKCS#12 blob."""
    if b"-----BEGIN" not in data:
        return ClientCertificate.from_pkcs12(data, password, send_certificate_chain=send_chain)
    blocks = [(m.group(1), m.group(0)) for m in _PEM_BLOCK.finditer(data)]
    keys = [b for kind, b in blocks if kind.endswith(b"PRIVATE KEY")]
    certs = b"\n".join(b for kind, b in blocks if kind == b"CERTIFICATE")
    if not keys or not certs:
        raise MsalConfigurationError(
            "the PEM certificate must hold a private key and a certificate"
        )
    return ClientCertificate(
        keys[0], certs, passphrase=password, send_certificate_chain=send_chain
    )


class CertificateCredential(_ConfidentialCredential):
    """azure-identity's ``CertificateCredential``: a PEM (key and certificate) or PKCS#12."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        certificate_path: str | None = None,
        *,
        certificate_data: bytes | None = None,
        password: str | bytes | None = None,
        send_certificate_chain: bool = False,
        **kwargs: Any,
    ) -> None:
        if (certificate_path is None) == (certificate_data is None):
            raise MsalConfigurationError(
                "CertificateCredential takes certificate_path or certificate_data"
            )
        if certificate_data is None:
            try:
                with open(os.fspath(certificate_path or ""), "rb") as handle:
                    certificate_data = handle.read()
            except OSError as exc:
                raise MsalConfigurationError(
                    f"cannot read the certificate {certificate_path!r}: {exc.strerror}"
                ) from None
        certificate = _certificate(certificate_data, password, send_certificate_chain)
        key = ("certificate", fingerprint(certificate_data, password, send_certificate_chain))
        super().__init__(tenant_id, client_id, lambda: certificate, key, kwargs)


class ClientAssertionCredential(_ConfidentialCredential):
    """azure-identity's ``ClientAssertionCredential``: ``func`` returns a signed assertion.

    A plain function runs in a worker thread (never blocking the loop); a
    coroutine function is awaited. It is called only when a request goes out.
    """

    def __init__(
        self, tenant_id: str, client_id: str, func: Callable[[], Any], **kwargs: Any
    ) -> None:
        if not callable(func):
            raise MsalConfigurationError("func must be a callable returning an assertion")
        assertion = ClientAssertion(func)
        super().__init__(tenant_id, client_id, lambda: assertion, ("assertion", func), kwargs)


class OnBehalfOfCredential(_ConfidentialCredential):
    """azure-identity's ``OnBehalfOfCredential``: a downstream token for the user of
    ``user_assertion`` (tokens are cached per assertion, in the shared application)."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        *,
        user_assertion: str,
        client_secret: str | None = None,
        client_certificate: bytes | None = None,
        client_assertion_func: Callable[[], Any] | None = None,
        password: str | bytes | None = None,
        **kwargs: Any,
    ) -> None:
        given = [v for v in (client_secret, client_certificate, client_assertion_func) if v]
        if len(given) != 1:
            raise MsalConfigurationError(
                "OnBehalfOfCredential takes exactly one of client_secret, client_certificate "
                "and client_assertion_func"
            )
        if not isinstance(user_assertion, str) or not user_assertion:
            raise MsalConfigurationError("user_assertion must be the incoming access token")
        self._user_assertion = user_assertion
        credential: ClientCredential
        key: Hashable
        if client_secret:
            credential, key = ClientSecret(client_secret), ("secret", fingerprint(client_secret))
        elif client_certificate:
            credential = _certificate(client_certificate, password, False)
            key = ("certificate", fingerprint(client_certificate, password, False))
        else:
            assert client_assertion_func is not None
            credential = ClientAssertion(client_assertion_func)
            key = ("assertion", client_assertion_func)
        super().__init__(tenant_id, client_id, lambda: credential, key, kwargs)

    def _acquire(
        self, scopes: tuple[str, ...], claims: str | None, tenant_id: str | None, cae: bool
    ) -> Awaitable[AuthenticationResult]:
        app = self._apps.get(cae) or self._app(cae)
        return app.acquire_token_on_behalf_of(
            self._user_assertion, scopes, claims_challenge=claims, tenant=self._tenant(tenant_id)
        )


class WorkloadIdentityCredential(_ConfidentialCredential):
    """azure-identity's ``WorkloadIdentityCredential``: the federated token file
    (``AZURE_FEDERATED_TOKEN_FILE``) as client assertion, re-read when it changes."""

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        client_id: str | None = None,
        token_file_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        env: Mapping[str, str] = kwargs.get("environ") or os.environ
        tenant = tenant_id or env.get("AZURE_TENANT_ID")
        client = client_id or env.get("AZURE_CLIENT_ID")
        path = token_file_path or env.get("AZURE_FEDERATED_TOKEN_FILE")
        if not (tenant and client and path):
            raise MsalConfigurationError(
                "WorkloadIdentityCredential needs tenant_id, client_id and token_file_path "
                "(or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE)"
            )
        self._path = path
        kwargs = {"authority": env.get("AZURE_AUTHORITY_HOST"), **kwargs}
        super().__init__(tenant, client, lambda: ClientSecret("unused"), ("workload", path), kwargs)

    def _build(self, cae: bool) -> ConfidentialClientApplication:
        return workload_identity_application(
            environ={},
            client_id=self.client_id,
            tenant_id=self.tenant_id,
            token_file_path=self._path,
            authority_host=self._host,
            client_capabilities=["cp1"] if cae else (),
            **self._options,
        )


class EnvironmentCredential(AzureCredential):
    """azure-identity's ``EnvironmentCredential``: a secret (``AZURE_CLIENT_SECRET``) or a
    certificate (``AZURE_CLIENT_CERTIFICATE_PATH``) for ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``.

    Incomplete configuration makes ``get_token`` raise :class:`CredentialUnavailableError`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        env: Mapping[str, str] = kwargs.pop("environ", None) or os.environ
        kwargs.setdefault("authority", env.get("AZURE_AUTHORITY_HOST"))
        tenant, client = env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID")
        self._inner: _ConfidentialCredential | None = None
        if tenant and client and env.get("AZURE_CLIENT_SECRET"):
            self._inner = ClientSecretCredential(
                tenant, client, env["AZURE_CLIENT_SECRET"], **kwargs
            )
        elif tenant and client and env.get("AZURE_CLIENT_CERTIFICATE_PATH"):
            self._inner = CertificateCredential(
                tenant,
                client,
                env["AZURE_CLIENT_CERTIFICATE_PATH"],
                password=env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD") or None,
                send_certificate_chain=env.get("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "").lower()
                in ("1", "true"),
                **kwargs,
            )

    def __repr__(self) -> str:
        return f"EnvironmentCredential({self._inner!r})"

    def _acquire(
        self, scopes: tuple[str, ...], claims: str | None, tenant_id: str | None, cae: bool
    ) -> Awaitable[AuthenticationResult]:
        if self._inner is None:
            raise CredentialUnavailableError(
                message="EnvironmentCredential authentication unavailable. Environment variables "
                "are not fully configured (AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH)."
            )
        return self._inner._acquire(scopes, claims, tenant_id, cae)

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
        await super().close()


