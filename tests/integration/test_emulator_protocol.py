"""The emulated Core over real loopback sockets (QRC on TCP, QRWC on WebSocket)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio

from qsysd.emulator import EmulatorServer
from qsysd.qrc import ErrorResponse, Response

WAIT = 5.0

TRANSPORTS = pytest.mark.parametrize("transport", ["tcp", "ws"])
Start = Callable[..., Awaitable[EmulatorServer]]
Client = Callable[..., AbstractAsyncContextManager[Any]]


@TRANSPORTS
async def test_engine_status_is_pushed_on_connect_before_anything_is_sent(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            note = await c.receive()
    assert note.method == "EngineStatus"  # type: ignore[union-attr]
    assert note.params == {  # type: ignore[union-attr]
        "Platform": "Core 110f",
        "State": "Active",
        "DesignName": "Harbour Hotel",
        "DesignCode": emulator.design_code,
        "IsRedundant": False,
        "IsEmulator": True,
        "Status": {"Code": 0, "String": "OK"},
    }


@TRANSPORTS
async def test_noop_and_statusget_answer(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            assert await c.result("NoOp", {}) is True
            for params in (None, 0, {}):
                status = await c.result("StatusGet", params)
                assert status["State"] == "Active"
                assert status["DesignCode"] == emulator.design_code


@TRANSPORTS
@pytest.mark.parametrize("msg_id", ["crestron", "0b5f7c1e-8d1e-4c5b-9a53-3f2c6a0e9d11", 42, 7.5])
async def test_ids_are_echoed_unchanged(
    client: Client, emulator: EmulatorServer, transport: str, msg_id: Any
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            reply = await c.call("NoOp", {}, id=msg_id)
            error = await c.call("Nope", {}, id=msg_id)
    assert reply == Response(msg_id, True)
    assert isinstance(error, ErrorResponse)
    assert error.id == msg_id


async def test_sloppy_requests_are_served(client: Client, emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.send_raw(b'{"jsonrpc":2,"method":"NoOp","params":{},"id":9,"apiKey":"x"}\n\r\0')
            assert await c.response(9) == Response(9, True)


@TRANSPORTS
async def test_invalid_json_gets_parse_error_with_null_id_and_serving_goes_on(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    bad = "{this is not json" if transport == "ws" else b"{this is not json\0"
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            await c.notification("EngineStatus")
            await c.send_raw(bad)
            assert await c.receive() == ErrorResponse(None, -32700, "Parse error")
            assert await c.result("NoOp", {}) is True


async def test_non_utf8_and_non_request_frames_are_answered_and_serving_goes_on(
    client: Client,
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.notification("EngineStatus")
            await c.send_raw(b"\xff\xfe\0[1,2]\0")
            assert await c.receive() == ErrorResponse(None, -32700, "Parse error")
            assert await c.receive() == ErrorResponse(None, -32600, "Invalid request")
            assert await c.result("NoOp", {}) is True


async def test_oversize_frame_gets_parse_error_and_serving_goes_on(
    client: Client, start_emulator: Start
) -> None:
    emu = await start_emulator(max_frame_size=1024)
    with trio.fail_after(WAIT):
        async with client(emu) as c:
            await c.notification("EngineStatus")
            await c.send_raw(b'{"jsonrpc":"2.0","method":"NoOp","params":"' + b"x" * 5000 + b'"}\0')
            assert await c.receive() == ErrorResponse(None, -32700, "Parse error")
            assert await c.result("NoOp", {}) is True


@TRANSPORTS
async def test_unknown_method_is_32601(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            error = await c.error("Component.Explode", {})
    assert (error.code, error.message) == (-32601, "Method not found")


async def test_logon_required_until_logged_on(client: Client, start_emulator: Start) -> None:
    emu = await start_emulator(password="4321")
    with trio.fail_after(WAIT):
        async with client(emu) as c:
            assert (await c.notification("EngineStatus")).params["State"] == "Active"
            assert await c.result("NoOp", {}) is True
            assert (await c.result("StatusGet", 0))["State"] == "Active"
            for method, params in (("Component.GetComponents", {}), ("Control.Get", ["MainGain"])):
                error = await c.error(method, params)
                assert (error.code, error.message) == (10, "Logon required")
            wrong = await c.error("Logon", {"User": "admin", "Password": "0000"})
            assert (wrong.code, wrong.message) == (10, "Logon required")
            assert await c.result("Logon", {"User": "admin", "Password": "4321"}) is True
            assert await c.result("Control.Get", ["MainGain"])


async def test_logon_with_no_access_control_accepts_anything(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            assert await c.result("Logon", {"User": "who", "Password": "ever"}) is True


async def test_logon_checks_the_user_when_one_is_set(client: Client, start_emulator: Start) -> None:
    emu = await start_emulator(password="1", user="operator")
    with trio.fail_after(WAIT):
        async with client(emu) as c:
            assert (await c.error("Logon", {"User": "admin", "Password": "1"})).code == 10
            assert await c.result("Logon", {"User": "operator", "Password": "1"}) is True


@TRANSPORTS
async def test_get_components_lists_string_properties(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            components = await c.result("Component.GetComponents", {})
    lobby = next(comp for comp in components if comp["Name"] == "Lobby_BGM")
    assert lobby["ID"] == "Lobby_BGM"
    assert lobby["Type"] == "gain"
    assert lobby["Controls"] is None
    assert lobby["ControlSource"] == 2
    assert {"Name": "max_gain", "Value": "20", "PrettyName": "Max Gain"} in lobby["Properties"]
    assert all(isinstance(p["Value"], str) for comp in components for p in comp["Properties"])


async def test_get_controls_describes_ranges_and_booleans(
    client: Client, emulator: EmulatorServer
) -> None:
    emulator.set_value("Boardroom", "gain", 0)
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            result = await c.result("Component.GetControls", {"Name": "Boardroom"})
    assert result["Name"] == "Boardroom"
    gain, mute = result["Controls"][0], result["Controls"][1]
    assert gain == {
        "Name": "gain",
        "Type": "Float",
        "Value": 0.0,
        "ValueMin": -100.0,
        "ValueMax": 20.0,
        "StringMin": "-100dB",
        "StringMax": "20.0dB",
        "String": "0dB",
        "Position": gain["Position"],
        "Direction": "Read/Write",
    }
    assert round(gain["Position"], 4) == 0.8333
    assert mute == {
        "Name": "mute",
        "Type": "Boolean",
        "Value": False,
        "String": "unmuted",
        "Position": 0.0,
        "Direction": "Read/Write",
    }


async def test_component_set_and_get_with_core_strings(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            params = {
                "Name": "Bar",
                "Controls": [
                    {"Name": "gain", "Value": -42.1},
                    {"Name": "mute", "Value": True},
                    {"Name": "invert", "Position": 1.0},
                    {"Name": "bypass", "String": "yes"},
                ],
            }
            assert await c.result("Component.Set", params) is True
            names = [{"Name": n} for n in ("gain", "mute", "invert", "bypass")]
            got = await c.result("Component.Get", {"Name": "Bar", "Controls": names})
    assert got["Name"] == "Bar"
    compact = [(i["Name"], i["Value"], i["String"]) for i in got["Controls"]]
    assert compact == [
        ("gain", -42.09999847, "-42.1dB"),
        ("mute", 1.0, "muted"),
        ("invert", 1.0, "inverted"),
        ("bypass", 1.0, "yes"),
    ]
    assert "Component" not in got["Controls"][0]
    assert got["Controls"][0]["Disabled"] is False  # display metadata, as newer Cores send


@TRANSPORTS
async def test_component_set_with_response_values_returns_the_new_states(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    params = {
        "Name": "Lobby_BGM",
        "Controls": [{"Name": "gain", "Value": -10}],
        "ResponseValues": True,
    }
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            result = await c.result("Component.Set", params)
    assert result == [
        {
            "Component": "Lobby_BGM",
            "Name": "gain",
            "String": "-10.0dB",
            "Value": -10.0,
            "Position": 0.75,
        }
    ]


async def test_named_controls_get_and_set(client: Client, emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            got = await c.result("Control.Get", ["MainGain", "MainMute"])
            assert got == [
                {
                    "Name": "MainGain",
                    "Value": -12.0,
                    "String": "-12.0dB",
                    "Position": got[0]["Position"],
                },
                {"Name": "MainMute", "Value": 0, "String": "unmuted", "Position": 0.0},
            ]
            assert await c.result("Control.Set", {"Name": "MainMute", "Value": True}) == {
                "Name": "MainMute",
                "Value": 1,
                "String": "muted",
                "Position": 1.0,
            }
            state = await c.result("Control.Set", {"Name": "MainGain", "Position": 0.5})
            assert (state["Value"], state["String"]) == (-40.0, "-40.0dB")
    assert emulator.get_value(None, "MainMute") == 1.0


async def test_choice_controls_carry_their_choices(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            params = {"Name": "Lobby_Source", "Controls": [{"Name": "source", "Value": "Radio"}]}
            await c.result("Component.Set", params)
            got = await c.result(
                "Component.Get", {"Name": "Lobby_Source", "Controls": [{"Name": "source"}]}
            )
    [item] = got["Controls"]
    assert (item["Value"], item["String"]) == ("Radio", "Radio")
    assert item["Choices"] == ["Off", "Streaming", "Radio", "Lobby Mic"]


@TRANSPORTS
async def test_unknown_component_and_control_errors(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            cases = [
                (
                    "Component.GetControls",
                    {"Name": "Atlantis"},
                    7,
                    "Unknown component name 'Atlantis'",
                ),
                (
                    "Component.Get",
                    {"Name": "Atlantis", "Controls": []},
                    7,
                    "Unknown component name 'Atlantis'",
                ),
                (
                    "Component.Get",
                    {"Name": "Bar", "Controls": [{"Name": "volume"}]},
                    8,
                    "Unknown control 'volume' in component 'Bar'",
                ),
                (
                    "Component.Set",
                    {"Name": "Bar", "Controls": [{"Name": "volume", "Value": 1}]},
                    8,
                    "Unknown control 'volume' in component 'Bar'",
                ),
                ("Control.Get", ["NoSuchControl"], 8, "Unknown control 'NoSuchControl'"),
                (
                    "Control.Set",
                    {"Name": "NoSuchControl", "Value": 1},
                    8,
                    "Unknown control 'NoSuchControl'",
                ),
            ]
            for method, params, code, message in cases:
                error = await c.error(method, params)
                assert (error.code, error.message) == (code, message), method


async def test_component_set_with_one_bad_control_changes_nothing(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            params = {
                "Name": "Bar",
                "Controls": [{"Name": "gain", "Value": 5}, {"Name": "nope", "Value": 1}],
            }
            assert (await c.error("Component.Set", params)).code == 8
    assert emulator.get_value("Bar", "gain") == -10.0


async def test_writing_a_read_only_control_is_invalid_params(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            comp = await c.error(
                "Component.Set",
                {"Name": "Core_Status", "Controls": [{"Name": "temperature", "Value": 1}]},
            )
            named = await c.error("Control.Set", {"Name": "FireAlarmActive", "Value": True})
            status = await c.result(
                "Component.Get", {"Name": "Core_Status", "Controls": [{"Name": "status"}]}
            )
    assert (comp.code, comp.message) == (
        -32602,
        "Invalid params: control 'Core_Status.temperature' is Read Only",
    )
    assert (named.code, named.message) == (
        -32602,
        "Invalid params: control 'FireAlarmActive' is Read Only",
    )
    assert status["Controls"][0]["String"] == "OK"


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("Component.GetControls", [], "Invalid params: expected an object"),
        ("Component.GetControls", {}, "Invalid params: 'Name' must be a component name (a string)"),
        (
            "Component.Set",
            {"Name": "Bar", "Controls": "gain"},
            "Invalid params: 'Controls' must be a list of objects",
        ),
        (
            "Component.Set",
            {"Name": "Bar", "Controls": [{"Name": "gain"}]},
            "Invalid params: control 'Bar.gain' needs 'Value', 'Position' or 'String'",
        ),
        (
            "Component.Set",
            {"Name": "Bar", "Controls": [{"Name": "gain", "Value": "loud"}]},
            "Invalid params: control 'Bar.gain' needs a number",
        ),
        (
            "Control.Set",
            {"Name": "MainGain", "Value": 1, "Ramp": -1},
            "Invalid params: 'Ramp' must be a number of seconds >= 0",
        ),
    ],
)
async def test_malformed_params_are_32602(
    client: Client, emulator: EmulatorServer, method: str, params: Any, message: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            error = await c.error(method, params)
    assert (error.code, error.message) == (-32602, message)


async def test_ramp_is_visible_mid_ramp_and_lands_on_target(
    client: Client, emulator: EmulatorServer
) -> None:
    gain = {"Name": "Ballroom", "Controls": [{"Name": "gain"}]}
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            slow = {"Name": "Ballroom", "Controls": [{"Name": "gain", "Value": 10, "Ramp": 60}]}
            await c.result("Component.Set", slow)
            [mid] = (await c.result("Component.Get", gain))["Controls"]
            assert -6.0 < mid["Value"] < 10.0
            assert mid["String"] != "10.0dB"
            await c.result("ChangeGroup.AddComponentControl", {"Id": "r", "Component": gain})
            await c.result("ChangeGroup.AutoPoll", {"Id": "r", "Rate": 0.01})
            fast = {"Name": "Ballroom", "Controls": [{"Name": "gain", "Value": 10, "Ramp": 0.1}]}
            await c.result("Component.Set", fast)
            seen = []
            while not seen or seen[-1] != 10.0:
                note = await c.notification("ChangeGroup.Poll")
                seen += [item["Value"] for item in note.params["Changes"]]
            [end] = (await c.result("Component.Get", gain))["Controls"]
    assert (end["Value"], end["String"]) == (10.0, "10.0dB")
