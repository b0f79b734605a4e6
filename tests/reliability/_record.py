"""What the reliability suite tried and saw: the source of ``docs/reliability.md``.

A test records each kind of trial it ran through the ``reliability`` fixture::

    reliability.record(
        area="fault matrix", case="drop during a ramped write", door="stdio",
        trials=20, outcome="answered before the deadline; recovered in 0.4 s p95",
        figures={"recovery_p95_s": 0.41},
    )

At the end of the session the records are written as JSON to ``build/reliability.json`` (or
``$QSYSD_RELIABILITY_RECORD``); ``python tests/reliability/render.py`` turns that file into
``docs/reliability.md``. A test that fails records nothing: only what held is reported.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import attrs

RECORD_ENV = "QSYSD_RELIABILITY_RECORD"


def record_path() -> Path:
    return Path(os.environ.get(RECORD_ENV, "build/reliability.json"))


@attrs.frozen
class Trial:
    """One kind of trial: what was tried, on which door, how many times, and what came of it."""

    area: str
    case: str
    door: str
    trials: int
    outcome: str
    figures: dict[str, float] = attrs.field(factory=dict)


@attrs.define
class ReliabilityRecord:
    """Trials recorded during one pytest session."""

    trials: list[Trial] = attrs.field(factory=list)

    def record(
        self,
        *,
        area: str,
        case: str,
        door: str,
        trials: int,
        outcome: str,
        figures: dict[str, float] | None = None,
    ) -> None:
        if trials < 1:
            raise ValueError(f"a record needs at least one trial, got {trials}")
        self.trials.append(Trial(area, case, door, trials, outcome, dict(figures or {})))

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [attrs.asdict(trial) for trial in self.trials]
        data = {"run": run_info(), "trials": rows}
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def run_info() -> dict[str, Any]:
    """When and where the trials ran (the page names it)."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def load(path: Path) -> list[Trial]:
    data: dict[str, Any] = json.loads(path.read_text())
    return [Trial(**row) for row in data["trials"]]


def load_run(path: Path) -> dict[str, Any]:
    """The run's ``run_info()``; empty for a file written before it was recorded."""
    run: dict[str, Any] = json.loads(path.read_text()).get("run", {})
    return run
