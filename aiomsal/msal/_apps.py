"""MSAL Python's two application classes, with MSAL's constructor and method signatures."""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from .._apps._confidential import ConfidentialClientApplication as TypedConfidential
from .._apps._options import ApplicationOptions
from .._apps._public import BrowserOpener, _system_browser
from .._apps._public import PublicClientApplication as TypedPublic
from .._cache._storage import CacheStorage
from .._cache._token_cache import SerializableTokenCache
from .._concurrency._clock import Clock
from .._errors import MsalConfigurationError, MsalServiceError
from .._protocol._authority import parse_authority
from ._base import MsalFace, http_session_of
from ._dicts import (
    AUTH_SCHEME_UNSUPPORTED,
    BrokerUnavailableError,
    broker_requested,
    error_dict,
    unsupported,
)

__all__ = ["ConfidentialClientApplication", "PublicClientApplication"]


def typed_options(
    *,
    validate_authority: bool,
    token_cache: SerializableTokenCache | None,
    http_client: object,
    verify: bool | str | ssl.SSLContext,
    proxies: Mapping[str, str] | None,
    timeout: float | None,
    client_claims: Mapping[str, Any] | None,
    app_name: str | None,
    app_version: str | None,
    client_capabilities: Sequence[str] | None,
    azure_region: str | bool | None,
    exclude_scopes: Sequence[str] | None,
    instance_discovery: bool | None,
    oidc_authority: str | None,
    clock: Clock | None,
    cache_storage: CacheStorage | None,
    max_cache_entries: int | None,
    trust_env: bool,
) -> ApplicationOptions:
    """The typed application's options for MSAL's constructor parameters."""
    return ApplicationOptions(
        oidc_authority=oidc_authority,
        instance_discovery=instance_discovery is not False,
        http_session=http_session_of(http_client),
        timeout=timeout,
        verify=verify,
        clock=clock,
        client_capabilities=client_capabilities,
        token_cache=token_cache,
        cache_storage=cache_storage,
        max_cache_entries=max_cache_entries,
        validate_authority=validate_authority,
        proxies=proxies,
        trust_env=trust_env,
        app_name=app_name,
        app_version=app_version,
        exclude_scopes=exclude_scopes,
        client_claims=client_claims,
        azure_region=azure_region,
    )


