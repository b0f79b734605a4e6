"""Fault injection, idle timeout, redeploys and redundant pairs, over loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio
import trio_websocket

from qsysd.emulator import EmulatorPair, EmulatorServer
from qsysd.errors import InvalidFrame
from qsysd.qrc import ErrorResponse, Notification, Response

WAIT = 5.0
Client = Callable[..., AbstractAsyncContextManager[Any]]
Start = Callable[..., Awaitable[EmulatorServer]]
StartPair = Callable[..., Awaitable[EmulatorPair]]
TRANSPORTS = pytest.mark.parametrize("transport", ["tcp", "ws"])


@TRANSPORTS
async def test_idle_client_is_closed_after_the_timeout(
    client: Client, start_emulator: Start, transport: str
) -> None:
    emu = await start_emulator(idle_timeout=0.2)
    with trio.fail_after(WAIT):
        async with client(emu, transport) as c:
            await c.notification("EngineStatus")
            with pytest.raises(EOFError):
                await c.receive()
        await emu.wait_connections(0)


async def test_traffic_from_the_client_keeps_the_connection_open(
    client: Client, start_emulator: Start
) -> None:
    emu = await start_emulator(idle_timeout=0.3)
    with trio.fail_after(WAIT):
        async with client(emu) as c:
            for _ in range(6):  # 0.6 s in all, never 0.3 s silent
                assert await c.result("NoOp", {}) is True
                await trio.sleep(0.1)
            assert emu.connection_count == 1


async def test_pushes_do_not_count_as_client_traffic(client: Client, start_emulator: Start) -> None:
    emu = await start_emulator(idle_timeout=0.2)
    with trio.fail_after(WAIT):
        async with client(emu) as c:
            await c.result("ChangeGroup.AddControl", {"Id": "g", "Controls": ["MainGain"]})
            await c.result("ChangeGroup.AutoPoll", {"Id": "g", "Rate": 0.02})
            with pytest.raises(EOFError):
                while True:
                    await c.receive()


@TRANSPORTS
async def test_drop_connections_closes_every_client_and_their_groups(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as a, client(emulator, transport) as b:
            await a.result("ChangeGroup.AddControl", {"Id": "g", "Controls": ["MainGain"]})
            await b.result("NoOp", {})
            emulator.drop_connections()
            for c in (a, b):
                with pytest.raises(EOFError):
                    while True:
                        await c.receive()
        await emulator.wait_connections(0)
        assert emulator.statistics()["change_groups"] == 0
        async with client(emulator, transport) as c:
            assert await c.result("NoOp", {}) is True


@TRANSPORTS
async def test_an_offline_core_refuses_connects_until_it_is_back_with_its_values(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            await c.result("NoOp", {})
            emulator.set_value("Bar", "gain", -23)
            code = emulator.design_code
            emulator.offline()
            assert not emulator.online
            with pytest.raises(EOFError):
                while True:
                    await c.receive()
        await emulator.wait_connections(0)
        port = emulator.tcp_port if transport == "tcp" else emulator.ws_port
        assert port is not None
        with pytest.raises(OSError):
            await trio.open_tcp_stream(emulator.host, port)  # refused: nothing listens
        emulator.offline(False)  # listening again before it returns
        assert emulator.online
        async with client(emulator, transport) as c:
            got = await c.result("Component.Get", {"Name": "Bar", "Controls": [{"Name": "gain"}]})
            assert got["Controls"][0]["Value"] == -23
            assert (await c.result("StatusGet", {}))["DesignCode"] == code


async def test_limited_change_groups_answer_exhausted_past_the_limit(
    client: Client, emulator: EmulatorServer
) -> None:
    emulator.limit_change_groups(1)
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.result("ChangeGroup.AddControl", {"Id": "a", "Controls": ["MainGain"]})
            error = await c.error("ChangeGroup.AddControl", {"Id": "b", "Controls": ["MainGain"]})
            assert (error.code, error.message) == (5, "Change Groups exhausted")
            emulator.limit_change_groups()
            await c.result("ChangeGroup.AddControl", {"Id": "b", "Controls": ["MainGain"]})


async def test_stalled_core_keeps_the_socket_but_answers_nothing(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.notification("EngineStatus")
            emulator.stall()
            await c.send("NoOp", {})
            with trio.move_on_after(0.2) as silence:
                await c.receive()
            assert silence.cancelled_caught
            assert emulator.connection_count == 1
            emulator.stall(False)
            assert await c.result("NoOp", {}) is True  # the stalled request stays unanswered


async def test_reply_delay_answers_late_but_answers(
    client: Client, emulator: EmulatorServer
) -> None:
    emulator.set_reply_delay(0.15)
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            start = trio.current_time()
            assert await c.result("NoOp", {}) is True
            assert trio.current_time() - start >= 0.15
            emulator.set_reply_delay(0)
            assert await c.result("NoOp", {}) is True


async def test_garbage_is_an_invalid_frame_and_the_stream_recovers(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.notification("EngineStatus")
            emulator.send_garbage()
            with pytest.raises(InvalidFrame):
                await c.receive()
            assert await c.result("NoOp", {}) is True


async def test_half_frame_spoils_the_next_frame_only(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.notification("EngineStatus")
            emulator.send_half_frame()
            await c.send("NoOp", {}, id=1)
            with pytest.raises(InvalidFrame):
                await c.receive()  # half an EngineStatus glued to the NoOp answer
            assert await c.result("NoOp", {}) is True


async def test_split_frames_still_decode(client: Client, emulator: EmulatorServer) -> None:
    emulator.split_frames()
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            assert (await c.notification("EngineStatus")).params["State"] == "Active"
            assert len(await c.result("Component.GetComponents", {})) > 5


async def test_refused_logon(client: Client, start_emulator: Start) -> None:
    emu = await start_emulator(password="1234")
    emu.refuse_logon()
    with trio.fail_after(WAIT):
        async with client(emu) as c:
            error = await c.error("Logon", {"User": "u", "Password": "1234"})
            assert (error.code, error.message) == (10, "Logon required")
            emu.refuse_logon(False)
            assert await c.result("Logon", {"User": "u", "Password": "1234"}) is True


async def test_restart_drops_clients_and_reports_a_new_design_code(
    client: Client, emulator: EmulatorServer
) -> None:
    old = emulator.design_code
    emulator.set_value("Bar", "gain", -50)
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.result("ChangeGroup.AddControl", {"Id": "g", "Controls": ["MainGain"]})
            new = emulator.restart()
            with pytest.raises(EOFError):
                while True:
                    await c.receive()
        assert new != old
        async with client(emulator) as c:
            status = await c.notification("EngineStatus")
            assert status.params["DesignCode"] == new
            assert (await c.error("ChangeGroup.Poll", {"Id": "g"})).code == 6
    assert emulator.get_value("Bar", "gain") == -10.0  # design values again


async def test_status_change_pushes_engine_status(client: Client, emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.notification("EngineStatus")
            emulator.engine.update_status(status_code=1)
            note = await c.notification("EngineStatus")
    assert note.params["Status"] == {"Code": 1, "String": "Compromised"}


async def test_websocket_on_another_path_is_rejected(emulator: EmulatorServer) -> None:
    assert emulator.ws_port is not None
    rejected = pytest.RaisesExc(
        trio_websocket.ConnectionRejected, check=lambda exc: exc.status_code == 404
    )
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream("127.0.0.1", emulator.ws_port)
        async with stream:
            with pytest.RaisesGroup(rejected, flatten_subgroups=True):
                async with trio.open_nursery() as nursery:
                    await trio_websocket.wrap_client_stream(nursery, stream, "127.0.0.1", "/x")


# -- redundant pairs ------------------------------------------------------------------------------
async def test_pair_shares_design_code_and_standby_answers_32604(
    client: Client, start_pair: StartPair
) -> None:
    pair = await start_pair()
    with trio.fail_after(WAIT):
        async with client(pair.primary) as active, client(pair.backup) as standby:
            a = await active.notification("EngineStatus")
            s = await standby.notification("EngineStatus")
            assert (a.params["State"], s.params["State"]) == ("Active", "Standby")
            assert a.params["IsRedundant"] is s.params["IsRedundant"] is True
            assert a.params["DesignCode"] == s.params["DesignCode"]
            assert await standby.result("NoOp", {}) is True
            assert (await standby.result("StatusGet", 0))["State"] == "Standby"
            assert await standby.result("Logon", {"User": "", "Password": ""}) is True
            for method, params in (
                ("Control.Get", ["MainGain"]),
                ("ChangeGroup.Poll", {"Id": 1}),
                ("Component.GetComponents", {}),
            ):
                error = await standby.error(method, params)
                assert (error.code, error.message) == (-32604, "Core is on Standby")
            assert await active.result("Control.Get", ["MainGain"])


@TRANSPORTS
async def test_failover_flips_states_and_both_push_engine_status(
    client: Client, start_pair: StartPair, transport: str
) -> None:
    pair = await start_pair(ws_ports=(0, 0))
    with trio.fail_after(WAIT):
        async with client(pair.primary, transport) as p, client(pair.backup, transport) as b:
            await p.notification("EngineStatus")
            await b.notification("EngineStatus")
            await p.result("Control.Set", {"Name": "MainGain", "Value": -3})
            pair.failover()
            assert pair.active is pair.backup
            p_note = await p.notification("EngineStatus")
            b_note = await b.notification("EngineStatus")
            assert (p_note.params["State"], b_note.params["State"]) == ("Standby", "Active")
            assert p_note.params["IsRedundant"] and b_note.params["IsRedundant"]
            assert (await p.error("Control.Get", ["MainGain"])).code == -32604
            [gain] = await b.result("Control.Get", ["MainGain"])
            assert gain["Value"] == -3.0  # the pair keeps its state in sync


async def test_pair_restart_gives_both_the_same_new_code(start_pair: StartPair) -> None:
    pair = await start_pair()
    code = pair.restart()
    assert pair.primary.design_code == pair.backup.design_code == code


async def test_connect_response_order_is_status_first(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.send("NoOp", {}, id="x")
            first, second = await c.receive(), await c.receive()
    assert isinstance(first, Notification) and first.method == "EngineStatus"
    assert isinstance(second, Response | ErrorResponse) and second.id == "x"
