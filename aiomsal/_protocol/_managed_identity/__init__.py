"""Managed identity (sans-I/O): identities, source detection, requests and answers per source."""
