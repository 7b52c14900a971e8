"""Delegated (user) tokens of :class:`FakeAuthority`: scopes, access and ID tokens.

A user request names scopes of one resource (plus the reserved OpenID Connect
scopes); :func:`parse_user_scopes` finds that resource, and
:func:`issue_user_tokens` signs the access token and ID token and builds the
success body shared by every user grant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._fake_grants import AuthenticatedClient, TokenRequest
from ._fake_tokens import GrantError, b64url, new_uti
from ._fake_users import FakeUser

__all__ = [
    "GRAPH_APP_ID",
    "GRAPH_RESOURCE",
    "ID_TOKEN_LIFETIME",
    "RESERVED_SCOPES",
    "UserScopes",
    "client_capabilities",
    "client_info",
    "issue_user_tokens",
    "parse_user_scopes",
]

GRAPH_RESOURCE = "https://graph.microsoft.com"
#: The application (client) id of Microsoft Graph, also usable as a scope prefix.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
#: Scopes that name no resource: OpenID Connect and refresh token requests.
RESERVED_SCOPES = ("openid", "profile", "offline_access", "email")
#: Seconds an ID token is valid.
ID_TOKEN_LIFETIME = 3600

_DEFAULT = ".default"
#: What a request without any resource scope gets a token for (as Entra ID does).
_SIGN_IN_ONLY_SCOPE = "User.Read"
#: The ``scp`` of a token asked for with ``{resource}/.default`` only.
_DEFAULT_SCP = "user_impersonation"


@dataclass(frozen=True, slots=True)
class UserScopes:
    """The scopes of a user request, split into the one resource and the reserved ones."""

    #: The token audience: ``https://graph.microsoft.com``, ``api://X``, ...
    resource: str
    #: The scope names without the resource prefix, as they go into ``scp``.
    names: tuple[str, ...]
    #: The resource scopes in the form they were asked for.
    asked: tuple[str, ...]
    #: The reserved scopes that were asked for, in the order asked.
    reserved: tuple[str, ...]

    @property
    def granted(self) -> str:
        """The ``scope`` member of the success body."""
        return " ".join((*self.asked, *self.reserved))

    @property
    def scp(self) -> str:
        names = [n for n in self.names if n != _DEFAULT]
        return " ".join(names) if names else _DEFAULT_SCP

    @property
    def openid(self) -> bool:
        return "openid" in self.reserved

    @property
    def offline_access(self) -> bool:
        return "offline_access" in self.reserved


def _invalid_scope(scope: str, reason: str) -> GrantError:
    return GrantError(
        400,
        "invalid_scope",
        70011,
        f"The provided value for the input parameter 'scope' is not valid. The scope "
        f"'{scope}' is not valid: {reason}",
    )


def _resource_of(scope: str) -> tuple[str, str] | None:
    """Split ``scope`` into (resource, name); None when it names no scope."""
    if "/" not in scope:
        return GRAPH_RESOURCE, scope
    resource, _, name = scope.rpartition("/")
    if not name or not resource or resource.endswith(":/") or resource.endswith(":"):
        return None
    if resource == GRAPH_APP_ID or resource.rstrip("/").lower() == GRAPH_RESOURCE:
        return GRAPH_RESOURCE, name
    return resource.rstrip("/"), name


def parse_user_scopes(scope: str) -> UserScopes:
    """Split a ``scope`` parameter; raise ``invalid_scope`` unless it names one resource."""
    requested = list(dict.fromkeys(scope.split()))
    if not requested:
        raise GrantError(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    reserved = tuple(s for s in requested if s in RESERVED_SCOPES)
    asked = tuple(s for s in requested if s not in RESERVED_SCOPES)
    if not asked:
        return UserScopes(GRAPH_RESOURCE, (_SIGN_IN_ONLY_SCOPE,), (_SIGN_IN_ONLY_SCOPE,), reserved)
    resources: list[str] = []
    names: list[str] = []
    for item in asked:
        split = _resource_of(item)
        if split is None:
            raise _invalid_scope(scope, f"'{item}' names no permission of a resource.")
        resources.append(split[0])
        names.append(split[1])
    if len(set(resources)) > 1:
        raise _invalid_scope(
            scope, "scopes of several resources cannot be combined in one request."
        )
    if _DEFAULT in names and len(names) > 1:
        raise _invalid_scope(scope, "/.default cannot be combined with other scopes.")
    return UserScopes(resources[0], tuple(names), asked, reserved)


def client_capabilities(claims: str | None) -> list[str]:
    """The ``xms_cc`` a request's ``claims`` parameter declares (``["cp1"]``: CAE-capable)."""
    try:
        values = json.loads(claims or "{}")["access_token"]["xms_cc"]["values"]
    except (ValueError, KeyError, TypeError):
        return []
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def client_info(user: FakeUser) -> str:
    """The ``client_info`` of ``user``: base64url JSON of its home ``uid`` and ``utid``."""
    info = json.dumps({"uid": user.oid, "utid": user.tenant_id}, separators=(",", ":"))
    return b64url(info.encode())


def issue_user_tokens(
    request: TokenRequest,
    client: AuthenticatedClient,
    user: FakeUser,
    tenant_id: str,
    scopes: UserScopes,
    *,
    nonce: str | None = None,
    refresh_token: bool = False,
) -> dict[str, Any]:
    """Sign the tokens of ``user`` signed in to ``tenant_id`` and build the success body.

    A refresh token is issued when ``offline_access`` was asked for, or always
    with ``refresh_token=True`` (the refresh token grant rotates it); an ID
    token when ``openid`` was asked for; ``client_info`` when the request
    carried ``client_info=1``.
    """
    directory = request.directory
    assert directory is not None, "user grants need the user directory"
    now = int(request.now)
    lifetime = request.token_lifetime
    client_id = client.client.client_id
    issuer = f"{request.base_url}/{tenant_id}/v2.0"
    identity = {
        "name": user.name,
        "oid": user.oid,
        "preferred_username": user.username,
        "sub": user.subject(client_id),
        "tid": tenant_id,
        "ver": "2.0",
    }
    access_claims = {
        "aud": scopes.resource,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "azp": client_id,
        "azpacr": client.azpacr,
        "scp": scopes.scp,
        "uti": new_uti(),
        **identity,
    }
    capabilities = client_capabilities(request.form.get("claims"))
    if capabilities:
        access_claims["xms_cc"] = capabilities
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": scopes.granted,
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": request.signer.sign(access_claims),
    }
    if request.refresh_in is not None:
        body["refresh_in"] = request.refresh_in
    if scopes.offline_access or refresh_token:
        body["refresh_token"] = directory.issue_refresh_token(user, client_id, request.now)
    if scopes.openid:
        id_claims: dict[str, Any] = {
            "aud": client_id,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + ID_TOKEN_LIFETIME,
            **identity,
        }
        if nonce is not None:
            id_claims["nonce"] = nonce
        body["id_token"] = request.signer.sign(id_claims)
    if request.form.get("client_info") == "1":
        body["client_info"] = client_info(user)
    return body
