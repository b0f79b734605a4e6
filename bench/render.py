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


def _floor_cpu(lat: dict[str, Any]) -> str:
    floor = lat.get("floor_cpu_ms_per_call")  # results of older commits have none
    return "" if floor is None else f", trio floor {floor:.3f} ms"


def _floor_p50(sdk: dict[str, Any]) -> str:
    floor = sdk["figures"].get("floor")
    return "" if floor is None else f", trio floor {_ms(floor['p50'])}"


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
            f"no-op {lat['noop_cpu_ms_per_call']:.3f} ms{_floor_cpu(lat)}) | "
            f"{_verdict(cpu <= 0.1)} |"
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
            f"(SDK no-op {_ms(sdk['figures']['noop']['p50'])}{_floor_p50(sdk)}) | "
            f"{_verdict(p50 <= 0.35)} |"
        )
    for label, d in designs.items():
        s = d["startup"]
        listed = s["spawn_to_tools_list_ms"]
        first = s.get("spawn_to_tools_list_first_ms")
        first_text = f"; first spawn, no answer cache {first:.0f} ms" if first is not None else ""
        rows.append(
            f"| 4 | spawn -> `tools/list` <= 250 ms ({label}) | {listed:.0f} ms (bare SDK "
            f"server {s['noop_spawn_to_tools_list_ms']:.0f} ms{first_text}); first read "
            f"{s['spawn_to_first_read_ms']:.0f} ms | {_verdict(listed <= 250)} |"
        )
    if big:
        s = big["startup"]
        peak = s["peak_rss_kib"]
        for phase, limit in (("cold", 500), ("warm", 300)):
            spawn = s[f"start_to_live_{phase}_ms"]
            own = s.get(f"daemon_live_{phase}_ms")
            if own is None:  # results of a bench before the daemon's own figure
                rows.append(
                    f"| 5 | start -> live state <= {limit / 1000:g} s {phase} (2,000) | "
                    f"{spawn:.0f} ms from spawn | {_verdict(spawn <= limit)} |"
                )
                continue
            restored = s.get("restore_ms") if phase == "warm" else None
            restore = f"; snapshot restore {restored:.0f} ms" if restored is not None else ""
            rows.append(
                f"| 5 | start -> live state <= {limit / 1000:g} s {phase} (2,000) | {own:.0f} ms "
                f"(the daemon's own: session setup {s[f'sync_{phase}_ms']:.0f} ms{restore}); "
                f"{spawn:.0f} ms from spawn | {_verdict(own <= limit)} |"
            )
        cold_peak = s.get("cold_peak_rss_kib")  # None in results of an older bench
        for phase, value in (("warm", peak), ("cold", cold_peak)):
            if value is None:
                continue
            rows.append(f"| 5 | peak RSS <= 110 MiB, {phase} start (2,000) | "
                        f"{value / MIB:.1f} MiB; {results.get('bytes_per_control', '?')} "
                        f"bytes per control | {_verdict(value <= 110 * MIB)} |")  # fmt: skip
        for lat in big["latency"]:
            f, noop = lat["figures"], lat["figures"]["noop"]["p50"]
            for prefix in ("qsys_list_controls", "qsys_find_controls"):
                p50 = _fig(lat, prefix)["p50"]
                rows.append(
                    f"| 6 | `{prefix}` p50 < 1 ms on 2,000 components ({lat['era']}) | "
                    f"{_ms(p50)} (bare SDK no-op {_ms(noop)}) | {_verdict(p50 < 1)} |"
                )
    for label, d in designs.items():
        prop = d.get("propagation")
        if prop is None:
            continue
        limit = prop["poll_interval_ms"] + 5
        rows.append(
            f"| 7 | change propagation p95 <= AutoPoll ({prop['poll_interval_ms']:.0f} ms) + 5 ms "
            f"({label}) | p95 {prop['p95']:.1f} ms, p50 {prop['p50']:.1f} ms, p99 "
            f"{prop['p99']:.1f} ms (n {prop['n']}) | {_verdict(prop['p95'] <= limit)} |"
        )
    if not any("propagation" in d for d in designs.values()):
        rows.append("| 7 | change propagation <= AutoPoll + 5 ms p95 | not measured | - |")
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
        f"{s['spawn_to_tools_list_ms']:.0f} ms from the answer cache ("
        + (
            f"first spawn {s['spawn_to_tools_list_first_ms']:.0f} ms, "
            if "spawn_to_tools_list_first_ms" in s
            else ""
        )
        + f"bare SDK server "
        f"{s['noop_spawn_to_tools_list_ms']:.0f} ms), spawn -> first cached read "
        f"{s['spawn_to_first_read_ms']:.0f} ms, start -> live state "
        f"{s['start_to_live_cold_ms']:.0f} ms cold and "
        f"{s['start_to_live_warm_ms']:.0f} ms from a warm snapshot; RSS "
        f"{s['rss_kib'] / MIB:.1f} MiB, peak {s['peak_rss_kib'] / MIB:.1f} MiB"
        + (
            f" (a cold start: RSS {s['cold_rss_kib'] / MIB:.1f} MiB, peak "
            f"{s['cold_peak_rss_kib'] / MIB:.1f} MiB)."
            if "cold_peak_rss_kib" in s
            else "."
        ),
        "",
    ]
    if s.get("daemon_live_cold_ms") is not None:
        out[-1:] = [
            f"The daemon's own start -> live state (its log: snapshot restore, then its Core "
            f"link's start to serving): {s['daemon_live_cold_ms']:.0f} ms cold, "
            f"{s['daemon_live_warm_ms']:.0f} ms warm; the session's setup (discover, "
            f"subscribe, prime) {s['sync_cold_ms']:.0f} ms cold, {s['sync_warm_ms']:.0f} ms "
            f"warm (no discovery: the DesignCode matches the snapshot's); restoring the "
            f"snapshot {s['restore_ms'] or 0:.0f} ms.",
            "",
        ]
    prop = d.get("propagation")
    if prop is not None:
        out += [
            f"Change propagation (a raw QRC client's `Component.Set` -> "
            f"`notifications/resources/updated`, AutoPoll every {prop['poll_interval_ms']:.0f} "
            f"ms): p50 {prop['p50']:.1f} ms, p95 {prop['p95']:.1f} ms, p99 {prop['p99']:.1f} ms,"
            f" mean {prop['mean']:.1f} ms (n {prop['n']}).",
            "",
        ]
    for lat in d["latency"]:
        out += [
            f"Line client, protocol {lat['era']} (ms; daemon CPU per cached read "
            f"{lat['cpu_ms_per_read']:.3f} ms, per `qsys_status` {lat['cpu_ms_per_status']:.3f}"
            f" ms, bare SDK no-op {lat['noop_cpu_ms_per_call']:.3f} ms{_floor_cpu(lat)}; "
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
  until the answer with that id; orjson both ways, so the client's own share stays small:
  the stdlib's `json` took 0.25 ms to parse a 160-control listing), in both protocol eras
  (2025-11-25 after `initialize`, and 2026-07-28 with the per-request envelope). Baselines
  in the same run, same client: a bare MCP SDK low-level server with one no-op tool over the
  SDK's own `stdio_server()` (`bench/_noop_server.py`); the "trio floor"
  (`bench/_floor_server.py`, figure `floor`), a trio stdio server with no MCP SDK that
  answers every request with a fixed line from a task of its own, so its cost is one read,
  parse, task and write in Python, the least any such server pays; and raw QRC
  `Component.Get` / `Component.Set` (with `ResponseValues`) on a TCP socket to the same
  emulator. Figures are interleaved: {rounds} rounds of a batch of {batch} calls of each in
  turn, after a warm-up.
- Also through the MCP SDK's own stdio `Client`, which is what a Python agent sees, with the
  same three servers.
- CPU per call: the daemon's utime+stime from `/proc` over {cpu_calls} consecutive calls of
  one tool (the counts are in 10 ms clock ticks).
- Start-up: from spawning the process; live state = `qsys_status` reports every Core
  connected (discovered, subscribed, primed). Cold: an empty state folder; warm: the
  snapshot of the previous run. The daemon's own start -> live state leaves out the
  interpreter's start and the imports (target 4's figure): from its log at `info`, the
  snapshot restore (`state.restored`, `duration_ms`) plus its Core link's start
  (`core.link_started`) to `core.serving` (discovered, subscribed, primed). Memory:
  `VmRSS`/`VmHWM` of the daemon half a second after live state, on a cold and on a warm
  start; bytes per control = extra warm peak RSS of the 2,000-component design over the
  demo, per extra control.
