"""The authorization code flow: the request URL and the redirect's answer (sans-I/O).

:func:`initiate_auth_code_flow` makes an :class:`AuthCodeFlow` (its URL and
the secrets that go with it); a web app keeps it in the user's session
(:meth:`AuthCodeFlow.to_dict` writes MSAL's flow dict, so either library can
finish a flow the other began). When the browser comes back,
:func:`code_from_auth_response` checks the answer and yields the code that
the token request redeems together with the flow's PKCE verifier.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._errors import MsalConfigurationError, MsalSignInError
from ._error_response import service_error_from_body
from ._pkce import new_nonce, new_pkce, new_state, nonce_claim

__all__ = [
    "PROMPTS",
    "RESPONSE_MODES",
    "AuthCodeFlow",
    "build_authorization_url",
    "code_from_auth_response",
    "initiate_auth_code_flow",
]

#: The ``prompt`` values Entra ID understands.
PROMPTS = frozenset({"none", "login", "consent", "select_account", "create"})
#: The response modes whose answer reaches a server (a fragment never does).
RESPONSE_MODES = frozenset({"query", "form_post"})

#: The parts of an error answer that are passed on (OAuth's and Entra's).
_ERROR_FIELDS = (
    "error",
    "error_description",
    "error_uri",
    "suberror",
    "correlation_id",
    "trace_id",
    "timestamp",
    "claims",
)


@dataclass(frozen=True, slots=True)
class AuthCodeFlow:
    """One authorization request in progress; its secrets never appear in the repr.

    ``scopes`` are the scopes requested, reserved OpenID scopes included.
    ``nonce`` is the secret nonce; the request carries its
    :func:`~aiomsal._protocol._pkce.nonce_claim`.
    """

    auth_uri: str
    state: str
    redirect_uri: str
    scopes: tuple[str, ...]
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    claims: str | None = None
    max_age: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """MSAL's auth code flow dict (JSON-serializable); it holds secrets: keep it server-side."""
        data: dict[str, Any] = {
            "auth_uri": self.auth_uri,
            "state": self.state,
            "redirect_uri": self.redirect_uri,
            "scope": list(self.scopes),
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
        }
        if self.claims is not None:  # as in MSAL's dict: only when there is one
            data["claims_challenge"] = self.claims
        if self.max_age is not None:
            data["max_age"] = self.max_age
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthCodeFlow:
        """Load a flow dict written by :meth:`to_dict` or by MSAL's ``initiate_auth_code_flow``.

        A missing or mistyped key raises :class:`MsalConfigurationError`.
        """
        if not isinstance(data, Mapping):
            raise MsalConfigurationError("an auth code flow must be a mapping")
        scope = data.get("scope")
        if not isinstance(scope, (list, tuple)) or not all(isinstance(s, str) for s in scope):
            raise MsalConfigurationError("the auth code flow's 'scope' must be a list of strings")
        claims = data.get("claims_challenge")
        if claims is not None and not isinstance(claims, str):
            raise MsalConfigurationError("the auth code flow's 'claims_challenge' must be a string")
        max_age = data.get("max_age")
        if max_age is not None and (not isinstance(max_age, int) or isinstance(max_age, bool)):
            raise MsalConfigurationError("the auth code flow's 'max_age' must be an integer")
        return cls(
            auth_uri=_required_str(data, "auth_uri"),
            state=_required_str(data, "state"),
            redirect_uri=_required_str(data, "redirect_uri"),
            scopes=tuple(scope),
            nonce=_required_str(data, "nonce"),
            code_verifier=_required_str(data, "code_verifier"),
            claims=claims or None,
            max_age=max_age,
        )


