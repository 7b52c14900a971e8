"""The transport layer: the one aiohttp adapter, authority resolution and the loopback listener."""
