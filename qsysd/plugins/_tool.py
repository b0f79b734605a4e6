"""What a tool and a prompt are: declarations served by every door (MCP stdio, MCP HTTP, REST)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import attrs

from qsysd.errors import PermissionDenied as PermissionDenied
from qsysd.plugins._context import ToolContext
from qsysd.plugins._schema import (
    json_schema,
    structure_arguments,
    unstructure_output,
    validate_arguments,
)
from qsysd.state import ControlValue

__all__ = [
    "PERMISSIONS",
    "Permission",
    "PermissionDenied",
    "PluginContext",
    "Prompt",
    "PromptArgument",
    "Resource",
    "Tool",
    "ValueChange",
]

Permission = Literal["read", "write", "admin"]
PERMISSIONS: tuple[Permission, ...] = ("read", "write", "admin")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")


@attrs.frozen
class PluginContext:
    """What a hook receives as ``context``: the plugin's name and its validated configuration.

    ``config`` is an instance of the class the plugin's ``qsysd_plugin_config`` returns, built
    from ``[plugins.config.NAME]``, or None when the plugin declares no configuration.
    """

    name: str
    config: Any = None


@attrs.frozen
class ValueChange:
    """One control's new value, what it was before (None: first seen), and when (UNIX time)."""

    current: ControlValue
    previous: ControlValue | None
    at: float


@attrs.frozen
class Tool:
    """One tool: name, description, typed input and output, MCP hints and the permission it needs.

    ``handler`` is ``async def handler(ctx: ToolContext, args: input_type) -> output_type``;
    ``input_type`` and ``output_type`` are attrs classes (see ``qsysd.plugins.field``).
    """

    name: str
    description: str
    input_type: type
    output_type: type
    handler: Callable[[ToolContext, Any], Awaitable[Any]]
    permission: Permission = "read"
    title: str | None = None
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False
    examples: Sequence[dict[str, Any]] = ()

    def __attrs_post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {_NAME.pattern}")
        if not self.description.strip():
            raise ValueError(f"tool {self.name!r} needs a description")
        if self.permission not in PERMISSIONS:
            raise ValueError(f"tool {self.name!r}: permission must be one of {PERMISSIONS}")
        # Build both schemas now so a bad declaration fails at registration, not at call time.
        json_schema(self.input_type)
        json_schema(self.output_type, strict=False)
        for example in self.examples:
            validate_arguments(self.input_type, example)

    @property
    def input_schema(self) -> dict[str, Any]:
        return json_schema(self.input_type)

    @property
    def output_schema(self) -> dict[str, Any]:
        return json_schema(self.output_type, strict=False)

    def annotations(self) -> dict[str, Any]:
        """The MCP tool annotations (hints) as plain data."""
        return {
            "title": self.title or self.name,
            "readOnlyHint": self.read_only,
            "destructiveHint": self.destructive,
            "idempotentHint": self.idempotent,
            "openWorldHint": self.open_world,
        }

    async def call(self, ctx: ToolContext, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """Validate ``arguments``, run the tool and return its output as a JSON object."""
        args: Any = structure_arguments(self.input_type, arguments)
        result = await self.handler(ctx, args)
        if not isinstance(result, self.output_type):
            raise TypeError(
                f"tool {self.name!r} returned {type(result).__name__}, "
                f"not {self.output_type.__name__}"
            )
        return unstructure_output(result)


@attrs.frozen
class PromptArgument:
    name: str
    description: str
    required: bool = False


@attrs.frozen
class Prompt:
    """A prompt template: ``render(arguments) -> text`` gives the user message."""

    name: str
    description: str
    render: Callable[[dict[str, str]], str]
    arguments: Sequence[PromptArgument] = ()
    title: str | None = None

    def __attrs_post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"prompt name {self.name!r} must match {_NAME.pattern}")


@attrs.frozen
class Resource:
    """An MCP resource: ``await read(ctx)`` gives its JSON data (or text, for other types).

    ``uri`` needs its own scheme (``scenes://list``): ``qsys://`` is qsysd's own.
    """

    uri: str
    name: str
    description: str
    read: Callable[[ToolContext], Awaitable[Any]]
    mime_type: str = "application/json"
    title: str | None = None

    def __attrs_post_init__(self) -> None:
        if not _URI.match(self.uri):
            raise ValueError(f"resource URI {self.uri!r} must look like scheme://path")
        if self.uri.startswith("qsys://"):
            raise ValueError(f"resource URI {self.uri!r}: the qsys:// scheme is qsysd's own")
        if not self.description.strip():
            raise ValueError(f"resource {self.uri!r} needs a description")