def build_authorization_url(
    authorization_endpoint: str,
    *,
    client_id: str,
    redirect_uri: str | None,
    scopes: Sequence[str],
    state: str | None = None,
    nonce: str | None = None,
    code_challenge: str | None = None,
    prompt: str | None = None,
    login_hint: str | None = None,
    domain_hint: str | None = None,
    claims: str | None = None,
    response_mode: str | None = None,
    max_age: int | None = None,
) -> str:
    """The URL of an authorization request (``response_type=code``, ``client_info=1``).

    ``scopes`` are sent as given: the caller adds the reserved OpenID scopes.
    ``nonce`` is sent as given, as MSAL's ``get_authorization_request_url``
    does (:func:`initiate_auth_code_flow` passes the
    :func:`~aiomsal._protocol._pkce.nonce_claim` of its secret nonce). A
    ``code_challenge`` is sent with
    ``code_challenge_method=S256``. A query already on the endpoint (such as
    a B2C policy) is kept; it may not repeat a parameter set here.

    Raises :class:`MsalConfigurationError` for an unknown ``prompt`` or
    ``response_mode`` (``query`` or ``form_post``) or a negative ``max_age``.
    """
    if prompt is not None and prompt not in PROMPTS:
        raise MsalConfigurationError(
            f"prompt must be one of {', '.join(sorted(PROMPTS))}, not {prompt!r}"
        )
    if response_mode is not None and response_mode not in RESPONSE_MODES:
        raise MsalConfigurationError(
            f"response_mode must be 'query' or 'form_post', not {response_mode!r}"
        )
    if max_age is not None and (isinstance(max_age, bool) or max_age < 0):
        raise MsalConfigurationError("max_age must be a non-negative number of seconds")
    params: dict[str, str] = {
        "client_id": client_id,
        "response_type": "code",
    }
    if redirect_uri is not None:  # else the authority uses the registered one
        params["redirect_uri"] = redirect_uri
    params["scope"] = " ".join(scopes)
    optional = {
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256" if code_challenge is not None else None,
        "prompt": prompt,
        "login_hint": login_hint,
        "domain_hint": domain_hint,
        "claims": claims,
        "response_mode": response_mode,
        "max_age": str(max_age) if max_age is not None else None,
    }
    params.update({name: value for name, value in optional.items() if value is not None})
    params["client_info"] = "1"

    parts = urlsplit(authorization_endpoint)
    clashes = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)} & set(params)
    if clashes:
        raise MsalConfigurationError(
            "the authorization endpoint's query repeats a request parameter: "
            + ", ".join(sorted(clashes))
        )
    query = urlencode(params)
    if parts.query:
        query = f"{parts.query}&{query}"
    return urlunsplit(parts._replace(query=query))


def initiate_auth_code_flow(
    authorization_endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    state: str | None = None,
    prompt: str | None = None,
    login_hint: str | None = None,
    domain_hint: str | None = None,
    claims: str | None = None,
    response_mode: str | None = None,
    max_age: int | None = None,
) -> AuthCodeFlow:
    """A new flow: fresh PKCE pair and nonce, and a fresh state unless one is given."""
    if state is not None and (not isinstance(state, str) or not state):
        raise MsalConfigurationError("state must be a non-empty string")
    pkce = new_pkce()
    state = state or new_state()
    nonce = new_nonce()
    auth_uri = build_authorization_url(
        authorization_endpoint,
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        nonce=nonce_claim(nonce),
        code_challenge=pkce.challenge,
        prompt=prompt,
        login_hint=login_hint,
        domain_hint=domain_hint,
        claims=claims,
        response_mode=response_mode,
        max_age=max_age,
    )
    return AuthCodeFlow(
        auth_uri=auth_uri,
        state=state,
        redirect_uri=redirect_uri,
        scopes=tuple(scopes),
        nonce=nonce,
        code_verifier=pkce.verifier,
        claims=claims,
        max_age=max_age,
    )


def code_from_auth_response(flow: AuthCodeFlow, auth_response: Mapping[str, str]) -> str:
    """The authorization code of the redirect's answer, once it is shown to belong to ``flow``.

    ``auth_response`` is the query (or ``form_post`` body) of the redirect,
    one string per parameter; a value that is not a string (a framework's
    list of repeated values) counts as absent.

    1. ``state`` must equal the flow's, before anything else in the answer
       is believed; else :class:`MsalSignInError` ("state mismatch").
    2. An ``error`` raises the :class:`MsalServiceError` it describes
       (:class:`MsalUiRequiredError` for ``login_required`` and the like),
       keeping ``error_description`` and ``suberror``.
    3. Without a ``code``, :class:`MsalSignInError`.
    """
    state = auth_response.get("state")
    if not isinstance(state, str) or not hmac.compare_digest(
        state.encode("utf-8"), flow.state.encode("utf-8")
    ):
        raise MsalSignInError(
            "state mismatch: the authorization response does not answer this sign-in"
        )
    error = auth_response.get("error")
    if isinstance(error, str) and error:
        body = {
            name: value
            for name in _ERROR_FIELDS
            if isinstance(value := auth_response.get(name), str)
        }
        raise service_error_from_body(body, 400)
    code = auth_response.get("code")
    if not isinstance(code, str) or not code:
        raise MsalSignInError("the authorization response carries no code")
    return code


def _required_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise MsalConfigurationError(f"the flow's {key!r} must be a non-empty string")
    return value
