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
        rows.append(f"| 5 | peak RSS <= 110 MiB (2,000) | {peak / MIB:.1f} MiB; "
                    f"{results.get('bytes_per_control', '?')} bytes per control | "
                    f"{_verdict(peak <= 110 * MIB)} |")  # fmt: skip
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
        f"{s['rss_kib'] / MIB:.1f} MiB, peak {s['peak_rss_kib'] / MIB:.1f} MiB.",
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
  `VmRSS`/`VmHWM` of the daemon with the design live; bytes per control = extra peak RSS of
  the 2,000-component design over the demo, per extra control.
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

Then, this round (each in its own commit with before/after figures):

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

What is left, and what it would take:

- Latency and CPU per call (targets 1, 3). A py-spy profile now (3,000 cached reads of
  `qsys_get`, 2,000 components, 2025-11-25, line client) puts about 40 % of the trio thread's
  busy samples in the `write(2)` of the answer (about 0.02 ms of system CPU a call: mostly
  the thread preempted by the client it has just woken on two shared vCPUs), the stdio door
  (line reader, orjson parse, routing) about 13 %, trio's scheduling and epoll loop 10-15 %,
  qsysd's call path about 12 % (the store read and resolve 7 %, argument validation and
  structuring 4 %, logging, context and metrics 2-3 %), the lean path's own work about 8 % (a
  task and a cancel scope per call; the SDK's request validation, which only 2026-07-28
  requests still pay) and filling the answer frame about 2 %. The p50 targets hold against
  the bare SDK server in the same run (0.31-0.38x). 0.1 ms of CPU a call is below what one
  trio task, a read and a write cost in Python on this machine (the bare SDK no-op costs
  0.8-1.8 ms of CPU a call here). qsysd's call path is now about 37 us of CPU of the daemon's
  0.23-0.35 ms a read; the rest is the door, trio, the task and cancel scope per call (what
  makes calls concurrent and cancellable) and the two syscalls. Through the MCP
  SDK's own client the p50 is 1.3-1.6 ms, 0.7 ms under the SDK's no-op in the same run: the
  client's own per-call work (its session layer and pydantic validation of the result) is
  most of the rest, and it is not ours to remove.
- The write (target 2). A `qsys_set` crosses four process hops in series (client -> daemon ->
  Core -> daemon -> client) where the raw `Component.Set` baseline crosses two, and on a
  2-vCPU machine every extra hop waits for a CPU: raw + 2.0-2.2 ms now (+2.8-3.0 before this
  round). The journal's share is one commit of about 50 us of CPU; the rest is the same Python
  per hop as the read (above) plus the QRC request's socket calls. Under raw + 0.3 ms needs
  fewer hops, and neither the MCP client nor the Core can be skipped.
- Start-up (target 4) holds from the second start. The first spawn in a state folder (or
  after an upgrade, a configuration change or a new plugin: anything in the cache's key) still
  pays the imports, 1.2-1.3 s here: `mcp_types` builds pydantic models for every protocol
  version at import (most of a second of CPU), trio a third of one. Spawn -> first cached read
  (1.2-3.4 s) waits for those imports and for the Cores' sync: a tool call is held until the
  Cores are synced (at most `daemon.ready_timeout`). Lower would need an SDK that builds its
  models lazily (upstream), or a `tools/call` path that needs no `mcp_types` at all.

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

This round (each in its own commit with before/after figures; `bench/bench_sync.py` and
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

What is left, and what it would take:

- Wall-clock start-up figures above swell with the machine's load (the daemon, the emulator
  and other work share two cores); on a calm machine a cold sync of the 2,000-component design
  is about 1.6 s of wall time and 1.3 s of the daemon's CPU.
- Cold start -> live state (target 5): QRC has no bulk call, so a cold sync is still about
  4,000 requests and every control arrives twice (its GetControls entry, then the first poll):
  about 79,000 control objects. Turning them into values is now the largest cost (about 0.5 s
  of CPU with no sockets at all, `bench/bench_sync_sansio.py`), then decoding (about 0.1 s);
  in a live sync conversion is about 30 % of the samples and the store about 7 %, the rest
  trio, sockets and the snapshot. The emulator spends 0.45-0.9 s answering on the same two
  cores. Under 0.5 s would take values from the first poll only (a store path where a first
  value is not a change and costs nothing), `ControlValue` as a msgspec struct (construction
  0.8 -> 0.09 us; plugins see it as an attrs class today, so it is an API change), typed
  msgspec decoding of poll items, and a Core faster than the emulator.
- Warm start (target 5): the snapshot restores in about 0.1 s of CPU and a matching
  DesignCode skips discovery, but QRC change groups die with the connection, and QRC cannot
  say what changed since a time. A Core counts as live only once every change group has been
  polled, that is once the Core itself has reported every current value (a matching
  DesignCode proves the design, not the values); until then the store serves the restored
  values marked stale with their age. That costs the re-subscription and one poll of all
  39,434 values, about 0.6-0.8 s of CPU, mostly converting them: the same conversion work as
  the cold start's.
- Peak RSS (target 5): the demo's RSS (about 74 MiB) is the interpreter and the imports; the
  early door does not change what the running daemon imports. The design adds about 36 MiB in
  process: about 16 MiB of Python objects kept (447 bytes a control in
  `bench/bench_state.py`), the rest allocator arenas left by the transient first state (the
  first polls' frames, their decoded documents and values). Under 110 MiB would need fewer
  imports in the running daemon (the SDK's models for protocol versions never negotiated) and
  polls decoded item by item straight into values.
- Listing a component's controls (target 6): no cost grows with the design. For 160
  controls the store read and the JSON objects now take about 0.24 ms of CPU (0.58 before the
  row path); what remains is filling the answer (the 31 KB output rendered once, then escaped
  again as the text content's string), the 62 KB `write(2)` (a third of the samples, mostly
  waiting for the client to read) and 160 ten-key dicts. The p50 (about 2 ms) is still twice
  the target on this machine; next would be encoding the rows straight to JSON (no dicts) and
  the text content from the same bytes, and the line client reading a 62 KB answer costs a
  share of its own.
- Finding controls (target 6): 0.9-1.0 ms of the daemon's CPU a query on 2,000 components
  before the cluster order below, which saves about 0.15 ms more in process; no per-call
  cost grows with the number of components (the per-word cluster lists are combined once
  per cluster, 80 on this design). Each cluster's members are now
  ordered once when the index is built, so a query builds strings only for the results it
  returns (about 0.5 ms of CPU in process). The p50 (1.0-1.7 ms across runs, about the bare
  SDK no-op's) is the rest of the call path, the door and the wait for a CPU; under 1 ms
  needs the query's per-cluster combination in fewer Python steps (a compiled scorer).
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
