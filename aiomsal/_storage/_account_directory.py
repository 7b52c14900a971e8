"""The signed-in accounts of an application in a cache storage, so that a restarted
process lists them (``get_accounts``) before it has read any user's partition.

One partition per (client, environment) holds an MSAL document with only an
``Account`` section. A sign-in adds its account, ``remove_account`` takes it
out; both merge with what other processes stored. An unreadable value counts
as empty.
"""

from __future__ import annotations

import json
from typing import Any

from .._result import Account

__all__ = ["directory_partition", "read_accounts", "with_account", "without_account"]

_SECTION = "Account"


def directory_partition(client_id: str, environment: str) -> str:
    return f"accounts/{client_id}/{environment}"


def _key(account: Account) -> str:
    return "-".join((account.home_account_id, account.environment, account.realm)).lower()


def _entries(blob: bytes | None) -> dict[str, Any]:
    if not blob:
        return {}
    try:
        document = json.loads(blob)
    except (ValueError, UnicodeDecodeError):
        return {}
    section = document.get(_SECTION) if isinstance(document, dict) else None
    return dict(section) if isinstance(section, dict) else {}


def _dump(entries: dict[str, Any]) -> bytes | None:
    if not entries:
        return None
    return json.dumps({_SECTION: entries}, sort_keys=True).encode("utf-8")


def read_accounts(blob: bytes | None) -> list[Account]:
    """The accounts of a directory value; entries that are not MSAL accounts are skipped."""
    accounts = []
    for entry in _entries(blob).values():
        try:
            accounts.append(Account.from_dict(entry))
        except ValueError:
            continue
    return accounts


def with_account(current: bytes | None, account: Account) -> bytes | None:
    entries = _entries(current)
    entries[_key(account)] = account.to_dict()
    return _dump(entries)


def without_account(current: bytes | None, home_account_id: str) -> bytes | None:
    entries = {
        key: entry
        for key, entry in _entries(current).items()
        if not (isinstance(entry, dict) and entry.get("home_account_id") == home_account_id)
    }
    return _dump(entries)
