"""Managed identity, the Azure CLI, chains, and DefaultAzureCredential for the Azure SDK.

azure-identity's ``aio`` names, parameters and environment variables. Inside a
chain, managed identity first probes IMDS with a short bounded request, so a
machine without managed identity moves on to the next credential quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import Awaitable, Hashable, Mapping
from typing import Any

import anyio
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError

from .._apps._managed_identity import ManagedIdentityClient
from .._errors import MsalError, MsalServiceError, MsalTransportError
from .._protocol._managed_identity._ids import (
    ManagedIdentity,
    SystemAssignedManagedIdentity,
    UserAssignedManagedIdentity,
)
from .._result import AuthenticationResult
from ._azure_common import (
    SHARED,
    AzureCredential,
    CredentialUnavailableError,
    fingerprint,
    is_unavailable,
    resolve_tenant,
)
from ._azure_credentials import EnvironmentCredential, WorkloadIdentityCredential, _app_options

__all__ = [
    "AzureCliCredential",
    "ChainedTokenCredential",
    "DefaultAzureCredential",
    "ManagedIdentityCredential",
]

_CONFIG_KINDS = {
    "client_id": "client_id",
    "object_id": "object_id",
    "principal_id": "object_id",
    "resource_id": "resource_id",
    "msi_res_id": "resource_id",
    "mi_res_id": "resource_id",
}


def _identity(client_id: str | None, config: Mapping[str, str] | None) -> ManagedIdentity:
    if client_id:
        return UserAssignedManagedIdentity(client_id=client_id)
    if config:
        if len(config) != 1 or next(iter(config)) not in _CONFIG_KINDS:
            raise ValueError(
                "identity_config takes one of " + ", ".join(sorted(_CONFIG_KINDS))
            )
        name, value = next(iter(config.items()))
        return UserAssignedManagedIdentity(**{_CONFIG_KINDS[name]: value})
    return SystemAssignedManagedIdentity()


class ManagedIdentityCredential(AzureCredential):
    """azure-identity's ``ManagedIdentityCredential`` over :class:`aiomsal.ManagedIdentityClient`.

    Takes ``client_id=`` or ``identity_config=`` for a user-assigned identity
    (and, as aiomsal extensions, ``environ=`` and ``endpoint=``). With the
    workload identity variables set (and no managed identity endpoint), it is a
    :class:`WorkloadIdentityCredential`, as in azure-identity.
    """

    def __init__(
        self,
        *,
        client_id: str | None = None,
        identity_config: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        # A snapshot: the source is detected when the client is first needed.
        env: Mapping[str, str] = dict(kwargs.get("environ") or os.environ)
        self._probe_first = bool(kwargs.pop("_within_chain", False))
        self._probed = False
        self._workload: WorkloadIdentityCredential | None = None
        if (
            not env.get("IDENTITY_ENDPOINT")
            and not env.get("MSI_ENDPOINT")
            and all(env.get(n) for n in
                    ("AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"))
        ):
            self._workload = WorkloadIdentityCredential(
                client_id=client_id or env.get("AZURE_CLIENT_ID"), **kwargs
            )
            return
        self.identity = _identity(client_id, identity_config)
        options = _app_options(kwargs)
        options.pop("instance_discovery", None)
        options.pop("verify", None)
        for name in ("endpoint", "arc_key_directory", "connect_timeout"):
            if kwargs.get(name) is not None:
                options[name] = kwargs[name]
        self._build = lambda: ManagedIdentityClient(self.identity, environ=env, **options)
        source = self._build_source(env, options)
        self._key: Hashable = ("managed_identity", self.identity, source, id(options.get("clock")))
        self._client: ManagedIdentityClient | None = None

    @staticmethod
    def _build_source(env: Mapping[str, str], options: Mapping[str, Any]) -> Hashable:
        names = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT",
                 "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST")
        return fingerprint(*(env.get(n) for n in names), options.get("endpoint"))

    def __repr__(self) -> str:
        if self._workload is not None:
            return f"ManagedIdentityCredential({self._workload!r})"
        return f"ManagedIdentityCredential({self.identity!r})"

    def _acquire(
        self, scopes: tuple[str, ...], claims: str | None, tenant_id: str | None, cae: bool
    ) -> Awaitable[AuthenticationResult]:
        if self._workload is not None:
            return self._workload._acquire(scopes, claims, tenant_id, cae)
        if len(scopes) != 1:
            raise CredentialUnavailableError(
                message="ManagedIdentityCredential takes exactly one scope"
            )
        client = self._client
        if client is None:
            client = self._client = SHARED.acquire(self._key, self._build)
        if self._probe_first and not self._probed:
            return self._probe_then_acquire(client, scopes[0], claims)
        return client.acquire_token_for_client(resource=scopes[0], claims_challenge=claims)

    async def _probe_then_acquire(
        self, client: ManagedIdentityClient, resource: str, claims: str | None
    ) -> AuthenticationResult:
        if client.source.kind == "imds" and not await client.probe(resource):
            raise CredentialUnavailableError(
                message="ManagedIdentityCredential authentication unavailable, "
                "no response from the IMDS endpoint."
            )
        self._probed = True
        return await client.acquire_token_for_client(resource=resource, claims_challenge=claims)

    def _map_error(self, exc: MsalError) -> ClientAuthenticationError:
        unreachable = isinstance(exc, MsalTransportError)
        unassigned = isinstance(exc, MsalServiceError) and exc.status == 400
        if unreachable or unassigned:
            return CredentialUnavailableError(
                message=f"ManagedIdentityCredential authentication unavailable: {exc}"
            )
        return super()._map_error(exc)

    async def close(self) -> None:
        if self._workload is not None:
            await self._workload.close()
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            await SHARED.release(self._key, client)
        await super().close()


class AzureCliCredential(AzureCredential):
    """azure-identity's ``AzureCliCredential``: ``az account get-access-token`` in an async
    subprocess, bounded by ``process_timeout``; results are cached until near expiry."""

    def __init__(
        self,
        *,
        tenant_id: str = "",
        subscription: str | None = None,
        additionally_allowed_tenants: list[str] | None = None,
        process_timeout: float = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self._subscription = subscription
        self._allowed = tuple(additionally_allowed_tenants or ())
        self._timeout = process_timeout
        self._cache: dict[tuple[str, str | None], AuthenticationResult] = {}
        self._locks: dict[tuple[str, str | None], asyncio.Lock] = {}
        self._clock = kwargs.get("clock")

    def _now(self) -> float:
        return float(self._clock.time() if self._clock is not None else time.time())

    def _acquire(
        self, scopes: tuple[str, ...], claims: str | None, tenant_id: str | None, cae: bool
    ) -> Awaitable[AuthenticationResult]:
        return self._run(scopes, claims, tenant_id)

    async def _run(
        self, scopes: tuple[str, ...], claims: str | None, tenant_id: str | None
    ) -> AuthenticationResult:
        if claims:
            raise CredentialUnavailableError(
                message="AzureCliCredential cannot satisfy a claims challenge; run 'az login' "
                "with the claims, or use another credential"
            )
        if len(scopes) != 1:
            raise CredentialUnavailableError(message="AzureCliCredential takes exactly one scope")
        tenant = resolve_tenant(
            self.tenant_id, tenant_id, self._allowed, credential="AzureCliCredential"
        ) or (self.tenant_id or None)
        key = (scopes[0], tenant)
        cached = self._cache.get(key)
        if cached is not None and cached.expires_on - 300 > self._now():
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is not None and cached.expires_on - 300 > self._now():
                return cached
            result = await self._call_cli(scopes[0], tenant)
            self._cache[key] = result
            return result

    async def _call_cli(self, scope: str, tenant: str | None) -> AuthenticationResult:
        executable = shutil.which("az")
        if executable is None:
            raise CredentialUnavailableError(message="Azure CLI not found on path")
        resource = scope[: -len("/.default")] if scope.endswith("/.default") else scope
        args = [executable, "account", "get-access-token", "--output", "json",
                "--resource", resource]
        if tenant:
            args += ["--tenant", tenant]
        if self._subscription:
            args += ["--subscription", self._subscription]
        process = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, "AZURE_CORE_NO_COLOR": "true"},
        )
        out = err = b""
        timed_out = False
        try:
            with anyio.fail_after(self._timeout):
                out, err = await process.communicate()
        except TimeoutError:
            timed_out = True
        finally:  # timed out or cancelled: the process does not outlive the call
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with anyio.CancelScope(shield=True):
                    await process.wait()
        if timed_out:
            raise CredentialUnavailableError(message="Timed out waiting for Azure CLI")
        if process.returncode != 0:
            text = err.decode("utf-8", "replace")
            if "az login" in text or "az account set" in text:
                raise CredentialUnavailableError(
                    message="AzureCliCredential: please run 'az login' to set up an account"
                )
            raise ClientAuthenticationError(
                message=f"AzureCliCredential: az exited with code {process.returncode}"
            )
        try:
            answer = json.loads(out)
            token = answer["accessToken"]
            expires_on = int(answer["expires_on"])
            if not isinstance(token, str) or not token:
                raise ValueError("no token")
        except (ValueError, KeyError, TypeError):
            raise ClientAuthenticationError(
                message="AzureCliCredential: unexpected output from az"
            ) from None
        return AuthenticationResult(
            access_token=token,
            token_type=str(answer.get("tokenType") or "Bearer"),
            expires_on=expires_on,
            refresh_on=None,
            scopes=(scope,),
            tenant_id=answer.get("tenant") if isinstance(answer.get("tenant"), str) else None,
            token_source="identity_provider",
        )


class ChainedTokenCredential:
    """azure-identity's ``ChainedTokenCredential``: the first credential that gives a token.

    A :class:`CredentialUnavailableError` moves on to the next one; any other
    error stops the chain. The credential that succeeded is asked first next time.
    """

    def __init__(self, *credentials: Any) -> None:
        if not credentials:
            raise ValueError("at least one credential is required")
        self.credentials = credentials
        self._successful: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(type(c).__name__ for c in self.credentials)})"

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """A token from the first credential that has one."""
        chosen = self._successful
        if chosen is not None:
            token: AccessToken = await chosen.get_token(
                *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
            )
            return token
        options = {"claims": claims, "tenant_id": tenant_id, "enable_cae": enable_cae}
        return await self._first(scopes, options, info=False)  # type: ignore[no-any-return]

    async def get_token_info(
        self, *scopes: str, options: Mapping[str, Any] | None = None
    ) -> AccessTokenInfo:
        """A token with its refresh time from the first credential that has one."""
        chosen = self._successful
        if chosen is not None and hasattr(chosen, "get_token_info"):
            info: AccessTokenInfo = await chosen.get_token_info(*scopes, options=options)
            return info
        return await self._first(scopes, dict(options or {}), info=True)  # type: ignore[no-any-return]

    async def _first(self, scopes: tuple[str, ...], options: dict[str, Any], *, info: bool) -> Any:
        history: list[str] = []
        for credential in self.credentials:
            try:
                if info and hasattr(credential, "get_token_info"):
                    result = await credential.get_token_info(*scopes, options=options)
                else:
                    result = await credential.get_token(*scopes, **options)
            except Exception as exc:
                if is_unavailable(exc):
                    history.append(f"{type(credential).__name__}: {_first_line(exc)}")
                    continue
                raise ClientAuthenticationError(
                    message=f"{type(self).__name__} failed to retrieve a token from the "
                    f"included credentials: {type(credential).__name__}: {_first_line(exc)}"
                ) from exc
            self._successful = credential
            return result
        raise ClientAuthenticationError(
            message=f"{type(self).__name__} failed to retrieve a token from the included "
            "credentials.\nAttempted credentials:\n\t" + "\n\t".join(history)
        )

    async def close(self) -> None:
        """Close every credential of the chain."""
        await asyncio.gather(*(c.close() for c in self.credentials))

    async def __aenter__(self) -> ChainedTokenCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return str(message).splitlines()[0] if message else type(exc).__name__


class _Unavailable(AzureCredential):
    """A chain member whose configuration is incomplete."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__()
        self._message = f"{name} authentication unavailable: {reason}"

    def _acquire(
        self, scopes: tuple[str, ...], claims: str | None, tenant_id: str | None, cae: bool
    ) -> Awaitable[AuthenticationResult]:
        raise CredentialUnavailableError(message=self._message)


