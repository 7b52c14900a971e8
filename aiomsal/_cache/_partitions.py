"""Partition names: the unit in which a cache storage loads and saves entries.

Application tokens are stored one partition per token (client, environment,
realm and scopes), so that writers of different tokens never contend for one
document; user tokens one per account, on-behalf-of tokens one per incoming
assertion (after Microsoft.Identity.Web), so that one request reads and
writes one small partition, never the whole cache.

A name is ``kind/`` followed by its components, each percent-encoded
(``urllib.parse.quote`` with nothing safe but letters, digits and ``_.-~``),
joined with ``/``: a generic OIDC environment (an issuer URL) or a scope URL
can never be read back as another partition's components. Entra host names,
client ids and account ids need no encoding, so their names read as before.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote, unquote

from .._errors import MsalConfigurationError
from ._entries import AccessTokenKey, PartitionKey

__all__ = [
    "PartitionName",
    "app_partition",
    "parse_partition",
    "partition_of",
    "user_partition",
    "user_partition_prefix",
]

_KINDS = {"app": 4, "user": 3, "obo": 3}


class PartitionName(NamedTuple):
    """A parsed partition name: ``kind`` and its components."""

    kind: str
    client_id: str
    environment: str
    #: app: the realm; user: the home account id; obo: the assertion hash.
    owner: str
    #: app: the token's target; otherwise "".
    target: str = ""


def _name(kind: str, *parts: str) -> str:
    return "/".join((kind, *(quote(part, safe="") for part in parts)))


def app_partition(key: AccessTokenKey) -> str:
    """The partition of one application token (one per client, environment, realm, scopes)."""
    return _name("app", key.client_id, key.environment, key.realm, key.target)


def user_partition(partition: PartitionKey) -> str:
    """The partition of a user's (or an on-behalf-of assertion's) tokens."""
    if partition.user_assertion_hash:
        return _name(
            "obo", partition.client_id, partition.environment, partition.user_assertion_hash
        )
    return _name("user", partition.client_id, partition.environment, partition.home_account_id)


def user_partition_prefix(client_id: str) -> str:
    """What the names of every user partition of ``client_id`` start with."""
    return _name("user", client_id) + "/"


def partition_of(key: AccessTokenKey) -> str:
    """The partition an access token belongs to."""
    if key.user_assertion_hash or key.home_account_id:
        return user_partition(key.partition)
    return app_partition(key)


def parse_partition(name: str) -> PartitionName:
    """The components of a partition name; raises :class:`MsalConfigurationError`."""
    kind, _, rest = name.partition("/")
    parts = [unquote(part, errors="strict") if "%" in part else part for part in rest.split("/")]
    expected = _KINDS.get(kind)
    if expected is None or len(parts) != expected or not parts[0] or not parts[1]:
        raise MsalConfigurationError("that is not a token cache partition name")
    if kind != "app" and not parts[2]:
        raise MsalConfigurationError("that is not a token cache partition name")
    return PartitionName(kind, *parts)
