"""The hooks a qsysd plugin can implement; every one is documented in docs/plugins.md.

Hooks are synchronous. An implementation takes any subset of a hook's arguments (pluggy's
rule), so ``def qsysd_register_tools(register)`` and ``(register, context)`` both work.
``context`` is the plugin's :class:`PluginContext`: its name and its validated configuration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pluggy

from qsysd.plugins._context import ToolContext
from qsysd.plugins._tool import PluginContext, Prompt, Resource, Tool, ValueChange
from qsysd.state import JournalEntry

__all__ = [
    "ChangeObserver",
    "StartupTask",
    "WriteObserver",
    "hookimpl",
    "hookspec",
    "qsysd_observe_changes",
    "qsysd_observe_writes",
    "qsysd_plugin_config",
    "qsysd_register_prompts",
    "qsysd_register_resources",
    "qsysd_register_tools",
    "qsysd_startup",
]

hookspec = pluggy.HookspecMarker("qsysd")
hookimpl = pluggy.HookimplMarker("qsysd")

#: Runs for the daemon's life in its nursery; cancelled at stop.
StartupTask = Callable[[ToolContext], Awaitable[None]]
#: Called, off the hot path, with each batch of changed values.
ChangeObserver = Callable[[list[ValueChange]], Awaitable[None]]
#: Called, off the hot path, with each audited write (refused and failed ones too).
WriteObserver = Callable[[JournalEntry], Awaitable[None]]


@hookspec
def qsysd_register_tools(register: Callable[[Tool], None], context: PluginContext) -> None:
    """Register tools by calling ``register(Tool(...))`` once per tool."""


@hookspec
def qsysd_register_prompts(register: Callable[[Prompt], None], context: PluginContext) -> None:
    """Register MCP prompts by calling ``register(Prompt(...))`` once per prompt."""


@hookspec
def qsysd_register_resources(register: Callable[[Resource], None], context: PluginContext) -> None:
    """Register MCP resources by calling ``register(Resource(...))`` once per resource."""


@hookspec
def qsysd_plugin_config() -> type | None:
    """The attrs class that ``[plugins.config.NAME]`` is validated against and built into."""


@hookspec
def qsysd_startup(context: PluginContext) -> StartupTask | None:
    """An async function the daemon runs in its nursery until it stops (then cancels it)."""


@hookspec
def qsysd_observe_changes(context: PluginContext) -> ChangeObserver | None:
    """An async function called with each batch of value changes, through a bounded queue."""


@hookspec
def qsysd_observe_writes(context: PluginContext) -> WriteObserver | None:
    """An async function called with each audited write, through a bounded queue."""
