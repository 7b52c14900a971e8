"""``python -m aiomsal``: the demo, the token command and their argument checks."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
import jwt
import pytest

from aiomsal._cli._commands import main
from aiomsal._cli._demo import _Progress
from aiomsal.testing import FakeAuthority, generate_certificate
from tests.helpers import SECRET

CLIENT = "cli-test-client"
CERT_CLIENT = "cli-cert-client"
SCOPE = "api://orders-api/.default"
SMALL_DEMO = ["demo", "--tasks", "200", "--tenants", "5", "--resources", "2"]
SMALL_DEMO += ["--calls-per-task", "3", "--latency", "0.01"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AIOMSAL_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority() as authority:
        authority.add_client(CLIENT, secret=SECRET)
        yield authority


async def run_cli(*argv: str) -> int:
    """Run the command line in a worker thread: it starts its own event loop there."""
    return await anyio.to_thread.run_sync(main, list(argv))


def row(output: str, label: str) -> str:
    """The value column of the summary row ``label``."""
    match = re.search(rf"^  {re.escape(label)}\s{{2,}}(\S+(?: %| ms| s)?)", output, re.MULTILINE)
    assert match is not None, f"no row {label!r} in:\n{output}"
    return match.group(1)


class Terminal(io.StringIO):
    """A stream that says it is a terminal (the progress bar redraws in place)."""

    def isatty(self) -> bool:
        return True


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``argv``, expecting exit status 2; return stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.out == ""
    return captured.err


# ---------------------------------------------------------------------------------- demo


def test_demo_sends_one_token_request_per_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SMALL_DEMO, "--quiet"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert row(out, "calls") == "600"
    assert row(out, "distinct keys") == "10"
    assert row(out, "token requests") == "10"
    assert row(out, "token requests sent") == "10"
    assert row(out, "errors") == "0"
    assert int(row(out, "metadata requests")) >= 5
    ratio = float(row(out, "cache hit ratio").removesuffix(" %"))
    assert 0 < ratio < 100
    assert int(row(out, "coalesced waiters").replace(",", "")) > 0
    for label in ("latency p50", "latency p99", "latency max"):
        assert row(out, label).endswith(" ms")
    assert row(out, "wall time").endswith(" s")
    assert re.search(r"^10 keys (->|→) 10 token requests: every concurrent miss", out, re.M)
    assert "progress" not in captured.err
    assert "waiting for the authority" not in captured.err  # --quiet


def test_demo_reports_the_cold_phase_apart_from_warm_calls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*SMALL_DEMO, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert row(out, "cold start").endswith(" s")
    cold_note = re.search(r"^  cold latency p50 .* ([\d,]+) calls? waited for the authority$",
                          out, re.M)
    assert cold_note is not None
    cold_calls = int(cold_note.group(1).replace(",", ""))
    misses = int(re.search(r"([\d,]+) misses", out).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert cold_calls == misses
    for label in ("cold latency p50", "cold latency p99", "warm latency p50", "warm latency p99"):
        assert row(out, label).endswith(" ms")
    assert float(row(out, "warm latency p99").removesuffix(" ms")) < float(
        row(out, "cold latency p50").removesuffix(" ms")
    )
    assert "Cold start: 200 tasks started at once" in out
    assert "waited on 10 token requests (10 ms each at the fake authority)" in out


def test_demo_uses_singular_forms_for_one(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["demo", "--tasks", "1", "--tenants", "1", "--resources", "1", "--calls-per-task", "1"]
    assert main([*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^1 key (->|→) 1 token request: one request per key\.$", out, re.M)
    assert "1 task started at once and 1 call found no token yet" in out
    assert "waited on 1 token request (" in out
    assert "1 call waited for the authority" in out


def test_demo_prints_plain_progress_lines_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(SMALL_DEMO) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("progress:")]
    assert 1 <= len(lines) <= 4
    assert lines[-1].startswith("progress: 600/600 calls (100%)")
    # After one turn of the loop every task has made its first call: all 200 wait, once said.
    waiting = [line for line in err.splitlines() if line.startswith("waiting for the authority")]
    assert waiting == ["waiting for the authority: 200 calls, the first going out"]


def test_the_progress_bar_redraws_in_place_on_a_terminal() -> None:
    stream = Terminal()
    progress = _Progress(200, stream, enabled=True)
    progress.done = 50
    progress._draw()
    progress.done = 200
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r") == 2
    assert " 25%  50/200 calls" in text
    assert text.endswith("\n")
    assert "100%  200/200 calls" in text
    assert "waiting" not in text


def test_the_progress_bar_says_when_calls_wait_for_the_authority() -> None:
    stream = Terminal()
    sent = [0]
    progress = _Progress(200, stream, enabled=True, requests=lambda: sent[0])
    progress.waiting = 200
    progress._draw()
    progress.waiting, sent[0] = 1, 1
    progress._draw()
    progress.waiting, progress.done = 0, 200
    progress._draw()
    first, second, last = stream.getvalue().split("\r")[1:]
    assert first.endswith("waiting for the authority: 200 calls, the first going out\x1b[K")
    assert second.endswith("waiting for the authority: 1 call, 1 token request out\x1b[K")
    assert "waiting" not in last


def test_demo_runs_as_a_module() -> None:
    command = [sys.executable, "-m", "aiomsal", "demo", "--tasks", "100", "--tenants", "2"]
    command += ["--resources", "2", "--calls-per-task", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "4 keys" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.anyio
async def test_demo_against_an_authority_given_on_the_command_line(
    fake: FakeAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--authority", fake.authority("contoso"), "--client-id", CLIENT]
    argv += ["--tenant", "fabrikam.com", "--tenant", "contoso.com", "--scope", SCOPE, "--quiet"]
    assert await run_cli(*argv, "--client-secret", SECRET) == 0
    captured = capsys.readouterr()
    assert row(captured.out, "calls") == "500"  # 100 tasks by default for a real authority
    assert row(captured.out, "token requests sent") == "2"
    assert row(captured.out, "metadata requests") == "n/a"
    assert "received by the fake authority" not in captured.out
    assert len(fake.token_requests) == 2
    assert SECRET not in captured.out + captured.err


@pytest.mark.anyio
async def test_demo_exits_1_and_names_the_first_error_when_calls_fail(
    fake: FakeAuthority, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOMSAL_AUTHORITY", fake.authority("contoso"))
    monkeypatch.setenv("AIOMSAL_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AIOMSAL_CLIENT_SECRET", "not-the-secret")
    assert await run_cli("demo", "--tasks", "5", "--calls-per-task", "2", "--quiet") == 1
    out = capsys.readouterr().out
    assert row(out, "errors") == "10"
    assert "FAILED: 10 of 10 calls raised; the first: MsalServiceError: " in out
    assert "invalid_client" in out
    assert "not-the-secret" not in out


# --------------------------------------------------------------------------------- token


@pytest.mark.anyio
async def test_token_prints_a_summary_without_the_token(
    fake: FakeAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["token", "--authority", fake.authority("contoso"), "--client-id", CLIENT]
    assert await run_cli(*argv, "--client-secret", SECRET, "--scope", SCOPE) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert set(summary) >= {"token_source", "expires_on", "scopes", "tenant_id", "correlation_id"}
    assert summary["token_source"] == "identity_provider"
    assert summary["scopes"] == [SCOPE]
    assert summary["tenant_id"] == "contoso"
    assert summary["correlation_id"] == fake.token_requests[0].correlation_id
    assert "eyJ" not in captured.out  # no JWT, and no secret either
    assert SECRET not in captured.out + captured.err


@pytest.mark.anyio
async def test_show_token_prints_the_jwt_alone(
    fake: FakeAuthority, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOMSAL_CLIENT_SECRET", SECRET)
    argv = ["token", "--authority", fake.authority("contoso"), "--client-id", CLIENT]
    argv += ["--scope", SCOPE, "--tenant", "fabrikam.com", "--show-token"]
    assert await run_cli(*argv) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n")
    assert out.count("\n") == 1
    token = out.strip()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["tid"] == fake.tenant_id("fabrikam.com")
    assert fake.token_requests[0].tenant == "fabrikam.com"


@pytest.mark.anyio
async def test_token_with_certificate_files_and_with_a_pfx(
    fake: FakeAuthority, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    certificate = generate_certificate()
    fake.add_client(CERT_CLIENT, certificate=certificate)
    (tmp_path / "cert.pem").write_bytes(certificate.certificate_pem)
    (tmp_path / "key.pem").write_bytes(certificate.private_key_pem)
    (tmp_path / "both.pem").write_bytes(certificate.certificate_pem + certificate.private_key_pem)
    (tmp_path / "app.pfx").write_bytes(certificate.to_pkcs12(b"pfx-pass"))
    base = ["token", "--authority", fake.authority("contoso"), "--client-id", CERT_CLIENT]
    base += ["--scope", SCOPE]
    credentials = [
        ["--certificate", str(tmp_path / "cert.pem"), "--private-key", str(tmp_path / "key.pem")],
        ["--certificate", str(tmp_path / "both.pem")],
        ["--pfx", str(tmp_path / "app.pfx"), "--passphrase", "pfx-pass"],
    ]
    for credential in credentials:
        assert await run_cli(*base, *credential) == 0
        assert json.loads(capsys.readouterr().out)["token_source"] == "identity_provider"
    assert len(fake.token_requests) == 3
    assert all("client_assertion" in r.form for r in fake.token_requests)


@pytest.mark.anyio
async def test_token_exits_1_when_the_authority_refuses(
    fake: FakeAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["token", "--authority", fake.authority("contoso"), "--client-id", CLIENT]
    assert await run_cli(*argv, "--client-secret", "wrong-secret", "--scope", SCOPE) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("aiomsal: MsalServiceError: ")
    assert "Traceback" not in captured.err
    assert "wrong-secret" not in captured.err


# ------------------------------------------------------------------------- bad arguments

ENTRA = "https://login.microsoftonline.com/contoso.onmicrosoft.com"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "demo" in err
    assert "token" in err


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["token", "--help"]])
def test_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: python -m aiomsal" in capsys.readouterr().out


def test_a_real_authority_needs_a_client_id(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "demo", "--authority", ENTRA, "--client-secret", SECRET)
    assert "--client-id" in err
    assert SECRET not in err


def test_an_unreadable_certificate_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "missing.pem")
    argv = ["token", "--authority", ENTRA, "--client-id", CLIENT, "--scope", SCOPE]
    err = usage_error(capsys, *argv, "--certificate", missing)
    assert f"cannot read the certificate file {missing!r}" in err


@pytest.fixture
def not_pem(tmp_path: Path) -> str:
    path = tmp_path / "junk.pem"
    path.write_text("not a certificate")
    return str(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "a credential is needed"),
        (["--client-secret", SECRET, "--pfx", "x.pfx"], "give one credential"),
        (["--private-key", "NOT_PEM"], "not a PEM private key"),
        (["--pfx", "NOT_PEM"], "PKCS#12"),
    ],
)
def test_credential_errors_are_usage_errors(
    extra: list[str], message: str, not_pem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = [not_pem if arg == "NOT_PEM" else arg for arg in extra]
    if extra[:1] == ["--private-key"]:
        extra += ["--certificate", not_pem]
    argv = ["token", "--authority", ENTRA, "--client-id", CLIENT, "--scope", SCOPE]
    err = usage_error(capsys, *argv, *extra)
    assert message in err
    assert SECRET not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["token", "--client-id", CLIENT, "--scope", SCOPE], "--authority"),
        (["token", "--authority", ENTRA], "--scope"),
        (["demo", "--authority", "ftp://example.com/x", "--client-id", "c"], "ftp://"),
        (["demo", "--tasks", "0"], "--tasks"),
        (["demo", "--tenant", "not a tenant"], "Invalid tenant"),
        (["demo", "--latency", "soon"], "not a number"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in usage_error(capsys, *argv)
