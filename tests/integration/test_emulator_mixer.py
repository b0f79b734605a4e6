"""Mixer.* and Snapshot.* over loopback."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio

from qsysd.emulator import EmulatorServer

WAIT = 5.0
Client = Callable[..., AbstractAsyncContextManager[Any]]
MIXER = "Ballroom_Mics"  # 8 inputs, 4 outputs, 1 cue in the demo design


def value(emu: EmulatorServer, name: str) -> Any:
    return emu.get_value(MIXER, name)


async def test_crosspoint_gain_follows_the_channel_strings(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            params = {"Name": MIXER, "Inputs": "1-8 !3", "Outputs": "2,4", "Value": -6}
            assert await c.result("Mixer.SetCrossPointGain", params) is True
    for i in range(1, 9):
        for o in range(1, 5):
            expected = -6.0 if i != 3 and o in (2, 4) else (0.0 if i == o else -100.0)
            assert value(emulator, f"input.{i}.output.{o}.gain") == expected, (i, o)


@pytest.mark.parametrize(
    ("method", "params", "controls", "expected"),
    [
        (
            "Mixer.SetCrossPointMute",
            {"Inputs": "* !3-5", "Outputs": "1", "Value": True},
            ["input.1.output.1.mute", "input.3.output.1.mute", "input.6.output.1.mute"],
            [1.0, 0.0, 1.0],
        ),
        (
            "Mixer.SetCrossPointSolo",
            {"Inputs": "2", "Outputs": "*", "Value": True},
            ["input.2.output.4.solo"],
            [1.0],
        ),
        (
            "Mixer.SetCrossPointDelay",
            {"Inputs": "1", "Outputs": "1", "Value": 12.5},
            ["input.1.output.1.delay"],
            [12.5],
        ),
        (
            "Mixer.SetInputGain",
            {"Inputs": "1 2 3", "Value": -20},
            ["input.3.gain", "input.4.gain"],
            [-20.0, 0.0],
        ),
        ("Mixer.SetInputMute", {"Inputs": "*", "Value": True}, ["input.8.mute"], [1.0]),
        ("Mixer.SetInputSolo", {"Inputs": "4", "Value": True}, ["input.4.solo"], [1.0]),
        (
            "Mixer.SetOutputGain",
            {"Outputs": "1-2", "Value": -3},
            ["output.2.gain", "output.3.gain"],
            [-3.0, 0.0],
        ),
        ("Mixer.SetOutputMute", {"Outputs": "4", "Value": True}, ["output.4.mute"], [1.0]),
        ("Mixer.SetCueGain", {"Cues": "1", "Value": -9}, ["cue.1.gain"], [-9.0]),
        ("Mixer.SetCueMute", {"Cues": "*", "Value": True}, ["cue.1.mute"], [1.0]),
        (
            "Mixer.SetInputCueEnable",
            {"Cues": "1", "Inputs": "5", "Value": True},
            ["input.5.cue.1.enable"],
            [1.0],
        ),
        (
            "Mixer.SetInputCueAfl",
            {"Cues": "1", "Inputs": "5", "Value": True},
            ["input.5.cue.1.afl"],
            [1.0],
        ),
    ],
)
async def test_mixer_methods_set_their_controls(
    client: Client,
    emulator: EmulatorServer,
    method: str,
    params: dict[str, Any],
    controls: list[str],
    expected: list[float],
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            assert await c.result(method, {"Name": MIXER, **params}) is True
    assert [value(emulator, n) for n in controls] == expected


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("Mixer.SetCrossPointGain", {"Inputs": "9", "Outputs": "1", "Value": 0}),
        ("Mixer.SetCrossPointGain", {"Inputs": "1", "Outputs": "0", "Value": 0}),
        ("Mixer.SetInputMute", {"Inputs": "1-12", "Value": True}),
        ("Mixer.SetOutputGain", {"Outputs": "five", "Value": 0}),
        ("Mixer.SetCueGain", {"Cues": "2", "Value": 0}),
    ],
)
async def test_channel_out_of_range_is_error_9_and_changes_nothing(
    client: Client, emulator: EmulatorServer, method: str, params: dict[str, Any]
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            error = await c.error(method, {"Name": MIXER, **params})
    assert (error.code, error.message) == (9, "Illegal mixer channel index")
    assert value(emulator, "input.1.mute") == 0.0


async def test_mixer_errors_for_unknown_or_wrong_component(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            unknown = await c.error(
                "Mixer.SetInputMute", {"Name": "Nope", "Inputs": "1", "Value": True}
            )
            wrong = await c.error(
                "Mixer.SetInputMute", {"Name": "Bar", "Inputs": "1", "Value": True}
            )
            missing = await c.error("Mixer.SetInputMute", {"Name": MIXER, "Value": True})
    assert (unknown.code, unknown.message) == (7, "Unknown component name 'Nope'")
    assert (wrong.code, wrong.message) == (-32602, "Invalid params: 'Bar' is not a mixer")
    assert (missing.code, missing.message) == (-32602, "Invalid params: 'Inputs' is required")


async def test_mixer_gain_ramps(client: Client, emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            params = {"Name": MIXER, "Inputs": "1", "Value": -50, "Ramp": 60}
            assert await c.result("Mixer.SetInputGain", params) is True
    assert -50.0 < value(emulator, "input.1.gain") < 0.0


async def test_snapshot_save_and_load(client: Client, emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            assert await c.result("Snapshot.Load", {"Name": "Scenes", "Bank": 2}) is True
            assert emulator.get_value("Restaurant", "gain") == -24.0
            assert emulator.get_value("Ballroom", "mute") == 1.0
            emulator.set_value("Bar", "gain", -30)
            assert await c.result("Snapshot.Save", {"Name": "Scenes", "Bank": 4}) is True
            await c.result("Snapshot.Load", {"Name": "Scenes", "Bank": 1})
            assert emulator.get_value("Bar", "gain") == -10.0
            assert (
                await c.result("Snapshot.Load", {"Name": "Scenes", "Bank": 4, "Ramp": 60}) is True
            )
            assert -30.0 < emulator.get_value("Bar", "gain") < -10.0  # on its way
            trigger = {"Name": "Scenes", "Controls": [{"Name": "load.2", "Value": 1}]}
            assert await c.result("Component.Set", trigger) is True
            assert emulator.get_value("Bar", "gain") == -6.0


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"Name": "Nope", "Bank": 1}, 7, "Unknown component name 'Nope'"),
        ({"Name": "Bar", "Bank": 1}, -32602, "Invalid params: 'Bar' is not a snapshot bank"),
        (
            {"Name": "Scenes", "Bank": 9},
            -32602,
            "Invalid params: snapshot 9 out of range 1..8 in bank 'Scenes'",
        ),
        ({"Name": "Scenes"}, -32602, "Invalid params: 'Bank' must be a snapshot number"),
    ],
)
async def test_snapshot_errors(
    client: Client, emulator: EmulatorServer, params: dict[str, Any], code: int, message: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            error = await c.error("Snapshot.Load", params)
    assert (error.code, error.message) == (code, message)
