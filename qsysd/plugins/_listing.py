"""``qsysd plugins``: loaded plugins, their hooks and tools, and load errors (like llm)."""

from __future__ import annotations

import json
import sys
from typing import TextIO

import attrs

from qsysd.plugins._registry import Registry

__all__ = ["print_plugins"]


def print_plugins(
    *, as_json: bool = False, registry: Registry | None = None, out: TextIO | None = None
) -> int:
    """Write the plugin listing (to stdout by default); exit code 1 if a plugin failed to load."""
    registry = registry or Registry()
    out = out or sys.stdout
    plugins = [attrs.asdict(p) for p in registry.plugins()]
    errors = [attrs.asdict(e) for e in registry.load_errors]
    if as_json:
        out.write(json.dumps({"plugins": plugins, "load_errors": errors}, indent=2) + "\n")
    else:
        for p in plugins:
            version = f" {p['version']}" if p["version"] else ""
            out.write(f"{p['name']}{version} ({p['source']})\n")
            out.write(f"  hooks: {', '.join(p['hooks']) or '-'}\n")
            if p["tools"]:
                out.write(f"  tools: {', '.join(p['tools'])}\n")
            if p["prompts"]:
                out.write(f"  prompts: {', '.join(p['prompts'])}\n")
            if p["resources"]:
                out.write(f"  resources: {', '.join(p['resources'])}\n")
        for e in errors:
            out.write(f"FAILED {e['plugin']} ({e['stage']}): {e['error']}\n")
    return 1 if errors else 0
