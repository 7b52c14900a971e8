"""PublicClientApplication: desktop tools, CLIs and devices, which hold no secret."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import anyio

from .._errors import MsalSignInError
from .._result import AuthenticationResult
from ._device_code import DeviceCodeFlows

__all__ = ["PublicClientApplication"]

#: Seconds an interactive sign-in waits for the user when no ``timeout`` is given.
INTERACTIVE_TIMEOUT = 600.0
#: Opens the sign-in URL for the user; may be sync or async.
BrowserOpener = Callable[[str], "object | Awaitable[object]"]


class PublicClientApplication(DeviceCodeFlows):
    """An application that cannot keep a secret: it signs users in and acts as them.

    The recommended call pattern: ``acquire_token_silent`` first (cache, then
    refresh token), and an interactive or device-code sign-in only when it
    returns None or raises :class:`MsalUiRequiredError`. It takes the options of
    every application (``authority``, ``clock``, ``timeout``, ...) and no credential.
    """

    async def acquire_token_interactive(
        self,
        scopes: Iterable[str],
        *,
        prompt: str | None = None,
        login_hint: str | None = None,
        domain_hint: str | None = None,
        claims_challenge: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - MSAL's name; bounds the wait for the user
        port: int | None = None,
        open_browser: BrowserOpener | None = None,
    ) -> AuthenticationResult:
        """Sign a user in with the system browser and a loopback redirect (PKCE, state, nonce).

        A listener on 127.0.0.1 (a random port unless ``port`` is given)
        receives the redirect. ``open_browser`` is called with the sign-in URL
        (by default the system browser, opened in a worker thread). Raises
        :class:`MsalSignInError` when no answer comes within ``timeout``
        seconds (600 when None: every wait is bounded); cancel it with an
        anyio cancel scope.
        """
        self._check_open()
        if timeout is None:
            timeout = INTERACTIVE_TIMEOUT
        if port is None:
            port = 0
        # Imported here: aiohttp.web (the listener) is needed by this flow only.
        from .._transport._loopback import LoopbackRedirectListener

        async with LoopbackRedirectListener(port=port) as listener:
            flow = await self.initiate_auth_code_flow(
                scopes,
                listener.redirect_uri,
                prompt=prompt,
                login_hint=login_hint,
                domain_hint=domain_hint,
                claims_challenge=claims_challenge,
            )
            opened = (open_browser or _system_browser)(flow.auth_uri)
            if isinstance(opened, Awaitable):
                await opened
            with anyio.move_on_after(timeout) as waited:
                auth_response = await listener.wait_for_response(state=flow.state)
            if waited.cancelled_caught:
                raise MsalSignInError(f"no sign-in answer within {timeout:g} seconds")
        return await self.acquire_token_by_auth_code_flow(flow, auth_response)


async def _system_browser(url: str) -> None:
    import webbrowser  # on first use: it imports half the standard library

    opened = await anyio.to_thread.run_sync(webbrowser.open, url)
    if not opened:
        raise MsalSignInError("could not open a browser; use the device code flow instead")
