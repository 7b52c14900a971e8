"""The secret scan: no secret shows in a log line, an exception, a repr or a str.

Every flow runs, good and failing, with DEBUG logging captured for the ``aiomsal``
logger and the root logger (aiohttp's loggers included). Then every captured log
line (with its traceback), every exception raised (its ``str``, ``repr``,
formatted traceback, args and attributes, and the whole ``__cause__`` /
``__context__`` chain, recursively), and the ``repr``/``str`` of every result,
flow, credential, application and statistics object is searched for every
secret the flow handled: client secrets, client assertions, access, refresh and
ID tokens, passwords, authorization and device codes, PKCE verifiers, the
incoming on-behalf-of assertion, private key material and URL credentials.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
import pytest

from aiomsal import (
    AuthenticationResult,
    ClientCertificate,
    ConfidentialClientApplication,
    MsalError,
    PublicClientApplication,
)
from aiomsal.testing import FakeAuthority, VirtualClock, generate_certificate
from tests.helpers import drive
from tests.hostile_authority import Answer, HostileAuthority
from tests.test_user_flows import browser

pytestmark = pytest.mark.anyio

SECRET = "ClientSecret-9f3Kq-never-shown"
WRONG_SECRET = "WrongSecret-7Hh2p-never-shown"
PASSWORD = "AlicePassword-x81Z-never-shown"
WRONG_PASSWORD = "WrongPassword-4Tt0-never-shown"
URL_PASSWORD = "UrlPassword-55Rr-never-shown"
URL_SIGNATURE = "UrlSignature-31Ww-never-shown"
ALICE = "alice@contoso.com"
SERVICE = "secret-scan-service"
PUBLIC = "secret-scan-desktop"
WEB = "secret-scan-web"
API = "secret-scan-api"
CALLBACK = "http://localhost/callback"
SCOPES = ["api://backend/.default"]
USER_READ = ["User.Read"]
CERTIFICATE = generate_certificate("secret scan client")


@dataclass
class Scan:
    """What one flow handled (secrets) and showed (texts)."""

    secrets: set[str] = field(default_factory=set)
    texts: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def secret(self, *values: object) -> None:
        for value in values:
            if isinstance(value, str) and len(value) >= 8:
                self.secrets.add(value)

    def show(self, *objects: object) -> None:
        for obj in objects:
            self.texts += [repr(obj), str(obj)]

    async def failing(self, call: Awaitable[object]) -> BaseException:
        with pytest.raises(MsalError) as caught:
            await call
        self.errors.append(caught.value)
        return caught.value

    def result(self, result: AuthenticationResult) -> AuthenticationResult:
        self.secret(result.access_token, result.id_token)
        self.show(result, result.account)
        return result

    def harvest(
        self, fake: FakeAuthority, *apps: ConfidentialClientApplication | PublicClientApplication
    ) -> None:
        """Every secret that went over the wire or into a cache."""
        for record in fake.token_requests:
            for name in (
                "client_secret",
                "client_assertion",
                "refresh_token",
                "password",
                "code",
                "code_verifier",
                "device_code",
                "assertion",
            ):
                self.secret(record.form.get(name))
        for app in apps:
            document = json.loads(app.token_cache.serialize())
            for section in ("AccessToken", "RefreshToken", "IdToken"):
                for entry in document.get(section, {}).values():
                    self.secret(entry.get("secret"))
            self.show(app, app.statistics())


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.lines.append(repr(record.args))


@contextmanager
def captured_logs() -> Iterator[_Capture]:
    handler = _Capture()
    loggers = [logging.getLogger(), logging.getLogger("aiomsal")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def exception_texts(error: BaseException, seen: set[int] | None = None) -> Iterator[str]:
    """Everything an exception can show, through its whole chain."""
    seen = set() if seen is None else seen
    if id(error) in seen:
        return
    seen.add(id(error))
    yield str(error)
    yield repr(error)
    yield "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for arg in error.args:
        if isinstance(arg, BaseException):
            yield from exception_texts(arg, seen)
        else:
            yield repr(arg)
    for value in getattr(error, "__dict__", {}).values():
        if isinstance(value, BaseException):
            yield from exception_texts(value, seen)
        else:
            yield repr(value)
    yield from (repr(note) for note in getattr(error, "__notes__", ()))
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            yield from exception_texts(linked, seen)
    for inner in getattr(error, "exceptions", ()):
        yield from exception_texts(inner, seen)


def assert_clean(scan: Scan, logs: _Capture) -> int:
    texts = [*scan.texts, *logs.lines]
    for error in scan.errors:
        texts.extend(exception_texts(error))
    leaks = [
        (secret[:12] + "...", text[:200])
        for text in texts
        for secret in scan.secrets
        if secret in text
    ]
    assert leaks == []
    return len(texts)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock) as authority:
        authority.add_client(SERVICE, secret=SECRET)
        authority.add_client("cert-service", certificate=CERTIFICATE)
        authority.add_client(PUBLIC, redirect_uris=["http://localhost"])
        authority.add_client(WEB, secret=SECRET, redirect_uris=[CALLBACK])
        authority.add_client(API, secret=SECRET)
        authority.add_user(ALICE, password=PASSWORD, tenant="contoso")
        yield authority


def base_scan() -> Scan:
    scan = Scan()
    scan.secret(SECRET, WRONG_SECRET, PASSWORD, WRONG_PASSWORD, URL_PASSWORD, URL_SIGNATURE)
    key_lines = CERTIFICATE.private_key_pem.decode().splitlines()
    scan.secret(CERTIFICATE.private_key_pem.decode(), *key_lines[1:-1:4])
    return scan


# -- the flows -----------------------------------------------------------------------------

Flow = Callable[[FakeAuthority, VirtualClock, Scan], Awaitable[None]]


async def client_secret_flow(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    async with ConfidentialClientApplication(
        SERVICE, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    ) as app:
        scan.result(await app.acquire_token_for_client(SCOPES))
        scan.result(await app.acquire_token_for_client(SCOPES))  # a cache hit
        scan.harvest(fake, app)


async def certificate_flow(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    credential = ClientCertificate(
        CERTIFICATE.private_key_pem, CERTIFICATE.certificate_pem, send_certificate_chain=True
    )
    scan.show(credential)
    for where in (
        {"authority": fake.authority("contoso")},
        {"oidc_authority": fake.authority("contoso")},
    ):
        async with ConfidentialClientApplication(
            "cert-service",
            client_credential=credential,
            clock=clock,
            **where,  # type: ignore[arg-type]
        ) as app:
            scan.result(await app.acquire_token_for_client(SCOPES, force_refresh=True))
            scan.harvest(fake, app)


async def wrong_secret_flow(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    async with ConfidentialClientApplication(
        SERVICE, client_credential=WRONG_SECRET, authority=fake.authority("contoso"), clock=clock
    ) as app:
        await scan.failing(app.acquire_token_for_client(SCOPES))
        scan.harvest(fake, app)


async def wrong_certificate_flow(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    other = generate_certificate("not registered")
    scan.secret(other.private_key_pem.decode())
    async with ConfidentialClientApplication(
        "cert-service",
        client_credential={
            "private_key": other.private_key_pem,
            "public_certificate": other.certificate_pem,
        },
        authority=fake.authority("contoso"),
        clock=clock,
    ) as app:
        await scan.failing(app.acquire_token_for_client(SCOPES))
        scan.harvest(fake, app)


async def password_flows(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    async with PublicClientApplication(
        PUBLIC, authority=fake.authority("contoso"), clock=clock
    ) as app:
        scan.result(await app.acquire_token_by_username_password(ALICE, PASSWORD, USER_READ))
        await scan.failing(app.acquire_token_by_username_password(ALICE, WRONG_PASSWORD, USER_READ))
        [account] = await app.get_accounts()
        silent = await app.acquire_token_silent(USER_READ, account, force_refresh=True)
        assert silent is not None
        scan.result(silent)
        scan.harvest(fake, app)


async def refresh_token_flows(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    async with PublicClientApplication(
        PUBLIC, authority=fake.authority("contoso"), clock=clock
    ) as app:
        scan.result(await app.acquire_token_by_username_password(ALICE, PASSWORD, USER_READ))
        scan.harvest(fake, app)
        document = json.loads(app.token_cache.serialize())
        [refresh] = [entry["secret"] for entry in document["RefreshToken"].values()]
        scan.result(await app.acquire_token_by_refresh_token(refresh, USER_READ))
        await scan.failing(app.acquire_token_by_refresh_token(refresh + "-forged", USER_READ))
        scan.secret(refresh + "-forged")
        fake.revoke_refresh_tokens(ALICE)
        [account] = await app.get_accounts()
        await scan.failing(app.acquire_token_silent(USER_READ, account, force_refresh=True))
        scan.harvest(fake, app)


async def auth_code_flow(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    async with ConfidentialClientApplication(
        WEB, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    ) as app:
        flow = await app.initiate_auth_code_flow(USER_READ, CALLBACK, login_hint=ALICE)
        scan.secret(flow.code_verifier, flow.nonce)
        scan.show(flow)
        answer = await browser(flow.auth_uri)
        scan.secret(answer.get("code"))
        scan.result(await app.acquire_token_by_auth_code_flow(flow, answer))
        # The same code again (a replay), and a forged state.
        await scan.failing(app.acquire_token_by_auth_code_flow(flow, answer))
        await scan.failing(app.acquire_token_by_auth_code_flow(flow, {**answer, "state": "forged"}))
        scan.harvest(fake, app)


async def device_code_flow(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    async with PublicClientApplication(
        PUBLIC, authority=fake.authority("contoso"), clock=clock
    ) as app:
        flow = await app.initiate_device_flow(USER_READ)
        scan.secret(flow.device_code)
        scan.show(flow)
        fake.approve_device_code(flow.user_code, ALICE)
        scan.result(await drive(clock, app.acquire_token_by_device_flow(flow)))
        declined = await app.initiate_device_flow(USER_READ)
        scan.secret(declined.device_code)
        fake.decline_device_code(declined.user_code)
        await scan.failing(drive(clock, app.acquire_token_by_device_flow(declined)))
        scan.harvest(fake, app)


async def on_behalf_of_flow(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    async with PublicClientApplication(
        PUBLIC, authority=fake.authority("contoso"), clock=clock
    ) as client:
        incoming = scan.result(
            await client.acquire_token_by_username_password(
                ALICE, PASSWORD, [f"api://{API}/access_as_user"]
            )
        )
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    ) as api:
        scan.result(await api.acquire_token_on_behalf_of(incoming.access_token, USER_READ))
        scan.result(await api.acquire_token_on_behalf_of(incoming.access_token, USER_READ))
        forged = incoming.access_token[:-6] + "forged"
        scan.secret(forged)
        await scan.failing(api.acquire_token_on_behalf_of(forged, ["Mail.Read"]))
        scan.harvest(fake, api)


async def throttled_flow(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    async with ConfidentialClientApplication(
        SERVICE, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    ) as app:
        fake.fail_next(1, status=429, retry_after=30)
        await scan.failing(app.acquire_token_for_client(SCOPES))
        await scan.failing(app.acquire_token_for_client(SCOPES))  # replayed from memory
        fake.fail_next(1, status=503, fault="html", retry_after=10)
        await scan.failing(app.acquire_token_for_client(["api://other/.default"]))
        scan.harvest(fake, app)


async def transport_failure_flows(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    async with ConfidentialClientApplication(
        SERVICE,
        client_credential=SECRET,
        authority=fake.authority("contoso"),
        clock=clock,
        timeout=0.3,
    ) as app:
        for fault in ("drop", "hang", "malformed_json", "html"):
            fake.fail_next(2, status=500, fault=fault)
            await scan.failing(
                drive(clock, app.acquire_token_for_client(SCOPES, force_refresh=True))
            )
            fake.clear_faults()
        scan.harvest(fake, app)
    async with ConfidentialClientApplication(
        SERVICE, client_credential=SECRET, authority="http://127.0.0.1:9/contoso", clock=clock
    ) as refused:
        await scan.failing(drive(clock, refused.acquire_token_for_client(SCOPES)))


async def configuration_error_flows(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    host = fake.base_url.split("://", 1)[1]
    for url in (
        f"http://admin:{URL_PASSWORD}@{host}/contoso",
        f"http://{URL_PASSWORD}@{host}/contoso",
        f"http://{host}/contoso?sig={URL_SIGNATURE}",
        f"http://{host}/con toso?sig={URL_SIGNATURE}",
        f"https://admin:{URL_PASSWORD}@kc.example/realms/%2e%2e/b",
    ):
        for where in ({"authority": url}, {"oidc_authority": url}):
            with pytest.raises(MsalError) as caught:
                ConfidentialClientApplication(SERVICE, client_credential=SECRET, **where)  # type: ignore[arg-type]
            scan.errors.append(caught.value)
    credentials: list[dict[str, object]] = [
        {
            "private_key": b"-----BEGIN PRIVATE KEY-----\n" + URL_PASSWORD.encode() + b"\n",
            "thumbprint": "A" * 40,
        },
        {
            "private_key": CERTIFICATE.private_key_pem,
            "passphrase": URL_PASSWORD,
            "thumbprint": "A" * 40,
        },
        {"client_assertion": "", "private_key": CERTIFICATE.private_key_pem},
    ]
    for credential in credentials:
        with pytest.raises(MsalError) as caught:
            ConfidentialClientApplication(
                SERVICE, client_credential=credential, authority=fake.authority()
            )
        scan.errors.append(caught.value)


async def hostile_metadata_flow(fake: FakeAuthority, clock: VirtualClock, scan: Scan) -> None:
    """Endpoints with credentials in a (hostile) metadata document are refused unquoted."""
    async with HostileAuthority() as hostile:
        base = hostile.base_url.split("://", 1)[1]
        for endpoint in (
            f"http://admin:{URL_PASSWORD}@{base}/contoso/token",
            f"ftp://{base}/token?sig={URL_SIGNATURE}",
            f"http://{base}/token?sig={URL_SIGNATURE}#{URL_PASSWORD}",
        ):
            document = {**hostile.metadata("contoso"), "token_endpoint": endpoint}
            hostile.script("metadata", Answer(body=json.dumps(document).encode()))
            async with ConfidentialClientApplication(
                SERVICE, client_credential=SECRET, authority=hostile.authority(), clock=clock
            ) as app:
                await scan.failing(app.acquire_token_for_client(SCOPES))
        assert hostile.token_forms == []


FLOWS: dict[str, Flow] = {
    "client-secret": client_secret_flow,
    "client-certificate": certificate_flow,
    "wrong-secret": wrong_secret_flow,
    "wrong-certificate": wrong_certificate_flow,
    "username-password": password_flows,
    "refresh-token-and-revoked": refresh_token_flows,
    "auth-code": auth_code_flow,
    "device-code": device_code_flow,
    "on-behalf-of": on_behalf_of_flow,
    "throttled": throttled_flow,
    "transport-failures": transport_failure_flows,
    "configuration-errors": configuration_error_flows,
    "hostile-metadata": hostile_metadata_flow,
}


@pytest.mark.parametrize("name", list(FLOWS))
async def test_no_secret_in_logs_errors_or_reprs(
    name: str, fake: FakeAuthority, clock: VirtualClock
) -> None:
    scan = base_scan()
    with captured_logs() as logs:
        with anyio.fail_after(30):
            await FLOWS[name](fake, clock, scan)
    scanned = assert_clean(scan, logs)
    # The scan saw what it should: DEBUG lines of the requests, and secrets to look for.
    assert scanned > 0 and len(scan.secrets) >= 6
    if name != "configuration-errors":
        assert any("client-request-id" in line for line in logs.lines)


def test_the_scan_finds_a_planted_secret() -> None:
    """The scan can fail: a secret deep in a chain, in args, or in a log line is found."""
    scan = base_scan()
    try:
        try:
            raise KeyError(("nested", SECRET))
        except KeyError as inner:
            raise MsalError("outer, clean") from inner
    except MsalError as outer:
        scan.errors.append(outer)
    with captured_logs() as logs, pytest.raises(AssertionError):
        assert_clean(scan, logs)
    scan.errors.clear()
    with captured_logs() as logs:
        logging.getLogger("aiomsal").debug("sending %s", {"password": PASSWORD})
    with pytest.raises(AssertionError):
        assert_clean(scan, logs)
