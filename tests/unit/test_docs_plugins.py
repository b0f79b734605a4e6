"""docs/plugins.md has a section per hookspec with its exact signature and an example, and
every hookspec is implemented by some test (so it is tested)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from qsysd.plugins import _hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
HOOKSPECS = [
    name
    for name, fn in inspect.getmembers(_hookspecs, inspect.isfunction)
    if name.startswith("qsysd_") and hasattr(fn, "qsysd_spec")
]


def signature(hook: str) -> str:
    """``def hook(a: A, b: B) -> R`` as written in the hookspec module."""
    sig = inspect.signature(getattr(_hookspecs, hook))
    params = ", ".join(f"{name}: {p.annotation}" for name, p in sig.parameters.items())
    return f"def {hook}({params}) -> {sig.return_annotation}"


def section(hook: str) -> str:
    params = ", ".join(inspect.signature(getattr(_hookspecs, hook)).parameters)
    heading = f"\n## {hook}({params})\n"
    assert heading in DOC, f"docs/plugins.md has no section {heading.strip()!r}"
    return DOC.split(heading, 1)[1].split("\n## ", 1)[0]


def test_the_hookspecs_are_the_documented_ones() -> None:
    assert len(HOOKSPECS) == 7
    documented = re.findall(r"^## (qsysd_\w+)\(", DOC, flags=re.M)
    assert sorted(documented) == HOOKSPECS


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_every_hookspec_has_a_section_with_its_exact_signature_and_an_example(hook: str) -> None:
    text = section(hook)
    assert signature(hook) in text
    assert re.search(r"```python\n(?:.*\n)*?@hookimpl(?:\(.*\))?\ndef " + hook, text), (
        f"the {hook} section has no example implementation"
    )


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_every_hookspec_is_implemented_by_a_test(hook: str) -> None:
    tests = [
        p
        for p in (ROOT / "tests").rglob("test_*.py")
        if p.name != Path(__file__).name and f"def {hook}(" in p.read_text(encoding="utf-8")
    ]
    assert tests, f"no test implements {hook}"
