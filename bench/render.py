"""Render docs/performance.md from ``python -m bench --json`` output.

    python -m bench --json bench/results.json
    python -m bench.render bench/results.json docs/performance.md

Every figure in the page comes from the JSON; only the method, the profile notes and the
plans are text here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MIB = 1024


def _ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 10 else f"{value:.0f} ms"


def _verdict(ok: bool) -> str:
    return "holds" if ok else "**does not hold**"


def _lat(design: dict[str, Any], era: str) -> dict[str, Any]:
    return next(lat for lat in design["latency"] if lat["era"] == era)


def _fig(lat: dict[str, Any], prefix: str) -> dict[str, float]:
    return next(v for k, v in lat["figures"].items() if k == prefix or k.startswith(prefix + "_"))


def targets(results: dict[str, Any]) -> list[str]:
    designs = results["designs"]
    ref = designs.get("200 components") or next(iter(designs.values()))
    big = designs.get("2,000 components")
    rows = ["| # | target | measured | verdict |", "|---|---|---|---|"]
    for lat in ref["latency"]:
        era, f = lat["era"], lat["figures"]
        noop = f["noop"]["p50"]
        for tool in ("qsys_get", "qsys_status"):
            p50 = f[tool]["p50"]
            rows.append(
                f"| 1 | `{tool}` p50 <= half the bare SDK no-op's ({era}) | {_ms(p50)} vs "
                f"no-op {_ms(noop)} ({p50 / noop:.2f}x) | {_verdict(p50 <= noop / 2)} |"
            )
        cpu = lat["cpu_ms_per_read"]
        rows.append(
            f"| 1 | daemon CPU per cached read <= 0.1 ms ({era}) | {cpu:.3f} ms (bare SDK "
            f"no-op {lat['noop_cpu_ms_per_call']:.3f} ms) | {_verdict(cpu <= 0.1)} |"
        )
        write, raw = f["qsys_set"]["p50"], f["raw_set"]["p50"]
        rows.append(
            f"| 2 | `qsys_set` p50 <= raw `Component.Set` + 0.3 ms ({era}) | {_ms(write)} vs "
            f"raw {_ms(raw)} (+{write - raw:.3f} ms) | {_verdict(write <= raw + 0.3)} |"
        )
    for sdk in ref.get("sdk_client", []):
        p50 = sdk["figures"]["qsys_get"]["p50"]
        rows.append(
            f"| 1 | `qsys_get` p50 with the SDK client <= 0.35 ms ({sdk['mode']}) | {_ms(p50)} "
            f"(SDK no-op {_ms(sdk['figures']['noop']['p50'])}) | {_verdict(p50 <= 0.35)} |"
        )
    for label, d in designs.items():
        s = d["startup"]
        listed = s["spawn_to_tools_list_ms"]
        rows.append(
            f"| 4 | spawn -> `tools/list` <= 250 ms ({label}) | {listed:.0f} ms (bare SDK "
            f"server {s['noop_spawn_to_tools_list_ms']:.0f} ms); first read "
            f"{s['spawn_to_first_read_ms']:.0f} ms | {_verdict(listed <= 250)} |"
        )
    if big:
        s = big["startup"]
        cold, warm, peak = s["start_to_live_cold_ms"], s["start_to_live_warm_ms"], s["peak_rss_kib"]
        rows.append(f"| 5 | start -> live state <= 0.5 s cold (2,000) | {cold:.0f} ms | "
                    f"{_verdict(cold <= 500)} |")  # fmt: skip
        rows.append(f"| 5 | start -> live state <= 0.3 s warm (2,000) | {warm:.0f} ms | "
                    f"{_verdict(warm <= 300)} |")  # fmt: skip
        rows.append(f"| 5 | peak RSS <= 110 MiB (2,000) | {peak / MIB:.1f} MiB; "
                    f"{results.get('bytes_per_control', '?')} bytes per control | "
                    f"{_verdict(peak <= 110 * MIB)} |")  # fmt: skip
        for lat in big["latency"]:
            f, noop = lat["figures"], lat["figures"]["noop"]["p50"]
            for prefix in ("qsys_list_controls", "qsys_find_controls"):
                p50 = _fig(lat, prefix)["p50"]
                own = p50 - noop
                rows.append(
                    f"| 6 | `{prefix}` < 1 ms on 2,000 components ({lat['era']}) | {_ms(p50)} "
                    f"({_ms(own)} over the no-op) | {_verdict(own < 1)} |"
                )
    rows.append("| 7 | change propagation <= AutoPoll + 5 ms p95 | not measured by `bench/` "
                "yet | - |")  # fmt: skip
    if "recovery" in results:
        from bench.bench_recovery import target_rows

        rows += target_rows(results["recovery"])
    else:
        rows.append("| 8 | recovery: Core back -> first successful call | not in this run "
                    "(`bench/bench_recovery.py`) | - |")  # fmt: skip
    return rows


def design_section(label: str, d: dict[str, Any]) -> list[str]:
    s = d["startup"]
    out = [
        f"### {label}: {d['components']} components, {d['controls']} controls",
        "",
        f"Start-up (median of {s['runs']}): spawn -> `tools/list` "
        f"{s['spawn_to_tools_list_ms']:.0f} ms (bare SDK server "
        f"{s['noop_spawn_to_tools_list_ms']:.0f} ms), spawn -> first cached read "
        f"{s['spawn_to_first_read_ms']:.0f} ms, start -> live state "
        f"{s['start_to_live_cold_ms']:.0f} ms cold and "
        f"{s['start_to_live_warm_ms']:.0f} ms from a warm snapshot; RSS "
        f"{s['rss_kib'] / MIB:.1f} MiB, peak {s['peak_rss_kib'] / MIB:.1f} MiB.",
        "",
    ]
    for lat in d["latency"]:
        out += [
            f"Line client, protocol {lat['era']} (ms; daemon CPU per cached read "
            f"{lat['cpu_ms_per_read']:.3f} ms, per `qsys_status` {lat['cpu_ms_per_status']:.3f}"
            f" ms, bare SDK no-op {lat['noop_cpu_ms_per_call']:.3f} ms; "
            f"{lat['read_throughput_per_s']:.0f} reads/s one at a time):",
            "",
            "| figure | p50 | p95 | p99 | n |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {name} | {v['p50']:.3f} | {v['p95']:.3f} | {v['p99']:.3f} | {v['n']} |"
            for name, v in lat["figures"].items()
        ]
        out.append("")
    for sdk in d.get("sdk_client", []):
        out += [
            f"MCP SDK client, mode `{sdk['mode']}` (ms):",
            "",
            "| figure | p50 | p95 | p99 | n |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {name} | {v['p50']:.3f} | {v['p95']:.3f} | {v['p99']:.3f} | {v['n']} |"
            for name, v in sdk["figures"].items()
        ]
        out.append("")
    return out


HEAD = """# Performance

