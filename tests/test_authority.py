from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from aiomsal._errors import MsalConfigurationError, MsalServiceError
from aiomsal._protocol._authority import (
    DEFAULT_AUTHORITY,
    Authority,
    AuthorityMetadata,
    build_metadata_request,
    parse_authority,
    parse_metadata_response,
)
from aiomsal._protocol._http import HttpResponse
from aiomsal._protocol._instance_discovery import (
    KNOWN_AUTHORITY_HOSTS,
    InstanceMetadata,
    build_instance_discovery_request,
    known_aliases,
    known_instance_metadata,
    parse_instance_discovery_response,
)

GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _response(status: int, body: Any) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, {"content-type": "application/json"}, raw)


# --- parsing -------------------------------------------------------------------------------


def test_default_authority_is_public_cloud_common() -> None:
    authority = parse_authority()
    assert authority == Authority("aad", "https", "login.microsoftonline.com", "common", "/common")
    assert authority.url == DEFAULT_AUTHORITY
    assert authority.is_multi_tenant
    assert not authority.is_loopback
    assert authority.metadata_url == (
        "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"
    )


@pytest.mark.parametrize(
    "host",
    [
        "login.microsoftonline.com",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login-us.microsoftonline.com",
        "login.microsoftonline.de",
        "login.sovcloud-identity.fr",
        "login.sovcloud-identity.de",
        "login.sovcloud-identity.sg",
    ],
)
def test_entra_clouds_parse_as_aad(host: str) -> None:
    authority = parse_authority(f"https://{host.upper()}/{GUID}/")
    assert authority.kind == "aad"
    assert authority.host == host
    assert authority.tenant == GUID
    assert authority.path == f"/{GUID}"
    assert authority.url == f"https://{host}/{GUID}"
    assert authority.metadata_url == (
        f"https://{host}/{GUID}/v2.0/.well-known/openid-configuration"
    )
    assert not authority.is_multi_tenant
    assert host in KNOWN_AUTHORITY_HOSTS
    assert build_instance_discovery_request(authority) is None


@pytest.mark.parametrize("tenant", ["common", "organizations", "consumers"])
def test_multi_tenant_names_are_canonical_lower_case(tenant: str) -> None:
    authority = parse_authority(f"https://login.microsoftonline.com/{tenant.title()}")
    assert authority.tenant == tenant
    assert authority.is_multi_tenant


def test_domain_tenant_keeps_its_spelling() -> None:
    authority = parse_authority("https://login.microsoftonline.com/Contoso.onmicrosoft.com")
    assert authority.tenant == "Contoso.onmicrosoft.com"
    assert authority.path == "/Contoso.onmicrosoft.com"


def test_default_port_is_dropped_and_other_ports_kept() -> None:
    assert parse_authority("https://login.microsoftonline.com:443/common").host == (
        "login.microsoftonline.com"
    )
    custom = parse_authority("https://login.microsoftonline.com:8443/common")
    assert custom.host == "login.microsoftonline.com:8443"
    assert custom.url == "https://login.microsoftonline.com:8443/common"


@pytest.mark.parametrize(
    ("url", "host", "tenant", "path"),
    [
        (
            "https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_SignIn",
            "contoso.b2clogin.com",
            "contoso.onmicrosoft.com",
            "/contoso.onmicrosoft.com/B2C_1_SignIn",
        ),
        (
            "https://contoso.b2clogin.com/tfp/contoso.onmicrosoft.com/b2c_1_signin/",
            "contoso.b2clogin.com",
            "contoso.onmicrosoft.com",
            "/tfp/contoso.onmicrosoft.com/b2c_1_signin",
        ),
        (
            "https://contoso.b2clogin.cn/contoso.partner.onmschina.cn/B2C_1_x",
            "contoso.b2clogin.cn",
            "contoso.partner.onmschina.cn",
            "/contoso.partner.onmschina.cn/B2C_1_x",
        ),
        (
            # A B2C custom domain, recognised by the shape of its path.
            "https://login.contoso.com/contoso.onmicrosoft.com/B2C_1A_signup_signin",
            "login.contoso.com",
            "contoso.onmicrosoft.com",
            "/contoso.onmicrosoft.com/B2C_1A_signup_signin",
        ),
        (
            "https://login.contoso.com/tfp/" + GUID + "/custom_policy",
            "login.contoso.com",
            GUID,
            "/tfp/" + GUID + "/custom_policy",
        ),
    ],
)
def test_b2c(url: str, host: str, tenant: str, path: str) -> None:
    authority = parse_authority(url)
    assert (authority.kind, authority.host, authority.tenant, authority.path) == (
        "b2c",
        host,
        tenant,
        path,
    )
    assert authority.metadata_url == f"https://{host}{path}/v2.0/.well-known/openid-configuration"
    assert not authority.is_multi_tenant
    assert build_instance_discovery_request(authority) is None
    with pytest.raises(MsalConfigurationError, match="b2c"):
        authority.with_tenant("other.onmicrosoft.com")