class DefaultAzureCredential(ChainedTokenCredential):
    """azure-identity's ``DefaultAzureCredential``: environment, workload identity,
    managed identity (probed briefly), then the Azure CLI.

    Takes azure-identity's ``exclude_*_credential``, ``managed_identity_client_id``,
    ``workload_identity_client_id``, ``workload_identity_tenant_id``, ``authority``,
    ``process_timeout`` and honours ``AZURE_TOKEN_CREDENTIALS`` (``dev``, ``prod`` or
    one credential's name).
    """

    def __init__(self, **kwargs: Any) -> None:
        if "tenant_id" in kwargs:
            raise TypeError("'tenant_id' is not supported in DefaultAzureCredential.")
        env: Mapping[str, str] = kwargs.get("environ") or os.environ
        wanted = (env.get("AZURE_TOKEN_CREDENTIALS") or "").strip().lower()
        prod = {"environmentcredential", "workloadidentitycredential",
                "managedidentitycredential"}

        def enabled(name: str, option: str) -> bool:
            if kwargs.get(f"exclude_{option}_credential"):
                return False
            if wanted == "dev":
                return name not in prod
            if wanted == "prod":
                return name in prod
            return not wanted or wanted == name

        common = {k: v for k, v in kwargs.items() if not k.startswith(("exclude_", "managed_",
                                                                        "workload_"))}
        common.pop("process_timeout", None)
        members: list[Any] = []
        if enabled("environmentcredential", "environment"):
            members.append(EnvironmentCredential(**common))
        if enabled("workloadidentitycredential", "workload_identity"):
            try:
                members.append(WorkloadIdentityCredential(
                    client_id=kwargs.get("workload_identity_client_id"),
                    tenant_id=kwargs.get("workload_identity_tenant_id"),
                    **common,
                ))
            except ValueError as exc:
                members.append(_Unavailable("WorkloadIdentityCredential", str(exc)))
        if enabled("managedidentitycredential", "managed_identity"):
            try:
                client_id = kwargs.get("managed_identity_client_id") or env.get("AZURE_CLIENT_ID")
                members.append(ManagedIdentityCredential(
                    client_id=client_id,
                    _within_chain=wanted != "managedidentitycredential",
                    **common,
                ))
            except ValueError as exc:
                members.append(_Unavailable("ManagedIdentityCredential", str(exc)))
        if enabled("azureclicredential", "cli"):
            members.append(AzureCliCredential(
                process_timeout=kwargs.get("process_timeout", 10), clock=kwargs.get("clock")
            ))
        if not members:
            raise ValueError(f"AZURE_TOKEN_CREDENTIALS={wanted!r} selects no credential")
        super().__init__(*members)