class ConfidentialClientApplication(MsalFace):
    """MSAL's ``ConfidentialClientApplication``: web apps, web APIs and daemons.

    The parameters are MSAL's, in MSAL's order; ``clock``, ``cache_storage``,
    ``max_cache_entries`` and ``trust_env`` (read ``HTTPS_PROXY`` /
    ``NO_PROXY``, as requests does for MSAL) are aiomsal's, keyword-only.
    ``http_cache`` and ``enable_pii_log`` are accepted and do nothing
    (aiomsal keeps its authority metadata for the application's life and logs
    no personal data).
    """

    application: TypedConfidential

    def __init__(
        self,
        client_id: str,
        client_credential: Any = None,
        authority: str | None = None,
        validate_authority: bool = True,
        token_cache: SerializableTokenCache | None = None,
        http_client: object = None,
        verify: bool | str | ssl.SSLContext = True,
        proxies: Mapping[str, str] | None = None,
        timeout: float | None = None,
        client_claims: Mapping[str, Any] | None = None,
        app_name: str | None = None,
        app_version: str | None = None,
        client_capabilities: Sequence[str] | None = None,
        azure_region: str | bool | None = None,
        exclude_scopes: Sequence[str] | None = None,
        http_cache: object = None,
        instance_discovery: bool | None = None,
        allow_broker: bool | None = None,
        enable_pii_log: bool | None = None,
        oidc_authority: str | None = None,
        *,
        clock: Clock | None = None,
        cache_storage: CacheStorage | None = None,
        max_cache_entries: int | None = None,
        trust_env: bool = True,
    ) -> None:
        if allow_broker:
            raise MsalConfigurationError(
                "allow_broker=True is only supported in PublicClientApplication"
            )
        if client_credential is None:
            raise MsalConfigurationError("a ConfidentialClientApplication needs client_credential")
        options = typed_options(
            validate_authority=validate_authority,
            token_cache=token_cache,
            http_client=http_client,
            verify=verify,
            proxies=proxies,
            timeout=timeout,
            client_claims=client_claims,
            app_name=app_name,
            app_version=app_version,
            client_capabilities=client_capabilities,
            azure_region=azure_region,
            exclude_scopes=exclude_scopes,
            instance_discovery=instance_discovery,
            oidc_authority=oidc_authority,
            clock=clock,
            cache_storage=cache_storage,
            max_cache_entries=max_cache_entries,
            trust_env=trust_env,
        )
        super().__init__(TypedConfidential(client_id, client_credential, authority, **options))

    async def acquire_token_for_client(
        self,
        scopes: Sequence[str],
        claims_challenge: str | None = None,
        fmi_path: str | None = None,
        forwarded_client_claims: str | None = None,
        *,
        force_refresh: bool = False,
    ) -> dict[str, Any]:
        """A token for the application itself: MSAL's result dict or error dict."""
        if force_refresh:
            raise MsalConfigurationError(  # MSAL refuses it as well
                "Historically, this method does not support force_refresh behavior. "
            )
        if fmi_path is not None:
            raise unsupported("fmi_path")
        if forwarded_client_claims is not None:
            raise unsupported("forwarded_client_claims")
        return await self._token(
            self.application.acquire_token_for_client(scopes, claims_challenge=claims_challenge)
        )

    async def remove_tokens_for_client(self) -> None:
        """Forget the tokens :meth:`acquire_token_for_client` cached."""
        await self.application.remove_tokens_for_client()

    async def acquire_token_on_behalf_of(
        self,
        user_assertion: str,
        scopes: Sequence[str],
        claims_challenge: str | None = None,
        forwarded_client_claims: str | None = None,
    ) -> dict[str, Any]:
        """A token for a downstream API on behalf of the caller (cached per assertion)."""
        if forwarded_client_claims is not None:
            raise unsupported("forwarded_client_claims")
        return await self._token(
            self.application.acquire_token_on_behalf_of(
                user_assertion, scopes, claims_challenge=claims_challenge
            )
        )


    async def acquire_token_by_user_federated_identity_credential(
        self,
        scopes: Sequence[str],
        assertion: str,
        username: str | None = None,
        user_object_id: str | None = None,
        claims_challenge: str | None = None,
        forwarded_client_claims: str | None = None,
    ) -> dict[str, Any]:
        """MSAL's ``user_fic`` grant, which aiomsal does not implement: a ``ValueError``."""
        raise unsupported("acquire_token_by_user_federated_identity_credential (user_fic)")


