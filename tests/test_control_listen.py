"""OSCQuery LISTEN: a real WebSocket client (aiohttp's) on the running control service's
OSCQuery port; what it is pushed is decoded with python-osc."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
import pytest
from pythonosc.osc_packet import OscPacket

from livevace.control.oscquery import OscQueryServer
from livevace.control.router import encode
from livevace.params import ParamStore
from polling import until
from test_control_support import oscsend, presets, running  # noqa: F401

TIMEOUT = 30.0


class Listener:
    """One WebSocket client of the node's OSCQuery server."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def command(self, command: str, path: str) -> None:
        await self.ws.send_str(json.dumps({"COMMAND": command, "DATA": path}))

    async def send(self, address: str, *args: Any) -> None:
        await self.ws.send_bytes(encode(address, list(args)))

    async def receive(self) -> list[tuple[str, list[Any]]]:
        """The messages of the next binary frame."""
        msg = await self.ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        return [(m.message.address, list(m.message.params)) for m in OscPacket(msg.data).messages]

    async def synced(self) -> None:
        """Round trip: once the node answers a query, it has handled all sent before
        (one socket, in order)."""
        await self.send("/livevace/dump")
        while not any(a == "/livevace/prompt" for a, _ in await self.receive()):
            pass


def listen(r, body) -> None:
    """Run `body(listener)` against the node's OSCQuery port."""
    host, port = r.control.oscquery.address

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"ws://{host}:{port}/") as ws:
                await body(Listener(ws))

    asyncio.run(main())


@pytest.fixture
def node(running):
    return running("--oscquery-port", "0")


def test_changes_from_osc_scenes_and_the_store_are_pushed(node):
    async def body(client: Listener) -> None:
        await client.command("LISTEN", "/livevace/control")
        await client.synced()
        oscsend(node.port, "/livevace/control", "s", "flow")  # liblo's oscsend over UDP
        assert await client.receive() == [("/livevace/control", ["flow"])]
        node.client.send("/livevace/scene", "ink_wash")  # a scene with control = "edges"
        assert await client.receive() == [("/livevace/control", ["edges"])]
        node.store.set("control", "pose")  # the node itself
        assert await client.receive() == [("/livevace/control", ["pose"])]

    listen(node, body)


def test_a_client_that_lags_gets_the_newest_values_in_order(node):
    async def body(client: Listener) -> None:
        await client.command("LISTEN", "/livevace/seed")
        await client.synced()
        await asyncio.to_thread(lambda: [node.store.set("seed", i) for i in range(1, 2001)])
        seen: list[int] = []
        while not seen or seen[-1] != 2000:
            seen += [args[0] for _, args in await client.receive()]
        assert seen == sorted(set(seen))  # coalesced maybe, never an older value after a newer

    listen(node, body)


def test_a_value_comes_again_after_another_and_each_press_of_a_trigger_comes(node):
    """A value the client already has is not sent twice, but one it had before another is,
    and a trigger is news at each press."""
    async def body(client: Listener) -> None:
        await client.command("LISTEN", "/livevace/seed")
        await client.command("LISTEN", "/livevace/reset_cache")
        await client.synced()
        for seed in (7, 8, 7):
            node.store.set("seed", seed)
            assert await client.receive() == [("/livevace/seed", [seed])]
        for _ in range(2):
            node.store.set("reset_cache", True)
            assert await client.receive() == [("/livevace/reset_cache", [True])]

    listen(node, body)


def test_ignore_stops_the_stream_and_bad_commands_are_ignored(node, caplog):
    async def body(client: Listener) -> None:
        await client.command("LISTEN", "/livevace/seed")
        await client.command("LISTEN", "/livevace/control")
        await client.ws.send_str("not json")
        await client.command("SHOUT", "/livevace/seed")
        await client.command("LISTEN", "/livevace/no_such_parameter")
        await client.command("IGNORE", "/livevace/seed")
        await client.synced()
        node.store.set("seed", 5)  # nobody listens to it any more
        node.store.set("control", "gray")
        assert await client.receive() == [("/livevace/control", ["gray"])]

    listen(node, body)
    assert "is not {\"COMMAND\": …" in caplog.text and "'SHOUT'" in caplog.text


def test_osc_over_the_socket_takes_the_osc_path_and_reaches_feedback(running):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
        target.bind(("127.0.0.1", 0))
        target.settimeout(TIMEOUT)
        r = running("--oscquery-port", "0", "--feedback", f"127.0.0.1:{target.getsockname()[1]}")

        async def body(client: Listener) -> None:
            await client.command("LISTEN", "/livevace/prompt")
            await client.send("/livevace/prompt", "a forest", 0.7, "fog", 0.3)
            got = await client.receive()
            assert got == [("/livevace/prompt", ["a forest :: 0.7 | fog :: 0.3"])]
            await client.send("/livevace/seed")  # a query: answered over the socket
            assert await client.receive() == [("/livevace/seed", [42])]

        listen(r, body)
        data, _ = target.recvfrom(65536)
    echoed = [(m.message.address, m.message.params) for m in OscPacket(data).messages]
    assert echoed == [("/livevace/prompt", ["a forest :: 0.7 | fog :: 0.3"])]


def test_the_allow_list_holds_for_the_socket_too(running, caplog):
    r = running("--oscquery-port", "0", "--osc-allow", "10.1.2.3")

    async def body(client: Listener) -> None:
        await client.send("/livevace/seed", 77)
        until(lambda: "OSC over WebSocket from 127.0.0.1 ignored" in caplog.text,
              "the refusal was never logged")

    listen(r, body)
    assert r.store.get("seed") == 42


def test_closing_the_server_closes_its_listeners():
    server = OscQueryServer(ParamStore(), "127.0.0.1", 0, 9000, advertise=False)
    host, port = server.address

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"ws://{host}:{port}/") as ws:
                await ws.send_str(json.dumps({"COMMAND": "LISTEN", "DATA": "/livevace/seed"}))
                await asyncio.to_thread(server.close)
                msg = await ws.receive(timeout=TIMEOUT)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg

    asyncio.run(main())


@pytest.mark.parametrize("origin, host, taken", [
    (None, None, True),  # an OSCQuery client
    ("http://127.0.0.1:{port}", None, True),  # the node's own page
    ("http://localhost:{port}", "localhost:{port}", True),
    ("https://evil.example", None, False),  # another site, through the VJ's browser
    ("http://rebound.example:{port}", "rebound.example:{port}", False),  # a name someone
])                                                                       # points at 127.0.0.1
def test_browsers_may_connect_from_the_nodes_own_page_only(node, origin, host, taken):
    address, port = node.control.oscquery.address
    headers = {k: v.format(port=port) for k, v in (("Origin", origin), ("Host", host)) if v}

    async def main() -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"ws://{address}:{port}/", headers=headers):
                    return 101
            except aiohttp.WSServerHandshakeError as err:
                return err.status

    assert asyncio.run(main()) == (101 if taken else 403)
