"""Signing keys of :class:`FakeAuthority`: rotation, outages, and tokens made to order.

:class:`SigningKeys` is a base class of :class:`FakeAuthority`. It keeps the
published key set that the JWKS endpoints serve and the one key that signs
new tokens, so a test can rotate keys the way Entra ID does (publish a new
key, sign with it, retire the old one), take the keys endpoint down, and
issue access tokens for any audience with any claims, to test the API side
(:class:`aiomsal.TokenValidator`) against real JWKS behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from .._concurrency._clock import Clock
from ._fake_tokens import TokenSigner, new_uti, shared_signer
from ._fake_users import FakeUser, tenant_guid

__all__ = ["SigningKeys"]

#: The tenant of tokens issued without one.
_DEFAULT_TENANT = "contoso"


class SigningKeys:
    """The published signing keys of a fake authority and tokens signed with them."""

    _clock: Clock
    _signer: TokenSigner

    @property
    def base_url(self) -> str:  # implemented by FakeAuthority
        raise NotImplementedError

    def _init_signing_keys(self) -> None:
        self._signer = shared_signer()
        self._published: dict[str, TokenSigner] = {self._signer.kid: self._signer}
        #: How many GETs of a JWKS endpoint arrived (outages included).
        self.keys_requests = 0
        #: While True, the JWKS endpoints answer 503 (with Retry-After).
        self.keys_outage = False

    # --- rotation ------------------------------------------------------------------------

    @property
    def signing_key_ids(self) -> list[str]:
        """The ``kid`` of every published key, in the order they were published."""
        return list(self._published)

    @property
    def active_signing_key_id(self) -> str:
        """The ``kid`` of the key that signs new tokens."""
        return self._signer.kid

    def add_signing_key(self, signer: TokenSigner | None = None) -> str:
        """Publish a new key (a fresh RSA key unless given); tokens are still signed as before."""
        signer = signer or TokenSigner.generate()
        self._published[signer.kid] = signer
        return signer.kid

    def use_signing_key(self, kid: str) -> None:
        """Sign new tokens with the published key ``kid``; KeyError for an unpublished one."""
        self._signer = self._published[kid]

    def retire_signing_key(self, kid: str) -> None:
        """Stop publishing ``kid``; ValueError for the key that signs new tokens."""
        if kid == self._signer.kid:
            raise ValueError("the active signing key cannot be retired: use another one first")
        del self._published[kid]

    def rotate_signing_key(self) -> tuple[str, str]:
        """Publish a new key, sign with it and retire the previous one: return (old, new)."""
        old = self._signer.kid
        new = self.add_signing_key()
        self.use_signing_key(new)
        self.retire_signing_key(old)
        return old, new

    def signer(self, kid: str | None = None) -> TokenSigner:
        """The published key ``kid`` (the active one by default), to sign tokens by hand."""
        return self._signer if kid is None else self._published[kid]

    # --- tokens made to order ------------------------------------------------------------

    def issue_access_token(
        self,
        audience: str,
        *,
        tenant: str = _DEFAULT_TENANT,
        user: FakeUser | None = None,
        scopes: Sequence[str] | str | None = None,
        roles: Sequence[str] | None = None,
        client_id: str = "fake-client",
        lifetime: int = 3600,
        version: str = "2.0",
        claims: Mapping[str, Any] | None = None,
        omit: Iterable[str] = (),
    ) -> str:
        """An access token for ``audience`` signed with the active key, as Entra issues them.

        A user token (``scopes`` given, or ``user``) carries ``scp``, the user's
        ``oid`` and ``tid``; an application token carries ``roles`` only.
        ``version="1.0"`` gives the v1 shape (issuer ``{base}/{tid}/``,
        ``appid``). ``claims`` are added last (overriding), ``omit`` names
        claims to leave out. Times come from the authority's clock.
        """
        tid = user.tenant_for(tenant) if user is not None else None
        tid = tid or tenant_guid(tenant)
        now = int(self._clock.time())
        v1 = version == "1.0"
        body: dict[str, Any] = {
            "aud": audience,
            "iss": f"{self.base_url}/{tid}/" if v1 else f"{self.base_url}/{tid}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            ("appid" if v1 else "azp"): client_id,
            "tid": tid,
            "uti": new_uti(),
            "ver": version,
        }
        if user is not None:
            body.update(
                oid=user.oid,
                sub=user.subject(client_id),
                name=user.name,
                preferred_username=user.username,
            )
        else:
            body.update(oid=tenant_guid(f"{client_id}.sp"), sub=tenant_guid(f"{client_id}.sp"))
        if user is not None or scopes is not None:
            names = scopes if scopes is not None else ("access_as_user",)
            body["scp"] = names if isinstance(names, str) else " ".join(names)
        if roles is not None:
            body["roles"] = list(roles)
        body.update(claims or {})
        for name in omit:
            body.pop(name, None)
        return self._signer.sign(body)

    def issue_id_token(self, client_id: str, user: FakeUser, *, lifetime: int = 3600) -> str:
        """An ID token of ``user`` for ``client_id``: what must never pass as an access token."""
        now = int(self._clock.time())
        tid = user.tenant_id
        return self._signer.sign(
            {
                "aud": client_id,
                "iss": f"{self.base_url}/{tid}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": now + lifetime,
                "oid": user.oid,
                "sub": user.subject(client_id),
                "tid": tid,
                "preferred_username": user.username,
                "ver": "2.0",
            }
        )

    # --- the JWKS endpoint -----------------------------------------------------------------

    def _jwks_body(self, tenant: str) -> dict[str, Any] | None:
        """The JWKS of ``tenant``, or None during an outage (counted either way)."""
        self.keys_requests += 1
        if self.keys_outage:
            return None
        issuer = f"{self.base_url}/{tenant_guid(tenant)}/v2.0"
        return {"keys": [signer.jwk(issuer) for signer in self._published.values()]}

    @staticmethod
    def _outage_response() -> web.Response:
        return web.json_response(
            {"error": "temporarily_unavailable", "error_description": "keys endpoint down"},
            status=503,
            headers={"Retry-After": "30"},
        )
