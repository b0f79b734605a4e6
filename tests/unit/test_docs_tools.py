"""docs/tools.md is generated from the registry and docs/plugins.md documents every hook."""

from __future__ import annotations

from pathlib import Path

from qsysd.plugins import Registry
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
