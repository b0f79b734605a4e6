"""``python -m bench``: every qsysd performance figure beside its same-run baseline.

For each design (the demo venue, a 200- and a 2,000-component generated design) it starts
the emulator in its own process, then measures, interleaving each figure with its baselines
in rounds (a batch of each in turn), so drift on a shared machine hits them alike:

- latency of ``qsys_get`` (one control, cached), ``qsys_status`` (no Core I/O), ``qsys_set``
  (one control and 50 controls, journaled), listing the largest component's controls and
  finding controls, with the minimal JSON-RPC line client on the daemon's stdio, in both
  protocol eras; baselines: the bare SDK server's no-op tool (same client, same era) and raw
  QRC ``Component.Get`` / ``Component.Set`` (with ``ResponseValues``) on the same emulator;
- the same reads and writes through the MCP SDK's own client (what a Python agent sees);
- the daemon's CPU per call (utime+stime from /proc over many calls) and throughput;
- spawn -> ``tools/list`` answered (the usual spawn, answered by the early door from the
  answer cache, and the first spawn, without one), spawn -> first cached read, start -> live
  state (cold and from a warm snapshot), peak RSS and bytes per control.

Numbers are printed, never asserted. ``--json FILE`` writes them for comparing commits and
for ``python -m bench.render`` (docs/performance.md); ``--quick`` is CI's smoke run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from bench._procs import (
    ERAS,
    LEGACY,
    Emulator,
    LineClient,
    RawQrc,
    child_env,
    cpu_seconds,
    daemon_argv,
    emulator,
    floor_argv,
    memory_kib,
    noop_argv,
    raw_qrc,
    spawned,
    write_config,
)
from bench.bench_propagation import propagation

Call = Callable[[int], Awaitable[Any]]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(samples, 0.50), 4),
        "p95": round(percentile(samples, 0.95), 4),
        "p99": round(percentile(samples, 0.99), 4),
        "mean": round(statistics.fmean(samples), 4),
        "n": len(samples),
    }


async def interleaved(figures: dict[str, Call], rounds: int, batch: int) -> dict[str, list[float]]:
    """Milliseconds per call of each figure, measured in alternating batches."""
    samples: dict[str, list[float]] = {name: [] for name in figures}
    for fn in figures.values():  # warm up
        for i in range(10):
            await fn(i)
    counter = 0
    for _ in range(rounds):
        for name, fn in figures.items():
            out = samples[name]
            for _ in range(batch):
                counter += 1
                started = time.perf_counter()
                await fn(counter)
                out.append((time.perf_counter() - started) * 1000)
    return samples


class Target:
    """What one design offers the figures: control names and sizes."""

    def __init__(self, label: str, components: int | None) -> None:
        from qsysd.emulator import demo_design, generate_design

        design = demo_design() if components is None else generate_design(components)
        self.label = label
        self.components = components
        self.n_components = len(design.components)
        self.n_controls = sum(len(c.controls) for c in design.components) + len(
            design.named_controls
        )
        gains = [c.name for c in design.components if any(x.name == "gain" for x in c.controls)]
        self.gain = "Bar" if components is None else gains[0]
        self.gains50 = gains[:50]
        big = max(design.components, key=lambda c: len(c.controls))
        self.big, self.big_controls = big.name, len(big.controls)


async def wait_live(client: LineClient, limit: float = 120) -> float:
    """Seconds from spawn until qsys_status says every Core is connected (live state)."""
    with trio.fail_after(limit):
        while True:
            try:
                status = await client.call("qsys_status", {})
            except RuntimeError:
                status = {"structuredContent": {"cores": [{"connected": False}]}}
            cores = status["structuredContent"]["cores"]
            if cores and all(c["connected"] for c in cores):
                return time.perf_counter() - client.spawned
            await trio.sleep(0.002)


async def first_read(client: LineClient, control: str, limit: float = 120) -> float:
    """Seconds from spawn until a cached read of ``control`` succeeds."""
    with trio.fail_after(limit):
        while True:
            try:
                await client.call("qsys_get", {"controls": [f"{control}.gain"]})
                return time.perf_counter() - client.spawned
            except RuntimeError:
                await trio.sleep(0.002)


def _events(client: LineClient) -> dict[str, dict[str, Any]]:
    """The daemon's last log event of each name (JSON lines on its stderr)."""
    out: dict[str, dict[str, Any]] = {}
    for line in b"".join(client.stderr_lines).splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict) and "event" in event:
                out[event["event"]] = event
    return out


