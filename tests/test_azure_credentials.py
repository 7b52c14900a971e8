"""aiomsal.integrations.azure: azure-identity's credentials, shared, coalesced and cached."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.credentials_async import AsyncSupportsTokenInfo, AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

from aiomsal import MsalServiceError, PublicClientApplication
from aiomsal.integrations._azure_common import SHARED
from aiomsal.integrations.azure import (
    AzureCliCredential,
    CertificateCredential,
    ChainedTokenCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
    CredentialUnavailableError,
    DefaultAzureCredential,
    EnvironmentCredential,
    ManagedIdentityCredential,
    OnBehalfOfCredential,
    WorkloadIdentityCredential,
)
from aiomsal.testing import FakeAuthority, FakeImds, VirtualClock, generate_certificate
from aiomsal.testing._fake_tokens import b64url
from tests.helpers import SECRET, aiomsal_tasks, wait_until

pytestmark = pytest.mark.anyio
VAULT = "https://vault.azure.net/.default"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock, latency=0.02) as authority:
        authority.add_client("app", secret=SECRET)
        yield authority


def secret_credential(
    fake: FakeAuthority, clock: VirtualClock, **kw: Any
) -> ClientSecretCredential:
    return ClientSecretCredential(
        "contoso", "app", SECRET, authority=fake.base_url, clock=clock, **kw
    )


async def test_many_callers_one_request_and_the_exact_azure_core_types(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with secret_credential(fake, clock) as credential:
        assert isinstance(credential, AsyncTokenCredential)
        assert isinstance(credential, AsyncSupportsTokenInfo)
        tokens: list[AccessToken] = []

        async def call() -> None:
            tokens.append(await credential.get_token(VAULT))

        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(call)
        assert len(fake.token_requests) == 1
        assert {type(t) for t in tokens} == {AccessToken}
        assert len({t.token for t in tokens}) == 1
        warm = await credential.get_token(VAULT)
        assert warm is await credential.get_token(VAULT)  # a hit allocates nothing
        info = await credential.get_token_info(VAULT)
        assert type(info) is AccessTokenInfo
        assert info.token == warm.token and info.expires_on == warm.expires_on
        assert info.refresh_on is not None and clock.time() < info.refresh_on < info.expires_on
    assert aiomsal_tasks() == []


async def test_credentials_of_one_configuration_share_one_application(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    credentials = [secret_credential(fake, clock) for _ in range(10)]

    async def call(credential: ClientSecretCredential) -> None:
        await credential.get_token(VAULT)

    async with anyio.create_task_group() as tg:
        for credential in credentials * 10:
            tg.start_soon(call, credential)
    assert len(fake.token_requests) == 1
    assert SHARED.count() == 1
    keys = repr(SHARED._loops)
    other = ClientSecretCredential("contoso", "app", "another-secret", authority=fake.base_url,
                                   clock=clock)
    with pytest.raises(ClientAuthenticationError):
        await other.get_token(VAULT)
    assert SHARED.count() == 2
    assert SECRET not in keys and SECRET not in repr(SHARED._loops)
    for credential in [*credentials, other]:
        await credential.close()
    assert SHARED.count() == 0
    assert aiomsal_tasks() == []
    # A closed credential works again (its application is made anew).
    again = credentials[0]
    assert (await again.get_token(VAULT)).token
    await again.close()


async def test_cae_tokens_are_requested_with_cp1_and_cached_apart(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with secret_credential(fake, clock) as credential:
        plain = await credential.get_token(VAULT)
        cae = await credential.get_token(VAULT, enable_cae=True)
        assert plain.token != cae.token
        assert (await credential.get_token(VAULT, enable_cae=True)).token == cae.token
        assert (await credential.get_token(VAULT)).token == plain.token
        assert len(fake.token_requests) == 2
        assert "claims" not in fake.token_requests[0].form
        assert "cp1" in fake.token_requests[1].form["claims"].lower()
        challenged = await credential.get_token(
            VAULT, enable_cae=True, claims='{"access_token":{"nbf":{"essential":true}}}'
        )
        assert challenged.token != cae.token and len(fake.token_requests) == 3
        options = {"enable_cae": True, "claims": '{"access_token":{"acrs":{"values":["c1"]}}}'}
        await credential.get_token_info(VAULT, options=options)
        assert len(fake.token_requests) == 4  # claims bypass the cache


async def test_tenant_id_follows_additionally_allowed_tenants(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with secret_credential(fake, clock, additionally_allowed_tenants=["fabrikam"]) as cred:
        await cred.get_token(VAULT, tenant_id="fabrikam")
        assert fake.token_requests[-1].tenant == "fabrikam"
        await cred.get_token(VAULT, tenant_id="contoso")
        assert fake.token_requests[-1].tenant == "contoso"
        with pytest.raises(ClientAuthenticationError, match="additionally_allowed_tenants"):
            await cred.get_token(VAULT, tenant_id="northwind")
    async with secret_credential(fake, clock, additionally_allowed_tenants=["*"]) as cred:
        await cred.get_token(VAULT, tenant_id="northwind")
        assert fake.token_requests[-1].tenant == "northwind"


async def test_failures_are_client_authentication_errors_chained_and_secret_free(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    wrong = "wrong-secret-value-1234"
    async with ClientSecretCredential(
        "contoso", "app", wrong, authority=fake.base_url, clock=clock
    ) as credential:
        with pytest.raises(ClientAuthenticationError) as caught:
            await credential.get_token(VAULT)
        assert isinstance(caught.value.__cause__, MsalServiceError)
        assert wrong not in str(caught.value) and wrong not in repr(credential)
    with pytest.raises(ValueError, match="tenant_id"):
        ClientSecretCredential("bad tenant/x", "app", SECRET)


async def test_certificate_credential_from_pem_and_pkcs12(
    fake: FakeAuthority, clock: VirtualClock, tmp_path: Path
) -> None:
    cert = generate_certificate()
    fake.add_client("cert-app", certificate=cert)
    pem = tmp_path / "cert.pem"
    await anyio.Path(pem).write_bytes(cert.private_key_pem + cert.certificate_pem)
    async with CertificateCredential(
        "contoso", "cert-app", str(pem), authority=fake.base_url, clock=clock
    ) as credential:
        assert (await credential.get_token(VAULT)).token
    async with CertificateCredential(
        "contoso", "cert-app", certificate_data=cert.to_pkcs12(b"pw"), password="pw",
        authority=fake.base_url, clock=clock,
    ) as credential:
        assert (await credential.get_token("api://x/.default")).token
    assert len(fake.token_requests) == 2
    with pytest.raises(ValueError, match="certificate_path or certificate_data"):
        CertificateCredential("contoso", "cert-app")


def _assertion_for(cert: Any, client_id: str, audience: str, now: float) -> str:
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "exp": int(now) + 600,
              "nbf": int(now), "iat": int(now), "jti": os.urandom(8).hex()}
    headers = {"x5t": b64url(bytes.fromhex(cert.thumbprint_sha1))}
    return jwt.encode(claims, cert.private_key_pem, algorithm="RS256", headers=headers)


async def test_client_assertion_and_workload_identity_credentials(
    fake: FakeAuthority, clock: VirtualClock, tmp_path: Path
) -> None:
    cert = generate_certificate()
    fake.add_client("fed-app", certificate=cert)
    audience = f"{fake.base_url}/contoso/oauth2/v2.0/token"
    calls = []

    def func() -> str:
        calls.append(1)
        return _assertion_for(cert, "fed-app", audience, clock.time())

    async with ClientAssertionCredential(
        "contoso", "fed-app", func, authority=fake.base_url, clock=clock
    ) as credential:
        await credential.get_token(VAULT)
        await credential.get_token(VAULT)
    assert len(calls) == 1
    token_file = tmp_path / "token"
    await anyio.Path(token_file).write_text(_assertion_for(cert, "fed-app", audience, clock.time()))
    environ = {"AZURE_TENANT_ID": "contoso", "AZURE_CLIENT_ID": "fed-app",
               "AZURE_FEDERATED_TOKEN_FILE": str(token_file), "AZURE_AUTHORITY_HOST": fake.base_url}
    async with WorkloadIdentityCredential(environ=environ, clock=clock) as workload:
        assert (await workload.get_token("api://wl/.default")).token
    async with ManagedIdentityCredential(environ=environ, clock=clock) as managed:
        assert (await managed.get_token("api://wl2/.default")).token  # workload identity
    assert [r.client_id for r in fake.token_requests[-3:]] == ["fed-app"] * 3


async def test_on_behalf_of_credential(fake: FakeAuthority, clock: VirtualClock) -> None:
    fake.add_client("spa", redirect_uris=["http://localhost"])
    user = fake.add_user("ada@contoso.com", password="pw", tenant="contoso")
    async with PublicClientApplication("spa", authority=fake.authority("contoso"),
                                       clock=clock) as spa:
        incoming = (await spa.acquire_token_by_username_password(
            user.username, "pw", ["api://app/access_as_user"])).access_token
    fake.token_requests.clear()
    credentials = [
        OnBehalfOfCredential("contoso", "app", client_secret=SECRET, user_assertion=incoming,
                             authority=fake.base_url, clock=clock)
        for _ in range(3)
    ]
    tokens = [await c.get_token("https://graph.microsoft.com/User.Read") for c in credentials]
    assert len({t.token for t in tokens}) == 1
    assert len(fake.token_requests) == 1
    for credential in credentials:
        await credential.close()
    with pytest.raises(ValueError, match="exactly one"):
        OnBehalfOfCredential("contoso", "app", user_assertion=incoming)


async def test_managed_identity_credential_over_imds(clock: VirtualClock) -> None:
    async with FakeImds(clock=clock) as imds:
        registered = imds.add_identity()
        environ = imds.environ()
        creds = [ManagedIdentityCredential(identity_config={"msi_res_id": registered.resource_id},
                                           environ=environ, clock=clock) for _ in range(5)]

        async def call(credential: ManagedIdentityCredential) -> None:
            await credential.get_token(VAULT)

        async with anyio.create_task_group() as tg:
            for credential in creds * 20:
                tg.start_soon(call, credential)
        assert len(imds.requests) == 1
        assert imds.requests[0].query["msi_res_id"] == registered.resource_id
        assert imds.requests[0].resource == "https://vault.azure.net"
        with pytest.raises(CredentialUnavailableError):
            await creds[0].get_token("a/.default", "b/.default")
        for credential in creds:
            await credential.close()
        unknown = ManagedIdentityCredential(client_id="nobody", environ=environ, clock=clock)
        with pytest.raises(CredentialUnavailableError):  # IMDS 400: identity not assigned
            await unknown.get_token(VAULT)
        await unknown.close()


async def test_environment_credential(fake: FakeAuthority, clock: VirtualClock) -> None:
    async with EnvironmentCredential(environ={}) as credential:
        with pytest.raises(CredentialUnavailableError, match="not fully configured"):
            await credential.get_token(VAULT)
    environ = {"AZURE_TENANT_ID": "contoso", "AZURE_CLIENT_ID": "app",
               "AZURE_CLIENT_SECRET": SECRET, "AZURE_AUTHORITY_HOST": fake.base_url}
    async with EnvironmentCredential(environ=environ, clock=clock) as credential:
        assert (await credential.get_token(VAULT)).token


class _Broken:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        raise self.error

    async def close(self) -> None:
        pass


async def test_chains_skip_unavailable_credentials_and_stop_at_failures(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    unavailable = _Broken(CredentialUnavailableError(message="nothing here"))
    good = secret_credential(fake, clock)
    async with ChainedTokenCredential(unavailable, good) as chain:
        assert (await chain.get_token(VAULT)).token
        assert (await chain.get_token_info(VAULT)).token
        await chain.get_token(VAULT)
        assert unavailable.calls == 1  # the successful credential is asked first from then on
    failing = _Broken(RuntimeError("boom"))
    async with ChainedTokenCredential(failing, secret_credential(fake, clock)) as chain:
        with pytest.raises(ClientAuthenticationError, match="boom"):
            await chain.get_token(VAULT)
    async with ChainedTokenCredential(_Broken(CredentialUnavailableError(message="x"))) as chain:
        with pytest.raises(ClientAuthenticationError, match="Attempted credentials"):
            await chain.get_token(VAULT)
    with pytest.raises(ValueError, match="at least one"):
        ChainedTokenCredential()


def _fake_az(directory: Path, body: str) -> None:
    script = directory / "az"
    script.write_text(f"#!{sys.executable}\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX fake 'az'")
async def test_azure_cli_credential_runs_az_asynchronously(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: VirtualClock
) -> None:
    log = tmp_path / "calls"
    _fake_az(tmp_path, f"""import json, sys, time
