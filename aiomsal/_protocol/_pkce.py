"""The one-time secrets of a sign-in: PKCE verifier, state and nonce (sans-I/O).

* PKCE (RFC 7636) binds the authorization code to the client that asked for
  it: the authorization request carries ``challenge``, the token request the
  ``verifier`` it was derived from.
* ``state`` binds the authorization response to the request (CSRF).
* ``nonce`` binds the ID token to the request (replay). The request and the
  ID token carry :func:`nonce_claim` of it, as MSAL does, so the nonce itself
  only ever lives with the flow.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field

__all__ = ["Pkce", "new_nonce", "new_pkce", "new_state", "nonce_claim", "s256_challenge"]

#: Bytes of randomness in a new verifier; base64url makes 64 characters of it
#: (RFC 7636 §4.1 allows 43 to 128 characters of the unreserved set).
_VERIFIER_BYTES = 48


@dataclass(frozen=True, slots=True)
class Pkce:
    """A PKCE pair; the verifier is a secret and never appears in the repr."""

    verifier: str = field(repr=False)
    challenge: str
    method: str = "S256"


def s256_challenge(verifier: str) -> str:
    """The S256 challenge of ``verifier``: base64url(SHA-256(ASCII verifier)), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pkce() -> Pkce:
    """A fresh verifier (64 characters of ``[A-Za-z0-9_-]``) and its S256 challenge."""
    verifier = secrets.token_urlsafe(_VERIFIER_BYTES)
    return Pkce(verifier=verifier, challenge=s256_challenge(verifier))


def new_state() -> str:
    """A fresh, unguessable ``state`` for one authorization request."""
    return secrets.token_urlsafe(16)


def new_nonce() -> str:
    """A fresh, unguessable ``nonce`` for one authentication request."""
    return secrets.token_urlsafe(16)


def nonce_claim(nonce: str) -> str:
    """What the authorization request and the ID token carry for ``nonce``.

    The hex SHA-256 digest of the nonce, as MSAL sends it (the hashing that
    OpenID Connect Core §15.5.2 suggests), so flows made by MSAL and by
    aiomsal can be completed by either.
    """
    return hashlib.sha256(nonce.encode("utf-8")).hexdigest()
