"""The machinery of a certificate credential: loading keys, signing assertions.

Loading turns PEM input into cryptography objects and every failure into an
:class:`MsalConfigurationError` that names the problem but never the key or
the passphrase.

Signing makes the JWT client assertion of RFC 7523. The signer is pure CPU
work and never reads the time itself: the caller passes ``now`` from the
application's clock. For Entra, a signed assertion is reused for the same
client and token endpoint until fewer than :data:`REUSE_MARGIN` seconds of its
life remain, so that a busy service signs about once every eight minutes
instead of once per token request; for authorities that enforce RFC 7523's
one-use ``jti`` the caller asks for a new one each time (``reuse=False``).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from .._errors import MsalConfigurationError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

# cryptography and PyJWT are imported by the functions that use them, on first use: most
# applications use a secret, and ``import aiomsal`` should not pay for them.

__all__ = [
    "ASSERTION_LIFETIME",
    "CACHE_SIZE",
    "JWT_BEARER",
    "REUSE_MARGIN",
    "AssertionSigner",
    "as_bytes",
    "b64std",
    "b64url",
    "load_pem_certificates",
    "load_pem_key",
    "parse_sha1_thumbprint",
    "passphrase_bytes",
    "require_rsa",
    "spki",
]

#: The ``client_assertion_type`` of a JWT client assertion.
JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds from ``iat`` to ``exp`` of a signed assertion.
ASSERTION_LIFETIME: Final = 600
#: A cached assertion is re-signed once fewer than this many seconds remain.
REUSE_MARGIN: Final = 120
#: At most this many (client_id, token_endpoint) pairs keep a signed assertion.
CACHE_SIZE: Final = 64

Algorithm = Literal["PS256", "RS256"]


def b64url(data: bytes) -> str:
    """Encode ``data`` as base64url without padding (RFC 7515, section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64std(data: bytes) -> str:
    """Encode ``data`` as standard base64 with padding (the ``x5c`` form, RFC 7515 4.1.6)."""
    return base64.b64encode(data).decode("ascii")


# ------------------------------------------------------------ loading keys and certificates


def as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise MsalConfigurationError(f"{what} must be str or bytes, not {type(value).__name__}")
    if not value:
        raise MsalConfigurationError(f"{what} is empty")
    return bytes(value)


def passphrase_bytes(value: object) -> bytes | None:
    if value is None or value in ("", b""):
        return None
    return as_bytes(value, "passphrase")


def load_pem_key(data: object, passphrase: bytes | None) -> RSAPrivateKey:
    from cryptography.hazmat.primitives import serialization

    raw = as_bytes(data, "private_key")
    try:
        key = serialization.load_pem_private_key(raw, password=passphrase)
    except TypeError:  # encrypted without passphrase, or passphrase for a plain key
        if passphrase is None:
            message = "the private key is encrypted: a passphrase is needed"
        else:
            message = "a passphrase was given but the private key is not encrypted"
        raise MsalConfigurationError(message) from None
    except ValueError:  # cryptography cannot tell bad PEM from a wrong passphrase
        if passphrase is not None and b"ENCRYPTED" in raw:
            message = "could not decrypt the private key: wrong passphrase?"
        else:
            message = "private_key is not a PEM private key"
        raise MsalConfigurationError(message) from None
    except Exception:  # e.g. UnsupportedAlgorithm
        raise MsalConfigurationError("private_key could not be loaded") from None
    return require_rsa(key)


def require_rsa(key: object) -> RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    if not isinstance(key, RSAPrivateKey):
        raise MsalConfigurationError(
            f"the private key must be an RSA key (PS256/RS256), not {type(key).__name__}"
        )
    return key


def load_pem_certificates(data: object) -> list[x509.Certificate]:
    from cryptography import x509

    raw = as_bytes(data, "certificate")
    try:
        return x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise MsalConfigurationError("certificate holds no PEM certificate") from None


def parse_sha1_thumbprint(value: object) -> bytes:
    if not isinstance(value, str):
        raise MsalConfigurationError(f"thumbprint must be a hex str, not {type(value).__name__}")
    digits = "".join(value.replace(":", "").split())
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raise MsalConfigurationError("thumbprint is not hexadecimal") from None
    if len(raw) != 20:
        raise MsalConfigurationError("thumbprint must be a SHA-1 thumbprint (40 hex digits)")
    return raw


def spki(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        return b""
    from cryptography.hazmat.primitives import serialization

    return cast(
        bytes,
        public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    )


# ------------------------------------------------------------------------------ signing


class AssertionSigner:
    """Signs client assertions with one RSA key and caches them per audience."""

    __slots__ = ("_algorithm", "_cache", "_headers", "_key", "_lock")

    def __init__(
        self, key: RSAPrivateKey, algorithm: Algorithm, headers: Mapping[str, Any]
    ) -> None:
        self._key = key
        self._algorithm: Algorithm = algorithm
        self._headers = {"alg": algorithm, "typ": "JWT", **headers}
        # (client_id, token_endpoint, extra claims) -> (assertion, iat, exp); insertion-ordered.
        self._cache: dict[tuple[str, str, str], tuple[str, int, int]] = {}
        # A credential may be shared by applications running in several threads.
        self._lock = threading.Lock()

    @property
    def headers(self) -> dict[str, Any]:
        """The JOSE header of every assertion this signer makes (a copy)."""
        return dict(self._headers)

    def assertion(
        self,
        *,
        client_id: str,
        audience: str,
        now: float,
        reuse: bool = True,
        extra_claims: str = "",
    ) -> str:
        """Return a signed assertion valid at ``now``.

        With ``reuse`` a fresh-enough cached one is returned; without, a new one
        (a new ``jti``) is signed every time and nothing is cached.
        ``extra_claims`` is a JSON object of further claims (MSAL's
        ``client_claims``); it cannot replace the claims set here.
        """
        cache_key = (client_id, audience, extra_claims)
        with self._lock:
            cached = self._cache.get(cache_key) if reuse else None
            if cached is not None:
                token, issued_at, expires_at = cached
                # Reuse only while enough life remains, and never when the clock
                # went back before the assertion's nbf.
                if issued_at <= now and expires_at - now >= REUSE_MARGIN:
                    return token
            issued_at = int(now)
            expires_at = issued_at + ASSERTION_LIFETIME
            claims = {
                **(json.loads(extra_claims) if extra_claims else {}),
                "aud": audience,
                "iss": client_id,
                "sub": client_id,
                "jti": str(uuid.uuid4()),
                "iat": issued_at,
                "nbf": issued_at,
                "exp": expires_at,
            }
            import jwt

            token = jwt.encode(claims, self._key, algorithm=self._algorithm, headers=self._headers)
            if not reuse:
                return token
            self._cache.pop(cache_key, None)  # re-insert at the end: newest last
            self._cache[cache_key] = (token, issued_at, expires_at)
            while len(self._cache) > CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            return token