- Change propagation (`bench/bench_propagation.py`): a line client subscribes
  (`resources/subscribe`) to one component's controls resource; a second, raw QRC client on
  the emulator sets that component's gain at a spread phase of the AutoPoll cycle; one sample
  is the time from just before that `Component.Set` to the resource's
  `notifications/resources/updated` on the daemon's stdout. A change waits for the next poll,
  so samples spread over one AutoPoll interval by design.

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

Then (each in its own commit with before/after figures):

- Target 4: an early stdio door (`qsysd/_early/`, standard library only) answers
  `initialize`, `server/discover` and `tools/list` from a cache of the server's own answers in
  the state folder before the SDK and trio are imported, and the real door replays those
  requests into the SDK's session and checks the answers (docs/architecture.md, "The early
  stdio door"). Spawn -> `tools/list` 1.4-1.6 s -> 50-80 ms from the second start.
- Targets 1, 3, 6: lean `tools/call` answers are written into frames the SDK's result shaping
  rendered once per protocol version (no pydantic per call; a test compares the bytes with the
  SDK's shaping for every tool, era and error); listings built as JSON objects from the
  readings; `qsys_find_controls` scored per word and per set of alike names; the call path's
  logger bound once per configuration. Daemon CPU (2,000 components, calm A/B): `qsys_get`
  0.33 -> 0.27 ms (2025-11-25) and 0.40 -> 0.33 ms (2026-07-28); `qsys_list_controls` of 160
  controls 2.0-2.5 -> 1.1-1.3 ms; `qsys_find_controls` 1.8-2.2 -> 0.9-1.0 ms. Then argument
  validation as one flat compiled check per type that refuses NaN and infinities itself (a
  valid call skips the separate walk; every refusal keeps its message: `qsys_get`'s 9.7 -> 1.9
  us, its structuring 12.2 -> 3.6 us) and `acting_role` without a generator (1.5 -> 0.6 us):
  the in-process call path of a cached `qsys_get` 47-52 -> 37-38 us. Listings read from the
  store's rows without a reading object per control (160 controls 0.58 -> 0.24 ms of CPU),
  and each find cluster's members ordered once at index build (find 0.62-0.69 -> 0.49-0.51
  ms of CPU in process).
