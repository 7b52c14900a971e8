"""The sans-I/O managed identity layer: detection, expiry shapes, Arc's key path, identities."""

from __future__ import annotations

import json
from typing import cast

import pytest

from aiomsal import (
    MsalConfigurationError,
    MsalServiceError,
    SystemAssignedManagedIdentity,
    UserAssignedManagedIdentity,
)
from aiomsal._protocol._http import HttpResponse
from aiomsal._protocol._managed_identity._ids import managed_identity_from
from aiomsal._protocol._managed_identity._requests import resource_from_scope
from aiomsal._protocol._managed_identity._responses import (
    arc_key_path,
    expires_in_from,
    parse_managed_identity_response,
)
from aiomsal._protocol._managed_identity._retry import ImdsRetryPolicy
from aiomsal._protocol._managed_identity._sources import SourceKind, detect_source

TP = "AB:CD:" + "ef" * 18
E = "http://127.0.0.1:1/t"


@pytest.mark.parametrize(
    ("environ", "kind", "endpoint"),
    [
        ({"IDENTITY_ENDPOINT": "https://127.0.0.1:2377/t", "IDENTITY_HEADER": "h",
          "IDENTITY_SERVER_THUMBPRINT": TP}, "service_fabric", "https://127.0.0.1:2377/t"),
        ({"IDENTITY_ENDPOINT": E, "IDENTITY_HEADER": "h"}, "app_service", E),
        ({"IDENTITY_ENDPOINT": E, "IDENTITY_HEADER": "h", "MSI_ENDPOINT": "http://x/",
          "MSI_SECRET": "s"}, "app_service", E),
        ({"MSI_ENDPOINT": E, "MSI_SECRET": "s"}, "azure_ml", E),
        ({"MSI_ENDPOINT": E, "MSI_SECRET": "s", "IDENTITY_ENDPOINT": "http://127.0.0.1:9/a",
          "IMDS_ENDPOINT": "http://127.0.0.1:9"}, "azure_ml", E),
        ({"IDENTITY_ENDPOINT": E, "IMDS_ENDPOINT": "http://127.0.0.1:1"}, "azure_arc", E),
        ({"IDENTITY_ENDPOINT": E, "IMDS_ENDPOINT": "x", "MSI_ENDPOINT": "http://y/"},
         "azure_arc", E),
        ({"MSI_ENDPOINT": E}, "cloud_shell", E),
        ({"MSI_ENDPOINT": E, "MSI_SECRET": ""}, "cloud_shell", E),
        ({}, "imds", "http://169.254.169.254/metadata/identity/oauth2/token"),
        ({"IDENTITY_ENDPOINT": E}, "imds", "http://169.254.169.254/metadata/identity/oauth2/token"),
        ({"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:5/"}, "imds",
         "http://127.0.0.1:5/metadata/identity/oauth2/token"),
    ],
)
def test_detection_follows_msal_precedence(
    environ: dict[str, str], kind: str, endpoint: str
) -> None:
    source = detect_source(environ)
    assert (source.kind, source.endpoint) == (kind, endpoint)


def test_arc_agent_file_selects_arc_and_endpoint_override_wins() -> None:
    assert detect_source({}, arc_agent_present=True).endpoint.startswith("http://localhost:40342")
    assert detect_source({}, endpoint=E).endpoint == E


def test_thumbprint_is_normalised_and_checked() -> None:
    env = {"IDENTITY_ENDPOINT": "https://h/t", "IDENTITY_HEADER": "h"}
    assert detect_source(env | {"IDENTITY_SERVER_THUMBPRINT": TP}).thumbprint == "abcd" + "ef" * 18
    with pytest.raises(MsalConfigurationError, match="40 hex"):
        detect_source(env | {"IDENTITY_SERVER_THUMBPRINT": "xyz"})
    with pytest.raises(MsalConfigurationError, match="must be https"):
        detect_source(env | {"IDENTITY_ENDPOINT": "http://h/t", "IDENTITY_SERVER_THUMBPRINT": TP})


