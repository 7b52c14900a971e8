from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp runs on asyncio only, and so does aiomsal."""
    return "asyncio"
