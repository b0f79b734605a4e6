"""``qsysd plugin new NAME``: an installable plugin package with a tool, a test and a README."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from qsysd import __version__
from qsysd.errors import ToolInputError

__all__ = ["new_plugin"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "qsysd-{name}"
version = "0.1.0"
description = "A qsysd plugin: {name}"
requires-python = ">=3.11"
dependencies = ["qsysd>={qsysd_version}"]

[project.optional-dependencies]
test = ["pytest>=8.3", "pytest-trio>=0.8"]

# qsysd finds the plugin through this entry point; its name ("{name}") is what
# QSYSD_LOAD_PLUGINS, QSYSD_BLOCK_PLUGINS and [plugins.config.{name}] refer to.
[project.entry-points.qsysd]
{name} = "{module}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
addopts = "-p trio"
trio_mode = true
testpaths = ["tests"]
"""

_MODULE = '''\
"""{name}: a qsysd plugin (qsysd's docs/plugins.md documents every hook)."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from qsysd.errors import LookupFailed
from qsysd.plugins import Tool, ToolContext, doc, hookimpl


@attrs.frozen
class LevelInput:
    """Arguments of {tool}."""

    zone: str = attrs.field(metadata=doc("A zone (gain component), e.g. 'Bar'.", minLength=1))


@attrs.frozen
class LevelOutput:
    """A zone's level."""

    zone: str = attrs.field(metadata=doc("The zone."))
    gain: str | None = attrs.field(metadata=doc("Its gain as the Core shows it."))
    muted: bool | None = attrs.field(metadata=doc("Whether it is muted."))
    age: float | None = attrs.field(metadata=doc("Seconds since the Core last reported it."))


async def zone_level(ctx: ToolContext, args: LevelInput) -> LevelOutput:
    gain, mute = await ctx.get([f"{{args.zone}}.gain", f"{{args.zone}}.mute"])
    if gain.error:
        raise LookupFailed(gain.error)
    muted = None if mute.value is None else bool(mute.value)
    return LevelOutput(args.zone, gain.string, muted, gain.age)


@hookimpl
def qsysd_register_tools(register: Callable[[Tool], None]) -> None:
    register(
        Tool(
            name="{tool}",
            title="A zone's level",
            description='The gain and mute of one zone. Example: {{"zone": "Bar"}}.',
            input_type=LevelInput,
            output_type=LevelOutput,
            handler=zone_level,
            examples=[{{"zone": "Bar"}}],
        )
    )
'''

_TEST = '''\
"""{name} against qsysd's emulator, through a real MCP client (qsysd.testing's fixtures)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

import {module}


@pytest.fixture
def qsysd_plugins() -> dict[str, Any]:
    return {{"{name}": {module}}}


async def test_{tool}_reports_the_zone_level(qsysd_client: Client) -> None:
    result = await qsysd_client.call_tool("{tool}", {{"zone": "Bar"}})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["gain"].endswith("dB")
    assert result.structured_content["muted"] is False


async def test_{tool}_names_an_unknown_zone(qsysd_client: Client) -> None:
    result = await qsysd_client.call_tool("{tool}", {{"zone": "Nowhere"}})
    assert result.is_error
'''

_README = """\
# qsysd-{name}

A [qsysd](https://pypi.org/project/qsysd/) plugin. It adds the `{tool}` tool.

```sh
pip install -e ".[test]"    # or: pip install -e . pytest pytest-trio
pytest                       # runs against qsysd's emulator; no Core needed
qsysd plugins                # lists "{name}" with its hooks and tools
```

Edit `src/{module}/__init__.py`; docs/plugins.md in qsysd documents every hook. The tests use
qsysd's pytest fixtures (`qsysd_client`, `qsysd_stack`, `qsysd_emulator`); point
`qsysd_design` at a file from `qsysd design capture` to test against your own site.
"""


def new_plugin(name: str, directory: str | Path = ".") -> Path:
    """Write the package ``qsysd-NAME`` into ``directory/NAME``; return that folder."""
    if not _NAME.match(name):
        raise ToolInputError(
            f"plugin name {name!r}: use lower-case letters, digits and single dashes, "
            "starting with a letter (e.g. room-tools)"
        )
    root = Path(directory) / name
    if root.exists():
        raise ToolInputError(f"{root} already exists; choose another name or folder")
    snake = name.replace("-", "_")
    fields = {
        "name": name,
        "module": f"qsysd_{snake}",
        "tool": f"{snake}_zone_level",
        "qsysd_version": __version__,
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        f"src/qsysd_{snake}/__init__.py": _MODULE,
        f"tests/test_{snake}.py": _TEST,
        "README.md": _README,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(template.format(**fields)), encoding="utf-8")
    return root