@pytest.mark.parametrize("endpoint", ["ftp://h/t", "not a url", "http://user:pw@h/t", "http:///"])
def test_malformed_endpoints_are_configuration_errors(endpoint: str) -> None:
    with pytest.raises(MsalConfigurationError):
        detect_source({}, endpoint=endpoint)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"expires_in": "3599"}, 3599),
        ({"expires_in": 3599}, 3599),
        ({"expires_in": 60.5}, 60),
        ({"expires_on": "1800003600"}, 3600),
        ({"expires_on": 1800003600}, 3600),
        ({"expires_on": "3600"}, 3600),  # small numbers are a relative lifetime
        ({"expires_on": "bogus"}, None),
        ({"expires_on": None}, None),
        ({"expires_on": True}, None),
        ({"expires_in": "nan"}, None),
        ({}, None),
    ],
)
def test_expiry_shapes(body: dict[str, object], expected: int | None) -> None:
    assert expires_in_from(body, NOW) == expected


def test_expiry_date_strings_linux_and_windows() -> None:
    import datetime

    at = datetime.datetime.fromtimestamp(NOW + 7200, datetime.timezone.utc)
    linux = at.strftime("%m/%d/%Y %H:%M:%S +00:00")
    windows = f"{at.month}/{at.day}/{at.year} {at.strftime('%I:%M:%S %p').lstrip('0')} +00:00"
    assert expires_in_from({"expires_on": linux}, NOW) == 7200
    assert expires_in_from({"expires_on": windows}, NOW) == 7200


def _challenge(header: str | None) -> HttpResponse:
    headers = {} if header is None else {"www-authenticate": header}
    return HttpResponse(401, headers, b"")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer realm=/var/opt/azcmagent/tokens/a.key",
        "Basic realm=",
        "Basic realm=/tmp/a.key",
        "Basic realm=/var/opt/azcmagent/tokens/../../../etc/a.key",
        "Basic realm=/var/opt/azcmagent/tokens/sub/a.key",
        "Basic realm=/var/opt/azcmagent/tokens/a.txt",
        "Basic realm=/var/opt/azcmagent/tokens/.key",
    ],
)
def test_bad_arc_challenges_are_refused(header: str | None) -> None:
    with pytest.raises(MsalServiceError):
        arc_key_path(_challenge(header), "/var/opt/azcmagent/tokens")


def test_good_arc_challenges() -> None:
    assert arc_key_path(
        _challenge("Basic realm=/var/opt/azcmagent/tokens/abc.key"), "/var/opt/azcmagent/tokens"
    ) == "/var/opt/azcmagent/tokens/abc.key"
    windows = r"C:\ProgramData\AzureConnectedMachineAgent\Tokens"
    assert arc_key_path(
        _challenge(rf"Basic realm={windows}\abc.key"), windows, windows=True
    ) == rf"{windows}\abc.key"


@pytest.mark.parametrize(
    "value",
    [{}, {"ManagedIdentityIdType": "Bogus", "Id": "x"}, "system", None,
     {"ManagedIdentityIdType": "ClientId", "Id": 3}],
)
def test_malformed_identities(value: object) -> None:
    with pytest.raises(MsalConfigurationError):
        managed_identity_from(value)


def test_user_assigned_needs_exactly_one_id() -> None:
    for kwargs in ({}, {"client_id": "a", "object_id": "b"}, {"client_id": "  "}):
        with pytest.raises(MsalConfigurationError):
            UserAssignedManagedIdentity(**kwargs)
    mi = managed_identity_from({"ManagedIdentityIdType": "ResourceId", "Id": "/r"})
    assert mi == UserAssignedManagedIdentity(resource_id="/r")


@pytest.mark.parametrize("value", ["", "  ", "a b", "/.default"])
def test_bad_resources(value: str) -> None:
    with pytest.raises(MsalConfigurationError):
        resource_from_scope(value)