Generated by `python -m bench.render` from the JSON of `python -m bench`; do not edit by hand.
Tests never assert timings; every figure here sits beside a baseline from the same run. The
HTTP doors' figures are in [performance-http.md](performance-http.md).

## How to reproduce

```sh
pip install -e ".[test]"
python -m bench --json bench/results.json      # a few minutes; --quick is CI's smoke run
python -m bench.render bench/results.json docs/performance.md
```

`bench/bench_emulator.py` (design load, AutoPoll push rate) and `bench/bench_state.py`
(StateStore memory per control, `apply()` throughput) measure single components.
`bench/bench_recovery.py` (also run by `python -m bench`) measures target 8: Cores taken
offline for 1, 5 and 20 s, from each one's return to the first fresh read it serves.

## Method

- The emulator (`qsysd emulate`) runs in its own process; the daemon is `qsysd serve --stdio`
  with the journal on, logging at `warning`. Designs: the built-in demo venue, and
  `generate_design(200)` and `generate_design(2000)`.
- Latency: a minimal JSON-RPC line client on the daemon's stdio (write a line, read lines
  until the answer with that id), in both protocol eras (2025-11-25 after `initialize`, and
  2026-07-28 with the per-request envelope). Baselines in the same run, same client: a bare
  MCP SDK low-level server with one no-op tool over the SDK's own `stdio_server()`
  (`bench/_noop_server.py`), and raw QRC `Component.Get` / `Component.Set` (with
  `ResponseValues`) on a TCP socket to the same emulator. Figures are interleaved: {rounds}
  rounds of a batch of {batch} calls of each in turn, after a warm-up.
