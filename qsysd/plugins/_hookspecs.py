"""The hooks a qsysd plugin can implement; every one is documented in docs/plugins.md."""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from qsysd.plugins._tool import Prompt, Tool

__all__ = ["hookimpl", "hookspec", "qsysd_register_prompts", "qsysd_register_tools"]

hookspec = pluggy.HookspecMarker("qsysd")
hookimpl = pluggy.HookimplMarker("qsysd")


@hookspec
def qsysd_register_tools(register: Callable[[Tool], None]) -> None:
    """Register tools by calling ``register(Tool(...))`` once per tool."""


@hookspec
def qsysd_register_prompts(register: Callable[[Prompt], None]) -> None:
    """Register MCP prompts by calling ``register(Prompt(...))`` once per prompt."""
