"""How a confidential client proves its identity to the token endpoint.

Three credentials, each turning into the form fields of a token request:

* :class:`ClientSecret` - a shared secret (``client_secret``).
* :class:`ClientCertificate` - an RSA key and its certificate; the client signs
  a short-lived JWT (``client_assertion``) and reuses it for several minutes.
* :class:`ClientAssertion` - a JWT made elsewhere, fixed or fetched by a
  callback for every request (workload identity federation).

:func:`credential_from_msal` turns MSAL Python's ``client_credential`` values
into one of these. No ``repr``, ``str`` or error message of this module ever
shows a secret, a private key, a passphrase or an assertion.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, cast, runtime_checkable

import anyio.to_thread

from .._errors import MsalConfigurationError
from ._client_assertion import (
    JWT_BEARER,
    Algorithm,
    AssertionSigner,
    b64std,
    b64url,
    load_pem_certificates,
    load_pem_key,
    parse_sha1_thumbprint,
    passphrase_bytes,
    require_rsa,
    spki,
)

if TYPE_CHECKING:  # cryptography is imported where a certificate is loaded
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = [
    "ClientAssertion",
    "ClientCertificate",
    "ClientCredential",
    "ClientSecret",
    "credential_from_msal",
]

AssertionSource: TypeAlias = "str | Callable[[], str] | Callable[[], Awaitable[str]]"


@runtime_checkable
class _FormCredential(Protocol):
    """What the grant builders need of a credential: the fields of a token request.

    ``extra_claims`` (a JSON object, MSAL's ``client_claims``) goes into an
    assertion this credential signs; secrets and assertions made elsewhere
    have no place for it.
    """

    async def form_fields(
        self,
        *,
        client_id: str,
        token_endpoint: str,
        now: float,
        reuse: bool = True,
        extra_claims: str = "",
    ) -> dict[str, str]: ...


# --------------------------------------------------------------------------- secret


@dataclass(frozen=True, slots=True, repr=False)
class ClientSecret:
    """A client secret, sent as ``client_secret`` in the token request body."""

    secret: str

    def __post_init__(self) -> None:
        if not isinstance(self.secret, str) or not self.secret:
            raise MsalConfigurationError("ClientSecret needs a non-empty str")

    def __repr__(self) -> str:
        return "ClientSecret(secret=<redacted>)"

    async def form_fields(
        self,
        *,
        client_id: str,
        token_endpoint: str,
        now: float,
        reuse: bool = True,
        extra_claims: str = "",
    ) -> dict[str, str]:
        return {"client_secret": self.secret}


# ---------------------------------------------------------------------- certificate


class ClientCertificate:
    """An RSA private key and its certificate, proving identity with a signed JWT.

    The key is loaded once, here; a bad PEM, a wrong passphrase, a key that does
    not match the certificate or a missing certificate *and* thumbprint raise
    :class:`MsalConfigurationError` at once, never at the first token request.

    ``certificate`` is PEM and may hold a chain (leaf first). With a certificate,
    the assertion is signed with PS256 and names the certificate by ``x5t#S256``.
    Without one, ``thumbprint`` (the SHA-1 thumbprint as hex, colons and spaces
    allowed) selects MSAL's legacy form: RS256 with ``x5t``. With
    ``send_certificate_chain``, the certificates travel in ``x5c``, as Subject
    Name/Issuer authentication requires.

    A signed assertion lives 10 minutes and is reused for the same client and
    token endpoint until fewer than 2 minutes of its life remain, for Entra
    authorities; a generic OpenID Connect authority gets a fresh assertion
    (a new ``jti``) with every token request, as RFC 7523 replay checks demand.
    """

    __slots__ = ("_algorithm", "_send_chain", "_signer", "_thumbprint_sha1", "_thumbprint_sha256")

    _algorithm: Algorithm
    _send_chain: bool
    _signer: AssertionSigner
    _thumbprint_sha1: str
    _thumbprint_sha256: str | None

    def __init__(
        self,
        private_key: str | bytes,
        certificate: str | bytes | None = None,
        *,
        thumbprint: str | None = None,
        passphrase: str | bytes | None = None,
        send_certificate_chain: bool = False,
        algorithm: Literal["PS256", "RS256"] | None = None,
    ) -> None:
        key = load_pem_key(private_key, passphrase_bytes(passphrase))
        chain = [] if certificate is None else load_pem_certificates(certificate)
        self._setup(key, chain, thumbprint, send_certificate_chain, algorithm)

    @classmethod
    def from_pkcs12(
        cls,
        data_or_path: bytes | str | os.PathLike[str],
        passphrase: str | bytes | None = None,
        *,
        send_certificate_chain: bool = False,
        algorithm: Literal["PS256", "RS256"] | None = None,
    ) -> ClientCertificate:
        """Load a PKCS#12 (PFX) blob, or the file at a path (``str`` or path-like).

        Reading the file is blocking I/O; it happens once, when the credential
        is made (typically at start-up), never while acquiring tokens.
        """
        if isinstance(data_or_path, (bytes, bytearray, memoryview)):
            data = bytes(data_or_path)
        elif isinstance(data_or_path, (str, os.PathLike)):
            try:
                data = Path(data_or_path).read_bytes()
            except OSError as exc:
                raise MsalConfigurationError(
                    f"cannot read the PKCS#12 file {os.fspath(data_or_path)!r}: {exc.strerror}"
                ) from None
        else:
            raise MsalConfigurationError(
                f"PKCS#12 data must be bytes or a path, not {type(data_or_path).__name__}"
            )
        from cryptography.hazmat.primitives.serialization import pkcs12

        try:
            key, leaf, others = pkcs12.load_key_and_certificates(data, passphrase_bytes(passphrase))
        except ValueError:
            raise MsalConfigurationError(
                "could not load the PKCS#12 data: not PKCS#12, or a wrong or missing passphrase"
            ) from None
        if key is None or leaf is None:
            raise MsalConfigurationError(
                "the PKCS#12 data must hold a private key and its certificate"
            )
        self = cls.__new__(cls)
        self._setup(require_rsa(key), [leaf, *others], None, send_certificate_chain, algorithm)
        return self

    def _setup(
        self,
        key: RSAPrivateKey,
        chain: list[x509.Certificate],
        thumbprint: object,
        send_chain: object,
        algorithm: object,
    ) -> None:
        from cryptography.hazmat.primitives import hashes, serialization

        if algorithm not in (None, "PS256", "RS256"):
            raise MsalConfigurationError(f"algorithm must be 'PS256' or 'RS256', not {algorithm!r}")
        if not isinstance(send_chain, bool):
            raise MsalConfigurationError("send_certificate_chain must be a bool")
        sha1 = None if thumbprint is None else parse_sha1_thumbprint(thumbprint)
        headers: dict[str, Any] = {}
        if chain:
            keyspki = spki(key.public_key())
            leaf = next((c for c in chain if spki(c.public_key()) == keyspki), None)
            if leaf is None:
                raise MsalConfigurationError("the private key does not match the certificate")
            chain = [leaf, *(c for c in chain if c is not leaf)]
            leaf_sha1 = leaf.fingerprint(hashes.SHA1())  # noqa: S303 - a name, not security
            leaf_sha256 = leaf.fingerprint(hashes.SHA256())
            if sha1 is not None and sha1 != leaf_sha1:
                raise MsalConfigurationError("thumbprint does not match the certificate")
            sha1 = leaf_sha1
            self._thumbprint_sha256 = leaf_sha256.hex().upper()
            alg: Algorithm = algorithm or "PS256"
            if alg == "RS256":  # legacy authorities (AD FS) know only x5t
                headers["x5t"] = b64url(leaf_sha1)
            headers["x5t#S256"] = b64url(leaf_sha256)
            if send_chain:
                headers["x5c"] = [b64std(c.public_bytes(serialization.Encoding.DER)) for c in chain]
        elif sha1 is not None:
            alg = algorithm or "RS256"
            if alg != "RS256":
                raise MsalConfigurationError(
                    "PS256 needs the certificate (for x5t#S256); a SHA-1 thumbprint allows RS256"
                )
            if send_chain:
                raise MsalConfigurationError("send_certificate_chain needs the certificate")
            self._thumbprint_sha256 = None
            headers["x5t"] = b64url(sha1)
        else:
            raise MsalConfigurationError("ClientCertificate needs a certificate or a thumbprint")
        self._thumbprint_sha1 = sha1.hex().upper()
        self._algorithm = alg
        self._send_chain = send_chain
        self._signer = AssertionSigner(key, alg, headers)

    @property
    def algorithm(self) -> Literal["PS256", "RS256"]:
        """The JWS algorithm of the client assertion."""
        return self._algorithm

    @property
    def thumbprint_sha1(self) -> str:
        """The certificate's SHA-1 thumbprint, upper-case hex."""
        return self._thumbprint_sha1

    @property
    def thumbprint_sha256(self) -> str | None:
        """The certificate's SHA-256 thumbprint, upper-case hex; None if only SHA-1 is known."""
        return self._thumbprint_sha256

    @property
    def send_certificate_chain(self) -> bool:
        """Whether the assertion carries the certificates in ``x5c``."""
        return self._send_chain

    def __repr__(self) -> str:
        thumbprint = (
            f"thumbprint_sha256={self._thumbprint_sha256!r}"
            if self._thumbprint_sha256
            else f"thumbprint_sha1={self._thumbprint_sha1!r}"
        )
        return (
            f"ClientCertificate(algorithm={self._algorithm!r}, {thumbprint}, "
            f"send_certificate_chain={self._send_chain!r})"
        )

    async def form_fields(
        self,
        *,
        client_id: str,
        token_endpoint: str,
        now: float,
        reuse: bool = True,
        extra_claims: str = "",
    ) -> dict[str, str]:
        """The client assertion fields; ``reuse=False`` signs a new assertion (a new ``jti``).

        Entra accepts one assertion for several requests, so it is reused there;
        a generic OpenID Connect authority may enforce RFC 7523's one-use ``jti``
        (Okta, Keycloak), so the application asks for a fresh one per request.
        """
        assertion = self._signer.assertion(
            client_id=client_id,
            audience=token_endpoint,
            now=now,
            reuse=reuse,
            extra_claims=extra_claims,
        )
        return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}