- Target 2: a write's audit rows commit in the call row's transaction (one commit per call, a
  50-control write 51 -> 1): journal CPU per write 159 -> 106 us.

The latest round (2026-12-02; each in its own commit with A/B figures, interleaved batches,
daemon CPU from `/proc/PID/task/*/schedstat`):

- The stdio door reads the pipe before it waits and writes an answer at once when its lock is
  free: a request costs one trip through trio's scheduler instead of four (each an
  `epoll_wait` and a turn of the run loop). Daemon CPU per cached read 0.177 -> 0.139 ms
  (2025-11-25) and 0.217 -> 0.178 ms (2026-07-28).
- 2026-07-28 params whose envelope passed the SDK's checks are not checked again (they read
  nothing else): 0.150 -> 0.127 ms.
- The write: a one-request write is sent from the calling task (no nursery); a QRC frame that
  fits the socket buffer is written without yielding; the call's journal commit without a
  checkpoint; the store is watched for resource notifications only while anyone subscribes
  (every write used to publish to the SDK's bus); audited writes logged through a logger
  bound once; journal scalars encoded without `json.dumps`; the audit's blocks as classes.
  `qsys_set` p50 1.13 -> 0.95 ms, daemon CPU per write 0.82 -> 0.64 ms; 50 controls 20.9 ->
  16.4 ms.
- The bench's line client parses with orjson (the stdlib's json cost it 0.25 ms on a
  160-control listing, a client cost the baselines did not carry), and it measures a trio
  floor (`bench/_floor_server.py`) beside the bare SDK server.