def _daemon_live_ms(events: dict[str, dict[str, Any]]) -> float | None:
    """Start -> live state as the daemon logs it: the snapshot restore (if any), then from
    its Core link's start to serving (discovered, subscribed, primed); no interpreter start-up
    or imports (target 4's)."""
    started, serving = events.get("core.link_started"), events.get("core.serving")
    if started is None or serving is None:
        return None
    stamp = lambda e: datetime.fromisoformat(e["timestamp"]).timestamp()  # noqa: E731
    restored = events.get("state.restored", {}).get("duration_ms", 0.0)
    return float(restored) + (stamp(serving) - stamp(started)) * 1000


async def startup(target: Target, emu: Emulator, folder: Path, runs: int) -> dict[str, Any]:
    """Spawn -> tools/list, first read, live state (cold, warm) and memory of the daemon."""
    config = write_config(folder, emu, level="info")  # for the daemon's own start-up events
    # tools/list: "cold" is the first spawn (the state folder emptied, so no answer cache
    # either), "warm" the next one, answered by the early door from the cache it left.
    listed_at: dict[str, list[float]] = {"cold": [], "warm": []}
    reads, cold, warm, noop_list = [], [], [], []
    own: dict[str, list[float]] = {"cold": [], "warm": [], "restore": [], "sync_cold": []}
    own["sync_warm"] = []
    memory: dict[str, dict[str, int]] = {"cold": {}, "warm": {}}
    for run in range(runs):
        for phase in ("cold", "warm"):
            if phase == "cold":
                state = folder / "state"
                for f in state.glob("*") if state.exists() else ():
                    f.unlink()
            async with spawned(daemon_argv(config), LEGACY, keep=1 << 20) as client:
                await client.initialize()
                await client.request("tools/list")
                listed_at[phase].append(time.perf_counter() - client.spawned)
                read_at = await first_read(client, target.gain)
                live = await wait_live(client)
                (cold if phase == "cold" else warm).append(live)
                if phase == "cold":
                    reads.append(read_at)
                if run == runs - 1:
                    await trio.sleep(0.5)  # let start-up garbage settle before reading RSS
                    memory[phase] = memory_kib(client.pid)
            events = _events(client)
            daemon_live = _daemon_live_ms(events)
            if daemon_live is not None:
                own[phase].append(daemon_live)
                own[f"sync_{phase}"].append(float(events["core.serving"]["setup_ms"]))
            if phase == "warm" and "state.restored" in events:
                own["restore"].append(float(events["state.restored"]["duration_ms"]))
        async with spawned(noop_argv(), LEGACY) as noop:
            await noop.initialize()
            await noop.request("tools/list")
            noop_list.append(time.perf_counter() - noop.spawned)
    ms = lambda xs: round(statistics.median(xs) * 1000, 1)  # noqa: E731
    return {
        "spawn_to_tools_list_ms": ms(listed_at["warm"]),  # the usual spawn: a warm cache
        "spawn_to_tools_list_first_ms": ms(listed_at["cold"]),  # no answer cache yet
        "noop_spawn_to_tools_list_ms": ms(noop_list),
        "spawn_to_first_read_ms": ms(reads),
        "start_to_live_cold_ms": ms(cold),
        "start_to_live_warm_ms": ms(warm),
        "daemon_live_cold_ms": ms([x / 1000 for x in own["cold"]]) if own["cold"] else None,
        "daemon_live_warm_ms": ms([x / 1000 for x in own["warm"]]) if own["warm"] else None,
        "sync_cold_ms": ms([x / 1000 for x in own["sync_cold"]]) if own["sync_cold"] else None,
        "sync_warm_ms": ms([x / 1000 for x in own["sync_warm"]]) if own["sync_warm"] else None,
        "restore_ms": ms([x / 1000 for x in own["restore"]]) if own["restore"] else None,
        "rss_kib": memory["warm"].get("VmRSS", 0),  # warm: the usual start
        "peak_rss_kib": memory["warm"].get("VmHWM", 0),
        "cold_rss_kib": memory["cold"].get("VmRSS", 0),
        "cold_peak_rss_kib": memory["cold"].get("VmHWM", 0),
        "runs": runs,
    }


