"""The token endpoint of :class:`FakeAuthority`: client authentication and grants.

Each grant type is one ``async`` function taking a :class:`TokenRequest` and
returning the JSON body of a successful answer, registered in
:data:`GRANT_HANDLERS` with :func:`grant_handler`; it raises :class:`GrantError`
to answer with an Entra-shaped error instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._fake_tokens import GrantError, TokenSigner, b64url, new_uti

if TYPE_CHECKING:
    from ._fake_users import UserDirectory

__all__ = [
    "ASSERTION_TYPE",
    "CLOCK_SKEW",
    "GRANT_HANDLERS",
    "AuthenticatedClient",
    "GrantHandler",
    "RegisteredClient",
    "TokenRequest",
    "authenticate_client",
    "grant_handler",
    "handle_token_request",
    "issue_app_token",
]

#: The ``client_assertion_type`` of a certificate credential.
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds of clock skew tolerated when checking client assertion times.
CLOCK_SKEW = 300.0
_ASSERTION_ALGORITHMS = ("RS256", "PS256")


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """An application registered with the fake authority (valid in every tenant)."""

    client_id: str
    secret: str | None = field(default=None, repr=False)
    certificates: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    redirect_uris: tuple[str, ...] = ()

    @property
    def confidential(self) -> bool:
        """Whether the client has a credential (a secret or a certificate)."""
        return self.secret is not None or bool(self.certificates)


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    """The client of a token request and how it proved its identity."""

    client: RegisteredClient
    method: Literal["secret", "certificate", "none"]

    @property
    def azpacr(self) -> str:
        """The ``azpacr`` claim: 0 public client, 1 secret, 2 certificate."""
        return {"none": "0", "secret": "1", "certificate": "2"}[self.method]


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One POST to a token endpoint, with what a grant handler needs to answer it."""

    form: Mapping[str, str] = field(repr=False)
    tenant: str
    tenant_id: str
    base_url: str
    #: Other base URLs of the same server (``localhost`` for ``127.0.0.1``).
    alias_base_urls: tuple[str, ...]
    #: Clock time at which the request is answered.
    now: float
    clients: Mapping[str, RegisteredClient] = field(repr=False)
    signer: TokenSigner = field(repr=False)
    token_lifetime: int
    refresh_in: int | None
    #: The users and their grants (None: the request can only use app-only grants).
    directory: UserDirectory | None = field(default=None, repr=False)
    #: Every published signing key (``signer`` among them): what assertions may be signed by.
    published_signers: tuple[TokenSigner, ...] = field(default=(), repr=False)
    #: Resources that accept only v1 access tokens (``iss`` ``https://sts.windows.net/{tid}/``).
    v1_resources: frozenset[str] = frozenset()

    @property
    def issuer(self) -> str:
        """The issuer of tokens for this tenant: ``{base}/{tid}/v2.0``."""
        return f"{self.base_url}/{self.tenant_id}/v2.0"

    @property
    def token_endpoint(self) -> str:
        """The URL this request was posted to."""
        return f"{self.base_url}/{self.tenant}/oauth2/v2.0/token"

    def require(self, name: str) -> str:
        """Return a form parameter, or fail with AADSTS900144 when it is missing."""
        value = self.form.get(name)
        if not value:
            raise GrantError(
                400,
                "invalid_request",
                900144,
                f"The request body must contain the following parameter: '{name}'.",
            )
        return value

    def assertion_audiences(self) -> frozenset[str]:
        """The ``aud`` values accepted in a client assertion for this request."""
        audiences = set()
        for base in (self.base_url, *self.alias_base_urls):
            for tenant in (self.tenant, self.tenant_id):
                audiences.add(f"{base}/{tenant}/oauth2/v2.0/token")
                audiences.add(f"{base}/{tenant}/v2.0")
        return frozenset(audiences)


GrantHandler = Callable[[TokenRequest], Awaitable[dict[str, Any]]]