- `serve` no longer imports the emulator to build its argument parser (about 50 ms of CPU
  at every start).

What is left, and what it would take:

- Daemon CPU per cached read (targets 1, 3): 0.175-0.285 ms in the tables above, 0.12-0.14 ms
  in a calm A/B; the p50 targets hold (0.27-0.30x the bare SDK no-op). The trio floor, a
  server that only reads a line, parses it, starts a task and writes a fixed answer, costs
  0.055-0.19 ms of CPU in the same runs (0.044-0.064 ms calm): what any Python server on
  trio pays a request on this machine, with this machine's run-to-run swing of up to 2x.
  Above the floor, a cached read is qsysd's call path (about 37 us in process: resolving the
  name and reading the store about 8 us, the argument check and structuring 5, the output
  and its JSON 5, the logging context, metrics and audit wrapper about 8, the tool itself
  the rest) and the door's own bookkeeping (about 25 us: splitting and parsing the line, the
  era and params checks, the in-flight table and cancel scope that make a call cancellable,
  filling the answer frame). 0.1 ms would leave the call path and the door 0.03-0.05 ms
  together above a floor that alone is 0.055-0.19 ms here: it would take the door and the
  call path in compiled code, or dropping what they do per call (cancellation, the audit
  context, metrics).
- Through the MCP SDK's own client (target 1's 0.35 ms): the same client against the trio
  floor takes 0.27-0.39 ms p50 in this run, so the client alone uses the whole budget. On
  top of it the client validates each answer's structured content against the tool's
  output schema with jsonschema (67 us for one `qsys_get` answer, measured alone; the floor's
  tool has no output schema) and parses the larger result with pydantic. Under 0.35 ms
  would need a client that does less per call or tools without output schemas, which qsysd
  keeps: they make every answer checkable.
- The write (target 2): raw + 0.77-0.91 ms here (raw + 1.3-2.3 ms a round ago). Per
  single-control write, in process, the daemon's CPU now goes: about 110 us before the
  request is sent (call path 29, resolving 23, policy and grouping 31, the link's and the
  connection's request 26), 30 us for the send, about 40 us to receive and decode the
  reply, then 18 us decoding the echo, 11 us applying it to the store and its journal row,
  21 us settling the results, 33 us for the audit row and the tool's result, 24 us for the
  call row's JSON of arguments and answer, and 60-80 us for the SQLite commit (six WAL pages:
  the journal and call tables and two indexes each). That is about 0.45 ms of CPU beyond a
  read, on top of the Core's round trip, in a process that sleeps while it waits, so its
  code runs cold (a cached `qsys_get`'s call path costs 18 us warm). Raw + 0.3 ms would
  need the write's own work at a third of that: the audit and change rows out of the
  reply's path (a change to the journal's documented guarantee that an answered write is
  durable), fewer indexes, and the call path's Python per write halved. Not done: the
  50-control write still sends 50 requests from 50 tasks; one frame for all of them would
  save about 1.5-2 ms there.
