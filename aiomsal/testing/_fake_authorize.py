"""The authorization endpoint of :class:`FakeAuthority`, as a browser session sees it.

``GET /{tenant}/oauth2/v2.0/authorize`` answers as if the user had signed in
and consented at once: a redirect to ``redirect_uri`` carrying a code (or an
error). Problems that make the redirect URI untrustworthy (unknown client,
unregistered redirect URI) get an HTML error page instead, as Entra ID shows.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Mapping
from urllib.parse import urlencode

from aiohttp import web
from yarl import URL

from ._fake_grants import RegisteredClient
from ._fake_tokens import GrantError, entra_error_body
from ._fake_user_grants import interaction_error
from ._fake_user_tokens import client_info, parse_user_scopes
from ._fake_users import AuthorizationCode, FakeUser, UserDirectory

__all__ = ["handle_authorize", "redirect_uri_allowed"]

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_RESPONSE_MODES = frozenset({"query", "fragment", "form_post"})
_PKCE_METHODS = frozenset({"plain", "S256"})


def redirect_uri_allowed(client: RegisteredClient, redirect_uri: str) -> bool:
    """Whether ``redirect_uri`` is registered for ``client``.

    Registered URIs match exactly; for a public client, an ``http`` loopback URI
    (``localhost``, ``127.0.0.1`` or ``[::1]``, any port) also matches a registered
    loopback URI whose path is the same or empty, as Entra ID ignores the port of
    loopback redirect URIs of native apps.
    """
    if redirect_uri in client.redirect_uris:
        return True
    if client.confidential:
        return False
    try:
        asked = URL(redirect_uri)
    except ValueError:
        return False
    if asked.scheme != "http" or asked.host not in _LOOPBACK_HOSTS:
        return False
    for registered in client.redirect_uris:
        try:
            url = URL(registered)
        except ValueError:
            continue
        if (
            url.scheme == "http"
            and url.host in _LOOPBACK_HOSTS
            and url.path in ("", "/", asked.path)
        ):
            return True
    return False


def _error_page(code: int, message: str) -> web.Response:
    text = html.escape(f"AADSTS{code}: {message}")
    page = (
        "<!DOCTYPE html>\n<html><head><title>Sign in to your account</title></head>\n"
        f"<body><h1>Sorry, but we're having trouble signing you in.</h1><p>{text}</p>"
        "</body></html>\n"
    )
    return web.Response(status=400, text=page, content_type="text/html")


def _redirect(redirect_uri: str, response_mode: str, params: Mapping[str, str]) -> web.Response:
    if response_mode == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>'
            for k, v in params.items()
        )
        page = (
            "<!DOCTYPE html>\n<html><head><title>Working...</title></head>\n"
            '<body onload="document.forms[0].submit()">'
            f'<form method="POST" action="{html.escape(redirect_uri)}">{inputs}'
            '<noscript><input type="submit" value="Continue"/></noscript></form>'
            "</body></html>\n"
        )
        return web.Response(text=page, content_type="text/html")
    if response_mode == "fragment":
        location = f"{redirect_uri.partition('#')[0]}#{urlencode(params)}"
    else:
        separator = "&" if "?" in redirect_uri else "?"
        location = f"{redirect_uri}{separator}{urlencode(params)}"
    return web.Response(status=302, headers={"Location": location})


class _AuthorizeError(Exception):
    def __init__(self, error: str, code: int, message: str) -> None:
        super().__init__(message)
        self.error = GrantError(400, error, code, message)


def _choose_user(query: Mapping[str, str], tenant: str, directory: UserDirectory) -> FakeUser:
    """The user who signs in: the one named by ``login_hint``, else the only one."""
    login_hint = query.get("login_hint")
    silent = query.get("prompt") == "none"
    if login_hint:
        user = directory.find(login_hint)
        if user is None:
            raise _AuthorizeError(
                "invalid_request",
                50034,
                f"The user account {login_hint} does not exist in the directory.",
            )
    elif len(directory.users) == 1:
        (user,) = directory.users.values()
    else:
        raise _AuthorizeError(
            "login_required" if silent else "invalid_request",
            50058,
            f"{len(directory.users)} accounts could sign in and none was chosen: send a "
            "login_hint.",
        )
    if user.tenant_for(tenant) is None:
        raise _AuthorizeError(
            "invalid_request",
            50020,
            f"User account '{user.username}' from identity provider '{user.home_tenant}' "
            f"does not exist in tenant '{tenant}'.",
        )
    return user


def handle_authorize(
    query: Mapping[str, str],
    tenant: str,
    *,
    clients: Mapping[str, RegisteredClient],
    directory: UserDirectory,
    base_url: str,
    now: float,
    correlation_id: str | None = None,
) -> web.Response:
    """Answer one ``/authorize`` request as a browser that signs the user straight in."""
    client_id = query.get("client_id")
    if not client_id:
        return _error_page(900144, "The request must contain the parameter 'client_id'.")
    client = clients.get(client_id)
    if client is None:
        return _error_page(
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
        )
    redirect_uri = query.get("redirect_uri")
    if not redirect_uri:
        return _error_page(900144, "The request must contain the parameter 'redirect_uri'.")
    if not redirect_uri_allowed(client, redirect_uri):
        return _error_page(
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match the "
            f"redirect URIs configured for the application '{client_id}'.",
        )
    response_mode = query.get("response_mode", "query")
    if response_mode not in _RESPONSE_MODES:
        response_mode = "query"
    state = query.get("state")
    try:
        params = _sign_in(query, tenant, client_id, redirect_uri, directory, now)
    except _AuthorizeError as exc:
        body = entra_error_body(
            exc.error.error,
            exc.error.code,
            exc.error.message,
            now=now,
            correlation_id=correlation_id,
            trace_id=str(uuid.uuid4()),
            error_uri_base=base_url,
        )
        params = {
            "error": body["error"],
            "error_description": body["error_description"],
            "error_uri": body["error_uri"],
        }
    if state is not None:
        params["state"] = state
    return _redirect(redirect_uri, response_mode, params)


def _sign_in(
    query: Mapping[str, str],
    tenant: str,
    client_id: str,
    redirect_uri: str,
    directory: UserDirectory,
    now: float,
) -> dict[str, str]:
    """Check the request, sign the user in and issue a code; raise :class:`_AuthorizeError`."""
    response_type = query.get("response_type")
    if not response_type:
        raise _AuthorizeError(
            "invalid_request", 900144, "The request must contain the parameter 'response_type'."
        )
    if response_type != "code":
        raise _AuthorizeError(
            "unsupported_response_type",
            700054,
            f"response_type '{response_type}' is not enabled for the application.",
        )
    scope = query.get("scope")
    if not scope:
        raise _AuthorizeError(
            "invalid_request", 900144, "The request must contain the parameter 'scope'."
        )
    try:
        scopes = parse_user_scopes(scope)
    except GrantError as exc:
        raise _AuthorizeError(exc.error, exc.code, exc.message) from None
    challenge = query.get("code_challenge") or None
    method = query.get("code_challenge_method") or "plain"
    if challenge is not None and method not in _PKCE_METHODS:
        raise _AuthorizeError(
            "invalid_request",
            9002313,
            f"Invalid request: the code_challenge_method '{method}' is not supported.",
        )
    user = _choose_user(query, tenant, directory)
    if directory.has_declined(user):
        raise _AuthorizeError("access_denied", 65004, "User declined to consent to access the app.")
    if query.get("prompt") == "none":
        error = interaction_error(directory, user, client_id, scopes.resource)
        if error is not None:
            raise _AuthorizeError(error.error, error.code, error.message)
    tenant_id = user.tenant_for(tenant)
    assert tenant_id is not None
    code = directory.issue_code(
        AuthorizationCode(
            username=user.username,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            tenant=tenant,
            tenant_id=tenant_id,
            expires_at=now + directory.authorization_code_lifetime,
            nonce=query.get("nonce") or None,
            code_challenge=challenge,
            code_challenge_method=method,
        )
    )
    params = {"code": code}
    if query.get("client_info") == "1":
        params["client_info"] = client_info(user)
    return params
