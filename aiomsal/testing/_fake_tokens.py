"""Signing keys, JWKS, access tokens and error bodies of :class:`FakeAuthority`."""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import secrets
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._certificates import TestCertificate, generate_certificate

__all__ = [
    "GrantError",
    "TokenSigner",
    "b64url",
    "entra_error_body",
    "entra_timestamp",
    "html_error_page",
    "instance_discovery",
    "new_uti",
    "openid_configuration",
    "retry_after_value",
    "shared_signer",
    "status_error",
]


def b64url(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url, the encoding of JOSE."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class TokenSigner:
    """An RSA signing key with its certificate, published as a JWKS key.

    Like Entra ID, the ``kid`` of the key is its ``x5t`` (the base64url SHA-1
    thumbprint of the certificate).
    """

    def __init__(self, certificate: TestCertificate) -> None:
        key = serialization.load_pem_private_key(certificate.private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("the signing certificate must hold an RSA key")
        self._key = key
        self.certificate = certificate
        der = certificate.certificate.public_bytes(serialization.Encoding.DER)
        self.x5t = b64url(hashlib.sha1(der).digest())  # noqa: S324 - a thumbprint, not security
        self.kid = self.x5t
        self._x5c = base64.b64encode(der).decode("ascii")
        self._headers = {"typ": "JWT", "kid": self.kid, "x5t": self.x5t}
        numbers = key.public_key().public_numbers()
        self._n = _b64url_uint(numbers.n)
        self._e = _b64url_uint(numbers.e)

    @classmethod
    def generate(cls) -> TokenSigner:
        """Make a signer with a fresh RSA key (tens of milliseconds)."""
        return cls(generate_certificate("aiomsal FakeAuthority token signing"))

    def jwk(self, issuer: str | None = None) -> dict[str, Any]:
        """The public key as a JWK, shaped like the keys Entra ID publishes."""
        key: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": self._n,
            "e": self._e,
            "x5c": [self._x5c],
        }
        if issuer is not None:
            key["issuer"] = issuer
        return key

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Return ``claims`` as an RS256 JWT carrying this key's ``kid`` and ``x5t``."""
        return jwt.encode(dict(claims), self._key, algorithm="RS256", headers=self._headers)

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a JWT this key signed; times and audience are not checked.

        Raises :class:`jwt.PyJWTError` when ``token`` is not a JWT signed with this key.
        """
        claims: dict[str, Any] = jwt.decode(
            token,
            self._key.public_key(),
            algorithms=["RS256"],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
        return claims


@functools.cache
def shared_signer() -> TokenSigner:
    """The signer every :class:`FakeAuthority` of this process uses by default.

    Making an RSA key is slow compared with starting a fake, so one key is
    shared; the issuers of different fakes still differ (each has its own port).
    """
    return TokenSigner.generate()


def new_uti() -> str:
    """A unique token identifier, shaped like Entra's ``uti`` claim."""
    return b64url(secrets.token_bytes(16))


def entra_timestamp(now: float) -> str:
    """Format an epoch time the way Entra ID error bodies do: ``2024-01-31 12:00:00Z``."""
    moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def entra_error_body(
    error: str,
    code: int,
    message: str,
    *,
    now: float,
    correlation_id: str | None,
    trace_id: str | None = None,
    error_uri_base: str = "https://login.microsoftonline.com",
) -> dict[str, Any]:
    """Build the JSON body of an Entra ID token-endpoint error.

    ``message`` is the text after ``AADSTSnnnn:``; ``correlation_id`` echoes the
    request's ``client-request-id`` (a new GUID when the client sent none).
    """
    trace_id = trace_id or str(uuid.uuid4())
    correlation_id = correlation_id or str(uuid.uuid4())
    timestamp = entra_timestamp(now)
    description = (
        f"AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\n"
        f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}"
    )
    return {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{error_uri_base}/error?code={code}",
    }


_CLAIMS_SUPPORTED = [
    *("sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username"),
    *("name", "tid", "ver", "at_hash", "c_hash", "email"),
]


def openid_configuration(base_url: str, tenant: str, tenant_id: str) -> dict[str, Any]:
    """The OpenID Connect discovery document of ``tenant``, shaped like Entra ID's v2.0 one."""
    prefix = f"{base_url}/{tenant}"
    return {
        "issuer": f"{base_url}/{tenant_id}/v2.0",
        "authorization_endpoint": f"{prefix}/oauth2/v2.0/authorize",
        "token_endpoint": f"{prefix}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{prefix}/oauth2/v2.0/devicecode",
        "end_session_endpoint": f"{prefix}/oauth2/v2.0/logout",
        "kerberos_endpoint": f"{prefix}/kerberos",
        "jwks_uri": f"{prefix}/discovery/v2.0/keys",
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "password",
        ],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": list(_CLAIMS_SUPPORTED),
        "request_uri_parameter_supported": False,
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


def instance_discovery(base_url: str, tenant: str, hosts: list[str]) -> dict[str, Any]:
    """The instance discovery answer for ``tenant``; ``hosts`` are ``host:port`` aliases."""
    return {
        "tenant_discovery_endpoint": f"{base_url}/{tenant}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [
            {"preferred_network": hosts[0], "preferred_cache": hosts[0], "aliases": hosts}
        ],
    }


#: What Entra ID answers when it fails with an HTTP status: (error, AADSTS code, text).
_STATUS_ERRORS: dict[int, tuple[str, int, str]] = {
    400: ("invalid_request", 90100, "A request parameter is empty or not valid."),
    401: ("invalid_client", 7000215, "The client credential is not valid."),
    429: ("temporarily_unavailable", 90055, "Too many incoming requests. Retry later."),
    500: ("server_error", 50000, "There was an error issuing a token."),
    503: ("temporarily_unavailable", 90033, "A transient error has occurred. Please try again."),
    504: ("temporarily_unavailable", 90033, "A transient error has occurred. Please try again."),
}


def status_error(status: int) -> tuple[str, int, str]:
    """The OAuth error, AADSTS code and text Entra ID sends with an HTTP error ``status``."""
    if status in _STATUS_ERRORS:
        return _STATUS_ERRORS[status]
    return _STATUS_ERRORS[500] if status >= 500 else _STATUS_ERRORS[400]


def html_error_page(status: int) -> str:
    """An HTML error page, as a proxy or load balancer in front of the authority sends."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return (
        f"<!DOCTYPE html>\n<html><head><title>{status} {phrase}</title></head>\n"
        f"<body><h1>{phrase}</h1><p>The service is unavailable. Please try again later.</p>"
        "</body></html>\n"
    )


def retry_after_value(seconds: float) -> str:
    """Format a ``Retry-After`` header: whole seconds as an integer."""
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


class GrantError(Exception):
    """An error answer of the token endpoint: HTTP status, OAuth error, AADSTS code.

    ``extra`` holds further members of the JSON body, such as ``suberror`` and ``claims``.
    """

    def __init__(
        self,
        status: int,
        error: str,
        code: int,
        message: str,
        *,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.code = code
        self.message = message
        self.extra: Mapping[str, str] = dict(extra or {})
        super().__init__(f"{status} {error} AADSTS{code}: {message}")
