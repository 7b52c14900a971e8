from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import anyio
import pytest

from aiomsal._errors import MsalConfigurationError, MsalError
from aiomsal._transport._loopback import LoopbackRedirectListener

pytestmark = pytest.mark.anyio

CODE = "0.AAAA-the-authorization-code"


async def get(listener: LoopbackRedirectListener, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{listener.port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def test_returns_query_of_first_response() -> None:
    async with LoopbackRedirectListener() as listener:
        assert listener.redirect_uri == f"http://localhost:{listener.port}"
        async with anyio.create_task_group() as tg:
            results: list[dict[str, str]] = []

            async def wait() -> None:
                results.append(await listener.wait_for_response())

            tg.start_soon(wait)
            status, page = await get(listener, f"/?code={CODE}&state=st&session_state=x")
        assert results == [{"code": CODE, "state": "st", "session_state": "x"}]
        assert status == 200
        assert "Authentication complete. You can close this window." in page
        assert CODE not in page
        port = listener.port
    assert refuses_connections(port)


async def test_response_before_wait_is_kept() -> None:
    async with LoopbackRedirectListener() as listener:
        await get(listener, "/?code=c&state=s")
        with anyio.fail_after(5):
            assert await listener.wait_for_response(state="s") == {"code": "c", "state": "s"}


async def test_error_response_page_escapes_error() -> None:
    async with LoopbackRedirectListener() as listener:
        status, page = await get(listener, "/?error=%3Cscript%3Ex%3C/script%3E&state=s")
        assert status == 400
        assert "Authentication failed: &lt;script&gt;x&lt;/script&gt;" in page
        assert "<script>" not in page
        with anyio.fail_after(5):
            params = await listener.wait_for_response()
        assert params == {"error": "<script>x</script>", "state": "s"}


async def test_bare_root_request_is_a_failed_response() -> None:
    async with LoopbackRedirectListener() as listener:
        status, page = await get(listener, "/")
        assert status == 400
        assert "Authentication failed" in page
        with anyio.fail_after(5):
            assert await listener.wait_for_response() == {}


async def test_other_paths_are_ignored_unless_they_answer() -> None:
    async with LoopbackRedirectListener() as listener:
        assert (await get(listener, "/favicon.ico"))[0] == 404
        assert (await get(listener, "/favicon.ico?code=x"))[0] == 404
        assert (await get(listener, "/other?x=1"))[0] == 404
        status, _ = await get(listener, "/callback?code=c&state=s")
        assert status == 200
        with anyio.fail_after(5):
            assert await listener.wait_for_response() == {"code": "c", "state": "s"}


async def test_wrong_state_is_ignored_when_state_given() -> None:
    async with LoopbackRedirectListener() as listener:
        results: list[dict[str, str]] = []
        async with anyio.create_task_group() as tg:

            async def wait() -> None:
                results.append(await listener.wait_for_response(state="right"))

            tg.start_soon(wait)
            await anyio.sleep(0.01)
            status, page = await get(listener, "/?error=access_denied&state=wrong")
            assert status == 400
            assert "does not belong" in page
            assert results == []
            assert (await get(listener, "/?code=c&state=right"))[0] == 200
        assert results == [{"code": "c", "state": "right"}]


async def test_only_one_waiter() -> None:
    async with LoopbackRedirectListener() as listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.wait_for_response)
        await anyio.sleep(0.01)
        with pytest.raises(MsalError, match="already waiting"):
            await listener.wait_for_response()
        tg.cancel_scope.cancel()


async def test_given_port_and_port_in_use() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        with pytest.raises(MsalConfigurationError, match=str(busy)):
            async with LoopbackRedirectListener(port=busy):
                pass
    async with LoopbackRedirectListener(port=busy) as listener:
        assert listener.port == busy
        assert listener.redirect_uri == f"http://localhost:{busy}"


@pytest.mark.parametrize("port", [-1, 65536, True, "80"])
async def test_bad_port(port: object) -> None:
    with pytest.raises(MsalConfigurationError):
        LoopbackRedirectListener(port=port)  # type: ignore[arg-type]


async def test_not_open() -> None:
    listener = LoopbackRedirectListener()
    with pytest.raises(MsalError):
        _ = listener.redirect_uri
    with pytest.raises(MsalError):
        await listener.wait_for_response()


async def test_cancelled_wait_leaves_nothing_behind() -> None:
    before = asyncio.all_tasks()
    with anyio.move_on_after(0.05) as scope:
        async with LoopbackRedirectListener() as listener:
            port = listener.port
            await listener.wait_for_response()
    assert scope.cancelled_caught
    assert asyncio.all_tasks() <= before
    assert refuses_connections(port)


async def test_cancelled_while_a_browser_is_connected() -> None:
    before = asyncio.all_tasks()
    with socket.socket() as browser:
        with anyio.move_on_after(0.1):
            async with LoopbackRedirectListener() as listener:
                port = listener.port
                browser.connect(("127.0.0.1", port))  # connected, request not sent
                await listener.wait_for_response()
        assert refuses_connections(port)
    assert asyncio.all_tasks() <= before


async def test_query_values_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with LoopbackRedirectListener() as listener:
        await get(listener, f"/?code={CODE}&state=s")
        await listener.wait_for_response()
    assert CODE not in caplog.text