def test_imds_retry_schedule() -> None:
    policy = ImdsRetryPolicy()
    assert [policy.delay(n, 500) for n in range(6)] == [1, 2, 4, 8, 16, None]
    assert policy.delay(0, 400) is None and policy.delay(0, 401) is None
    assert policy.delay(0, 429, retry_after=7) == 7
    assert policy.delay(0, 410, gone_for=0) == 10
    assert policy.delay(6, 410, gone_for=60) == 10
    assert policy.delay(7, 410, gone_for=70) is None
    assert policy.delay(0, None) == 1
    # In all: 1 + 2 + 4 + 8 + 16 = 31 s of exponential backoff, or the 70 s window of 410s.
    assert policy.longest_backoff() == 70.0
    assert ImdsRetryPolicy(gone_window=0).longest_backoff() == 31.0
    assert ImdsRetryPolicy(max_retries=1000, gone_window=0).longest_backoff() == (
        1 + 2 + 4 + 8 + 16 + 32 + 60 * 994
    )


@pytest.mark.parametrize(
    "options",
    [{"max_retries": -1}, {"max_retries": 2.5}, {"max_retries": True}, {"max_retries": 10**6},
     {"first_delay": -1}, {"max_delay": float("inf")}, {"gone_delay": float("nan")},
     {"gone_window": "70"}],
)
def test_bad_imds_retry_policies(options: dict[str, object]) -> None:
    with pytest.raises(MsalConfigurationError):
        ImdsRetryPolicy(**options)  # type: ignore[arg-type]


SOURCES = ["imds", "app_service", "azure_arc", "cloud_shell", "service_fabric", "azure_ml"]
GOOD = {"access_token": "t", "expires_in": "3600"}
MALFORMED: list[tuple[int, bytes]] = [
    (200, b""),
    (200, b"null"),
    (200, b"[]"),
    (200, b"\xff\xfe"),
    (200, b'{"access_token": "eyJ'),
    (200, b"<html>oops</html>"),
    (200, b'{"access_token": ""}'),
    (200, b'{"access_token": 7, "expires_in": 3600}'),
    (200, b'{"access_token": "t"}'),
    (200, b'{"access_token": "t", "expires_in": "-5"}'),
    (200, b'{"access_token": "t", "expires_in": "1e400"}'),
    (200, b'{"access_token": "t", "expires_in": 1e30}'),
    (200, b'{"access_token": "t", "expires_on": "1799999000"}'),
    (200, b'{"access_token": "t", "expires_on": [1]}'),
    (200, b'{"access_token": "t", "expires_on": "13/45/2020 99:00:00 +00:00"}'),
    (200, b'{"access_token": "t", "expires_in": {"x": 1}}'),
    (400, b""),
    (400, b'{"error": "invalid_request", "error_description": "Identity not found"}'),
    (400, b'{"error": {"code": "SecretHeaderNotFound", "message": "no"}}'),
    (400, b'{"error": {"code": 5}}'),
    (401, b'{"statusCode": 401, "message": "Unauthorized"}'),
    (404, b'{"code": "NotFound", "message": "x"}'),
    (429, b"{}"),
    (500, b"<html></html>"),
    (503, b'{"error": null}'),
]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("status", "body"), MALFORMED)
def test_malformed_answers_are_service_errors(source: str, status: int, body: bytes) -> None:
    response = HttpResponse(status, {"content-type": "application/json"}, body)
    with pytest.raises(MsalServiceError) as caught:
        parse_managed_identity_response(
            cast(SourceKind, source), response, NOW, SystemAssignedManagedIdentity()
        )
    assert "eyJ" not in str(caught.value)
    if status == 429:
        assert type(caught.value).__name__ == "MsalThrottledError"


@pytest.mark.parametrize("source", SOURCES)
def test_a_good_answer_of_every_source(source: str) -> None:
    response = HttpResponse(200, {}, json.dumps(GOOD).encode())
    parsed = parse_managed_identity_response(
        cast(SourceKind, source), response, NOW, SystemAssignedManagedIdentity()
    )
    assert (parsed.access_token, parsed.expires_in, parsed.token_type) == ("t", 3600, "Bearer")