@pytest.mark.parametrize(
    "url",
    [
        "https://contoso.b2clogin.com/contoso.onmicrosoft.com",
        "https://contoso.b2clogin.com",
        "https://contoso.b2clogin.com/tfp/contoso.onmicrosoft.com",
        "https://contoso.b2clogin.com/a/b/c",
    ],
)
def test_b2c_host_needs_tenant_and_policy(url: str) -> None:
    with pytest.raises(MsalConfigurationError, match="B2C authority"):
        parse_authority(url)


def test_ciam_with_tenant_path() -> None:
    authority = parse_authority(f"https://Contoso.CIAMLogin.com/{GUID}")
    assert (authority.kind, authority.host, authority.tenant) == (
        "ciam",
        "contoso.ciamlogin.com",
        GUID,
    )
    assert authority.metadata_url == (
        f"https://contoso.ciamlogin.com/{GUID}/v2.0/.well-known/openid-configuration"
    )
    assert build_instance_discovery_request(authority) is None


def test_ciam_without_path_derives_tenant_from_subdomain() -> None:
    authority = parse_authority("https://contoso.ciamlogin.com/")
    assert authority.tenant == "contoso.onmicrosoft.com"
    assert authority.url == "https://contoso.ciamlogin.com/contoso.onmicrosoft.com"
    assert authority.metadata_url == (
        "https://contoso.ciamlogin.com/contoso.onmicrosoft.com"
        "/v2.0/.well-known/openid-configuration"
    )


def test_ciam_rejects_extra_segments() -> None:
    with pytest.raises(MsalConfigurationError, match="External ID"):
        parse_authority("https://contoso.ciamlogin.com/contoso.onmicrosoft.com/extra")


def test_adfs() -> None:
    authority = parse_authority("https://FS.Contoso.com/ADFS/")
    assert authority == Authority("adfs", "https", "fs.contoso.com", None, "/adfs")
    assert authority.metadata_url == "https://fs.contoso.com/adfs/.well-known/openid-configuration"
    assert not authority.is_multi_tenant
    assert build_instance_discovery_request(authority) is None
    with pytest.raises(MsalConfigurationError, match="adfs"):
        authority.with_tenant("common")
    with pytest.raises(MsalConfigurationError, match="AD FS"):
        parse_authority("https://fs.contoso.com/adfs/oauth2")


@pytest.mark.parametrize(
    ("url", "expected_url"),
    [
        ("https://idp.example.com", "https://idp.example.com"),
        ("https://idp.example.com/", "https://idp.example.com"),
        ("https://IdP.example.com/realms/my-realm/", "https://idp.example.com/realms/my-realm"),
        ("https://contoso.ciamlogin.com/" + GUID + "/v2.0", None),
    ],
)
def test_oidc(url: str, expected_url: str | None) -> None:
    authority = parse_authority(oidc_authority=url)
    assert authority.kind == "oidc"
    assert authority.tenant is None
    expected = expected_url or url
    assert authority.url == expected
    assert authority.metadata_url == f"{expected}/.well-known/openid-configuration"
    assert build_instance_discovery_request(authority) is None
    with pytest.raises(MsalConfigurationError, match="oidc"):
        authority.with_tenant("common")


def test_oidc_and_authority_are_exclusive() -> None:
    with pytest.raises(MsalConfigurationError, match="not both"):
        parse_authority(DEFAULT_AUTHORITY, oidc_authority="https://idp.example.com")


def test_oidc_rejects_same_malformations() -> None:
    for bad in ("http://idp.example.com", "https://idp.example.com/?x=1", "", "idp.example.com"):
        with pytest.raises(MsalConfigurationError):
            parse_authority(oidc_authority=bad)
    with pytest.raises(MsalConfigurationError, match="segment"):
        parse_authority(oidc_authority="https://idp.example.com/a/../b")


