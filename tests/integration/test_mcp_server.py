"""The MCP server in-process over the emulator, driven by the SDK's own Client, both eras."""

from __future__ import annotations

import json
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
import pytest
import trio
import trio.testing
from _stacks import NAMED, TEST_PRINCIPAL, core_config, running_link, tool_stack
from jsonschema import Draft202012Validator
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning

from qsysd.access import CallPath
from qsysd.api import QsysApi
from qsysd.config import PolicyConfig
from qsysd.emulator import EmulatorServer
from qsysd.plugins import Registry
from qsysd.policy import Policy
from qsysd.server import build_mcp_server
from qsysd.state import ControlRef, StateStore

WAIT = 10.0
MODES = ["legacy", "auto"]  # the initialize handshake (2025-11-25) and 2026-07-28
StartEmulator = Callable[..., Awaitable[EmulatorServer]]


async def call(client: Client, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    return await client.call_tool(name, arguments)


def data(result: types.CallToolResult) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


def error_text(result: types.CallToolResult) -> str:
    assert result.is_error
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    assert "Error executing tool" not in block.text
    return block.text


@pytest.mark.parametrize("mode", MODES)
async def test_tools_are_listed_with_valid_schemas_in_both_eras(
    emulator: EmulatorServer, mode: str
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server, mode=mode) as client:
            assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
            listed = await client.list_tools()
            names = {t.name for t in listed.tools}
            assert {"qsys_get", "qsys_set", "qsys_find_controls", "qsys_summary"} <= names
            for tool in listed.tools:
                Draft202012Validator.check_schema(tool.input_schema)
                assert tool.output_schema is not None and tool.description
                assert tool.annotations is not None
            qset = next(t for t in listed.tools if t.name == "qsys_set")
            assert qset.annotations is not None and qset.annotations.read_only_hint is False


@pytest.mark.parametrize("mode", MODES)
async def test_read_find_and_summary_answer_from_the_live_design(
    emulator: EmulatorServer, mode: str
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server, mode=mode) as client:
            found = data(await call(client, "qsys_find_controls", {"query": "lobby music volume"}))
            assert found["matches"][0]["control"] == "Lobby_BGM.gain"
            got = data(await call(client, "qsys_get", {"controls": ["Lobby_BGM.gain", "MainGain"]}))
            assert [v["string"] for v in got["values"]] == ["-12.0dB", "-12.0dB"]
            fresh = data(await call(client, "qsys_get", {"controls": ["Bar.gain"], "fresh": True}))
            assert fresh["values"][0]["source"] == "core"
            summary = data(await call(client, "qsys_summary", {}))
            assert summary["cores"][0]["connected"] is True
            assert any(z["name"] == "Lobby_BGM" for z in summary["zones"])
            status = data(await call(client, "qsys_status", {}))
            assert status["cores"][0]["state"] == "Active"


async def test_unknown_control_error_names_the_closest_ones(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            result = data(await call(client, "qsys_get", {"controls": ["Lobby_BGN.gain"]}))
            assert "Lobby_BGM" in result["values"][0]["error"]
            text = error_text(await call(client, "qsys_list_controls", {"component": "Resturant"}))
            assert "Restaurant" in text


@pytest.mark.parametrize("mode", MODES)
async def test_write_with_ramp_moves_the_value_on_the_emulator(
    emulator: EmulatorServer, mode: str
) -> None:
    ref = ControlRef("main", "Lobby_BGM", "gain")
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, api, _), Client(server, mode=mode) as client:
            seen: list[float] = []
            async with api.watch([ref]) as watcher:
                change = {"control": "Lobby_BGM.gain", "value": -18, "ramp": 0.5}
                result = data(await call(client, "qsys_set", {"changes": [change]}))
                assert result["results"][0]["ok"] is True
                assert result["results"][0]["before"] == "-12.0dB"
                assert (result["results"][0]["ramp_s"], result["results"][0]["target"]) == (
                    0.5,
                    -18,
                )
                async for batch in watcher:
                    seen += [float(v.value) for v in batch if isinstance(v.value, float)]
                    if seen and seen[-1] == -18.0:
                        break
            assert any(-18.0 < v < -12.0 for v in seen), seen
            assert emulator.get_value("Lobby_BGM", "gain") == -18.0


async def test_write_reports_the_cores_own_string(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            changes = [
                {"control": "Lobby_BGM.mute", "value": True},
                {"control": "MainGain", "value": -10},
                {"control": "Lobby_BGM.nope", "value": 1},
            ]
            result = data(await call(client, "qsys_set", {"changes": changes}))
            mute, main, nope = result["results"]
            assert (mute["ok"], mute["string"]) == (True, "muted")
            assert (main["ok"], main["string"]) == (True, "-10.0dB")
            assert nope["ok"] is False and "nope" in nope["error"]
            assert emulator.get_value("Lobby_BGM", "mute") in (1, True)


async def test_policy_rejections_name_the_rule(emulator: EmulatorServer) -> None:
    policy = PolicyConfig(protected=["Core_Status.*", "Ballroom.*"], max_gain_step_db=6.0)
    with trio.fail_after(WAIT):
        async with tool_stack(emulator, policy) as (server, _, _), Client(server) as client:
            step = {"changes": [{"control": "Lobby_BGM.gain", "value": -2}]}  # +10 dB
            assert "'max_step'" in error_text(await call(client, "qsys_set", step))
            protected = {"changes": [{"control": "Ballroom.mute", "value": True}]}
            assert "'protected'" in error_text(await call(client, "qsys_set", protected))
            loud = {"changes": [{"control": "Lobby_BGM.gain", "value": 6, "ramp": 1}]}
            assert "'max_gain'" in error_text(
                await call(client, "qsys_set", loud | {"confirm": True})
            )
            confirmed = await call(client, "qsys_set", step | {"confirm": True})
            assert data(confirmed)["results"][0]["string"] == "-2.0dB"
            assert emulator.get_value("Ballroom", "mute") in (0, False)


async def test_read_only_mode_refuses_writes_and_dry_run_writes_nothing(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            dry = {"changes": [{"control": "Bar.gain", "value": -12}], "dry_run": True}
            result = data(await call(client, "qsys_set", dry))
            assert result["dry_run"] is True and result["results"][0]["before"] == "-10.0dB"
            assert emulator.get_value("Bar", "gain") == -10.0
        async with (
            tool_stack(emulator, PolicyConfig(read_only=True)) as (server, _, _),
            Client(server) as client,
        ):
            write = {"changes": [{"control": "Bar.gain", "value": -12}]}
            text = error_text(await call(client, "qsys_set", write))
            assert "'read_only'" in text
            snap = await call(client, "qsys_snapshot_load", {"bank": "Scenes", "number": 2})
            assert "'read_only'" in error_text(snap)


async def test_snapshot_load_and_mixer_reach_the_core(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            snap = data(await call(client, "qsys_snapshot_load", {"bank": "Scenes", "number": 2}))
            assert "acknowledged Snapshot.Load" in snap["message"]
            assert emulator.get_value("Lobby_BGM", "gain") == -20.0
            mixer = {"mixer": "Ballroom_Mics", "target": "crosspoint", "inputs": "1-2",
                     "outputs": "3", "gain": -6, "confirm": True}  # fmt: skip
            result = data(await call(client, "qsys_mixer_set", mixer))
            assert result["methods"] == ["Mixer.SetCrossPointGain"]
            assert [r["control"] for r in result["results"]] == [
                "Ballroom_Mics.input.1.output.3.gain",
                "Ballroom_Mics.input.2.output.3.gain",
            ]
            assert {r["string"] for r in result["results"]} == {"-6.0dB"}
            assert emulator.get_value("Ballroom_Mics", "input.2.output.3.gain") == -6.0
            bad = dict(mixer, inputs="1-12")
            assert "out of range 1-8" in error_text(await call(client, "qsys_mixer_set", bad))


async def test_history_lists_audited_writes_with_the_principal(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            await call(client, "qsys_set", {"changes": [{"control": "Bar.gain", "value": -12}]})
            await call(client, "qsys_set", {"changes": [{"control": "Bar.gain", "value": 5}]})
            history = data(await call(client, "qsys_history", {"control": "Bar.gain"}))
            refused, done = history["entries"]
            assert (done["principal"], done["before"], done["after"], done["outcome"]) == (
                "test", "-10.0dB", "-12.0dB", "ok",
            )  # fmt: skip
            assert refused["outcome"] == "refused" and "max_gain" in refused["error"]


async def test_core_down_mid_call_gives_a_clear_error(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with (
            tool_stack(emulator, request_timeout=0.3) as (server, _, _),
            Client(server) as client,
        ):
            emulator.stall()
            result = await call(client, "qsys_set", {"changes": [{"control": "Bar.gain",
                                                                  "value": -12}]})  # fmt: skip
            text = error_text(result)
            assert "did not answer Component.Set within" in text and "may or may not" in text
            emulator.stall(False)
            emulator.drop_connections()
            emulator.refuse_logon()
            result = await call(client, "qsys_get", {"controls": ["Bar.gain"], "fresh": True})
            error = data(result)["values"][0]["error"]
            # Closed under the request, or already known to be down: either way, named.
            assert '"main"' in error and "retry later" in error


async def test_prompts_are_listed_and_rendered(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            assert {"room_control_assistant", "level_audit", "troubleshoot_silent_room"} <= prompts
            got = await client.get_prompt("troubleshoot_silent_room", {"room": "Bar"})
            content = got.messages[0].content
            assert isinstance(content, types.TextContent) and "Bar" in content.text


@pytest.mark.parametrize("mode", MODES)
async def test_resources_read_component_controls(emulator: EmulatorServer, mode: str) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server, mode=mode) as client:
            listed = await client.list_resources()
            uris = {str(r.uri) for r in listed.resources}
            assert "qsys://cores" in uris and "qsys://core/main/components" in uris
            read = await client.read_resource("qsys://core/main/component/Lobby_BGM/controls")
            block = read.contents[0]
            assert isinstance(block, types.TextResourceContents)
            controls = {c["name"]: c for c in json.loads(block.text)["controls"]}
            assert controls["gain"]["string"] == "-12.0dB"


async def test_legacy_subscription_is_notified_when_a_value_changes(
    emulator: EmulatorServer,
) -> None:
    uri = "qsys://core/main/component/Bar/controls"
    updated = trio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification) and message.params.uri == uri:
            updated.set()

    with trio.fail_after(WAIT):
        async with (
            tool_stack(emulator) as (server, _, _),
            Client(server, mode="legacy", message_handler=on_message) as client,
        ):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await client.subscribe_resource(uri)
            emulator.set_value("Bar", "gain", -30.0)
            await updated.wait()


async def test_modern_listen_stream_is_notified_when_a_value_changes(
    emulator: EmulatorServer,
) -> None:
    uri = "qsys://core/main/component/Bar/controls"
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            assert client.protocol_version == "2026-07-28"
            async with client.listen(resource_subscriptions=[uri]) as subscription:
                emulator.set_value("Bar", "gain", -31.0)
                async for event in subscription:
                    if getattr(event, "uri", None) == uri:
                        break


async def test_resources_watch_the_store_only_while_anyone_subscribes(
    emulator: EmulatorServer,
) -> None:
    uri = "qsys://core/main/component/Bar/controls"
    updated = trio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification) and message.params.uri == uri:
            updated.set()

    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator), store, named_controls=NAMED) as link:
            await link.wait_connected()
            api = QsysApi({"main": link}, store, Policy(PolicyConfig()))
            server = build_mcp_server(
                CallPath(api, Registry(entry_points=False)), principal=TEST_PRINCIPAL
            )
            async with (
                Client(server, mode="legacy", message_handler=on_message) as client,
                store.watch([ControlRef("main", "Bar", "gain")]) as ours,
            ):

                async def change(value: float) -> None:
                    emulator.set_value("Bar", "gain", value)
                    await ours.receive()  # in the store, offered to every watcher
                    await trio.testing.wait_all_tasks_blocked()

                await change(-30.0)
                assert store.statistics().watchers == 1  # ours: no one subscribes
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await client.subscribe_resource(uri)
                    assert store.statistics().watchers == 2
                    await change(-31.0)
                    await updated.wait()
                    await client.unsubscribe_resource(uri)
                await change(-32.0)  # the first change after the last subscriber ends the watch
                assert store.statistics().watchers == 1
                async with (
                    Client(server) as modern,  # 2026-07-28: a listen stream
                    modern.listen(resource_subscriptions=[uri]) as subscription,
                ):
                    assert store.statistics().watchers == 2
                    emulator.set_value("Bar", "gain", -33.0)
                    async for event in subscription:
                        if getattr(event, "uri", None) == uri:
                            break


async def test_tool_call_log_lines_carry_the_request_id(emulator: EmulatorServer) -> None:
    import io

    from qsysd.logs import configure_logging

    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    try:
        with trio.fail_after(WAIT):
            async with tool_stack(emulator) as (server, _, _), Client(server) as client:
                await call(client, "qsys_get", {"controls": ["Bar.gain"]})
    finally:
        configure_logging("debug", "console")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    (called,) = [r for r in records if r["event"] == "tool.called"]
    assert called["tool"] == "qsys_get" and called["request_id"] not in ("", "None")


async def test_history_pages_by_component_and_time_range(emulator: EmulatorServer) -> None:
    writes = [("Bar.gain", -12), ("Restaurant.gain", -20), ("Bar.mute", True), ("Bar.gain", -11)]
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            for control, value in writes:
                await call(client, "qsys_set", {"changes": [{"control": control, "value": value}]})
            first = data(await call(client, "qsys_history", {"component": "Bar", "limit": 2}))
            assert [e["control"] for e in first["entries"]] == ["Bar.gain", "Bar.mute"]
            assert first["next_offset"] == 2
            query = {"component": "Bar", "limit": 2, "offset": 2}
            second = data(await call(client, "qsys_history", query))
            assert [(e["control"], e["after"]) for e in second["entries"]] == [
                ("Bar.gain", "-12.0dB")
            ]
            assert second["next_offset"] is None
            future = {"since": "2999-01-01T00:00:00Z"}
            assert data(await call(client, "qsys_history", future))["entries"] == []
            past = {"until": "2000-01-01T00:00:00+00:00"}
            assert data(await call(client, "qsys_history", past))["entries"] == []
            everything = data(await call(client, "qsys_history", {"until": "2999-01-01"}))
            assert len(everything["entries"]) == 4
            bad = await call(client, "qsys_history", {"since": "yesterday"})
            assert "since: 'yesterday' is not an ISO 8601 time" in error_text(bad)
            unknown = await call(client, "qsys_history", {"component": "Baar"})
            assert "Bar" in error_text(unknown)
