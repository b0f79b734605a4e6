"""`qsysd design capture`: a Core recorded into a design file replays as the same Core."""

from __future__ import annotations

import json

import trio

from qsysd.emulator import (
    capture_design,
    demo_design,
    design_from_dict,
    design_to_dict,
    serve_emulator,
)

WAIT = 20.0
NAMED = ["MainGain", "MainMute", "FireAlarmActive", "PagingPriority"]


async def strings(port: int) -> dict[str, tuple[object, str | None]]:
    """Every control's (value, string) as the Core at ``port`` reports it."""
    from qsysd.core import discover
    from qsysd.qrc import open_qrc_connection, open_transport

    async with (
        open_transport("127.0.0.1", port) as transport,
        open_qrc_connection(transport, keepalive_interval=None) as connection,
    ):
        found = await discover(connection.request, "x", design_code="", named_controls=NAMED)
    return {str(v.ref): (v.value, v.string) for v in found.values}


async def test_capture_replayed_by_the_emulator_captures_the_same() -> None:
    with trio.fail_after(WAIT):
        async with serve_emulator(demo_design()) as original:
            first = await capture_design("127.0.0.1", original.tcp_port, named_controls=NAMED)
            original_strings = await strings(original.tcp_port)
        # Through the file, as an integrator would use it.
        replay_design = design_from_dict(json.loads(json.dumps(design_to_dict(first))))
        async with serve_emulator(replay_design) as replay:
            second = await capture_design("127.0.0.1", replay.tcp_port, named_controls=NAMED)
            replay_strings = await strings(replay.tcp_port)
    assert design_to_dict(second) == design_to_dict(first)
    assert replay_strings == original_strings  # every value and display string survives
    assert {c.name for c in first.components} >= {"Bar", "Ballroom_Mics", "Scenes"}
    assert [c.name for c in first.named_controls] == sorted(NAMED)
