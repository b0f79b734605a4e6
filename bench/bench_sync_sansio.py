"""The CPU of every step of a large sync without sockets: the emulator's answers, the codec
both ways, and the client's conversion of replies and pushes into values.

Runs the emulator's sans-IO session in process: GetComponents, GetControls per component,
AddComponentControl per component over three groups, AutoPoll, the first pushes; each frame
encoded and decoded as on the wire. Prints the best of ``--rounds`` per step in ms (``emu_``:
the Core's side, ``cli_``: the daemon's). Numbers are printed, never asserted.

Run: python -m bench.bench_sync_sansio [--components 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from qsysd.core._wire import controls_from_reply, poll_from_wire
from qsysd.emulator import generate_design
from qsysd.emulator._engine import Engine
from qsysd.emulator._model import Core
from qsysd.qrc import Notification, Request, decode_frame, encode_frame


def one_sync(components: int) -> dict[str, float]:
    session = Engine(Core(generate_design(components))).open_session()
    spent: dict[str, float] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        started = time.process_time()
        result = fn()
        spent[name] = spent.get(name, 0.0) + time.process_time() - started
        return result

    def round_trip(request: Request) -> Any:
        frame = step("cli_encode", lambda: encode_frame(request))
        message = step("emu_decode", lambda: decode_frame(frame[:-1]))
        reply = step("emu_answer", lambda: session.handle(message, 0.0))[0]
        data = step("emu_encode", lambda: encode_frame(reply))
        return step("cli_decode", lambda: decode_frame(data[:-1])).result

    names = [c["Name"] for c in round_trip(Request("Component.GetComponents", {}, 0))]
    controls: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        result = round_trip(Request("Component.GetControls", {"Name": name}, i))
        step("cli_values", lambda: controls_from_reply("main", name, result))  # noqa: B023
        controls[name] = [c["Name"] for c in result["Controls"]]
    for i, name in enumerate(names):
        wanted = [{"Name": c} for c in controls[name]]
        params = {"Id": f"g{i % 3}", "Component": {"Name": name, "Controls": wanted}}
        round_trip(Request("ChangeGroup.AddComponentControl", params, i))
    for group in ("g0", "g1", "g2"):
        session.handle(Request("ChangeGroup.AutoPoll", {"Id": group, "Rate": 0.1}, 0), 0.0)
    for push in step("emu_answer", lambda: session.take_notifications(1.0)):
        data = step("emu_encode", lambda: encode_frame(push))  # noqa: B023
        message = step("cli_decode", lambda: decode_frame(data[:-1]))  # noqa: B023
        if isinstance(message, Notification) and message.method == "ChangeGroup.Poll":
            step("cli_values", lambda: poll_from_wire("main", message.params))  # noqa: B023
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, seconds in one_sync(args.components).items():
            best[name] = min(best.get(name, seconds), seconds)
    shown = "  ".join(f"{name} {seconds * 1000:.0f}" for name, seconds in sorted(best.items()))
    client = sum(v for k, v in best.items() if k.startswith("cli_")) * 1000
    emulator = sum(v for k, v in best.items() if k.startswith("emu_")) * 1000
    print(f"{args.components} components, best of {args.rounds} (ms CPU): {shown}")
    print(f"  daemon side {client:.0f} ms, emulator side {emulator:.0f} ms")


if __name__ == "__main__":
    main()
