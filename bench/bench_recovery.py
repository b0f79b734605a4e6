"""Recovery: from a Core's return after an outage to the first tool call it serves (issue 14, 8).

``qsysd serve --stdio`` runs as a subprocess with ``cores`` Cores configured, each an
emulated Core in this process; every Core goes off (``EmulatorServer.offline``: nothing
listening, so connects are refused) for the outage, then comes back on the same port. From
that moment each Core's own client loop calls ``qsys_get`` with ``fresh: true`` (served by the
Core, not the cache) until it succeeds; the time is one sample. The Cores reconnect on their
own backoff schedules, so one round gives ``cores`` samples. The backoff (full jitter, ceiling
``reconnect_max``, 2 s by default) reaches its ceiling within about 4 s of failures, so the
20 s outage stands for any longer one; a 10-minute outage on the same ceiling is in
``tests/reliability/test_recovery.py``.

    python bench/bench_recovery.py [--quick] [--json FILE]

Also part of ``python -m bench`` (``results["recovery"]``). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._procs import LEGACY, LineClient, daemon_argv, spawned
from qsysd.config import CoreConfig
from qsysd.emulator import EmulatorServer, serve_emulator

TARGET_P95_S = 3.0
WAIT = 60.0


def _config(folder: Path, emulators: list[EmulatorServer]) -> Path:
    cores = "".join(
        f'[[cores]]\nname = "core{i}"\nhost = "127.0.0.1"\nport = {emu.tcp_port}\n'
        for i, emu in enumerate(emulators)
    )
    path = folder / "recovery.toml"
    path.write_text(f'{cores}[state]\ndir = "{folder / "state"}"\n[logging]\nlevel = "warning"\n')
    return path


_ONE_AT_A_TIME = trio.Lock()  # the line client is one request at a time; calls take ms


async def _served(client: LineClient, core: str) -> bool:
    arguments = {"controls": ["Bar.gain"], "core": core, "fresh": True}
    async with _ONE_AT_A_TIME:
        result = await client.request("tools/call", {"name": "qsys_get", "arguments": arguments})
    if result.get("isError"):
        return False
    value = result["structuredContent"]["values"][0]
    return bool(value["source"] == "core" and value["error"] is None)


async def _until_served(client: LineClient, core: str, back: float, out: list[float]) -> None:
    with trio.fail_after(WAIT):
        while not await _served(client, core):  # noqa: ASYNC110 -- polling is the measure
            await trio.sleep(0.01)
    out.append(time.perf_counter() - back)


async def measure(outages: list[float], cores: int, rounds: int) -> list[dict[str, Any]]:
    """Seconds from return to the first served call, per outage: p50, p95, max, n."""
    from bench.__main__ import percentile

    samples: dict[float, list[float]] = {outage: [] for outage in outages}
    async with AsyncExitStack() as stack:
        emulators = [
            await stack.enter_async_context(serve_emulator(idle_timeout=3600)) for _ in range(cores)
        ]
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qsysd-rec-")))
        client = await stack.enter_async_context(
            spawned(daemon_argv(_config(folder, emulators)), LEGACY)
        )
        await client.initialize()
        names = [f"core{i}" for i in range(cores)]
        for _ in range(rounds):
            for outage in outages:
                for name in names:  # every Core served before the outage
                    await _until_served(client, name, time.perf_counter(), [])
                for emu in emulators:
                    emu.offline()
                await trio.sleep(outage)
                for emu in emulators:
                    emu.offline(False)
                back = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for name in names:
                        nursery.start_soon(_until_served, client, name, back, samples[outage])
    return [
        {
            "outage_s": outage,
            "p50_s": round(percentile(xs, 0.5), 3),
            "p95_s": round(percentile(xs, 0.95), 3),
            "max_s": round(max(xs), 3),
            "n": len(xs),
        }
        for outage, xs in samples.items()
    ]


async def run(quick: bool) -> dict[str, Any]:
    from qsysd.logs import configure_logging

    configure_logging("warning", "console")  # the in-process emulators' log
    outages, cores, rounds = ([1.0, 5.0], 4, 1) if quick else ([1.0, 5.0, 20.0], 8, 3)
    print(f"== recovery: outages {outages} s, {cores} Cores x {rounds} rounds",
          file=sys.stderr, flush=True)  # fmt: skip
    defaults = CoreConfig(name="x", host="x")
    return {
        "cores": cores,
        "rounds": rounds,
        "reconnect_initial_s": defaults.reconnect_initial,
        "reconnect_max_s": defaults.reconnect_max,
        "target_p95_s": TARGET_P95_S,
        "outages": await measure(outages, cores, rounds),
    }


def print_recovery(recovery: dict[str, Any]) -> None:
    print(
        f"\n## recovery: Core back -> first fresh read served ({recovery['cores']} Cores x "
        f"{recovery['rounds']} rounds; backoff ceiling {recovery['reconnect_max_s']:g} s)"
    )
    for row in recovery["outages"]:
        print(f"   outage {row['outage_s']:>5g} s: p50 {row['p50_s']:.3f} s  p95 "
              f"{row['p95_s']:.3f} s  max {row['max_s']:.3f} s  (n={row['n']})")  # fmt: skip


def target_rows(recovery: dict[str, Any]) -> list[str]:
    """docs/performance.md's rows for target 8, one per outage."""
    target = recovery["target_p95_s"]
    return [
        f"| 8 | Core back -> first served call <= {target:g} s p95 ({row['outage_s']:g} s "
        f"outage) | p50 {row['p50_s']:.2f} s, p95 {row['p95_s']:.2f} s, max "
        f"{row['max_s']:.2f} s (n={row['n']}) | "
        f"{'holds' if row['p95_s'] <= target else '**does not hold**'} |"
        for row in recovery["outages"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (CI)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    recovery = trio.run(run, args.quick)
    print_recovery(recovery)
    if args.json:
        Path(args.json).write_text(json.dumps(recovery, indent=1) + "\n")


if __name__ == "__main__":
    main()
