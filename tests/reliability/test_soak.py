"""The soak, short form: ``bench.soak`` for a bounded time, with its report asserted.

``QSYSD_SOAK_SECONDS`` (default 25) sets how long; the long form is
``python -m bench.soak --minutes N --clients K``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio

from bench.soak import SoakReport, render, run_soak

SECONDS = float(os.environ.get("QSYSD_SOAK_SECONDS", "25"))
CLIENTS = 10  # one on stdio, the others over /mcp (both eras) and REST
COMPONENTS = 500  # about 10,000 controls
#: The RSS the daemon may gain after the warm-up (the first third of the run), in MiB.
RSS_GROWTH_MIB = 24.0


async def test_many_clients_mixing_reads_and_writes_see_only_intended_errors_and_flat_memory(
    tmp_path: Path, reliability: Any
) -> None:
    """No errors but the refusals provoked on purpose; every acknowledged write on the Core;
    the daemon's RSS flat after the warm-up.

    Why 24 MiB of RSS after the warm-up: the run makes one to two thousand calls, and a leak
    of what a call handles (a listing answer is 10-30 KB) grows past that within the run.
    Less is not a leak a short run can tell: long runs (``bench.soak``, 1,000 components)
    stay flat for minutes, then step once by about 14 MiB and stay flat again (a container
    or the allocator's arenas growing a size class), and a short run may catch that step.
    The long form prints RSS over time to see a slower leak.
    """
    with trio.fail_after(SECONDS + 240):  # start-up discovers a large design; then the run
        report = await run_soak(
            seconds=SECONDS, clients=CLIENTS, components=COMPONENTS, folder=tmp_path
        )
    print(render(report))
    assert report.errors == {}, report.error_samples
    assert report.refusals > 0 and report.calls["protected"] == report.refusals
    assert report.writes_acknowledged > 0 and report.controls_checked > 0
    assert report.mismatches == []
    growth = report.rss_growth_kib(1 / 3) / 1024
    assert len(report.rss) >= 10, "the daemon's RSS was not sampled"
    assert growth < RSS_GROWTH_MIB, render(report)
    record(reliability, report, growth)


def record(reliability: Any, report: SoakReport, growth_mib: float) -> None:
    reliability.record(
        area="soak",
        case=f"{report.clients} clients (stdio, /mcp in both eras, REST) mixing reads and "
        f"writes on a {report.components}-component design for {report.seconds:g} s",
        door="stdio, mcp, rest",
        trials=report.total_calls,
        outcome="no errors but the intended policy refusals; every acknowledged write held "
        "by the Core; RSS flat after the warm-up",
        figures={
            "calls_per_s": round(report.total_calls / report.seconds, 1),
            "refusals": float(report.refusals),
            "writes_acknowledged": float(report.writes_acknowledged),
            "rss_growth_mib": round(growth_mib, 2),
        },
    )
