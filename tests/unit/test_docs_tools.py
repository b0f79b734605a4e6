"""docs/tools.md is generated from the registry and docs/plugins.md documents every hook."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from qsysd.plugins import Registry, _hookspecs
from qsysd.tools import render_docs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_tools_doc_matches_the_registry() -> None:
    expected = render_docs(Registry(entry_points=False))
    actual = (DOCS / "tools.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/tools.md is stale: run python -m qsysd.tools > docs/tools.md"


def test_tools_doc_has_a_section_with_an_example_for_every_tool() -> None:
    text = render_docs(Registry(entry_points=False))
    for tool in Registry(entry_points=False).tools():
        section = text.split(f"## {tool.name}\n", 1)[1].split("\n## ", 1)[0]
        assert "### Input" in section and "### Output" in section and "```json" in section


HOOKSPECS = [
    name
    for name, fn in inspect.getmembers(_hookspecs, inspect.isfunction)
    if name.startswith("qsysd_")
]


def test_hookspecs_exist() -> None:
    assert HOOKSPECS == ["qsysd_register_prompts", "qsysd_register_tools"]


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_every_hookspec_has_a_section_with_its_exact_signature(hook: str) -> None:
    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    fn = getattr(_hookspecs, hook)
    params = ", ".join(inspect.signature(fn).parameters)
    assert f"\n## {hook}({params})\n" in text
    annotation = inspect.signature(fn).parameters["register"].annotation
    section = text.split(f"## {hook}(", 1)[1].split("\n## ", 1)[0]
    assert f"def {hook}(register: {annotation}) -> None" in section
    assert re.search(r"@hookimpl\ndef " + hook, section), "no example plugin in the section"
