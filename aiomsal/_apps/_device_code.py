"""The device code flow (RFC 8628): start it, then poll until the user has signed in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._errors import MsalConfigurationError, MsalServiceError
from .._protocol._claims import merge_claims
from .._protocol._device_flow import (
    DeviceFlow,
    build_device_code_request,
    build_device_token_request,
    classify_poll_error,
    next_interval,
    parse_device_code_response,
)
from .._protocol._scopes import UserScopes, user_scopes
from .._result import AuthenticationResult
from ._user_flows import UserFlowApplication

__all__ = ["DeviceCodeFlows"]


class DeviceCodeFlows(UserFlowApplication):
    """The user flows plus the device code flow, for devices and terminals without a browser."""

    async def initiate_device_flow(
        self, scopes: Iterable[str] | None = None, *, claims_challenge: str | None = None
    ) -> DeviceFlow:
        """Start a device-code sign-in; show ``flow.message`` to the user.

        ``scopes`` defaults to None, as in MSAL, but is required: without it
        :class:`MsalConfigurationError` says so.
        """
        self._check_open()
        if scopes is None:
            raise MsalConfigurationError(
                "initiate_device_flow() needs scopes, such as ['User.Read']"
            )
        wanted = user_scopes(scopes, **self._scope_rules(self.authority))
        return await self._bounded(lambda: self._initiate_device_flow(wanted, claims_challenge))

    async def _initiate_device_flow(
        self, wanted: UserScopes, claims_challenge: str | None
    ) -> DeviceFlow:
        resolved = await self._resolver.resolve(self.authority)
        endpoint = resolved.metadata.device_authorization_endpoint
        if endpoint is None:
            raise MsalConfigurationError("this authority has no device authorization endpoint")
        claims = merge_claims(claims_challenge, self.client_capabilities)
        now = self._clock.time()
        request = build_device_code_request(
            endpoint,
            client_id=self.client_id,
            scopes=self._sent_scopes(wanted),
            claims=claims,
            client_auth=await self._client_auth(resolved.metadata.token_endpoint, now),
        )
        response = await self._transport.send(request)
        return parse_device_code_response(
            response, now=self._clock.time(), scopes=wanted.requested, claims=claims
        )

    async def acquire_token_by_device_flow(
        self, flow: DeviceFlow | Mapping[str, Any]
    ) -> AuthenticationResult:
        """Poll until the user has signed in (or declined, or the code expired).

        ``flow`` is a :class:`DeviceFlow` or its :meth:`~DeviceFlow.to_dict`.
        Polls at the server's interval (slower after ``slow_down``) on the
        application's clock (each poll bounded by ``timeout=``; the whole by
        the code's expiry). Cancel it with an anyio cancel scope: the polling
        runs in the calling task, so nothing is left behind.
        """
        self._check_open()
        if not isinstance(flow, DeviceFlow):
            flow = DeviceFlow.from_dict(flow)
        resolved = await self._bounded(lambda: self._resolver.resolve(self.authority))
        wanted = user_scopes(flow.scopes, **self._scope_rules(self.authority))
        interval = flow.interval
        while True:
            await self._clock.sleep(interval)
            if self._clock.time() >= flow.expires_at:
                raise MsalServiceError(
                    "expired_token", "the device code expired before the user signed in"
                )
            try:
                return await self._redeem(
                    None,
                    wanted,
                    flow.claims,
                    lambda endpoint, auth, merged: build_device_token_request(
                        endpoint, flow, client_id=self.client_id, client_auth=auth
                    ),
                    resolved=resolved,
                    merge=False,
                    write_through=True,
                )
            except MsalServiceError as error:
                outcome = classify_poll_error(error)
                if outcome is None:
                    raise
                interval = next_interval(interval, outcome)