async def latency(
    target: Target, emu: Emulator, folder: Path, era: str, rounds: int, batch: int, cpu_calls: int
) -> dict[str, Any]:
    """Line-client latency of each tool beside the no-op and raw QRC baselines, one era;
    CPU per call over ``cpu_calls`` consecutive calls (/proc counts in clock ticks of 10 ms,
    so 2,000 calls resolve 0.005 ms)."""
    config = write_config(folder, emu)
    gain, gains50 = target.gain, target.gains50
    async with (
        spawned(daemon_argv(config), era) as q,
        spawned(noop_argv(), era) as noop,
        spawned(floor_argv(), era) as floor,
        raw_qrc(emu) as raw,
    ):
        await q.initialize()
        await noop.initialize()
        await floor.initialize()
        await wait_live(q)
        figures = _figures(target, q, noop, floor, raw, gain, gains50)
        cpu_before = cpu_seconds(q.pid)
        wall_before = time.perf_counter()
        samples = await interleaved(figures, rounds, batch)
        wall = time.perf_counter() - wall_before
        cpu = cpu_seconds(q.pid) - cpu_before
        noop_cpu_before = cpu_seconds(noop.pid)
        reads = [await _timed(figures["noop"], i) for i in range(cpu_calls)]
        noop_cpu = (cpu_seconds(noop.pid) - noop_cpu_before) / len(reads) * 1000
        floor_cpu_before = cpu_seconds(floor.pid)
        reads = [await _timed(figures["floor"], i) for i in range(cpu_calls)]
        floor_cpu = (cpu_seconds(floor.pid) - floor_cpu_before) / len(reads) * 1000
        # CPU of the daemon per cached read, alone (nothing else is measured meanwhile)
        cpu_read_before = cpu_seconds(q.pid)
        reads = [await _timed(figures["qsys_get"], i) for i in range(cpu_calls)]
        cpu_read = (cpu_seconds(q.pid) - cpu_read_before) / len(reads) * 1000
        cpu_status_before = cpu_seconds(q.pid)
        reads = [await _timed(figures["qsys_status"], i) for i in range(cpu_calls)]
        cpu_status = (cpu_seconds(q.pid) - cpu_status_before) / len(reads) * 1000
    qsysd_calls = sum(len(v) for k, v in samples.items() if k.startswith("qsys_"))
    return {
        "era": era,
        "figures": {name: summary(s) for name, s in samples.items()},
        "cpu_ms_per_read": round(cpu_read, 4),
        "cpu_ms_per_status": round(cpu_status, 4),
        "noop_cpu_ms_per_call": round(noop_cpu, 4),
        "floor_cpu_ms_per_call": round(floor_cpu, 4),
        "cpu_ms_per_call_mixed": round(cpu / max(1, qsysd_calls) * 1000, 4),
        "read_throughput_per_s": round(1000 / statistics.fmean(samples["qsys_get"]), 1),
        "wall_s": round(wall, 2),
    }


async def _timed(fn: Call, i: int) -> float:
    started = time.perf_counter()
    await fn(i)
    return (time.perf_counter() - started) * 1000


def _figures(
    target: Target,
    q: LineClient,
    noop: LineClient,
    floor: LineClient,
    raw: RawQrc,
    gain: str,
    gains50: list[str],
) -> dict[str, Call]:
    async def get(_: int) -> None:
        await q.call("qsys_get", {"controls": [f"{gain}.gain"]})

    async def status(_: int) -> None:
        await q.call("qsys_status", {})

    async def set_one(i: int) -> None:
        await q.call("qsys_set", {"changes": [{"control": f"{gain}.gain", "value": -20 - i % 2}]})

    async def set_50(i: int) -> None:
        changes = [{"control": f"{g}.gain", "value": -20 - i % 2} for g in gains50]
        await q.call("qsys_set", {"changes": changes})

    async def list_controls(_: int) -> None:
        await q.call("qsys_list_controls", {"component": target.big})

    async def find(_: int) -> None:
        await q.call("qsys_find_controls", {"query": "gym mixer gain"})

    async def noop_call(_: int) -> None:
        await noop.call("noop", {})

    async def floor_call(_: int) -> None:
        await floor.call("noop", {})

    async def raw_get(_: int) -> None:
        await raw.call("Component.Get", {"Name": gain, "Controls": [{"Name": "gain"}]})

    async def raw_set(i: int) -> None:
        control = {"Name": "gain", "Value": -20.0 - i % 2}
        await raw.call(
            "Component.Set", {"Name": gain, "Controls": [control], "ResponseValues": True}
        )

    return {
        "qsys_get": get,
        "qsys_status": status,
        "qsys_set": set_one,
        f"qsys_set_{len(gains50)}": set_50,
        f"qsys_list_controls_{target.big_controls}": list_controls,
        "qsys_find_controls": find,
        "noop": noop_call,
        "floor": floor_call,
        "raw_get": raw_get,
        "raw_set": raw_set,
    }


