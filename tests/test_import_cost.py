"""``import aiomsal`` stays cheap: what only some calls need is imported on first use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Imported by the first call that needs them, never by ``import aiomsal``.
LAZY = (
    "cryptography",  # certificates, client assertions, encrypted cache files
    "jwt",  # signing client assertions
    "redis",  # RedisCacheStorage
    "aiohttp",  # the transport imports it on the first request (in a worker thread)
    "aiohttp.web",  # the loopback listener of the interactive flow
    "webbrowser",  # the interactive flow's default browser
    "aiomsal._storage._file_storage",  # FileCacheStorage, on first use
    "aiomsal._apps._token_validator",  # TokenValidator (web APIs), on first use
    "aiomsal._apps._managed_identity",  # ManagedIdentityClient, on first use
    "aiomsal._apps._workload_identity",
    "aiomsal.testing",  # the fakes
    "aiomsal._transport._loopback",
    "aiomsal._storage._redis_storage",
    "msal",
    "opentelemetry",
)


def imported_by(code: str) -> set[str]:
    """The modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
    )
    return set(json.loads(completed.stdout))


def loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def test_import_aiomsal_leaves_the_optional_machinery_unimported() -> None:
    modules = imported_by("import aiomsal")
    assert "aiomsal._apps._confidential" in modules
    assert [name for name in LAZY if loaded(modules, name)] == []


def test_the_command_line_leaves_the_fakes_to_the_demo() -> None:
    modules = imported_by("import aiomsal._cli._commands")
    assert [name for name in LAZY if loaded(modules, name)] == []


@pytest.mark.parametrize(
    ("code", "needed"),
    [
        (
            "import asyncio\n"
            "from aiomsal import ClientCertificate\n"
            "from aiomsal.testing import generate_certificate\n"
            "c = generate_certificate()\n"
            "credential = ClientCertificate(c.private_key_pem, c.certificate_pem)\n"
            "fields = asyncio.run(credential.form_fields(\n"
            "    client_id='c', token_endpoint='https://login.example/t/token', now=0.0))\n"
            "assert fields['client_assertion'].count('.') == 2",
            ("cryptography", "jwt"),
        ),
        ("import aiomsal\naiomsal.RedisCacheStorage", ("redis",)),
        ("from aiomsal import FileCacheStorage", ("aiomsal._storage._file_storage",)),
        ("from aiomsal import TokenValidator", ("aiomsal._apps._token_validator",)),
        ("from aiomsal import ManagedIdentityClient", ("aiomsal._apps._managed_identity",)),
    ],
)
def test_the_first_call_that_needs_a_module_imports_it(code: str, needed: tuple[str, ...]) -> None:
    modules = imported_by(code)
    assert all(loaded(modules, name) for name in needed)