class PublicClientApplication(MsalFace):
    """MSAL's ``PublicClientApplication``: desktop tools, CLIs and devices.

    There is no broker here: ``enable_broker_on_*`` for this platform raises
    :class:`BrokerUnavailableError` (an ``ImportError``, as MSAL raises without
    its broker runtime); a flag for another platform is ignored, as in MSAL.
    """

    application: TypedPublic

    def __init__(
        self,
        client_id: str,
        client_credential: object = None,
        *,
        enable_broker_on_windows: bool | None = None,
        enable_broker_on_mac: bool | None = None,
        enable_broker_on_linux: bool | None = None,
        enable_broker_on_wsl: bool | None = None,
        authority: str | None = None,
        validate_authority: bool = True,
        token_cache: SerializableTokenCache | None = None,
        http_client: object = None,
        verify: bool | str | ssl.SSLContext = True,
        proxies: Mapping[str, str] | None = None,
        timeout: float | None = None,
        client_claims: Mapping[str, Any] | None = None,
        app_name: str | None = None,
        app_version: str | None = None,
        client_capabilities: Sequence[str] | None = None,
        azure_region: str | bool | None = None,
        exclude_scopes: Sequence[str] | None = None,
        http_cache: object = None,
        instance_discovery: bool | None = None,
        allow_broker: bool | None = None,
        enable_pii_log: bool | None = None,
        oidc_authority: str | None = None,
        clock: Clock | None = None,
        cache_storage: CacheStorage | None = None,
        max_cache_entries: int | None = None,
        trust_env: bool = True,
    ) -> None:
        if client_credential is not None:
            raise MsalConfigurationError("Public Client should not possess credentials")
        if allow_broker:
            warnings.warn(
                "allow_broker is deprecated. Please use PublicClientApplication(..., "
                "enable_broker_on_windows=True, ...)",
                DeprecationWarning,
                stacklevel=2,
            )
        wants_broker = broker_requested(
            windows=enable_broker_on_windows,
            mac=enable_broker_on_mac,
            linux=enable_broker_on_linux,
            wsl=enable_broker_on_wsl,
            allow_broker=allow_broker,
        )
        kind = parse_authority(authority, oidc_authority=oidc_authority).kind
        if wants_broker and kind in ("aad", "ciam"):  # MSAL uses no broker for the others
            raise BrokerUnavailableError(
                "a broker is not available in aiomsal (MSAL would need pymsalruntime, "
                'pip install "msal[broker]"); sign in with acquire_token_interactive() '
                "or the device flow"
            )
        options = typed_options(
            validate_authority=validate_authority,
            token_cache=token_cache,
            http_client=http_client,
            verify=verify,
            proxies=proxies,
            timeout=timeout,
            client_claims=client_claims,
            app_name=app_name,
            app_version=app_version,
            client_capabilities=client_capabilities,
            azure_region=azure_region,
            exclude_scopes=exclude_scopes,
            instance_discovery=instance_discovery,
            oidc_authority=oidc_authority,
            clock=clock,
            cache_storage=cache_storage,
            max_cache_entries=max_cache_entries,
            trust_env=trust_env,
        )
        super().__init__(TypedPublic(client_id, authority, **options))

    async def acquire_token_interactive(
        self,
        scopes: Sequence[str],
        prompt: str | None = None,
        login_hint: str | None = None,
        domain_hint: str | None = None,
        claims_challenge: str | None = None,
        timeout: float | None = None,
        port: int | None = None,
        extra_scopes_to_consent: Sequence[str] | None = None,
        max_age: int | None = None,
        parent_window_handle: object = None,
        on_before_launching_ui: Any = None,
        auth_scheme: object = None,
        *,
        open_browser: BrowserOpener | None = None,
    ) -> dict[str, Any]:
        """Sign a user in with the system browser (or ``open_browser``, aiomsal's addition).

        ``parent_window_handle`` is for a broker and ignored, as MSAL ignores
        it without one; ``on_before_launching_ui(ui="browser")`` is called
        before the browser opens.
        """
        if auth_scheme is not None:
            raise MsalConfigurationError(AUTH_SCHEME_UNSUPPORTED)
        if extra_scopes_to_consent:
            raise unsupported("extra_scopes_to_consent")
        if max_age is not None:
            raise unsupported("max_age in acquire_token_interactive")
        opener = open_browser or _system_browser

        async def launch(url: str) -> None:
            if on_before_launching_ui is not None:
                on_before_launching_ui(ui="browser")
            opened = opener(url)
            if hasattr(opened, "__await__"):
                await opened

        return await self._token(
            self.application.acquire_token_interactive(
                scopes,
                prompt=prompt,
                login_hint=login_hint,
                domain_hint=domain_hint,
                claims_challenge=claims_challenge,
                timeout=timeout,
                port=port,
                open_browser=launch,
            )
        )

    async def initiate_device_flow(
        self, scopes: Sequence[str] | None = None, *, claims_challenge: str | None = None
    ) -> dict[str, Any]:
        """MSAL's device flow dict (show its ``message``), or MSAL's error dict."""
        try:
            flow = await self.application.initiate_device_flow(
                scopes, claims_challenge=claims_challenge
            )
        except MsalServiceError as error:
            return error_dict(error)
        return flow.to_dict()

    async def acquire_token_by_device_flow(
        self, flow: Mapping[str, Any], claims_challenge: str | None = None
    ) -> dict[str, Any]:
        """Poll until the user has signed in: MSAL's result dict, or its error dict.

        Cancel it with an anyio cancel scope (MSAL's ``flow["expires_at"] = 0``
        does not stop it: the flow was read when the call began).
        """
        if claims_challenge is not None and isinstance(flow, Mapping):
            flow = {**flow, "claims_challenge": claims_challenge}
        return await self._token(self.application.acquire_token_by_device_flow(flow))