- Start-up (target 4) holds from the second start (45-48 ms). The first spawn in a state
  folder (or after an upgrade, a configuration change or a new plugin: anything in the
  cache's key) still pays the imports, about 1 s here: `mcp_types` builds pydantic models
  for every protocol version at import (most of it), trio a third of a second. Spawn ->
  first cached read (1.0-2.2 s) waits for those imports and for the Cores' sync: a tool
  call is held until the Cores are synced (at most `daemon.ready_timeout`).

### The large design (targets 5-7)

What was removed, each in its own commit with before/after figures (2,000 components, 39,457
controls, the emulator in its own process):

- The snapshot: format 2 stores a control as a JSON array that msgspec decodes and
  type-checks straight into `SavedControl`; `ControlRef` and `ControlInfo` are msgspec
  structs (a tenth of an attrs frozen class's construction time, no GC header). CPU for
  40,000 controls: decode 441 -> 33 ms, restore 226 -> 40 ms, encode 286 -> 70 ms, 279 -> 152
  bytes a control on disk. Format 1 files still load and are written back as format 2; any
  other format is refused by name.
- The first AutoPoll push after a discovery changed every control: a newer Core sends display
  metadata with Poll items but not with GetControls, so 39,457 version bumps, watcher offers
  and journal rows on every cold start. First metadata of an unchanged value is now no change;
  equal metadata is stored once; names, types and directions are interned. Daemon CPU of a
  cold sync 3.4-3.7 -> 2.3 s, peak RSS 156.6 -> 139.0 MiB.
- The subscription's own copy of every control's type (a live view of the store instead):
  Python memory held with the design live 25.6 -> 15.7 MiB.
- `qsys_find_controls` scored every control per call. The index now clusters components by
  type, controls and the letter tokens of their names, scores each cluster (and each family
  of alike control names) once, scores apart only components whose digits match a digit
  word, and skips clusters whose upper bound cannot reach the results so far; exactly the
  old ranking (a test compares both). CPU per query 110-410 ms -> about 1-2 ms; through the
  call path in process ('gym mixer gain'): 0.9 ms on the demo, 1.2 ms on 200 and 1.7 ms on
  2,000 components (was 2.6, 2.4 and about 250 ms).
- Resource notifications quoted every component's URI again for every batch (cached now).

Then (each in its own commit with before/after figures; `bench/bench_sync.py` and
`bench/bench_sync_sansio.py` measure the sync's CPU with and without sockets):

- QRC frames are read with msgspec and written with orjson; the stdlib decides every case where
  they differ (NaN, lone surrogates, integers past 64 bits, bad frames), so the same frames are
  accepted and refused with the same errors (orjson's reader doubled the decode's memory peak
  on multi-megabyte pushes, 32 -> 62 MiB, hence msgspec). Client decode 207 -> 95 ms a sync;
  the emulator's encoding 288 -> 60 ms.
- The session's set-up requests (`Component.GetControls`, `ChangeGroup.AddComponentControl`)
  go on a pipelined bulk path (at most `discovery_concurrency` in flight, frames written
  together, no task per request), with each request's own deadline and per-item errors;
  request handling fell from about 36 % to about 5 % of the sync's CPU.
- Each change group is polled once right after AutoPoll is set, instead of waiting one
  `poll_rate` for the first push; the reply is handled in the reader, in order with pushes.
- The emulator caches its float32 number formatting.
- Sync CPU (2,000 components, A/B medians, load about 3.7): daemon cold 2.8-3.0 -> 1.7-2.1 s,
  warm 1.1-1.4 -> 0.8-1.0 s; emulator cold 1.6-1.9 -> 0.9-1.2 s, warm 0.6-0.8 -> 0.4 s.

Then (2026-12-02; each in its own commit with A/B figures):

- The garbage collector was the largest cost of a cold start: five full collections, 453 ms
  in all, three of them during the sync, each walking every object of the daemon. Store
  entries are now msgspec structs the collector does not track (an entry holds nothing that
  leads back to it), and the collector is paused while a frame of 64 KiB or more is decoded
  and while a poll's values are converted and stored (decoded JSON makes no cycles). The
  sync now starts no collection. Daemon CPU spawn -> live: cold 2.51 -> 1.89 s, warm
  1.95 -> 1.68 s (about 1 s of it the interpreter and the imports).
- The reader drops each message once it is handed over, and copies a frame out of its buffer
  once: peak RSS cold 129.3 -> 122.2 MiB.
- A snapshot's metadata is decoded once per distinct text (the fast path refuses what the
  old one would refuse, with the same error): decoded snapshot 33.2 -> 23.0 MiB, restore of
  40,000 controls 84-106 -> 39-46 ms.
- A control's value and description are built with fewer steps (a poll item 2.66 -> 1.84
  us, a GetControls control 2.9-3.5 -> 2.3-2.5 us), and equal metadata within one reply is
  shared (the first polls' conversion 239-287 -> 165-193 ms).
- In the bench: cold start -> live state (the daemon's own) 2.5 -> 1.3 s, warm 1.3 -> 0.9 s,
  peak RSS 133.4 -> 120.5 MiB, 1,584 -> 1,251 bytes per control.

The latest round (2026-12-03; each in its own commit with A/B figures from interleaved
daemon starts on the 2,000-component emulator, RSS half a second after live state):

- The JSON decoder makes a new object for every text and float it reads: a live store held
  18,923 copies each of ValueMin, ValueMax, StringMin and StringMax (3-6 distinct values
  each), 39,442 value texts (53 distinct) and 18,283 value floats (44 distinct), about 5.5
  MiB. A discovery now shares equal texts and non-zero floats across its replies, a poll
  within its reply (`share_leaf`: a zero is never shared, since 0.0 == -0.0, and 1, 1.0 and
  True never meet). Cold peak RSS 113.9 -> 107.5 MiB.
- AutoPoll starts as soon as the change groups exist, before the rest of the controls are
  added (a newly added control counts as changed, so each push carries what was added since
  the last). Started after the adds, the first poll of each group carried a third of the
  design in one reply, 13,000 controls decoded at once, 12 MiB above the store: that was the
  peak of both starts. Cold peak 106.9 -> 95.7 MiB, warm 120.2 -> 116.3 MiB; the sync's
  time unchanged within the rounds' spread (cold setup 1.63 vs 1.60 s over 8 rounds).
- The snapshot is read a control at a time: the outer decode leaves each control as JSON
  text, and each becomes a `SavedControl` of shared parts (names interned, equal texts and
  floats one object) before the next is decoded. Decoded all at once, its 39,457 controls
  stood 28 MiB above the file at the warm start's peak. In process: load + restore peak
  80.7 -> 56.6 MiB, the decode's CPU 72 -> 109-126 ms, the restore's 46-49 -> 38-41 ms. In
  the daemon: warm peak 116.5 -> 94.0 MiB, RSS after live 109.2 -> 94.0 MiB.
- `isinstance()` with tuple constants instead of `A | B` unions in the hot paths (a union is
  built anew at every call: 287 ns for four types against 68 ns), and a poll item's text and
  position shared inline: a 13,000-item 2026-era poll 5.6-5.9 -> 5.0 us an item, a
  160-control listing's JSON objects 209 -> 155 us in process. Then a reply's metadata
  members found once per layout of its items (a poll's are alike) and read with one
  `itemgetter` call, shared by (names, values, types): 5.1 -> 3.7 us an item; and the
  store's kinds view answering `get()` itself instead of `Mapping.get` through
  `__getitem__`: 4.2 -> 3.9 us.
- A listing's JSON objects built in one comprehension, a value of a plain JSON type taken as
  is (floats still checked for NaN and infinities): 160 controls 155 -> 135 us in process.

What is left, and what it would take:

- Wall-clock start-up figures swell with the machine's load: the daemon and the emulator
  share two vCPUs. With no sockets at all (`bench/bench_sync_sansio.py`) a cold sync is
  about 0.31-0.33 s of the daemon's CPU and 0.32-0.39 s of the emulator's.
- Cold start -> live state (target 5): QRC has no bulk call, so a cold sync is about 4,000
  requests and every control arrives twice (its GetControls entry, then the first poll):
  about 79,000 control objects, each decoded into a dict and then converted. Since the
  emulator alone needs about 0.35 s of CPU to answer them on the same two cores, 0.5 s
  would take a Core faster than the emulator and the daemon's side at a fraction of its
  0.3 s. A 2026-era poll item with its display metadata costs about 3.9 us to convert in
  process (13,000 items about 50 ms; it was 5.0-5.5 us before this round's last changes,
  when a py-spy profile of a warm start put the conversion at about a third of the daemon's
  time after the imports). What is left of it: the `ControlValue` (an attrs frozen class,
  about a fifth), the metadata's key, normalizing the value by its type, the reference.
  What would cut it: typed msgspec decoding of poll items straight into values (a prototype
  cut three 13,000-item polls' decoding 30 -> 14 ms and their conversion 120 -> 26 ms, and a
  decoded frame 10.1 -> 4.9 MiB). The values now arrive mostly as AutoPoll pushes, which
  the reader can tell by their method before decoding; the current path must stay for
  anything the typed one does not expect, since unknown members are kept as metadata.
- Warm start (target 5): the snapshot loads and restores in 0.25-0.31 s in this round's runs
  (0.13-0.22 s in the previous round's: reading it a control at a time costs about 40 ms more
  CPU, the rest is this round's slower machine), and a matching DesignCode
  skips discovery, but QRC change groups die with the connection and QRC cannot say what
  changed since a time. A Core counts as live only once the Core itself has reported every
  current value (a matching DesignCode proves the design, not the values); until then the
  store serves the restored values marked stale with their age. That costs the
  re-subscription and all 39,434 values reported again (in AutoPoll pushes while the
  controls are added), the same conversion as the cold start's: 0.3 s needs the same typed
  decoding.
- Peak RSS (target 5) holds on both starts. The demo's RSS (74 MiB) is the interpreter and
  the imports, of which `rich` is about 5 MiB: structlog imports it when it is installed,
  and the bench's environment has it through the test extras (pip-audit, schemathesis); a
  plain `pip install qsysd` does not. The design live adds about 20 MiB at the peak: the
  store's entries, descriptions and shared leaves, and on a warm start the snapshot file
  while it is read (10 MB for 39,457 controls).
- Listing and finding (target 6): no cost grows with the design (the 200- and the
  2,000-component figures are alike), and in the previous round's run both held in both eras
  (0.62-0.79 ms p50, the bare SDK no-op 0.73-0.89 ms). This round's runs were taken while the
  machine was slower: every figure, the baselines' too, was 1.3-1.6 times the previous
  round's (the no-op 1.0-1.6 ms, the trio floor 0.18-0.29 against about 0.15 ms), and the
  listing's p50 sat at 0.98-1.34 ms, about 0.9 times the no-op's. A 160-control listing
  costs the daemon 0.6-0.9 ms of CPU on this machine (2,000 calls through the line client,
  `/proc`); by a py-spy profile, building the 160 JSON objects is about a quarter of it
  (135 us in process), reading the request line, parsing it and starting its task a fifth,
  trio's scheduling and epoll an eighth, the call path (policy, audit, the call's log) an
  eighth, rendering the 27 KB answer and its text copy a tenth, reading the rows from the
  store and writing the 60 KB to the pipe the rest. Under 1 ms with room on a machine this
  slow would take the answer's two JSON renderings merged into one pass (the SDK's result
  carries the output twice, as structured content and as text) and the rows read straight
  into JSON.
"""


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    machine = (
        f"{m['date']}: {m['cpus']} x {m['cpu']}, {m['platform']}, Python {m['python']}. The "
        "machine is shared with other work, so treat single figures as orders of magnitude "
        "and compare a figure with its same-run baseline."
    )
    method = results["method"]
    text = HEAD.format(
        machine=machine,
        rounds=method["rounds"],
        batch=method["batch"],
        cpu_calls=f"{method.get('cpu_calls', 2 * method['rounds'] * method['batch']):,}",
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
