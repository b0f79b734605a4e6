"""qsysd's own pieces running against an emulator, for plugin authors' tests (and qsysd's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

if TYPE_CHECKING:
    from mcp import Client

    from qsysd.api import QsysApi
    from qsysd.config import PolicyConfig
    from qsysd.core import CoreLink
    from qsysd.emulator import Design, EmulatorServer
    from qsysd.plugins import PluginRuntime, Registry, ToolContext
    from qsysd.server import QsysMcpServer

__all__ = ["QsysdStack", "connected_client", "running_emulator", "running_stack"]

#: How long a stack waits for its Core before the test fails.
CONNECT_TIMEOUT = 10.0


@asynccontextmanager
async def running_emulator(
    design: Design | str | Path | None = None, **options: Any
) -> AsyncIterator[EmulatorServer]:
    """An emulated Core on 127.0.0.1 (any free port) with ``design`` (a Design or a file).

    None means the demo venue; ``options`` go to :func:`qsysd.emulator.serve_emulator`.
    """
    from qsysd.emulator import load_design, serve_emulator

    if isinstance(design, str | Path):
        design = load_design(design)
    async with serve_emulator(design, **options) as emulator:
        yield emulator


@attrs.define
class QsysdStack:
    """A connected daemon's tool stack: facade, registry with the plugins, MCP server."""

    emulator: EmulatorServer
    link: CoreLink
    api: QsysApi
    registry: Registry
    server: QsysMcpServer
    runtime: PluginRuntime

    def context(self, principal: str = "test") -> ToolContext:
        """A ToolContext as the MCP server gives a tool called by ``principal``."""
        from qsysd.plugins import ToolContext

        return ToolContext(self.api, principal)

    async def call(
        self, tool: str, arguments: Mapping[str, Any] | None = None, *, principal: str = "test"
    ) -> dict[str, Any]:
        """Run a tool through the registry (permission check, validation, its plugin's config)."""
        return await self.registry.call_tool(tool, dict(arguments or {}), self.context(principal))


@asynccontextmanager
async def running_stack(
    emulator: EmulatorServer,
    *,
    plugins: Iterable[object] = (),
    plugin_config: Mapping[str, Mapping[str, Any]] | None = None,
    policy: PolicyConfig | None = None,
    named_controls: Iterable[str] | None = None,
    entry_points: bool = False,
    observer_queue_size: int | None = None,
) -> AsyncIterator[QsysdStack]:
    """qsysd connected to ``emulator`` with the built-ins, ``plugins`` and their config.

    ``named_controls`` default to the emulator design's (a real site's come from config).

    Start-up tasks and observers run as in the daemon, and are cancelled on exit.
    """
    from qsysd.access import CallPath, Principal
    from qsysd.api import QsysApi
    from qsysd.config import CoreConfig, PolicyConfig
    from qsysd.core import CoreLink
    from qsysd.plugins import Registry, running_plugins
    from qsysd.policy import Policy
    from qsysd.server import build_mcp_server
    from qsysd.state import StateStore

    registry = Registry(entry_points=entry_points, plugins=plugins, config=plugin_config)
    store = StateStore()
    config = CoreConfig(name="main", host=emulator.host, port=emulator.tcp_port)
    # QRC cannot list named controls; the emulator knows its design's.
    named = tuple(emulator.core.named) if named_controls is None else tuple(named_controls)
    link = CoreLink(config, store, named_controls=named)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                await link.wait_connected()
            api = QsysApi({"main": link}, store, Policy(policy or PolicyConfig()))
            queue = {} if observer_queue_size is None else {"queue_size": observer_queue_size}
            async with running_plugins(registry, api, **queue) as runtime:
                # The stack's MCP client calls as the stdio door does: every permission.
                principal = Principal("stdio", door="stdio")
                server = build_mcp_server(CallPath(api, registry), principal=principal)
                yield QsysdStack(emulator, link, api, registry, server, runtime)
        finally:
            link.stop()


@asynccontextmanager
async def connected_client(stack: QsysdStack) -> AsyncIterator[Client]:
    """An MCP client (the SDK's own) connected in process to the stack's server."""
    from mcp import Client

    async with Client(stack.server) as client:
        yield client
