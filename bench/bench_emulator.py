"""Emulator benchmark: big-design load time and AutoPoll throughput. Prints, never asserts.

    /work/venv/bin/python bench/bench_emulator.py [--components 2000] [--changing 1000]
        [--rate 0.05] [--seconds 5]

Figures: generating and loading a design of N components (in memory, and from a JSON file
through cattrs and validation); AutoPoll pushes per second achieved against the rate asked,
with every push carrying the changed controls; and, measured in the same run as a baseline,
how fast plain ``json.dumps`` encodes the same push payload.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from qsysd.emulator import Core, design_to_dict, generate_design, load_design, serve_emulator
from qsysd.logs import configure_logging
from qsysd.qrc import FrameDecoder, Notification, Request, encode_frame


def out(text: str) -> None:
    sys.stdout.write(text + "\n")


def timed(label: str, fn: Any) -> Any:
    start = time.perf_counter()
    result = fn()
    out(f"  {label:<44} {time.perf_counter() - start:8.3f} s")
    return result


def bench_load(n: int) -> Any:
    out(f"design load ({n} components)")
    design = timed("generate_design", lambda: generate_design(n))
    core = timed("build the live model (Core)", lambda: Core(design))
    stats = core.statistics()
    out(f"  -> {stats['components']} components, {stats['controls']} controls")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "design.json"
        timed("write JSON design file", lambda: path.write_text(json.dumps(design_to_dict(design))))
        out(f"  -> {path.stat().st_size / 1e6:.1f} MB")
        loaded = timed("load_design (JSON + cattrs + validation)", lambda: load_design(path))
        timed("build the live model from the loaded file", lambda: Core(loaded))
    return design


async def bench_autopoll(design: Any, changing: int, rate: float, seconds: float) -> None:
    out(f"AutoPoll: {changing} controls changing every {rate * 1000:.0f} ms, for {seconds:.0f} s")
    async with serve_emulator(design) as emu:
        targets = [
            (comp.name, control.name)
            for comp in emu.core.components.values()
            for control in comp.controls.values()
            if control.spec.type == "Float" and control.writable
        ][:changing]
        out(f"  -> {len(targets)} Float controls in the change group")
        stream = await trio.open_tcp_stream("127.0.0.1", emu.tcp_port)
        decoder = FrameDecoder()
        pushes: list[tuple[float, int]] = []
        bytes_in = 0

        async def send(method: str, params: Any, id: int) -> None:
            await stream.send_all(encode_frame(Request(method, params, id)))

        async def reader(done: trio.Event) -> None:
            nonlocal bytes_in
            while True:
                data = await stream.receive_some(1 << 20)
                if not data:
                    return
                bytes_in += len(data)
                decoder.receive_data(data)
                while (msg := decoder.next_message()) is not None:
                    if isinstance(msg, Notification) and msg.method == "ChangeGroup.Poll":
                        pushes.append((trio.current_time(), len(msg.params["Changes"])))
                    if getattr(msg, "id", None) == 0:
                        done.set()

        async def changer(stop: trio.Event) -> None:
            step = 0
            while not stop.is_set():
                step += 1
                for name, control in targets:
                    emu.set_value(name, control, -40 + (step % 20))
                await trio.sleep(rate)

        async with stream, trio.open_nursery() as nursery:
            added = trio.Event()
            nursery.start_soon(reader, added)
            for index, (name, control) in enumerate(targets, start=1):
                component = {"Name": name, "Controls": [{"Name": control}]}
                await send(
                    "ChangeGroup.AddComponentControl",
                    {"Id": "bench", "Component": component},
                    index,
                )
            await send("NoOp", {}, 0)
            await added.wait()
            await send("ChangeGroup.AutoPoll", {"Id": "bench", "Rate": rate}, len(targets) + 1)
            stop = trio.Event()
            nursery.start_soon(changer, stop)
            start = trio.current_time()
            await trio.sleep(seconds)
            stop.set()
            elapsed = trio.current_time() - start
            nursery.cancel_scope.cancel()
    window = [p for p in pushes if p[0] - start <= elapsed]
    items = [n for _, n in window[1:]]
    wanted = 1 / rate
    achieved = len(window) / elapsed
    out(f"  pushes requested                               {wanted:8.1f} /s")
    out(
        f"  pushes achieved                                {achieved:8.1f} /s "
        f"({100 * achieved / wanted:.0f}%)"
    )
    if items:
        out(f"  changed controls per push (median)             {statistics.median(items):8.0f}")
        out(f"  control updates delivered                      {sum(items) / elapsed:8.0f} /s")
    out(f"  bytes received                                 {bytes_in / elapsed / 1e6:8.2f} MB/s")
    # Baseline, same run: encoding one full push with the codec and with plain json.dumps.
    sample = {
        "Id": "bench",
        "Changes": [emu.core.components[name].controls[c].item() for name, c in targets],
    }
    note = Notification("ChangeGroup.Poll", sample)
    for label, fn in (
        ("baseline: json.dumps of one push", lambda: json.dumps(sample)),
        ("codec: encode_frame of one push", lambda: encode_frame(note)),
    ):
        runs = 50
        begin = time.perf_counter()
        for _ in range(runs):
            fn()
        per = (time.perf_counter() - begin) / runs
        out(f"  {label:<44} {per * 1000:8.2f} ms  (max {1 / per:7.0f} pushes/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=2000)
    parser.add_argument("--changing", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    configure_logging("warning")  # logs to stderr; the figures go to stdout
    design = bench_load(args.components)
    trio.run(bench_autopoll, design, args.changing, args.rate, args.seconds)


if __name__ == "__main__":
    main()
