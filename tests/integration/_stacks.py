"""Running pieces of qsysd against an emulator, shared by the integration tests.

(Test folders have no ``__init__``; pytest puts this folder on ``sys.path``, so test modules
import this one as ``_stacks``.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from qsysd.access import CallPath, Principal
from qsysd.api import CoreLinkLike, QsysApi
from qsysd.config import CoreConfig, PolicyConfig
from qsysd.core import Backoff, CoreLink
from qsysd.emulator import EmulatorServer
from qsysd.plugins import Registry
from qsysd.policy import Policy
from qsysd.server import QsysMcpServer, build_mcp_server
from qsysd.state import StateStore

#: The caller of in-process MCP servers: every permission, like stdio.
TEST_PRINCIPAL = Principal("test", door="stdio")

#: The demo design's named controls (QRC cannot list them; a configuration names them).
NAMED = ("MainGain", "MainMute", "FireAlarmActive", "PagingPriority")


def core_config(emu: EmulatorServer, **overrides: Any) -> CoreConfig:
    """A Core "main" on the emulator, with short intervals so faults show quickly."""
    config = CoreConfig(
        name="main",
        host=emu.host,
        port=emu.tcp_port,
        request_timeout=1.0,
        keepalive_interval=0.5,
        poll_rate=0.05,
    )
    return attrs.evolve(config, **overrides)


@asynccontextmanager
async def running_link(
    config: CoreConfig, store: StateStore | None = None, **options: Any
) -> AsyncIterator[CoreLink]:
    """A started CoreLink (fast backoff), stopped on exit."""
    options.setdefault("backoff", Backoff(initial=0.05, maximum=0.2, healthy_after=1.0))
    link = CoreLink(config, store or StateStore(), **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        try:
            yield link
        finally:
            link.stop()


@asynccontextmanager
async def tool_stack(
    emu: EmulatorServer,
    policy: PolicyConfig | None = None,
    *,
    request_timeout: float = 1.0,
    wrap: Callable[[CoreLink], CoreLinkLike] | None = None,
) -> AsyncIterator[tuple[QsysMcpServer, QsysApi, CoreLink]]:
    """The MCP server over a connected link to ``emu``: (server, api, link)."""
    store = StateStore()
    config = core_config(emu, request_timeout=request_timeout)
    async with running_link(config, store, named_controls=NAMED) as link:
        await link.wait_connected()
        links = {"main": wrap(link) if wrap else link}
        api = QsysApi(links, store, Policy(policy or PolicyConfig()))
        calls = CallPath(api, Registry(entry_points=False))
        yield build_mcp_server(calls, principal=TEST_PRINCIPAL), api, link
