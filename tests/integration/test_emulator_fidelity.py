"""Points of docs/protocol.md where the emulator once differed from a real Core."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio

from qsysd.emulator import EmulatorServer

WAIT = 5.0
TRANSPORTS = pytest.mark.parametrize("transport", ["tcp", "ws"])
Client = Callable[..., AbstractAsyncContextManager[Any]]
METADATA = {
    "Color": "",
    "Indeterminate": False,
    "Invisible": False,
    "Disabled": False,
    "Legend": "",
    "CssClass": "",
}


@TRANSPORTS
async def test_display_metadata_on_get_and_poll_but_not_on_get_controls(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            got = await c.result(
                "Component.Get", {"Name": "Lobby_Source", "Controls": [{"Name": "source"}]}
            )
            group = {"Name": "Lobby_Source", "Controls": [{"Name": "source"}]}
            await c.result("ChangeGroup.AddComponentControl", {"Id": "m", "Component": group})
            await c.result("ChangeGroup.AddControl", {"Id": "m", "Controls": ["MainMute"]})
            polled = (await c.result("ChangeGroup.Poll", {"Id": "m"}))["Changes"]
            described = await c.result("Component.GetControls", {"Name": "Lobby_Source"})
    [item] = got["Controls"]
    assert item.items() >= {**METADATA, "Choices": item["Choices"]}.items()
    assert isinstance(item["Choices"], list)
    for change in polled:
        assert change.items() >= METADATA.items()
    for control in described["Controls"]:
        assert not METADATA.keys() & control.keys()
        assert "Choices" not in control


async def test_lone_surrogate_goes_out_escaped_over_websocket_and_serving_goes_on(
    client: Client, emulator: EmulatorServer
) -> None:
    # A peer may send a lone surrogate as a JSON escape; echoing it raw over WebSocket used to
    # crash the emulator (trio-websocket cannot encode it), closing every client.
    request = (
        '{"jsonrpc":"2.0","method":"Component.Set","params":{"Name":"Lobby_Source",'
        '"Controls":[{"Name":"playlist","Value":"x\\ud800"}],"ResponseValues":true},"id":"u"}'
    )
    with trio.fail_after(WAIT):
        async with client(emulator, "tcp") as bystander, client(emulator, "ws") as c:
            await c.send_raw(request)
            reply = await c.response("u")
            assert reply.result[0]["String"] == "x\ud800"  # type: ignore[union-attr]
            assert await c.result("NoOp", {}) is True
            assert await bystander.result("NoOp", {}) is True
