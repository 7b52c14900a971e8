"""Run a :class:`FakeAuthority` in its own process.

``python -m aiomsal.testing serve [--port 0] [--tls] [--latency S]
[--token-lifetime S] [--refresh-in S] [--client ID[:SECRET] ...]
[--redirect-uri URI ...] [--user NAME[:PASSWORD] ...]`` serves until
interrupted (SIGINT or SIGTERM) and, once listening, prints one JSON line to
stdout: ``{"base_url": "...", "ca_file": "..." or null}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence

from ._fake_authority import FakeAuthority

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aiomsal.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a fake Entra ID until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    serve.add_argument("--tls", action="store_true", help="serve https with a throwaway CA")
    serve.add_argument("--latency", type=float, default=0.0, help="seconds added per token")
    serve.add_argument("--token-lifetime", type=int, default=3600, help="expires_in of tokens")
    serve.add_argument("--refresh-in", type=int, default=None, help="refresh_in of tokens")
    serve.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID[:SECRET]",
        help="register a client (repeatable); without a secret it is a public client",
    )
    serve.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        metavar="URI",
        help="a redirect URI of every --client (repeatable)",
    )
    serve.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME[:PASSWORD]",
        help="register a user in the tenant 'contoso' (repeatable)",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    authority = FakeAuthority(
        tls=args.tls,
        latency=args.latency,
        token_lifetime=args.token_lifetime,
        refresh_in=args.refresh_in,
        host=args.host,
        port=args.port,
    )
    for spec in args.client:
        client_id, _, secret = spec.partition(":")
        authority.add_client(client_id, secret or None, redirect_uris=args.redirect_uri)
    for spec in args.user:
        username, _, password = spec.partition(":")
        authority.add_user(username, password or None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    await authority.start()
    try:
        line = json.dumps({"base_url": authority.base_url, "ca_file": authority.ca_file})
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await authority.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