#: The grant types the fake token endpoint supports, by ``grant_type``.
GRANT_HANDLERS: dict[str, GrantHandler] = {}


def grant_handler(grant_type: str) -> Callable[[GrantHandler], GrantHandler]:
    """Register the decorated function as the handler of ``grant_type``."""

    def register(handler: GrantHandler) -> GrantHandler:
        GRANT_HANDLERS[grant_type] = handler
        return handler

    return register


async def handle_token_request(request: TokenRequest) -> dict[str, Any]:
    """Answer a token request: dispatch on ``grant_type`` (raises :class:`GrantError`)."""
    grant_type = request.require("grant_type")
    handler = GRANT_HANDLERS.get(grant_type)
    if handler is None:
        raise GrantError(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )
    return await handler(request)


# --- client authentication -------------------------------------------------------------


def authenticate_client(request: TokenRequest, *, confidential: bool) -> AuthenticatedClient:
    """Identify the client of ``request`` and check its credential.

    A ``client_assertion`` wins over a ``client_secret``. With
    ``confidential=True`` (as for client_credentials), a credential is required.
    """
    client_id = request.require("client_id")
    client = request.clients.get(client_id)
    if client is None:
        raise GrantError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{request.tenant}'. The application may not be installed in this tenant, "
            "or the request was sent to the wrong tenant.",
        )
    assertion = request.form.get("client_assertion")
    if assertion is not None:
        assertion_type = request.form.get("client_assertion_type")
        if assertion_type != ASSERTION_TYPE:
            raise GrantError(
                400,
                "invalid_request",
                90100,
                f"The client_assertion_type must be '{ASSERTION_TYPE}'.",
            )
        _verify_assertion(request, client, assertion)
        return AuthenticatedClient(client, "certificate")
    secret = request.form.get("client_secret")
    if secret is not None:
        if client.secret is None or not _constant_time_equal(secret, client.secret):
            raise GrantError(
                401,
                "invalid_client",
                7000215,
                f"The client secret is not valid for app '{client_id}'. Send the value of "
                "the secret, not its identifier.",
            )
        return AuthenticatedClient(client, "secret")
    if confidential or client.confidential:
        raise GrantError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: "
            "'client_assertion' or 'client_secret'.",
        )
    return AuthenticatedClient(client, "none")


def _constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _bad_assertion(reason: str) -> GrantError:
    return GrantError(401, "invalid_client", 700027, f"Client assertion is not valid: {reason}")


