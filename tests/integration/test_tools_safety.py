"""The write path's safety and the agent-facing behaviour, on the real stack over the emulator.

Emulator over loopback + StateStore + CoreLink + QsysApi + the MCP server, driven by the SDK's
own in-process Client: what an agent sends is what these tests send.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import attrs
import mcp_types as types
import pytest
import trio
from _stacks import tool_stack
from mcp import Client

from qsysd.api import CoreLinkLike
from qsysd.config import PolicyConfig
from qsysd.core import CoreCommands, CoreLink
from qsysd.emulator import EmulatorServer, generate_design
from qsysd.errors import RequestTimeout, ToolInputError, describe
from qsysd.plugins import Registry, ToolContext

WAIT = 10.0
StartEmulator = Callable[..., Any]


@attrs.define
class FailingMethod(CoreCommands):
    """A CoreLink whose requests of one method time out: a Core that went quiet mid-call."""

    link: CoreLink
    method: str

    @property
    def name(self) -> str:
        return self.link.name

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- CoreLink's per-request deadline
    ) -> Any:
        if method == self.method:
            raise RequestTimeout(f'Core "main" did not answer {method} within 1 s')
        return await self.link.request(method, params, timeout=timeout)

    def status(self) -> Any:
        return self.link.status()


@attrs.define
class MarkingCore(CoreCommands):
    """A CoreLink recording what it sends, whose Core marks the strings a Set echoes.

    The mark tells a string the Core echoed from one read back afterwards.
    """

    link: CoreLink
    sent: list[tuple[str, Any]] = attrs.Factory(list)

    @property
    def name(self) -> str:
        return self.link.name

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- CoreLink's per-request deadline
    ) -> Any:
        self.sent.append((method, params))
        reply = await self.link.request(method, params, timeout=timeout)
        if method == "Component.Set" and isinstance(reply, list):
            reply = [{**item, "String": item["String"] + " (echo)"} for item in reply]
        return reply

    def status(self) -> Any:
        return self.link.status()


def data(result: types.CallToolResult) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


def error_text(result: types.CallToolResult) -> str:
    assert result.is_error, result.structured_content
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    assert "Error executing tool" not in block.text and "Traceback" not in block.text
    return block.text


def sets_sent(link: CoreLink) -> int:
    """How many write requests the link has sent to the Core, whatever their outcome."""
    return sum(
        n
        for (method, _), n in link.statistics().requests.items()
        if method.endswith(".Set") or method.startswith(("Mixer.", "Snapshot."))
    )


async def qsys_set(client: Client, *changes: dict[str, Any], **options: Any) -> Any:
    return await client.call_tool("qsys_set", {"changes": list(changes), **options})


# gains by position, string, name --------------------------------------------------------------


async def test_named_gain_by_position_cannot_get_around_max_gain(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, link), Client(server) as client:
            before = sets_sent(link)
            text = error_text(await qsys_set(client, {"control": "MainGain", "position": 1.0}))
            assert "'max_gain'" in text and "MainGain" in text
            assert sets_sent(link) == before
            assert emulator.get_value(None, "MainGain") == -12.0


async def test_gain_string_the_core_may_read_otherwise_is_refused(
    emulator: EmulatorServer,
) -> None:
    policy = PolicyConfig(max_gain_db=12.0, max_gain_step_db=None)
    with trio.fail_after(WAIT):
        async with tool_stack(emulator, policy) as (server, _, _), Client(server) as client:
            for text in ("1_0dB", "loud", "+inf"):
                refused = error_text(
                    await qsys_set(client, {"control": "Lobby_BGM.gain", "string": text})
                )
                assert "'max_gain'" in refused and "send the value as a number" in refused
            assert emulator.get_value("Lobby_BGM", "gain") == -12.0


async def test_gain_by_position_is_sent_as_the_checked_db_value(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            # -100 + 0.75 * 120 = -10 dB, 2 dB from -12: within every limit.
            result = data(await qsys_set(client, {"control": "Lobby_BGM.gain", "position": 0.75}))
            assert result["results"][0]["string"] == "-10.0dB"
            by_string = {"control": "Bar.gain", "string": "-14 dB"}
            assert data(await qsys_set(client, by_string))["results"][0]["string"] == "-14.0dB"
            assert emulator.get_value("Bar", "gain") == -14.0


async def test_a_write_reports_the_string_the_core_echoed_in_one_round_trip(
    emulator: EmulatorServer,
) -> None:
    marking: list[MarkingCore] = []

    def wrap(link: CoreLink) -> CoreLinkLike:
        marking.append(MarkingCore(link))
        return marking[0]

    with trio.fail_after(WAIT):
        async with tool_stack(emulator, wrap=wrap) as (server, _, _), Client(server) as client:
            result = data(await qsys_set(client, {"control": "Lobby_BGM.gain", "value": -10}))
    assert result["results"][0]["string"] == "-10.0dB (echo)"
    [(method, params)] = marking[0].sent  # no read-back after the Set
    assert method == "Component.Set" and params["ResponseValues"] is True
    assert emulator.get_value("Lobby_BGM", "gain") == -10.0


@pytest.mark.parametrize(
    ("control", "value", "rule"),
    [
        ("Boardroom_EQ.band.1.gain", 12, "'max_gain'"),  # an EQ boost is a gain in dB
        ("Ballroom_Mics.input.3.gain", 4, "'max_gain'"),
        ("Ballroom_Mics.input.1.output.2.gain", -6, "'max_step'"),  # from -100 dB
        ("Lobby_BGM.gain", True, "'type'"),
        ("Lobby_BGM.gain", "+10dB", "'type'"),
        ("BGM_Router.select.1", 2.5, "'type'"),
        ("Lobby_Source.source", 5, "'type'"),
        ("Lobby_BGM.mute", "maybe", "'type'"),
    ],
)
async def test_writes_the_policy_must_refuse_never_reach_the_core(
    emulator: EmulatorServer, control: str, value: Any, rule: str
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, link), Client(server) as client:
            before = sets_sent(link)
            text = error_text(await qsys_set(client, {"control": control, "value": value}))
            assert rule in text and control in text
            assert sets_sent(link) == before


async def test_read_only_control_is_refused_naming_its_direction(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            text = error_text(
                await qsys_set(client, {"control": "Lobby_Meter.meter.1", "value": 0})
            )
            assert "'direction'" in text and "'Read Only'" in text


async def test_protected_glob_protects_whatever_the_case(emulator: EmulatorServer) -> None:
    policy = PolicyConfig(protected=["ballroom.*", "lobby_bgm.MUTE"])
    with trio.fail_after(WAIT):
        async with tool_stack(emulator, policy) as (server, _, _), Client(server) as client:
            for control in ("Ballroom.gain", "Lobby_BGM.mute"):
                text = error_text(await qsys_set(client, {"control": control, "value": -8}))
                assert "'protected'" in text
            assert emulator.get_value("Lobby_BGM", "mute") in (0, False)


async def test_one_control_twice_in_one_call_is_refused_before_anything_is_sent(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, link), Client(server) as client:
            before = sets_sent(link)
            text = error_text(
                await qsys_set(
                    client,
                    {"control": "Lobby_BGM.mute", "value": True},
                    {"control": "Lobby_BGM.gain", "value": -8},
                    {"control": "Lobby_BGM.gain", "value": -14},
                )
            )
            assert "changes[1]" in text and "changes[2]" in text and "once" in text
            assert sets_sent(link) == before
            assert emulator.get_value("Lobby_BGM", "mute") in (0, False)


async def test_partial_failure_reports_each_control_with_the_cores_strings(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            result = data(
                await qsys_set(
                    client,
                    {"control": "Bar.gain", "value": -13},
                    {"control": "Bar.gain_typo", "value": -13},
                    {"control": "Lobby_BGM.gain", "value": 6},
                    {"control": "MainMute", "value": True},
                )
            )
            ok, unknown, refused, named = result["results"]
            assert (ok["ok"], ok["before"], ok["string"]) == (True, "-10.0dB", "-13.0dB")
            assert not unknown["ok"] and "gain_typo" in unknown["error"]
            assert (refused["ok"], refused["rule"]) == (False, "max_gain")
            assert (named["ok"], named["string"]) == (True, "muted")


# ramps, dry runs, timeouts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ramp", "message"),
    [(-1, "changes[0].ramp: -1 is out of range"), (1e9, "changes[0].ramp: 1000000000.0")],
)
async def test_bad_ramps_are_refused_naming_the_field(
    emulator: EmulatorServer, ramp: float, message: str
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            change = {"control": "Bar.gain", "value": -12, "ramp": ramp}
            assert message in error_text(await qsys_set(client, change))


async def test_nan_is_refused_by_the_registry_naming_the_field(emulator: EmulatorServer) -> None:
    # The SDK's client turns NaN into null; a raw JSON-RPC peer can send NaN itself.
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (_, api, link):
            registry = Registry(entry_points=False)
            before = sets_sent(link)
            for arguments in (
                {"changes": [{"control": "Bar.gain", "value": math.nan}]},
                {"changes": [{"control": "Bar.gain", "value": -12, "ramp": math.inf}]},
            ):
                with pytest.raises(ToolInputError) as caught:
                    await registry.call_tool("qsys_set", arguments, ToolContext(api, "t"))
                message = describe(caught.value, tool="qsys_set").detail
                assert "changes[0]." in message and "finite number" in message
            with pytest.raises(ToolInputError, match="ramp"):
                await api.mixer_set(
                    "Ballroom_Mics", "input", inputs="1", gain=-3, ramp=math.nan, principal="t"
                )
            assert sets_sent(link) == before


async def test_dry_run_reports_the_target_and_never_touches_the_core(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, link), Client(server) as client:
            before = sets_sent(link)
            result = data(
                await qsys_set(
                    client,
                    {"control": "Lobby_BGM.gain", "position": 0.75},
                    {"control": "Bar.mute", "value": True},
                    {"control": "Lobby_BGM.mute", "value": 7},
                    dry_run=True,
                )
            )
            gain, mute, bad = result["results"]
            assert (gain["ok"], gain["before"], gain["value"]) == (True, "-12.0dB", -10.0)
            assert (mute["ok"], mute["before"], mute["value"]) == (True, "unmuted", True)
            assert (bad["ok"], bad["rule"]) == (False, "type")
            mixer = {
                "mixer": "Ballroom_Mics",
                "target": "input",
                "inputs": "1-2",
                "gain": -3,
                "dry_run": True,
            }
            dry = data(await client.call_tool("qsys_mixer_set", mixer))
            assert [r["value"] for r in dry["results"]] == [-3, -3] and dry["dry_run"]
            snap = {"bank": "Scenes", "number": 2, "dry_run": True}
            assert (
                "would load" in data(await client.call_tool("qsys_snapshot_load", snap))["message"]
            )
            assert sets_sent(link) == before
            assert emulator.get_value("Lobby_BGM", "gain") == -12.0


async def test_timeout_says_the_write_may_or_may_not_have_happened(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with (
            tool_stack(emulator, request_timeout=0.3) as (server, _, link),
            Client(server) as client,
        ):
            emulator.stall()
            text = error_text(await qsys_set(client, {"control": "Bar.gain", "value": -12}))
            assert "no write was confirmed" in text and "nothing was written" not in text
            assert "may or may not" in text
            # the timeout's probe drops the stalled connection: stall a fresh one
            await link.wait_disconnected()
            emulator.stall(False)
            emulator.drop_connections()
            await link.wait_connected()
            emulator.stall()
            mixer = {"mixer": "Ballroom_Mics", "target": "input", "inputs": "1", "gain": -3}
            text = error_text(await client.call_tool("qsys_mixer_set", mixer))
            assert "no write was confirmed" in text and "may or may not" in text
            emulator.stall(False)


# mixers and snapshots -------------------------------------------------------------------------


async def test_mixer_gain_obeys_max_gain_and_step_on_every_expanded_control(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, link), Client(server) as client:
            before = sets_sent(link)
            loud = {
                "mixer": "Ballroom_Mics",
                "target": "output",
                "outputs": "*",
                "gain": 3,
                "confirm": True,
            }
            assert "'max_gain'" in error_text(await client.call_tool("qsys_mixer_set", loud))
            # input.1 -> output.2 sits at -100 dB: -6 dB is a 94 dB step.
            jump = {
                "mixer": "Ballroom_Mics",
                "target": "crosspoint",
                "inputs": "1",
                "outputs": "1-2",
                "gain": -6,
            }
            text = error_text(await client.call_tool("qsys_mixer_set", jump))
            assert "'max_step'" in text and "input.1.output.2.gain" in text
            assert sets_sent(link) == before


async def test_mixer_call_on_a_component_that_is_no_mixer_says_so(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            args = {"mixer": "Lobby_BGM", "target": "input", "inputs": "1", "gain": -3}
            text = error_text(await client.call_tool("qsys_mixer_set", args))
            assert "'Lobby_BGM' is a gain component, not a mixer" in text


async def test_mixer_channels_that_cannot_take_effect_are_refused_and_nothing_is_sent(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, link), Client(server) as client:
            before = sets_sent(link)
            for target, extra, words in (
                ("input", {"inputs": "1", "outputs": "garbage"}, "outputs: an input target"),
                ("output", {"outputs": "1", "inputs": "2"}, "inputs: an output target"),
            ):
                args = {"mixer": "Ballroom_Mics", "target": target, "gain": -3, **extra}
                assert words in error_text(await client.call_tool("qsys_mixer_set", args))
            assert sets_sent(link) == before
            ok = {"mixer": "Ballroom_Mics", "target": "input", "inputs": "1", "gain": -3}
            assert not (await client.call_tool("qsys_mixer_set", ok)).is_error


async def test_an_unknown_core_fails_every_tool_that_takes_one(emulator: EmulatorServer) -> None:
    calls = {
        "qsys_get": {"controls": ["Bar.gain"]},
        "qsys_status": {},
        "qsys_set": {"changes": [{"control": "Bar.gain", "value": -3}]},
        "qsys_list_components": {},
        "qsys_list_controls": {"component": "Bar"},
        "qsys_find_controls": {"query": "bar"},
        "qsys_summary": {},
        "qsys_history": {"control": "Bar.gain"},
        "qsys_mixer_set": {"mixer": "Ballroom_Mics", "target": "input", "inputs": "1", "gain": -3},
        "qsys_snapshot_load": {"bank": "Scenes", "number": 1},
        "qsys_snapshot_save": {"bank": "Scenes", "number": 4},
    }
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            takes_core = {n for n, t in listed.items() if "core" in t.input_schema["properties"]}
            assert takes_core <= set(calls)  # every tool that takes a Core is tried
            for name, arguments in calls.items():
                if name not in takes_core:
                    continue
                text = error_text(await client.call_tool(name, {**arguments, "core": "nope"}))
                assert "unknown Core 'nope'" in text, (name, text)


async def test_mixer_reports_the_method_that_failed_and_the_one_applied(
    emulator: EmulatorServer,
) -> None:
    def wrap(link: CoreLink) -> CoreLinkLike:
        return FailingMethod(link, "Mixer.SetInputMute")

    with trio.fail_after(WAIT):
        async with tool_stack(emulator, wrap=wrap) as (server, _, _), Client(server) as client:
            args = {
                "mixer": "Ballroom_Mics",
                "target": "input",
                "inputs": "2",
                "gain": -3,
                "mute": True,
            }
            result = data(await client.call_tool("qsys_mixer_set", args))
            gain, mute = result["results"]
            assert (gain["control"], gain["ok"], gain["string"]) == (
                "Ballroom_Mics.input.2.gain",
                True,
                "-3.0dB",
            )
            assert mute["ok"] is False and "may or may not" in mute["error"]
            assert emulator.get_value("Ballroom_Mics", "input.2.gain") == -3.0


async def test_snapshot_load_honours_protected_banks_and_checks_the_bank(
    emulator: EmulatorServer,
) -> None:
    policy = PolicyConfig(protected=["scenes.load.3"])
    with trio.fail_after(WAIT):
        async with tool_stack(emulator, policy) as (server, _, link), Client(server) as client:
            before = sets_sent(link)
            text = error_text(
                await client.call_tool("qsys_snapshot_load", {"bank": "Scenes", "number": 3})
            )
            assert "'protected'" in text and "Scenes.load.3" in text
            text = error_text(
                await client.call_tool("qsys_snapshot_load", {"bank": "Lobby_BGM", "number": 1})
            )
            assert "not a snapshot bank" in text
            assert sets_sent(link) == before
            snap = {"bank": "Scenes", "number": 2}
            assert (
                "acknowledged"
                in data(await client.call_tool("qsys_snapshot_load", snap))["message"]
            )


# finding, summary and paging ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("turn the lobby music down", "Lobby_BGM.gain"),
        ("ballroom volume", "Ballroom.gain"),
        ("boardroom mic", "Boardroom.gain"),
        ("mute the bar", "Bar.mute"),
        ("make the terrace louder", "Terrace.gain"),
        ("main volume", "MainGain"),
    ],
)
async def test_spoken_queries_find_the_control_first_on_the_demo(
    emulator: EmulatorServer, query: str, first: str
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, _), Client(server) as client:
            found = data(await client.call_tool("qsys_find_controls", {"query": query}))
            assert found["matches"][0]["control"] == first, found["matches"][:3]


async def test_summary_fits_a_small_context_window(
    emulator: EmulatorServer, start_emulator: StartEmulator
) -> None:
    with trio.fail_after(30):
        for emu, budget in ((emulator, 1500), (await start_emulator(generate_design(200)), 6000)):
            async with tool_stack(emu) as (server, _, _), Client(server) as client:
                result = await client.call_tool("qsys_summary", {})
                block = result.content[0]
                assert isinstance(block, types.TextContent)
                assert len(block.text) < budget  # about 4 characters a token
                summary = json.loads(block.text)
                assert len(summary["zones"]) <= 40 <= summary["zones_total"] or emu is emulator


async def test_components_page_through_a_design_of_2000(start_emulator: StartEmulator) -> None:
    emu = await start_emulator(generate_design(2000))
    with trio.fail_after(60):
        async with (
            tool_stack(emu, request_timeout=5.0) as (server, api, _),
            Client(server) as client,
        ):
            seen: list[str] = []
            offset: int | None = 0
            while offset is not None:
                page = data(
                    await client.call_tool("qsys_list_components", {"offset": offset, "limit": 500})
                )
                seen += [c["name"] for c in page["components"]]
                assert len(page["components"]) <= 500
                offset = page["next_offset"]
            assert len(seen) == len(set(seen)) == page["total"] == len(api.all_components("main"))
            past = data(await client.call_tool("qsys_list_components", {"offset": 5000}))
            assert past["components"] == [] and past["next_offset"] is None


async def test_raises_split_over_calls_cannot_add_up_past_the_step_limit(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with tool_stack(emulator) as (server, _, link), Client(server) as client:
            start = float(emulator.get_value("Restaurant", "gain"))
            for step in (3, 6):
                data(await qsys_set(client, {"control": "Restaurant.gain", "value": start + step}))
            mixer = {"mixer": "Ballroom_Mics", "target": "output", "outputs": "1", "gain": 0}
            data(await client.call_tool("qsys_mixer_set", mixer))  # another control: its own
            before = sets_sent(link)
            third = await qsys_set(client, {"control": "Restaurant.gain", "value": start + 9})
            assert "'max_step'" in error_text(third) and "within 10 s" in error_text(third)
            assert sets_sent(link) == before
            assert float(emulator.get_value("Restaurant", "gain")) == start + 6
            confirmed = {"control": "Restaurant.gain", "value": start + 9}
            data(await qsys_set(client, confirmed, confirm=True))
            assert float(emulator.get_value("Restaurant", "gain")) == start + 9
