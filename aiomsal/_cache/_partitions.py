"""Partition names: the unit in which a cache storage loads and saves entries.

Following Microsoft.Identity.Web: application tokens per tenant, user tokens
per account, on-behalf-of tokens per incoming assertion, so that one request
reads and writes one small partition, never the whole cache.
"""

from __future__ import annotations

from ._entries import AccessTokenKey, PartitionKey

__all__ = ["app_partition", "partition_of", "user_partition"]


def app_partition(client_id: str, environment: str, realm: str) -> str:
    return f"app/{client_id}/{environment}/{realm}"


def user_partition(partition: PartitionKey) -> str:
    """The partition of a user's (or an on-behalf-of assertion's) tokens."""
    if partition.user_assertion_hash:
        return f"obo/{partition.client_id}/{partition.environment}/{partition.user_assertion_hash}"
    return f"user/{partition.client_id}/{partition.environment}/{partition.home_account_id}"


def partition_of(key: AccessTokenKey) -> str:
    """The partition an access token belongs to."""
    if key.user_assertion_hash or key.home_account_id:
        return user_partition(key.partition)
    return app_partition(key.client_id, key.environment, key.realm)
