"""A CoreLink's sync of a large design, in process, against the emulator in its own process.

Prints, per round, the wall time from the link's start to serving (discovered, subscribed,
primed) and the CPU it took: this process's (``time.process_time``: the link, the codec, the
store) and the emulator's (utime+stime from /proc), cold (an empty store) and warm (the store
restored from a snapshot of the cold run, so the DesignCode matches and discovery is
skipped). Numbers are printed, never asserted.

Run: python -m bench.bench_sync [--components 2000] [--rounds 3] [--poll-rate 0.1]
[--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import statistics
import time
from typing import Any

import trio

from bench._procs import cpu_seconds, emulator, memory_kib
from qsysd.config import CoreConfig
from qsysd.core import CoreLink
from qsysd.logs import configure_logging
from qsysd.state import StateStore, decode_snapshot, encode_snapshot


async def sync_once(
    host: str, port: int, store: StateStore, emu_pid: int, poll_rate: float
) -> dict[str, float]:
    config = CoreConfig(name="main", host=host, port=port, poll_rate=poll_rate)
    link = CoreLink(config, store)
    emu_cpu = cpu_seconds(emu_pid)
    cpu = time.process_time()
    wall = time.perf_counter()
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        with trio.fail_after(120):
            await link.wait_connected()
        figures = {
            "wall_ms": (time.perf_counter() - wall) * 1000,
            "cpu_ms": (time.process_time() - cpu) * 1000,
            "emulator_cpu_ms": (cpu_seconds(emu_pid) - emu_cpu) * 1000,
        }
        link.stop()
    return figures


async def main(components: int, rounds: int, profile: str | None, poll_rate: float) -> None:
    async with emulator(components) as emu:
        pid = emu.process.pid
        results: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
        profiler = cProfile.Profile() if profile else None
        for round_ in range(rounds):
            gc.collect()
            store = StateStore()
            before = memory_kib(os.getpid())["VmRSS"]
            if profiler:
                profiler.enable()
            results["cold"].append(await sync_once(emu.host, emu.port, store, pid, poll_rate))
            if profiler:
                profiler.disable()
            if round_ == 0:  # the peak of the first sync, over what the process held before
                memory = memory_kib(os.getpid())
                print(
                    f"first cold sync: RSS {before / 1024:.1f} -> {memory['VmRSS'] / 1024:.1f} "
                    f"MiB, peak {memory['VmHWM'] / 1024:.1f} MiB"
                )
            saved = encode_snapshot(store.picture())
            del store
            gc.collect()
            warm = StateStore()
            warm.restore(decode_snapshot(saved))
            results["warm"].append(await sync_once(emu.host, emu.port, warm, pid, poll_rate))
            del warm
        for kind, samples in results.items():
            line = {
                key: statistics.median(s[key] for s in samples)
                for key in ("wall_ms", "cpu_ms", "emulator_cpu_ms")
            }
            shown = ", ".join(f"{k} {v:.0f}" for k, v in line.items())
            print(f"{components} components, {kind}: median of {rounds}: {shown}")
            print("  rounds (wall/cpu/emulator cpu): " + "; ".join(_row(s) for s in samples))
        if profiler and profile:
            profiler.dump_stats(profile)
            print(f"profile of the cold rounds written to {profile}")


def _row(sample: dict[str, Any]) -> str:
    return "/".join(f"{sample[k]:.0f}" for k in ("wall_ms", "cpu_ms", "emulator_cpu_ms"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of the cold rounds to this file")
    parser.add_argument("--poll-rate", type=float, default=0.1, help="AutoPoll interval (s)")
    args = parser.parse_args()
    configure_logging("warning")
    trio.run(main, args.components, args.rounds, args.profile, args.poll_rate)