async def sdk_latency(
    target: Target, emu: Emulator, folder: Path, mode: str, rounds: int, batch: int
) -> dict[str, Any]:
    """The same reads and writes through the MCP SDK's stdio Client (what an agent sees)."""
    from mcp import Client, StdioServerParameters

    config = write_config(folder, emu)
    env = child_env()
    daemon = StdioServerParameters(command=sys.executable, args=daemon_argv(config)[1:], env=env)
    bare = StdioServerParameters(command=sys.executable, args=noop_argv()[1:], env=env)
    least = StdioServerParameters(command=sys.executable, args=floor_argv()[1:], env=env)
    gain = target.gain
    async with (
        Client(daemon, mode=mode) as q,
        Client(bare, mode=mode) as noop,
        Client(least, mode=mode) as floor,
    ):
        with trio.fail_after(120):
            while True:
                status = await q.call_tool("qsys_status", {})
                if all(c["connected"] for c in (status.structured_content or {})["cores"]):
                    break
                await trio.sleep(0.01)

        async def get(_: int) -> None:
            assert not (await q.call_tool("qsys_get", {"controls": [f"{gain}.gain"]})).is_error

        async def status_call(_: int) -> None:
            assert not (await q.call_tool("qsys_status", {})).is_error

        async def set_one(i: int) -> None:
            change = {"control": f"{gain}.gain", "value": -20 - i % 2}
            assert not (await q.call_tool("qsys_set", {"changes": [change]})).is_error

        async def noop_call(_: int) -> None:
            assert not (await noop.call_tool("noop", {})).is_error

        async def floor_call(_: int) -> None:
            assert not (await floor.call_tool("noop", {})).is_error

        figures = {"qsys_get": get, "qsys_status": status_call, "qsys_set": set_one}
        figures |= {"noop": noop_call, "floor": floor_call}
        samples = await interleaved(figures, rounds, batch)
    return {"mode": mode, "figures": {name: summary(s) for name, s in samples.items()}}


