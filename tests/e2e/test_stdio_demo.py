"""The qsysd command over stdio, driven by the MCP SDK's Client as a real MCP host would."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
import trio
from mcp import Client, StdioServerParameters

WAIT = 30.0


def demo_server(tmp_path: Any) -> StdioServerParameters:
    env = dict(os.environ, QSYSD_LOAD_PLUGINS="")
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "qsysd", "demo", "--stdio", "--state-dir", str(tmp_path)],
        env=env,
    )


async def assert_core_connected(client: Client) -> None:
    """The daemon serves stdio only once its Cores are connected (or after a grace)."""
    status = await client.call_tool("qsys_status", {})
    assert status.structured_content is not None
    assert all(core["connected"] for core in status.structured_content["cores"])


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_demo_over_stdio_lists_reads_and_writes(tmp_path: Any, mode: str) -> None:
    with trio.fail_after(WAIT):
        async with Client(demo_server(tmp_path), mode=mode) as client:
            await assert_core_connected(client)
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"qsys_get", "qsys_set", "qsys_summary"} <= tools
            summary = await client.call_tool("qsys_summary", {})
            assert not summary.is_error
            found = await client.call_tool("qsys_find_controls", {"query": "lobby music volume"})
            assert found.structured_content["matches"][0]["control"] == "Lobby_BGM.gain"
            changes = [{"control": "Lobby_BGM.gain", "value": -15}]
            written = await client.call_tool("qsys_set", {"changes": changes})
            assert not written.is_error, written.content
            assert written.structured_content["results"][0]["string"] == "-15.0dB"


async def test_stdio_tool_errors_are_results_not_protocol_failures(tmp_path: Any) -> None:
    with trio.fail_after(WAIT):
        async with Client(demo_server(tmp_path)) as client:
            result = await client.call_tool("qsys_get", {"controls": "not a list"})
            assert result.is_error
            assert "controls: expected array" in result.content[0].text  # type: ignore[union-attr]