def test_unknown_host_with_tenant_is_aad() -> None:
    authority = parse_authority("https://login.contoso.com/contoso.onmicrosoft.com")
    assert authority.kind == "aad"
    assert authority.tenant == "contoso.onmicrosoft.com"


@pytest.mark.parametrize(
    ("url", "host", "hostname"),
    [
        ("http://127.0.0.1:8080/tenant", "127.0.0.1:8080", "127.0.0.1"),
        ("http://127.1.2.3:80/tenant", "127.1.2.3", "127.1.2.3"),
        ("http://localhost:5000/tenant", "localhost:5000", "localhost"),
        ("http://LOCALHOST/tenant", "localhost", "localhost"),
        ("http://[::1]:4443/tenant", "[::1]:4443", "::1"),
        ("https://[::1]/tenant", "[::1]", "::1"),
    ],
)
def test_loopback_accepts_http(url: str, host: str, hostname: str) -> None:
    authority = parse_authority(url)
    assert authority.kind == "aad"
    assert authority.host == host
    assert authority.is_loopback
    assert authority.tenant == "tenant"
    assert authority.url == f"{url.split('://')[0].lower()}://{host}/tenant"


@pytest.mark.parametrize(
    "url",
    [
        "http://login.microsoftonline.com/common",
        "http://example.com/common",
        "http://128.0.0.1/common",
        "http://localhost.example.com/common",
        "http://[::2]/common",
    ],
)
def test_http_rejected_for_non_loopback(url: str) -> None:
    with pytest.raises(MsalConfigurationError, match="https"):
        parse_authority(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("login.microsoftonline.com/common", "absolute"),
        ("//login.microsoftonline.com/common", "absolute"),
        ("https:/login.microsoftonline.com/common", "absolute"),
        ("ftp://login.microsoftonline.com/common", "https"),
        ("https://login.microsoftonline.com/common?slice=x", "query"),
        ("https://login.microsoftonline.com/common?", "query"),
        ("https://login.microsoftonline.com/common#frag", "fragment"),
        ("https://login.microsoftonline.com", "no tenant"),
        ("https://login.microsoftonline.com/", "no tenant"),
        ("https://user:pw@login.microsoftonline.com/common", "user information"),
        ("https://user@login.microsoftonline.com/common", "user information"),
        (" https://login.microsoftonline.com/common", "whitespace"),
        ("https://login.microsoftonline.com/common ", "whitespace"),
        ("https://login.microsoftonline.com/com mon", "whitespace"),
        ("https://login.microsoftonline.com/common\n", "whitespace"),
        ("https://lögin.example.com/common", "non-ASCII"),
        ("https:///common", "no host"),
        ("https://login..microsoftonline.com/common", "invalid host"),
        ("https://login.microsoftonline.com./common", "invalid host"),
        ("https://login_ms.example.com/common", "invalid host"),
        ("https://[zz::1]/common", "IPv6"),
        ("https://login.microsoftonline.com:99999/common", "port"),
        ("https://login.microsoftonline.com:abc/common", "port"),
        ("https://login.microsoftonline.com:/common", "port"),
        ("https://login.microsoftonline.com//common", "empty path segment"),
        ("https://login.microsoftonline.com/common/v2.0", "remove '/v2.0'"),
        ("https://login.microsoftonline.com/common/oauth2/v2.0/token", "tenant only"),
        ("https://login.microsoftonline.com/../common", "invalid path segment"),
        ("https://login.microsoftonline.com/con%2Ftoso", "invalid path segment"),
        ("https://login.microsoftonline.com/a\\b", "invalid path segment"),
    ],
)
def test_malformed_authorities(url: str, message: str) -> None:
    with pytest.raises(MsalConfigurationError, match=message) as caught:
        parse_authority(url)
    assert isinstance(caught.value, ValueError)


def test_non_string_authority() -> None:
    with pytest.raises(MsalConfigurationError, match="string"):
        parse_authority(b"https://login.microsoftonline.com/common")  # type: ignore[arg-type]


def test_authority_is_hashable_and_frozen() -> None:
    authority = parse_authority()
    assert {authority, parse_authority(DEFAULT_AUTHORITY + "/")} == {authority}
    with pytest.raises(AttributeError):
        authority.tenant = "x"  # type: ignore[misc]


# --- with_tenant ---------------------------------------------------------------------------


