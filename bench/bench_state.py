"""State store memory per control and apply() throughput; prints figures, asserts nothing.

Run: python bench/bench_state.py [--controls 100000]. Target: well under 1 KB per control.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from typing import Any

from qsysd.state import ComponentInfo, ControlInfo, ControlRef, ControlValue, StateStore

PER_COMPONENT = 20


def _names(n_controls: int) -> list[tuple[str, str]]:
    # Fresh strings per run, as JSON decoding would make them (no interning by accident).
    return [
        (f"Zone_{i // PER_COMPONENT:05d}_Gain", f"input.{i % PER_COMPONENT}.gain")
        for i in range(n_controls)
    ]


def build_store(n_controls: int) -> StateStore:
    names = _names(n_controls)
    components = [
        ComponentInfo("main", comp, "gain", f"id-{comp}", (("max_inputs", "20"),))
        for comp in dict.fromkeys(c for c, _ in names)
    ]
    controls = [
        ControlInfo(ControlRef("main", comp, name), "Float", "Read/Write", -100.0, 20.0)
        for comp, name in names
    ]
    values = [
        ControlValue(info.ref, -float(i % 100) - 0.5, f"{-(i % 100) - 0.5:.1f}dB", 0.5)
        for i, info in enumerate(controls)
    ]
    store = StateStore()
    store.replace_design("main", "code", components, controls, values)
    return store


def build_dicts(n_controls: int) -> dict[tuple[str, str], dict[str, Any]]:
    now = time.time()
    return {
        (comp, name): {
            "core": "main",
            "type": "Float",
            "direction": "Read/Write",
            "value_min": -100.0,
            "value_max": 20.0,
            "value": -float(i % 100) - 0.5,
            "string": f"{-(i % 100) - 0.5:.1f}dB",
            "position": 0.5,
            "changed_at": now + 0.0,
            "confirmed_at": now + 0.0,
            "version": 1,
        }
        for i, (comp, name) in enumerate(_names(n_controls))
    }


def measure(build: Any, n_controls: int) -> tuple[float, Any]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = build(n_controls)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n_controls, result


def apply_throughput(store: StateStore, n_controls: int, rounds: int, *, watch: bool) -> float:
    refs = [r.ref for c in store.components("main") for r in store.controls("main", c.name)]
    batch_size = 100
    batches = []
    for r in range(rounds):
        for start in range(0, min(n_controls, 10_000), batch_size):
            batches.append(
                [
                    ControlValue(ref, float(r), f"{r}dB", 0.1)
                    for ref in refs[start : start + batch_size]
                ]
            )
    watcher = store.watch(None) if watch else None
    t0 = time.perf_counter()
    changed = 0
    for batch in batches:
        changed += store.apply(batch)
        if watcher is not None and watcher.statistics().pending:
            watcher.receive_nowait()
    elapsed = time.perf_counter() - t0
    if watcher is not None:
        watcher.close()
    return changed / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--controls", type=int, default=100_000)
    args = parser.parse_args()
    n = args.controls
    per_control, store = measure(build_store, n)
    baseline, dicts = measure(build_dicts, n)
    del dicts
    stats = store.statistics()
    out = sys.stdout
    print(
        f"python {sys.version.split()[0]}, {stats.controls:,} controls in "
        f"{stats.components:,} components",
        file=out,
    )
    print(
        f"StateStore:         {per_control:7.0f} bytes/control (input objects included)", file=out
    )
    print(f"plain dicts (base): {baseline:7.0f} bytes/control", file=out)
    for watch in (False, True):
        rate = apply_throughput(store, n, rounds=10, watch=watch)
        label = "with a watch-all watcher" if watch else "no watchers"
        print(f"apply():            {rate:10,.0f} changes/s ({label})", file=out)
    from qsysd.state import decode_snapshot, encode_snapshot

    cpu = time.process_time
    t0 = cpu()
    snapshot = store.picture()
    t1 = cpu()
    data = encode_snapshot(snapshot)
    t2 = cpu()
    decoded = decode_snapshot(data)
    t3 = cpu()
    StateStore().restore(decoded)
    t4 = cpu()
    print(
        f"snapshot (CPU ms):  picture {(t1 - t0) * 1000:.0f}, encode {(t2 - t1) * 1000:.0f}, "
        f"decode {(t3 - t2) * 1000:.0f}, restore {(t4 - t3) * 1000:.0f}; "
        f"{len(data) / n:.0f} bytes/control of JSON",
        file=out,
    )


if __name__ == "__main__":
    main()
