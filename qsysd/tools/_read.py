"""The built-in read plugin: status, summary, search, components, controls, values, history.

The tools live in modules by what they read; this module is the one plugin that registers
them, as the built-in plugin ``builtin.read`` (the name ``QSYSD_BLOCK_PLUGINS`` takes).
"""

from __future__ import annotations

from collections.abc import Callable

from qsysd.plugins import Tool, hookimpl
from qsysd.tools._browse import (
    FIND_CONTROLS_TOOL,
    LIST_COMPONENTS_TOOL,
    LIST_CONTROLS_TOOL,
    FindInput as FindInput,
    ListComponentsInput as ListComponentsInput,
    ListControlsInput as ListControlsInput,
)
from qsysd.tools._history import (
    AUDIT_TOOL,
    HISTORY_TOOL,
    AuditInput as AuditInput,
    HistoryInput as HistoryInput,
)
from qsysd.tools._status import (
    STATUS_TOOL,
    SUMMARY_TOOL,
    StatusInput as StatusInput,
    SummaryInput as SummaryInput,
)
from qsysd.tools._values import GET_TOOL, GetInput as GetInput

# Registration order is the order of tools/list.
TOOLS = [
    STATUS_TOOL,
    SUMMARY_TOOL,
    FIND_CONTROLS_TOOL,
    LIST_COMPONENTS_TOOL,
    LIST_CONTROLS_TOOL,
    GET_TOOL,
    HISTORY_TOOL,
    AUDIT_TOOL,
]


@hookimpl
def qsysd_register_tools(register: Callable[[Tool], None]) -> None:
    for tool in TOOLS:
        register(tool)