def test_with_tenant() -> None:
    authority = parse_authority("https://login.microsoftonline.us/organizations")
    specific = authority.with_tenant(GUID)
    assert specific == Authority("aad", "https", "login.microsoftonline.us", GUID, f"/{GUID}")
    assert not specific.is_multi_tenant
    assert authority.is_multi_tenant
    assert specific.with_tenant("Common").tenant == "common"
    ciam = parse_authority("https://contoso.ciamlogin.com").with_tenant(GUID)
    assert ciam.url == f"https://contoso.ciamlogin.com/{GUID}"
    loopback = parse_authority("http://127.0.0.1:9000/common").with_tenant("t2")
    assert loopback.url == "http://127.0.0.1:9000/t2"


@pytest.mark.parametrize("tenant", ["", "a/b", "..", "a b", "adfs", "x?y", "%2F"])
def test_with_tenant_rejects_invalid_tenant(tenant: str) -> None:
    with pytest.raises(MsalConfigurationError, match="Invalid tenant"):
        parse_authority().with_tenant(tenant)


# --- OpenID Connect metadata ---------------------------------------------------------------

ENTRA_METADATA: dict[str, Any] = {
    "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
    "authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    "token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    "device_authorization_endpoint": (
        "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"
    ),
    "jwks_uri": "https://login.microsoftonline.com/common/discovery/v2.0/keys",
    "end_session_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/logout",
    "response_types_supported": ["code"],
}


def test_build_metadata_request() -> None:
    authority = parse_authority(f"https://login.microsoftonline.com/{GUID}")
    request = build_metadata_request(authority)
    assert request.method == "GET"
    assert request.url == authority.metadata_url
    assert request.headers["Accept"] == "application/json"
    assert request.form is None


def test_parse_metadata_success() -> None:
    metadata = parse_metadata_response(parse_authority(), _response(200, ENTRA_METADATA))
    assert metadata == AuthorityMetadata(
        issuer=ENTRA_METADATA["issuer"],
        authorization_endpoint=ENTRA_METADATA["authorization_endpoint"],
        token_endpoint=ENTRA_METADATA["token_endpoint"],
        device_authorization_endpoint=ENTRA_METADATA["device_authorization_endpoint"],
        jwks_uri=ENTRA_METADATA["jwks_uri"],
        end_session_endpoint=ENTRA_METADATA["end_session_endpoint"],
    )


def test_device_endpoint_derived_for_aad_only() -> None:
    body = {k: v for k, v in ENTRA_METADATA.items() if k != "device_authorization_endpoint"}
    aad = parse_metadata_response(parse_authority(), _response(200, body))
    assert aad.device_authorization_endpoint == (
        "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"
    )
    b2c = parse_authority("https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_x")
    assert parse_metadata_response(b2c, _response(200, body)).device_authorization_endpoint is None


def test_adfs_metadata_optional_endpoints() -> None:
    authority = parse_authority("https://fs.contoso.com/adfs")
    body = {
        "issuer": "https://fs.contoso.com/adfs",
        "authorization_endpoint": "https://fs.contoso.com/adfs/oauth2/authorize/",
        "token_endpoint": "https://fs.contoso.com/adfs/oauth2/token/",
    }
    metadata = parse_metadata_response(authority, _response(200, body))
    assert metadata.token_endpoint == "https://fs.contoso.com/adfs/oauth2/token/"
    assert metadata.device_authorization_endpoint is None
    assert metadata.jwks_uri is None
    assert metadata.end_session_endpoint is None


def test_metadata_invalid_tenant_error() -> None:
    body = {
        "error": "invalid_tenant",
        "error_description": "AADSTS90002: Tenant 'nope' not found.",
        "error_codes": [90002],
        "timestamp": "2024-05-01 10:00:00Z",
        "trace_id": "trace-1",
        "correlation_id": "corr-1",
        "error_uri": "https://login.microsoftonline.com/error?code=90002",
    }
    authority = parse_authority("https://login.microsoftonline.com/nope")
    with pytest.raises(MsalServiceError) as caught:
        parse_metadata_response(authority, _response(400, body))
    error = caught.value
    assert error.error == "invalid_tenant"
    assert error.error_description == body["error_description"]
    assert error.status == 400
    assert error.error_codes == (90002,)
    assert error.correlation_id == "corr-1"
    assert error.trace_id == "trace-1"
    assert error.timestamp == "2024-05-01 10:00:00Z"


@pytest.mark.parametrize("status", [200, 404, 503])
def test_metadata_html_body(status: int) -> None:
    with pytest.raises(MsalServiceError) as caught:
        parse_metadata_response(parse_authority(), _response(status, b"<html>oops</html>"))
    assert caught.value.error == "invalid_response"
    assert caught.value.status == status