# ------------------------------------------------------------------------ assertion


def _is_async_callable(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _clean_assertion(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    if not isinstance(value, str):
        raise MsalConfigurationError(
            f"a client assertion must be a str, not {type(value).__name__}"
        )
    value = value.strip()  # a JWT has no whitespace; files often end in a newline
    if not value:
        raise MsalConfigurationError("the client assertion is empty")
    return value


@dataclass(frozen=True, slots=True, repr=False)
class ClientAssertion:
    """A JWT client assertion made elsewhere: fixed, or from a callback.

    A callback is called for every token request and owns the freshness of
    what it returns (for workload identity federation it usually reads a
    projected token file). A plain function runs in a worker thread, so that
    its blocking I/O cannot stall the event loop; a coroutine function is
    awaited. An empty result raises :class:`MsalConfigurationError`.
    """

    assertion: AssertionSource

    def __post_init__(self) -> None:
        if callable(self.assertion):
            return
        object.__setattr__(self, "assertion", _clean_assertion(self.assertion))

    def __repr__(self) -> str:
        if isinstance(self.assertion, str):
            return "ClientAssertion(assertion=<redacted>)"
        name = getattr(self.assertion, "__qualname__", type(self.assertion).__qualname__)
        return f"ClientAssertion(callback={name})"

    async def _fetch(self) -> str:
        source = self.assertion
        if isinstance(source, str):
            return source
        result: object
        if _is_async_callable(source):
            result = await cast(Callable[[], Awaitable[str]], source)()
        else:
            result = await anyio.to_thread.run_sync(source)
            if inspect.isawaitable(result):  # e.g. a lambda returning a coroutine
                result = await result
        return _clean_assertion(result)

    async def form_fields(
        self,
        *,
        client_id: str,
        token_endpoint: str,
        now: float,
        reuse: bool = True,
        extra_claims: str = "",
    ) -> dict[str, str]:
        return {"client_assertion_type": JWT_BEARER, "client_assertion": await self._fetch()}


ClientCredential: TypeAlias = ClientSecret | ClientCertificate | ClientAssertion


# ----------------------------------------------------------------------------- MSAL

_MSAL_KEYS = frozenset(
    {
        "client_assertion",
        "private_key",
        "private_key_pfx_path",
        "public_certificate",
        "thumbprint",
        "passphrase",
    }
)


def credential_from_msal(value: object) -> ClientCredential:
    """Turn MSAL Python's ``client_credential`` into an aiomsal credential.

    Accepted forms (a key whose value is ``None`` or empty counts as absent, as
    in MSAL, so that unset environment variables do no harm):

    * a ``str``: a client secret;
    * ``{"client_assertion": str | bytes | callable}``;
    * ``{"private_key": pem, "public_certificate": pem, "thumbprint": hex,
      "passphrase": ...}`` with ``public_certificate`` and/or ``thumbprint``.
      A ``public_certificate`` selects PS256 with ``x5t#S256`` and, as in MSAL,
      travels in ``x5c``; a ``thumbprint`` alone selects RS256 with ``x5t``;
    * ``{"private_key_pfx_path": path, "passphrase": ...,
      "public_certificate": True}`` where ``True`` sends ``x5c``;
    * a :class:`ClientSecret`, :class:`ClientCertificate` or
      :class:`ClientAssertion`, returned as is.
    """
    if isinstance(value, (ClientSecret, ClientCertificate, ClientAssertion)):
        return value
    if isinstance(value, str):
        if not value:
            raise MsalConfigurationError("client_credential is an empty str")
        return ClientSecret(value)
    if not isinstance(value, Mapping):
        raise MsalConfigurationError(
            f"client_credential must be a str or a dict, not {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in value if k not in _MSAL_KEYS)
    if unknown:
        raise MsalConfigurationError(f"client_credential has unknown keys: {', '.join(unknown)}")
    given = {k: v for k, v in value.items() if v is not None and v != "" and v != b""}
    if not given:
        raise MsalConfigurationError("client_credential is empty")

    if "client_assertion" in given:
        extra = sorted(set(given) - {"client_assertion"})
        if extra:
            raise MsalConfigurationError(
                f"client_assertion cannot be combined with: {', '.join(extra)}"
            )
        assertion = given["client_assertion"]
        if callable(assertion):
            return ClientAssertion(assertion)
        if not isinstance(assertion, (str, bytes)):
            raise MsalConfigurationError(
                f"client_assertion must be a str or a callable, not {type(assertion).__name__}"
            )
        return ClientAssertion(_clean_assertion(assertion))

    public_certificate = given.get("public_certificate")
    if "private_key_pfx_path" in given:
        for conflicting in ("private_key", "thumbprint"):
            if conflicting in given:
                raise MsalConfigurationError(
                    f"private_key_pfx_path cannot be combined with {conflicting}"
                )
        if public_certificate is not None and not isinstance(public_certificate, bool):
            raise MsalConfigurationError(
                "with private_key_pfx_path, public_certificate must be True or False"
            )
        path = given["private_key_pfx_path"]
        if not isinstance(path, (str, os.PathLike)):
            raise MsalConfigurationError(
                f"private_key_pfx_path must be a path, not {type(path).__name__}"
            )
        return ClientCertificate.from_pkcs12(
            path, given.get("passphrase"), send_certificate_chain=public_certificate is True
        )

    if "private_key" not in given:
        raise MsalConfigurationError(
            "client_credential needs client_assertion, private_key or private_key_pfx_path"
        )
    if isinstance(public_certificate, bool):
        if public_certificate:
            raise MsalConfigurationError(
                "public_certificate=True needs private_key_pfx_path; "
                "with private_key, pass the certificate PEM"
            )
        public_certificate = None
    if public_certificate is None and "thumbprint" not in given:
        raise MsalConfigurationError(
            "client_credential with private_key needs public_certificate or thumbprint"
        )
    return ClientCertificate(
        given["private_key"],
        public_certificate,
        thumbprint=given.get("thumbprint"),
        passphrase=given.get("passphrase"),
        send_certificate_chain=public_certificate is not None,
    )
