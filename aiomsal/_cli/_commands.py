"""The command line: ``python -m aiomsal demo`` and ``python -m aiomsal token``.

Key files are read while the arguments are checked, before the event loop
starts; a bad argument exits with status 2 and a one-line message. No secret,
key or (unless ``--show-token``) token is ever printed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from .._apps._confidential import ConfidentialClientApplication
from .._errors import MsalConfigurationError, MsalError
from .._protocol._authority import parse_authority
from .._protocol._credentials import ClientCertificate, ClientCredential, ClientSecret
from ._demo import DemoOptions, default_resources, default_tenants, run_demo

__all__ = ["main"]

_REAL_TASKS = 100
_LOCAL_TASKS = 10_000
_GRAPH = "https://graph.microsoft.com/.default"

#: The connection options: flag, metavar, environment fallback, help.
_CONNECTION = (
    ("--authority", "URL", "AIOMSAL_AUTHORITY", "https://login.microsoftonline.com/TENANT"),
    ("--client-id", "ID", "AIOMSAL_CLIENT_ID", "the application (client) id"),
    ("--client-secret", "SECRET", "AIOMSAL_CLIENT_SECRET", "a secret (prefer the variable)"),
    ("--certificate", "PEM", "AIOMSAL_CERTIFICATE", "certificate PEM file (may hold the key)"),
    ("--private-key", "PEM", "AIOMSAL_PRIVATE_KEY", "private key PEM file"),
    ("--pfx", "FILE", "AIOMSAL_PFX", "PKCS#12 file: key and certificate"),
    ("--passphrase", "TEXT", "AIOMSAL_PFX_PASSPHRASE", "of the PFX or the private key"),
)


class _UsageError(Exception):
    """A bad command line: reported by argparse with exit status 2."""


def _number(text: str, *, integer: bool = False, low: float = 0.0) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= low:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be at least {low:g}: {text!r}")
    return value


def _count(text: str) -> int:
    return int(_number(text, integer=True, low=1))


_seconds = _number


def _add_connection(parser: argparse.ArgumentParser, title: str) -> None:
    group = parser.add_argument_group(title)
    for flag, metavar, env, text in _CONNECTION:
        group.add_argument(flag, metavar=metavar, help=f"{text} [${env}]")
    group.add_argument(
        "--send-certificate-chain", action="store_true", help="send x5c (Subject Name/Issuer auth)"
    )
    group.add_argument(
        "--no-instance-discovery",
        dest="instance_discovery",
        action="store_false",
        help="skip Entra instance discovery",
    )
    group.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="S", help="seconds per request (10)"
    )


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="python -m aiomsal",
        description="aiomsal: asyncio token acquisition for Microsoft Entra ID.",
        epilog="Run 'python -m aiomsal COMMAND --help' for the options of a command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    formatter = argparse.RawDescriptionHelpFormatter
    demo = commands.add_parser(
        "demo",
        help="run concurrent tasks against one application and summarize",
        description=(
            "Start the embedded fake authority and run --tasks concurrent tasks, each making\n"
            "--calls-per-task acquire_token_for_client calls for a (tenant, resource) pair\n"
            "drawn at random, with ONE application object; then print what reached the\n"
            "authority, the cache hit ratio and call latencies. With --authority, the same\n"
            "load runs against a real tenant (100 tasks unless --tasks is given)."
        ),
        formatter_class=formatter,
    )
    add = demo.add_argument_group("load").add_argument
    add("--tasks", type=_count, metavar="N", help="concurrent tasks (10000; 100 with --authority)")
    add("--calls-per-task", type=_count, default=5, metavar="N", help="calls per task (5)")
    add("--tenants", type=_count, default=50, metavar="N", help="fake tenants (50)")
    add("--resources", type=_count, default=3, metavar="N", help="fake resources (3)")
    add("--tenant", action="append", help="instead of the fake tenants (repeatable)")
    add("--scope", action="append", help="instead of the fake resources (repeatable)")
    add("--seed", type=int, default=0, metavar="N", help="RNG seed of the key picks (0)")
    add("--latency", type=_seconds, default=0.02, metavar="S", help="fake's delay per token (0.02)")
    add("--quiet", action="store_true", help="no progress output on stderr")
    _add_connection(demo, "a real tenant instead of the fake (100 tasks by default)")

    token = commands.add_parser(
        "token",
        help="acquire one token and print a JSON summary (or the token)",
        description=(
            "Acquire one token with the client credentials grant and print a JSON summary\n"
            "WITHOUT the token; --show-token prints only the token, for\n"
            '  curl -H "Authorization: Bearer $(python -m aiomsal token ... --show-token)"'
        ),
        formatter_class=formatter,
    )
    token.add_argument("--scope", action="append", required=True, help="scope (repeatable)")
    token.add_argument("--tenant", help="a tenant overriding the authority's")
    token.add_argument("--show-token", action="store_true", help="print the raw token alone")
    _add_connection(token, "authority and credential")
    return parser, {"demo": demo, "token": token}


def _apply_environment(args: argparse.Namespace) -> None:
    """Fill the connection options not given on the command line from the environment."""
    for flag, _, env, _ in _CONNECTION:
        name = flag[2:].replace("-", "_")
        if getattr(args, name) is None:
            setattr(args, name, os.environ.get(env) or None)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _UsageError(f"cannot read the {what} file {path!r}: {exc.strerror}") from None


def _credential(args: argparse.Namespace) -> ClientCredential:
    """The credential the arguments name, its files read now (blocking, before the loop)."""
    secret, certificate, private_key = args.client_secret, args.certificate, args.private_key
    pfx, passphrase = args.pfx, args.passphrase
    options = {"a client secret": secret, "--certificate": certificate or private_key, "--pfx": pfx}
    given = [name for name, value in options.items() if value]
    if not given:
        raise _UsageError("a credential is needed: --client-secret, --certificate or --pfx")
    if len(given) > 1:
        raise _UsageError(f"give one credential, not {' and '.join(given)}")
    try:
        if secret:
            return ClientSecret(secret)
        chain = args.send_certificate_chain
        if pfx:
            return ClientCertificate.from_pkcs12(pfx, passphrase, send_certificate_chain=chain)
        if not certificate:
            raise _UsageError("--private-key needs --certificate")
        cert_pem = _read(certificate, "certificate")
        key_pem = _read(private_key, "private key") if private_key else cert_pem
        return ClientCertificate(
            key_pem, cert_pem, passphrase=passphrase, send_certificate_chain=chain
        )
    except MsalConfigurationError as exc:
        raise _UsageError(str(exc)) from None


def _connection(args: argparse.Namespace) -> tuple[str, str, ClientCredential] | None:
    authority, client_id = args.authority, args.client_id
    if authority is None:
        return None
    try:
        parse_authority(authority)
    except MsalConfigurationError as exc:
        raise _UsageError(str(exc)) from None
    if not client_id:
        raise _UsageError("--client-id (or AIOMSAL_CLIENT_ID) is needed with an authority")
    return authority, client_id, _credential(args)


def _demo_options(args: argparse.Namespace) -> DemoOptions:
    connection = _connection(args)
    real = connection is not None
    tenants: list[str | None] = list(args.tenant or ([] if real else default_tenants(args.tenants)))
    try:
        base = parse_authority(args.authority or "https://login.microsoftonline.com/common")
        for tenant in args.tenant or ():
            base.with_tenant(tenant)
    except MsalConfigurationError as exc:
        raise _UsageError(str(exc)) from None
    scopes = args.scope or ([_GRAPH] if real else default_resources(args.resources))
    tasks = args.tasks or (_REAL_TASKS if real else _LOCAL_TASKS)
    authority, client_id, credential = connection or (None, None, None)
    return DemoOptions(
        tasks=tasks,
        calls_per_task=args.calls_per_task,
        tenants=tenants or [None],
        scopes=scopes,
        seed=args.seed,
        latency=args.latency,
        timeout=args.timeout,
        progress=not args.quiet,
        authority=authority,
        client_id=client_id,
        credential=credential,
        instance_discovery=args.instance_discovery,
    )


async def _token(
    args: argparse.Namespace, authority: str, client_id: str, credential: ClientCredential
) -> int:
    async with ConfidentialClientApplication(
        client_id,
        credential,
        authority=authority,
        instance_discovery=args.instance_discovery,
        timeout=args.timeout,
    ) as app:
        result = await app.acquire_token_for_client(args.scope, tenant=args.tenant)
    if args.show_token:
        sys.stdout.write(result.access_token + "\n")
    else:
        summary = {
            "token_source": result.token_source,
            "token_type": result.token_type,
            "expires_on": result.expires_on,
            "scopes": list(result.scopes),
            "tenant_id": result.tenant_id,
            "correlation_id": result.correlation_id,
        }
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 for bad usage, 1 for a failure)."""
    parser, commands = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    command = commands[args.command]
    _apply_environment(args)
    job: Callable[[], Coroutine[Any, Any, int]]
    try:
        if args.command == "demo":
            job = functools.partial(run_demo, _demo_options(args))
        else:
            connection = _connection(args)
            if connection is None:
                raise _UsageError("--authority (or AIOMSAL_AUTHORITY) is needed")
            job = functools.partial(_token, args, *connection)
    except _UsageError as exc:
        command.error(str(exc))
    try:
        return asyncio.run(job())
    except MsalConfigurationError as exc:
        command.error(str(exc))
    except MsalError as exc:
        sys.stderr.write(f"aiomsal: {type(exc).__name__}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("aiomsal: interrupted\n")
        return 130