@pytest.mark.parametrize(
    "body",
    [
        [ENTRA_METADATA],
        {k: v for k, v in ENTRA_METADATA.items() if k != "token_endpoint"},
        {k: v for k, v in ENTRA_METADATA.items() if k != "authorization_endpoint"},
        {k: v for k, v in ENTRA_METADATA.items() if k != "issuer"},
        {**ENTRA_METADATA, "token_endpoint": 42},
        {**ENTRA_METADATA, "token_endpoint": ""},
        {**ENTRA_METADATA, "token_endpoint": "/relative/token"},
        {**ENTRA_METADATA, "jwks_uri": "https://user@evil.example.com/keys"},
    ],
)
def test_metadata_unusable_document(body: Any) -> None:
    with pytest.raises(MsalServiceError, match="invalid_response") as caught:
        parse_metadata_response(parse_authority(), _response(200, body))
    assert caught.value.error == "invalid_response"


@pytest.mark.parametrize(
    "key", ["token_endpoint", "authorization_endpoint", "device_authorization_endpoint"]
)
def test_metadata_http_endpoint_rejected_for_non_loopback(key: str) -> None:
    body = {**ENTRA_METADATA, key: "http://login.microsoftonline.com/common/oauth2/v2.0/x"}
    with pytest.raises(MsalServiceError, match="https") as caught:
        parse_metadata_response(parse_authority(), _response(200, body))
    assert caught.value.error == "invalid_response"


def test_metadata_http_endpoints_accepted_on_loopback() -> None:
    authority = parse_authority("http://127.0.0.1:8400/tenant")
    base = "http://127.0.0.1:8400/tenant"
    body = {
        "issuer": f"{base}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
    }
    metadata = parse_metadata_response(authority, _response(200, body))
    assert metadata.device_authorization_endpoint == f"{base}/oauth2/v2.0/devicecode"
    remote = {**body, "token_endpoint": "http://evil.example.com/token"}
    with pytest.raises(MsalServiceError, match="https"):
        parse_metadata_response(authority, _response(200, remote))


# --- instance discovery --------------------------------------------------------------------


def test_known_aliases() -> None:
    public = {
        "login.microsoftonline.com",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    }
    assert known_aliases("login.windows.net") == public
    assert known_aliases("LOGIN.MICROSOFTONLINE.COM") == public
    assert known_aliases("login.chinacloudapi.cn") == {
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
    assert known_aliases("login.usgovcloudapi.net") == {
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
    }
    assert known_aliases("login.contoso.com") == {"login.contoso.com"}
    assert known_aliases("127.0.0.1:8080") == {"127.0.0.1:8080"}
    cloud = known_instance_metadata("sts.windows.net")
    assert cloud is not None
    assert cloud.preferred_network == "login.microsoftonline.com"
    assert cloud.preferred_cache == "login.windows.net"
    assert known_instance_metadata("login.contoso.com") is None


def test_instance_discovery_request_on_own_host() -> None:
    authority = parse_authority("http://127.0.0.1:8400/contoso.onmicrosoft.com")
    request = build_instance_discovery_request(authority)
    assert request is not None
    assert request.method == "GET"
    assert request.headers["Accept"] == "application/json"
    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "http",
        "127.0.0.1:8400",
        "/common/discovery/instance",
    )
    assert "%2F" in parts.query  # the authorization endpoint is fully encoded
    assert parse_qs(parts.query) == {
        "api-version": ["1.1"],
        "authorization_endpoint": [
            "http://127.0.0.1:8400/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
        ],
    }
    remote = build_instance_discovery_request(parse_authority("https://login.contoso.com/common"))
    assert remote is not None
    assert remote.url.startswith("https://login.contoso.com/common/discovery/instance?")


def test_instance_discovery_request_for_known_host_on_other_port() -> None:
    authority = parse_authority("https://login.microsoftonline.com:8443/common")
    request = build_instance_discovery_request(authority)
    assert request is not None
    assert request.url.startswith("https://login.microsoftonline.com:8443/")


def _discovery_body(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_discovery_endpoint": (
            "https://login.contoso.com/common/v2.0/.well-known/openid-configuration"
        ),
        "api-version": "1.1",
        "metadata": list(entries),
    }