DESIGNS = [("demo", None), ("200 components", 200), ("2,000 components", 2000)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds, batch = (2, 15) if args.quick else (args.rounds, args.batch)
    cpu_calls = 30 if args.quick else 2000
    designs = DESIGNS[:2] if args.quick else DESIGNS
    if args.designs:
        wanted = args.designs.split(",")
        designs = [d for d in DESIGNS if str(d[1] or "demo") in wanted]
    method = {"rounds": rounds, "batch": batch, "cpu_calls": cpu_calls}
    results: dict[str, Any] = {"machine": machine(), "method": method}
    results["designs"] = {}
    for label, components in designs:
        target = Target(label, components)
        print(f"== {label}: {target.n_components} components, {target.n_controls} controls",
              file=sys.stderr, flush=True)  # fmt: skip
        out: dict[str, Any] = {
            "components": target.n_components,
            "controls": target.n_controls,
            "largest_component": {"name": target.big, "controls": target.big_controls},
        }
        async with emulator(components) as emu:
            with tempfile.TemporaryDirectory(prefix="qsysd-bench-") as tmp:
                folder = Path(tmp)
                out["startup"] = await startup(target, emu, folder, 1 if args.quick else 3)
                n = 10 if args.quick else 100
                found = await propagation(emu, folder, target.gain, n, wait_live=wait_live)
                out["propagation"] = {**summary(found.pop("samples")), **found}
                out["latency"] = [
                    await latency(target, emu, folder, era, rounds, batch, cpu_calls)
                    for era in ((LEGACY,) if args.quick and components else ERAS)
                ]
                if components is None or components == 200:
                    modes = ("legacy",) if args.quick else ("legacy", "auto")
                    out["sdk_client"] = [
                        await sdk_latency(target, emu, folder, m, rounds, batch) for m in modes
                    ]
        results["designs"][label] = out
    demo = results["designs"].get("demo")
    big = results["designs"].get("2,000 components")
    if demo and big:
        extra = big["startup"]["peak_rss_kib"] - demo["startup"]["peak_rss_kib"]
        results["bytes_per_control"] = round(extra * 1024 / (big["controls"] - demo["controls"]))
    from bench import bench_recovery

    results["recovery"] = await bench_recovery.run(args.quick)
    return results


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_table(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"qsysd bench, {m['date']}, {m['cpus']} x {m['cpu']}, Python {m['python']}")
    for label, d in results["designs"].items():
        print(f"\n## {label}: {d['components']} components, {d['controls']} controls")
        s = d["startup"]
        print(
            f"spawn -> tools/list {s['spawn_to_tools_list_ms']} ms (first spawn, no answer "
            f"cache: {s.get('spawn_to_tools_list_first_ms')} ms; bare SDK server "
            f"{s['noop_spawn_to_tools_list_ms']} ms); spawn -> first read "
            f"{s['spawn_to_first_read_ms']} ms; start -> live state cold "
            f"{s['start_to_live_cold_ms']} ms, warm {s['start_to_live_warm_ms']} ms; "
            f"RSS {s['rss_kib'] / 1024:.1f} MiB, peak {s['peak_rss_kib'] / 1024:.1f} MiB "
            f"(cold start: {s['cold_rss_kib'] / 1024:.1f} / "
            f"{s['cold_peak_rss_kib'] / 1024:.1f} MiB); "
            f"daemon's own start -> live cold {s.get('daemon_live_cold_ms')} ms, warm "
            f"{s.get('daemon_live_warm_ms')} ms (restore {s.get('restore_ms')} ms)"
        )
        if "propagation" in d:
            p = d["propagation"]
            print(
                f"change propagation (AutoPoll {p['poll_interval_ms']:.0f} ms): p50 "
                f"{p['p50']:.1f} p95 {p['p95']:.1f} p99 {p['p99']:.1f} ms, n {p['n']}"
            )
        for lat in d["latency"]:
            f = lat["figures"]
            print(f"-- line client, protocol {lat['era']} (ms)")
            for name, v in f.items():
                base = f["noop"]["p50"] if name.startswith("qsys_") else None
                ratio = f"  {v['p50'] / base:5.2f}x no-op" if base else ""
                if name.startswith("qsys_set"):
                    ratio += f"  raw Set +{v['p50'] - f['raw_set']['p50']:.3f} ms"
                print(f"   {name:<28} p50 {v['p50']:7.3f} p95 {v['p95']:7.3f} "
                      f"p99 {v['p99']:7.3f}{ratio}")  # fmt: skip
            print(
                f"   daemon CPU per read {lat['cpu_ms_per_read']:.3f} ms, per status "
                f"{lat['cpu_ms_per_status']:.3f} ms (bare SDK no-op "
                f"{lat['noop_cpu_ms_per_call']:.3f} ms, trio floor "
                f"{lat['floor_cpu_ms_per_call']:.3f} ms); reads {lat['read_throughput_per_s']}/s"
            )
        for sdk in d.get("sdk_client", []):
            f = sdk["figures"]
            print(f"-- MCP SDK client, mode {sdk['mode']} (ms)")
            for name, v in f.items():
                print(f"   {name:<28} p50 {v['p50']:7.3f} p95 {v['p95']:7.3f} p99 {v['p99']:7.3f}")
    if "bytes_per_control" in results:
        print(f"\nmemory: {results['bytes_per_control']} bytes of peak RSS per extra control")
    if "recovery" in results:
        from bench.bench_recovery import print_recovery

        print_recovery(results["recovery"])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (CI)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--batch", type=int, default=40, help="calls per batch (default 40)")
    parser.add_argument("--designs", help="comma list of: demo,200,2000 (default all)")
    args = parser.parse_args()
    results = trio.run(run, args)
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
