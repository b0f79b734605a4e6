"""`qsysd serve --stdio` as a subprocess against the emulator, driven by the MCP SDK's Client.

The emulator runs in the test process, so each test can watch the Core itself: a ramp is
seen moving on the emulator, a fault injected mid-call reaches the agent as a clear error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio
from mcp import Client, StdioServerParameters, types

from qsysd.emulator import EmulatorServer, demo_design, serve_emulator

WAIT = 30.0
MODES = ["legacy", "auto"]  # 2025-11-25 with initialize, and 2026-07-28 without


def config_for(emulator: EmulatorServer, tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "qsysd.toml"
    named = ", ".join(f'"{c.name}"' for c in demo_design().named_controls)
    path.write_text(
        f"""
[[cores]]
name = "venue"
host = "127.0.0.1"
port = {emulator.tcp_port}
request_timeout = 1.0
named_controls = [{named}]

[state]
dir = "{tmp_path / "state"}"
snapshot_interval = 1.0

[policy]
protected = ["Core_Status.*"]
{extra}
"""
    )
    return path


@asynccontextmanager
async def served(
    emulator: EmulatorServer, tmp_path: Path, mode: str = "auto", extra: str = "", **client: Any
) -> AsyncIterator[Client]:
    config = config_for(emulator, tmp_path, extra)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "qsysd", "serve", "--stdio", "--config", str(config)],
        env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
    )
    async with Client(params, mode=mode, **client) as c:
        yield c


def data(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: types.CallToolResult) -> str:
    assert result.is_error
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with serve_emulator(demo_design()) as emu:
        yield emu


@pytest.mark.parametrize("mode", MODES)
async def test_serve_lists_tools_with_valid_schemas_and_reads(
    emulator: EmulatorServer, tmp_path: Path, mode: str
) -> None:
    with trio.fail_after(WAIT):
        async with served(emulator, tmp_path, mode) as client:
            tools = (await client.list_tools()).tools
            assert len(tools) >= 10
            # stdio runs as auth.stdio_role, "operator" by default: admin tools are not listed.
            assert "qsys_set" in {t.name for t in tools}
            assert "qsys_snapshot_save" not in {t.name for t in tools}
            for tool in tools:
                assert tool.description
                jsonschema.Draft202012Validator.check_schema(tool.input_schema)
                if tool.output_schema is not None:
                    jsonschema.Draft202012Validator.check_schema(tool.output_schema)
            status = data(await client.call_tool("qsys_status", {}))
            (core,) = status["cores"]
            assert core["connected"] is True and core["design_name"] == "Harbour Hotel"
            got = data(await client.call_tool("qsys_get", {"controls": ["Bar.gain", "MainGain"]}))
            strings = [v["string"] for v in got["values"]]
            core_model = emulator.core
            bar = core_model.control(core_model.component("Bar"), "gain")
            assert strings == [
                bar.state()["String"],
                core_model.named_control("MainGain").state()["String"],
            ]


@pytest.mark.parametrize("mode", MODES)
async def test_serve_write_with_ramp_moves_the_value_on_the_core(
    emulator: EmulatorServer, tmp_path: Path, mode: str
) -> None:
    with trio.fail_after(WAIT):
        async with served(emulator, tmp_path, mode) as client:
            start = float(emulator.get_value("Restaurant", "gain"))
            change = {"control": "Restaurant.gain", "value": start - 5, "ramp": 1.0}
            result = data(await client.call_tool("qsys_set", {"changes": [change]}))
            assert result["results"][0]["ok"] is True
            seen = set()
            while (value := float(emulator.get_value("Restaurant", "gain"))) != start - 5:
                seen.add(value)
                await trio.sleep(0.02)  # sampling the Core's value as the ramp runs
            assert any(start - 5 < v < start for v in seen), seen


async def test_serve_snapshot_mixer_history_and_find(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    with trio.fail_after(WAIT):
        async with served(emulator, tmp_path) as client:
            found = data(await client.call_tool("qsys_find_controls", {"query": "lobby music"}))
            assert found["matches"][0]["control"] == "Lobby_BGM.gain"
            snap = await client.call_tool("qsys_snapshot_load", {"bank": "Scenes", "number": 2})
            data(snap)
            assert emulator.get_value("Lobby_BGM", "gain") == -20.0
            mixer = {"mixer": "Ballroom_Mics", "target": "crosspoint", "inputs": "1 3",
                     "outputs": "2", "mute": True}  # fmt: skip
            data(await client.call_tool("qsys_mixer_set", mixer))
            assert emulator.get_value("Ballroom_Mics", "input.3.output.2.mute") in (1, True)
            data(await client.call_tool("qsys_set", {"changes": [{"control": "Bar.mute",
                                                                  "value": True}]}))  # fmt: skip
            history = data(await client.call_tool("qsys_history", {"control": "Bar.mute"}))
            (entry,) = history["entries"]
            assert (entry["after"], entry["outcome"], entry["principal"]) == (
                "muted",
                "ok",
                "stdio",
            )


async def test_serve_policy_rejections_are_clear_tool_errors(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    with trio.fail_after(WAIT):
        async with served(emulator, tmp_path) as client:
            loud = {"changes": [{"control": "Bar.gain", "value": 3}], "confirm": True}
            assert "'max_gain'" in error_text(await client.call_tool("qsys_set", loud))
            protected = {"changes": [{"control": "Core_Status.status", "value": "x"}]}
            assert "'protected'" in error_text(await client.call_tool("qsys_set", protected))
            assert float(emulator.get_value("Bar", "gain")) < 0


async def test_serve_core_down_mid_call_is_a_clear_error(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    with trio.fail_after(WAIT):
        async with served(emulator, tmp_path) as client:
            data(await client.call_tool("qsys_status", {}))
            emulator.stall()
            result = await client.call_tool(
                "qsys_set", {"changes": [{"control": "Bar.gain", "value": -11}]}
            )
            text = error_text(result)
            assert 'Core "venue" did not answer Component.Set' in text
            assert "may or may not have been applied" in text
            assert text.count('"venue"') == 1  # named once, not once per layer
            emulator.stall(False)


async def test_serve_subscription_is_notified_when_the_core_changes(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    uri = "qsys://core/venue/component/Terrace/controls"
    with trio.fail_after(WAIT):
        async with served(emulator, tmp_path) as client:
            async with client.listen(resource_subscriptions=[uri]) as subscription:
                emulator.set_value("Terrace", "gain", -33.0)
                async for event in subscription:
                    if getattr(event, "uri", None) == uri:
                        break
            read = await client.read_resource(uri)
            assert "-33.0dB" in read.contents[0].text  # type: ignore[union-attr]


async def test_serve_loads_tool_plugins_from_a_configured_folder(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    example = Path(__file__).parents[2] / "plugins" / "qsysd-example-plugin" / "src"
    folder = tmp_path / "plugins"
    folder.mkdir()
    source = (example / "qsysd_example_plugin" / "__init__.py").read_text()
    (folder / "closing.py").write_text(source)
    extra = f'[plugins]\ndirs = ["{folder}"]\n'
    with trio.fail_after(WAIT):
        async with served(emulator, tmp_path, extra=extra) as client:
            result = await client.call_tool("qsys_mute_zones", {"pattern": "Terrace"})
            assert data(result)["zones"] == ["Terrace.mute: muted"]
            assert emulator.get_value("Terrace", "mute") in (1, True)


BROKEN_PLUGINS = {
    "broken_import.py": "import qsysd_no_such_dependency\n",
    "hook_typo.py": (
        "from qsysd.plugins import hookimpl\n@hookimpl\ndef qsysd_register_tool(register): pass\n"
    ),
    "failing_task.py": (
        "from qsysd.plugins import hookimpl\n"
        "@hookimpl\ndef qsysd_startup():\n"
        "    async def run(ctx):\n        raise RuntimeError('task bug')\n"
        "    return run\n"
    ),
    "failing_observer.py": (
        "from qsysd.plugins import hookimpl\n"
        "@hookimpl\ndef qsysd_observe_writes():\n"
        "    async def observe(entry):\n        raise RuntimeError('observer bug')\n"
        "    return observe\n"
    ),
    "zz_clashing.py": (
        "from qsysd_plugin_closing import *  # noqa\n"  # the example's tools, once more
    ),
}


async def test_serve_keeps_running_with_broken_plugins(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    example = Path(__file__).parents[2] / "plugins" / "qsysd-example-plugin" / "src"
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "closing.py").write_text(
        (example / "qsysd_example_plugin" / "__init__.py").read_text()
    )
    for name, source in BROKEN_PLUGINS.items():
        (folder / name).write_text(source)
    extra = f'[plugins]\ndirs = ["{folder}"]\n[plugins.config.closing]\nunused = 1\n'
    with trio.fail_after(WAIT):
        async with served(emulator, tmp_path, extra=extra) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"qsys_mute_zones", "qsys_set", "qsys_get"} <= names
            result = await client.call_tool("qsys_mute_zones", {"pattern": "Terrace"})
            assert data(result)["zones"] == ["Terrace.mute: muted"]
            change = {"control": "Bar.gain", "value": -11.0}
            written = data(await client.call_tool("qsys_set", {"changes": [change]}))
            assert written["results"][0]["ok"] is True
            assert data(await client.call_tool("qsys_status", {}))["cores"][0]["connected"]
