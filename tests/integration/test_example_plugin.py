"""The example plugin in plugins/ works as its README says: a third-party tool over MCP."""

from __future__ import annotations

from pathlib import Path

import trio
from _stacks import TEST_PRINCIPAL
from mcp import Client

from qsysd.access import CallPath
from qsysd.api import QsysApi
from qsysd.config import CoreConfig, PolicyConfig
from qsysd.core import CoreLink
from qsysd.emulator import EmulatorServer
from qsysd.plugins import Registry
from qsysd.policy import Policy
from qsysd.server import build_mcp_server
from qsysd.state import StateStore

PLUGIN = (
    Path(__file__).parents[2]
    / "plugins"
    / "qsysd-example-plugin"
    / "src"
    / "qsysd_example_plugin"
    / "__init__.py"
)


async def test_example_plugin_tool_and_prompt_are_served(emulator: EmulatorServer) -> None:
    registry = Registry(entry_points=False)
    assert registry.load_file(PLUGIN) is not None, registry.load_errors
    store = StateStore()
    config = CoreConfig(name="main", host=emulator.host, port=emulator.tcp_port)
    link = CoreLink(config, store)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            await link.wait_connected()
            api = QsysApi({"main": link}, store, Policy(PolicyConfig()))
            async with Client(
                build_mcp_server(CallPath(api, registry), principal=TEST_PRINCIPAL)
            ) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                assert "qsys_mute_zones" in tools
                result = await client.call_tool("qsys_mute_zones", {"pattern": "B*"})
                assert not result.is_error, result.content
                assert result.structured_content is not None
                assert sorted(result.structured_content["zones"]) == [
                    "Ballroom.mute: muted",
                    "Bar.mute: muted",
                    "Boardroom.mute: muted",
                ]
                assert emulator.get_value("Bar", "mute") in (1, True)
                prompts = {p.name for p in (await client.list_prompts()).prompts}
                assert "closing_time" in prompts
            link.stop()