def _verify_assertion(request: TokenRequest, client: RegisteredClient, assertion: str) -> None:
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise _bad_assertion("it is not a well-formed JWT.") from None
    algorithm = header.get("alg")
    if algorithm not in _ASSERTION_ALGORITHMS:
        raise _bad_assertion(f"the signing algorithm must be RS256 or PS256, not {algorithm!r}.")
    certificate = _registered_certificate(client, header)
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise _bad_assertion("the registered certificate does not hold an RSA key.")
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            public_key,
            algorithms=[algorithm],
            options={
                # Times are checked below against the fake's clock, not the wall clock.
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "require": ["aud", "iss", "sub", "exp"],
            },
        )
    except jwt.InvalidSignatureError:
        raise _bad_assertion("signature validation failed.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _bad_assertion(f"the '{exc.claim}' claim is missing.") from None
    except jwt.PyJWTError:
        raise _bad_assertion("it could not be decoded.") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    accepted = request.assertion_audiences()
    if not any(isinstance(aud, str) and aud in accepted for aud in audiences):
        raise _bad_assertion(f"the audience must be the token endpoint {request.token_endpoint}.")
    if claims["iss"] != client.client_id or claims["sub"] != client.client_id:
        raise _bad_assertion("the 'iss' and 'sub' claims must both be the client id.")
    exp, nbf = claims["exp"], claims.get("nbf")
    if not isinstance(exp, (int, float)) or exp + CLOCK_SKEW <= request.now:
        raise _bad_assertion("it has expired.")
    if nbf is not None and (not isinstance(nbf, (int, float)) or nbf - CLOCK_SKEW > request.now):
        raise _bad_assertion("it is not valid yet (nbf is in the future).")


def _registered_certificate(
    client: RegisteredClient, header: Mapping[str, Any]
) -> x509.Certificate:
    """Find the registered certificate named by ``x5t#S256``, ``x5t`` or ``x5c``."""
    if not client.certificates:
        raise GrantError(
            401,
            "invalid_client",
            700027,
            f"Client assertion is not valid: no certificate is registered for app "
            f"'{client.client_id}'.",
        )
    wanted = header.get("x5t#S256"), header.get("x5t")
    leaf = _x5c_leaf(header.get("x5c"))
    if wanted == (None, None) and leaf is None:
        raise _bad_assertion("the header must carry 'x5t#S256', 'x5t' or 'x5c'.")
    for certificate in client.certificates:
        der = certificate.public_bytes(serialization.Encoding.DER)
        if (
            wanted[0] == b64url(hashlib.sha256(der).digest())
            or wanted[1] == b64url(hashlib.sha1(der).digest())  # noqa: S324 - a thumbprint
            or leaf == der
        ):
            return certificate
    raise GrantError(
        401,
        "invalid_client",
        700027,
        "Client assertion is not valid: the certificate used to sign it is not registered "
        f"on app '{client.client_id}'.",
    )


def _x5c_leaf(x5c: object) -> bytes | None:
    if not isinstance(x5c, list) or not x5c or not isinstance(x5c[0], str):
        return None
    try:
        return base64.b64decode(x5c[0], validate=True)
    except (binascii.Error, ValueError):
        return None


# --- tokens --------------------------------------------------------------------------


def service_principal_id(tenant_id: str, client_id: str) -> str:
    """The stable object id of a client's service principal in a tenant."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"aiomsal-fake:sp:{tenant_id}:{client_id}"))


def issue_app_token(
    request: TokenRequest, client: AuthenticatedClient, resource: str
) -> dict[str, Any]:
    """Sign an app-only access token for ``resource`` and build the success body."""
    now = int(request.now)
    lifetime = request.token_lifetime
    oid = service_principal_id(request.tenant_id, client.client.client_id)
    v1 = resource.rstrip("/") in request.v1_resources
    claims = {
        "aud": resource,
        "iss": f"https://sts.windows.net/{request.tenant_id}/" if v1 else request.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": client.client.client_id,
        "azp": client.client.client_id,
        "azpacr": client.azpacr,
        "idtyp": "app",
        "oid": oid,
        "sub": oid,
        "tid": request.tenant_id,
        "roles": [],
        "uti": new_uti(),
        "ver": "1.0" if v1 else "2.0",
    }
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": request.signer.sign(claims),
    }
    if request.refresh_in is not None:
        body["refresh_in"] = request.refresh_in
    return body


# --- grants --------------------------------------------------------------------------

_DEFAULT_SUFFIX = "/.default"


@grant_handler("client_credentials")
async def client_credentials(request: TokenRequest) -> dict[str, Any]:
    """The client credentials grant: an app-only token for one ``{resource}/.default``."""
    client = authenticate_client(request, confidential=True)
    scope = request.require("scope")
    scopes = scope.split()
    if (
        len(scopes) != 1
        or not scopes[0].endswith(_DEFAULT_SUFFIX)
        or len(scopes[0]) == len(_DEFAULT_SUFFIX)
    ):
        raise GrantError(
            400,
            "invalid_scope",
            1002012,
            f"The scope '{scope}' is not valid: the client credentials flow takes exactly "
            "one scope, a resource identifier (application ID URI) followed by /.default.",
        )
    return issue_app_token(request, client, scopes[0][: -len(_DEFAULT_SUFFIX)])