- Also through the MCP SDK's own stdio `Client`, which is what a Python agent sees.
- CPU per call: the daemon's utime+stime from `/proc` over consecutive calls of one tool.
- Start-up: from spawning the process; live state = `qsys_status` reports every Core
  connected (discovered, subscribed, primed). Cold: an empty state folder; warm: the
  snapshot of the previous run. Memory: `VmRSS`/`VmHWM` of the daemon with the design live;
  bytes per control = extra peak RSS of the 2,000-component design over the demo, per extra
  control.

## Machine

{machine}

## Targets (issue 14)

"""

WHERE = """
## Where the time goes

A py-spy profile (`py-spy record -r 500 -f raw`, 8,133 cached reads of `qsys_get` on the demo
design, line client, 2025-11-25 era, before the optimisations below) attributed the daemon's
samples as: the SDK's request dispatch (a task spawned per request, the request runner, an
OpenTelemetry span with no exporter, pydantic validation and serialisation of the request and
result) about 37 %, the stdio pumps and memory-stream hops about 17 %, trio's I/O wait
18 %, and qsysd's own `call_tool` about 20 %, of which argument validation (jsonschema) was
8 %, the tool itself 5 %, logging, the context manager and the JSON text the rest.

What was removed, each in its own commit with before/after figures: jsonschema on every call
(a check compiled once per input class; jsonschema still writes every refusal's message),
stdlib logging's formatter for structlog events (32-39 -> 20 us a line), `json.dumps` of the
result text (orjson: 4.5 -> 0.3 us for one control, 298 -> 33 us for 178 controls), a set of
every component name per `resolve`, and `rank()`'s per-control cost in `qsys_find_controls`
(720 -> 143 ms over 39,432 controls).

Then, for targets 1-4 (each in its own commit with before/after figures; the design of the
first is in docs/architecture.md, "Dispatch on the stdio door"): `tools/call` on stdio
answered in process with the SDK's own validation and result shaping, skipping its session
layer (`qsys_get` p50 1.23 -> 0.69 ms in the 2025-11-25 era and 0.99 -> 0.55 ms in
2026-07-28, daemon CPU per read 0.68 -> 0.35 ms and 1.05 -> 0.63 ms); the journal's commits
of a write and its audit row on the trio thread instead of two worker-thread round trips
(`qsys_set` p50 3.62 -> 2.52 ms and 3.22 -> 2.85 ms); the SDK's client and high-level
server and the HTTP stack no longer imported by a stdio daemon (spawn -> `tools/list`
daemon CPU 1.85 -> 1.41 s, RSS 81.8 -> 70.6 MiB).

What is left, and what it would take:

- Latency and CPU per call (targets 1, 3). A py-spy profile of the daemon now (`py-spy record
  -r 1000 -f raw --nonblocking --pid PID`, 3,000 cached reads of `qsys_get`, 200 components,
  2025-11-25, line client; daemon CPU 0.47 ms a read from `/proc` meanwhile) splits the
  samples in which its trio thread was not idle as: the `write(2)` of the answer on the stdout
  pipe 40 %, trio's scheduling (a task per call, cancel scopes, the epoll loop) 12 %, qsysd's
  call path 20 % (the tool itself 5 %, argument structuring 5 %, logging and its context 3 %,
  metrics, the audit check and the text JSON 7 %), the SDK's result shaping (pydantic dump and
  the era's surface) 5 % and its request validation 2 %, the door (line split, orjson parse,
  routing) 6 %, the stdin `read(2)` 4 %, partial stacks 11 %. strace counts that `write(2)` at
  a few microseconds of system time, so most of its 40 % is the thread preempted by the client
  it has just woken (2 vCPUs shared with other work, load 3-9 during these runs): wall time,
  not CPU. The p50 target is relative to the bare SDK server in the same run, and both move
  with the load: over the two full runs of this change `qsys_get` ran at 0.41-0.73x the
  no-op's p50 where both were measured in calm batches (0.82-1.04x before it; the target holds
  in the demo's 2026-07-28 batches, 0.41x), and above 1x only where a load spike hit the
  daemon's batches and not the baseline's. CPU per read at 0.1 ms would take about a third of
  today's Python per call: shaping the result without pydantic (a dict checked against the
  SDK's by the equality test, about 25 us), structuring arguments only for tools that need
  attrs inputs, cached loggers, and a faster vCPU: on this machine the bare SDK no-op server
  alone costs 1.0-2.4 ms of CPU per call, so 0.1 ms is below what Python does in one trio task
  switch and two syscalls here.