def test_instance_discovery_picks_entry_of_host() -> None:
    authority = parse_authority("https://Login.Contoso.com/common")
    body = _discovery_body(
        {
            "preferred_network": "login.microsoftonline.com",
            "preferred_cache": "login.windows.net",
            "aliases": ["login.microsoftonline.com", "login.windows.net"],
        },
        {
            "preferred_network": "login.contoso.com",
            "preferred_cache": "cache.contoso.com",
            "aliases": ["LOGIN.CONTOSO.COM", "cache.contoso.com"],
        },
    )
    metadata = parse_instance_discovery_response(authority, _response(200, body))
    assert metadata == InstanceMetadata(
        "login.contoso.com",
        "cache.contoso.com",
        frozenset({"login.contoso.com", "cache.contoso.com"}),
    )


def test_instance_discovery_answer_cannot_claim_a_builtin_cloud() -> None:
    """A host that needed discovery may not alias itself to the public cloud (shared cache)."""
    authority = parse_authority("https://login.contoso.com/common")
    body = _discovery_body(
        {
            "preferred_network": "login.microsoftonline.com",
            "preferred_cache": "login.windows.net",
            "aliases": ["login.contoso.com", "login.microsoftonline.com", "login.windows.net"],
        }
    )
    metadata = parse_instance_discovery_response(authority, _response(200, body))
    assert metadata == InstanceMetadata(
        "login.contoso.com", "login.contoso.com", frozenset({"login.contoso.com"})
    )


@pytest.mark.parametrize(
    "body",
    [
        _discovery_body(),
        {"tenant_discovery_endpoint": "https://x/common/v2.0/.well-known/openid-configuration"},
        _discovery_body(
            {
                "preferred_network": "other.example.com",
                "preferred_cache": "other.example.com",
                "aliases": ["other.example.com"],
            }
        ),
    ],
)
def test_instance_discovery_defaults_to_host(body: dict[str, Any]) -> None:
    authority = parse_authority("http://127.0.0.1:8400/common")
    metadata = parse_instance_discovery_response(authority, _response(200, body))
    assert metadata == InstanceMetadata(
        "127.0.0.1:8400", "127.0.0.1:8400", frozenset({"127.0.0.1:8400"})
    )


def test_instance_discovery_invalid_instance() -> None:
    body = {
        "error": "invalid_instance",
        "error_description": "AADSTS50049: Unknown or invalid instance.",
        "error_codes": [50049],
        "timestamp": "2024-05-01 10:00:00Z",
        "trace_id": "trace-2",
        "correlation_id": "corr-2",
    }
    authority = parse_authority("https://bogus.example.com/common")
    with pytest.raises(MsalServiceError) as caught:
        parse_instance_discovery_response(authority, _response(400, body))
    error = caught.value
    assert not isinstance(error, MsalConfigurationError)
    assert error.error == "invalid_instance"
    assert error.status == 400
    assert error.error_codes == (50049,)
    assert error.correlation_id == "corr-2"
    assert error.error_description is not None
    assert "bogus.example.com" in error.error_description
    assert "AADSTS50049" in error.error_description


def test_instance_discovery_other_errors() -> None:
    authority = parse_authority("https://login.contoso.com/common")
    with pytest.raises(MsalServiceError) as caught:
        parse_instance_discovery_response(
            authority, _response(500, {"error": "server_error", "error_codes": [1, "x", True]})
        )
    assert caught.value.error == "server_error"
    assert caught.value.error_codes == (1,)
    with pytest.raises(MsalServiceError, match="invalid_response"):
        parse_instance_discovery_response(authority, _response(404, b"Not Found"))
    with pytest.raises(MsalServiceError, match="invalid_response"):
        parse_instance_discovery_response(authority, _response(200, b"\xff\xfe"))


@pytest.mark.parametrize(
    "metadata",
    [
        "not a list",
        ["not an object"],
        [{"preferred_network": "a", "preferred_cache": "a"}],
        [{"preferred_network": "a", "preferred_cache": "a", "aliases": "a"}],
        [{"preferred_network": "a", "preferred_cache": "a", "aliases": [1]}],
        [{"preferred_network": "", "preferred_cache": "a", "aliases": ["a"]}],
    ],
)
def test_instance_discovery_malformed_metadata(metadata: Any) -> None:
    authority = parse_authority("https://login.contoso.com/common")
    body = {"api-version": "1.1", "metadata": metadata}
    with pytest.raises(MsalServiceError, match="invalid_response"):
        parse_instance_discovery_response(authority, _response(200, body))