open({str(log)!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
print(json.dumps({{"accessToken": "cli-token", "expires_on": {int(clock.time()) + 3600},
                  "tokenType": "Bearer", "tenant": "t"}}))""")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    async with AzureCliCredential(clock=clock) as credential:
        tokens = []

        async def call() -> None:
            tokens.append(await credential.get_token(VAULT))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(call)
        assert {t.token for t in tokens} == {"cli-token"}
        with pytest.raises(CredentialUnavailableError, match="claims"):
            await credential.get_token(VAULT, claims="{}")
    calls = (await anyio.Path(log).read_text()).splitlines()
    assert calls == ["account get-access-token --output json --resource https://vault.azure.net"]


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX fake 'az'")
async def test_azure_cli_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    async with AzureCliCredential() as credential:
        with pytest.raises(CredentialUnavailableError, match="not found"):
            await credential.get_token(VAULT)
    _fake_az(tmp_path, "import sys; sys.stderr.write(\"Please run 'az login'\"); sys.exit(1)")
    async with AzureCliCredential() as credential:
        with pytest.raises(CredentialUnavailableError, match="az login"):
            await credential.get_token(VAULT)
    _fake_az(tmp_path, "import time; time.sleep(30)")
    async with AzureCliCredential(process_timeout=0.3) as credential:
        with pytest.raises(CredentialUnavailableError, match="Timed out"):
            await credential.get_token(VAULT)
    _fake_az(tmp_path, "print('not json')")
    async with AzureCliCredential() as credential:
        with pytest.raises(ClientAuthenticationError, match="unexpected output"):
            await credential.get_token(VAULT)


async def test_default_azure_credential_order_and_probe(
    fake: FakeAuthority, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no az
    environ = {"AZURE_TENANT_ID": "contoso", "AZURE_CLIENT_ID": "app",
               "AZURE_CLIENT_SECRET": SECRET}
    async with DefaultAzureCredential(environ=environ, authority=fake.base_url,
                                      clock=clock) as credential:
        assert (await credential.get_token(VAULT)).token
    # No environment configuration; IMDS answers: managed identity is chosen after its probe.
    async with FakeImds(clock=clock) as imds:
        async with DefaultAzureCredential(environ=imds.environ(), clock=clock) as credential:
            assert (await credential.get_token(VAULT)).token
        assert len(imds.requests) == 2
        assert "Metadata" not in imds.requests[0].headers  # the probe
        stopped = imds.environ()
    # IMDS gone: the probe fails fast and the chain reports every credential.
    async with DefaultAzureCredential(environ=stopped, clock=clock) as credential:
        with pytest.raises(ClientAuthenticationError) as caught:
            await credential.get_token(VAULT)
    text = str(caught.value)
    assert "no response from the IMDS endpoint" in text and "Azure CLI not found" in text
    with pytest.raises(TypeError):
        DefaultAzureCredential(tenant_id="x")
    environ = {"AZURE_TOKEN_CREDENTIALS": "dev"}
    async with DefaultAzureCredential(environ=environ) as credential:
        assert [type(c).__name__ for c in credential.credentials] == ["AzureCliCredential"]


async def test_the_fake_issues_v1_tokens_to_resources_that_expect_them(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with secret_credential(fake, clock) as credential:
        storage = await credential.get_token("https://storage.azure.com/.default")
        vault = await credential.get_token(VAULT)
    claims = jwt.decode(storage.token, options={"verify_signature": False})
    tid = fake.tenant_id("contoso")
    assert (claims["iss"], claims["aud"], claims["ver"]) == (
        f"https://sts.windows.net/{tid}/", "https://storage.azure.com", "1.0"
    )
    assert {"nbf", "iat", "exp"} <= claims.keys()
    other = jwt.decode(vault.token, options={"verify_signature": False})
    assert other["iss"] == f"{fake.base_url}/{tid}/v2.0" and other["ver"] == "2.0"


async def test_managed_identity_credential_reads_the_environment_when_made(
    clock: VirtualClock,
) -> None:
    async with FakeImds(clock=clock) as imds:
        environ = imds.environ()
        credential = ManagedIdentityCredential(environ=environ, clock=clock)
        environ.clear()  # changed later: the credential keeps what it was made with
        async with credential:
            assert (await credential.get_token(VAULT)).token
        assert len(imds.requests) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX fake 'az'")
async def test_a_cancelled_cli_call_leaves_no_process_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    _fake_az(tmp_path, f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid()));"
                       " time.sleep(60)")
    monkeypatch.setenv("PATH", str(tmp_path))
    async with AzureCliCredential(process_timeout=60) as cli, anyio.create_task_group() as tg:
        tg.start_soon(cli.get_token, VAULT)
        await wait_until(lambda: pid_file.exists() and bool(pid_file.read_text()))
        tg.cancel_scope.cancel()
    pid = int(await anyio.Path(pid_file).read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