- The write (target 2). A `qsys_set` crosses four process hops in series (client -> daemon ->
  Core -> daemon -> client) where the raw `Component.Set` baseline crosses two, so on an
  oversubscribed machine every extra hop waits for a CPU: the in-process durations of writes
  cluster at multiples of 4 ms (the scheduler's slice) when the load is high. Profile (2,000
  writes, same method): the answer's `write(2)` 27 %, the QRC request's socket calls 19 %,
  trio 13 %, the tool and policy 10 %, the two journal commits 7 % (about 40 us), the call
  path 5 %, AutoPoll echoes of the change 5 %. The thread round trips are gone (worker threads
  1-2 % of samples, checkpoints only); in the quiet A/B runs the write sits at raw + 2.0-3.2
  ms. Under raw + 0.3 ms needs an idle machine, or fewer hops: the MCP client and the Core
  cannot be skipped, so what is left is CPU per hop (the same Python as the read, above) and
  one commit instead of two (the write row and the call row in one transaction, at the price
  of the write row no longer committed by `record_write` itself).
- Start-up (target 4). Spawn -> `tools/list` is Python's start and the imports: `import
  qsysd.daemon` costs 1.25-1.56 s of CPU on this machine (`python -X importtime`), of which
  `mcp_types` (the SDK builds pydantic models for every protocol version at import) is
  0.25-0.8 s, and `mcp.server.lowlevel.server` still imports starlette, uvicorn and
  OpenTelemetry; the bare SDK server is slower than the target by itself in the same runs. 250
  ms needs a door that answers `initialize` and `tools/list` before the SDK is imported (from
  a rendering of those answers cached in the state folder, keyed by the qsysd and SDK
  versions, the configuration and the plugin set, and checked against the SDK's own answer
  once it is loaded), or an SDK that builds its models lazily (upstream). The door opens
  before the Cores are synced, so sync time no longer adds to it; spawn -> first cached read
  waits for the sync (held calls answer once it ends).
- Large design (targets 5, 6): discovery, subscription and priming and the snapshot restore
  run on the trio thread; `qsys_find_controls` still scans every control (an inverted index
  token -> controls would bring it near 1 ms); peak RSS is the SDK's import plus the store.
"""


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    machine = (
        f"{m['date']}: {m['cpus']} x {m['cpu']}, {m['platform']}, Python {m['python']}. The "
        "machine is shared with other work, so treat single figures as orders of magnitude "
        "and compare a figure with its same-run baseline."
    )
    text = HEAD.format(
        machine=machine, rounds=results["method"]["rounds"], batch=results["method"]["batch"]
    )
    lines = [text.rstrip("\n"), "", *targets(results), "", "## Figures", ""]
    for label, d in results["designs"].items():
        lines += design_section(label, d)
    return "\n".join(lines).rstrip("\n") + "\n" + WHERE


def main() -> None:
    source, target = [*sys.argv[1:], "bench/results.json", "docs/performance.md"][:2]
    results = json.loads(Path(source).read_text())
    Path(target).write_text(render(results))


if __name__ == "__main__":
    main()
