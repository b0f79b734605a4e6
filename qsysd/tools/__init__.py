"""The built-in tool catalogue (registered through the same hook as third-party plugins).

``render_docs()`` generates docs/tools.md from the registry; a test keeps them equal.
Regenerate with ``python -m qsysd.tools > docs/tools.md``. ``control_out()`` is the one shape
of a control with its value, shared with the MCP resources.
"""

from __future__ import annotations

import json
from typing import Any

from qsysd.plugins import Registry, Tool
from qsysd.tools._common import (
    ControlOut as ControlOut,
    control_out as control_out,
    iso as iso,
    json_scalar as json_scalar,
)

__all__ = ["ControlOut", "control_out", "iso", "json_scalar", "render_docs"]


def render_docs(registry: Registry | None = None) -> str:
    """docs/tools.md: every tool with its inputs, output, hints and examples."""
    registry = registry or Registry(entry_points=False)
    tools = sorted(registry.tools(), key=lambda t: t.name)
    lines = [
        "# Tools",
        "",
        "<!-- Generated from the registry by `python -m qsysd.tools > docs/tools.md`;",
        "     tests/unit/test_docs_tools.py fails when this file and the code disagree. -->",
        "",
        "Every tool is served the same way over MCP (stdio and HTTP) and REST",
        "(`POST /api/v1/tools/{name}`), with the same validation, policy and audit.",
        "Permissions: `read` < `write` < `admin`; the stdio door has all three.",
        "",
        "| tool | permission | what it does |",
        "|---|---|---|",
    ]
    for tool in tools:
        lines.append(f"| [`{tool.name}`](#{tool.name}) | {tool.permission} | {tool.title or ''} |")
    lines.append("")
    for tool in tools:
        lines += _render_tool(tool)
    prompts = sorted(registry.prompts(), key=lambda p: p.name)
    if prompts:
        lines += ["## Prompts", ""]
        for prompt in prompts:
            args = ", ".join(
                f"`{a.name}`{' (required)' if a.required else ''}" for a in prompt.arguments
            )
            lines.append(f"- `{prompt.name}`: {prompt.description} Arguments: {args or 'none'}.")
        lines.append("")
    return "\n".join(lines)


def _render_tool(tool: Tool) -> list[str]:
    hints = tool.annotations()
    flags = ", ".join(
        f"{k}={'true' if hints[k] else 'false'}"
        for k in ("readOnlyHint", "destructiveHint", "idempotentHint")
    )
    lines = [
        f"## {tool.name}",
        "",
        tool.description,
        "",
        f"Permission: `{tool.permission}`. Hints: {flags}.",
        "",
        "### Input",
        "",
        "| field | type | required | default | description |",
        "|---|---|---|---|---|",
    ]
    lines += _fields(tool.input_schema, "", inputs=True)
    lines += [
        "",
        "### Output",
        "",
        "| field | type | description |",
        "|---|---|---|",
    ]
    lines += _fields(tool.output_schema, "", inputs=False)
    lines.append("")
    for example in tool.examples:
        lines += ["Example:", "", "```json", json.dumps(example), "```", ""]
    return lines


def _fields(schema: dict[str, Any], prefix: str, *, inputs: bool) -> list[str]:
    out = []
    required = set(schema.get("required", ()))
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        desc = str(sub.get("description", "")).replace("|", "\\|")
        kind = _type_text(sub)
        if inputs:
            default = json.dumps(sub["default"]) if "default" in sub else ""
            req = "yes" if name in required else ""
            out.append(f"| `{path}` | {kind} | {req} | {default} | {desc} |")
        else:
            out.append(f"| `{path}` | {kind} | {desc} |")
        nested = _nested_object(sub)
        if nested is not None:
            suffix = "[]." if sub.get("type") == "array" else "."
            out += _fields(nested, path + suffix, inputs=inputs)
    return out


def _nested_object(schema: dict[str, Any]) -> dict[str, Any] | None:
    if schema.get("type") == "object" and "properties" in schema:
        return schema
    items = schema.get("items")
    if schema.get("type") == "array" and isinstance(items, dict) and "properties" in items:
        return items
    return None


def _type_text(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " \\| ".join(_type_text(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " \\| ".join(kind)
    if kind == "array":
        return f"array of {_type_text(schema.get('items', {}))}"
    return str(kind)
