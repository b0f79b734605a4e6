"""docs/reliability.md is what tests/reliability/render.py makes of the suite's records.

No measured number is checked: the page is parsed back into records and rendered again (the
structure must match the renderer exactly), and every area on it must be one a test of this
suite records.
"""

from __future__ import annotations

import re
from pathlib import Path

import render
from _record import ReliabilityRecord, Trial, load, load_run

HERE = Path(__file__).resolve().parent
DOC = HERE.parent.parent / "docs" / "reliability.md"
ROW = re.compile(r"^\| (.*) \| (.*) \| (\d+) \| (.*) \| (.*) \|$")


def _split(line: str) -> list[str]:
    cells = re.split(r"(?<!\\) \| ", line[2:-2])
    return [c.replace("\\|", "|") for c in cells]


def parse(text: str) -> tuple[list[Trial], dict[str, str]]:
    """The records a rendered page was made from (figures as numbers, run as text)."""
    trials: list[Trial] = []
    area = None
    run: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("## "):
            area = line[3:].lower()
        elif line.startswith("Run: "):
            found = re.match(r"Run: (.*), (\d+) CPUs, (.*), Python (.*)\.$", line)
            assert found, line
            run = dict(zip(("date", "cpus", "platform", "python"), found.groups(), strict=True))
        elif ROW.match(line) and area is not None and not line.startswith("| case "):
            case, door, trials_text, outcome, figures_text = _split(line)
            figures = {}
            if figures_text != "-":
                for item in figures_text.split(", "):
                    key, _, value = item.rpartition(" ")  # a key may hold spaces
                    figures[key] = float(value)
            trials.append(Trial(area, case, door, int(trials_text), outcome, figures))
    return trials, run


def suite_areas() -> set[str]:
    """Every area a test of this suite records."""
    areas: set[str] = set()
    for test in HERE.glob("test_*.py"):
        areas.update(re.findall(r'area="([^"]+)"', test.read_text()))
    return areas


def test_a_record_file_renders_and_parses_back_with_unknown_areas_too(tmp_path: Path) -> None:
    record = ReliabilityRecord()
    record.record(area="fault matrix", case="drop | twice", door="stdio", trials=3,
                  outcome="answered", figures={"recovery_p95_s": 1.25, "calls": 40})  # fmt: skip
    record.record(area="a future area", case="c", door="rest", trials=1, outcome="held")
    path = tmp_path / "reliability.json"
    record.write(path)
    text = render.render(load(path), load_run(path))
    assert text.index("## Fault matrix") < text.index("## A future area")
    trials, run = parse(text)
    assert trials == record.trials
    assert run["cpus"] and run["python"]
    out = tmp_path / "reliability.md"
    render.main([str(path), str(out)])
    assert out.read_text() == text


def test_the_doc_is_the_renderers_output_of_records_from_this_suite() -> None:
    text = DOC.read_text()
    trials, run = parse(text)
    assert trials, "docs/reliability.md has no rows"
    assert render.render(trials, run) == text
    unknown = {t.area for t in trials} - suite_areas()
    assert not unknown, f"areas on the page that no test in tests/reliability records: {unknown}"
