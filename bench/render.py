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

What is left, and what it would take:

- Latency and CPU per call (targets 1-3): the bare SDK server's own per-request cost is the
  floor that a handler on the SDK's session layer cannot go under; half of it, as target 1
  asks, needs a lean dispatch of `tools/call` (and the other hot requests) in
  `qsysd/server/_stdio.py` that parses the line once, calls the same handlers
  (`server.qsys.call_tool`, `list_tools`) and writes the SDK's result types, bypassing the
  per-request task, the OpenTelemetry span and the double pydantic round trip, while both
  eras stay byte-for-byte indistinguishable to clients (initialize, capabilities, the
  2026-07-28 envelope and `resultType`, cancellation, progress). Not done yet: it must keep
  every protocol test and the MCP Inspector green, and the lead is reshaping `call_tool`.
- The write (target 2): the journal's insert and commit run in a worker thread before the
  reply. Group commit off the reply path would take it out, at the price of a documented
  window in which an acknowledged write's audit row is not yet durable.
- Start-up (target 4): importing the SDK alone (`mcp_types` ~0.4 s, `mcp/__init__` pulls the
  client, httpx, uvicorn, starlette and OpenTelemetry whatever submodule is imported) costs
  more than 250 ms on this machine: the bare SDK server above is itself slower than the
  target. Meeting it needs the SDK to import lazily (an upstream change) or a door that
  answers `initialize`/`tools/list` before importing the SDK. The door now opens before the
  Cores are synced, so sync time no longer adds to it.
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
