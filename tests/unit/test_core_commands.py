"""Typed Core commands build the QRC requests the facade used to build itself."""

from __future__ import annotations

from typing import Any

import attrs

from qsysd.core import ControlWrite, CoreCommands
from qsysd.state import ControlRef


@attrs.define
class RecordingCore(CoreCommands):
    """Answers every request with ``reply`` and keeps what was sent."""

    reply: Any = True
    name: str = "main"
    sent: list[tuple[str, Any]] = attrs.field(factory=list)

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- the link's per-request deadline
    ) -> Any:
        self.sent.append((method, params))
        return self.reply


async def test_mixer_set_sends_gain_with_ramp_and_mute_without() -> None:
    core = RecordingCore()
    gain = await core.mixer_set(
        "Mix", "crosspoint", "gain", -6.0, inputs="1-2", outputs="*", ramp=1.5
    )
    mute = await core.mixer_set(
        "Mix", "crosspoint", "mute", True, inputs="1-2", outputs="*", ramp=1.5
    )
    assert (gain, mute) == ("Mixer.SetCrossPointGain", "Mixer.SetCrossPointMute")
    assert core.sent == [
        (
            "Mixer.SetCrossPointGain",
            {"Name": "Mix", "Inputs": "1-2", "Outputs": "*", "Value": -6.0, "Ramp": 1.5},
        ),
        (
            "Mixer.SetCrossPointMute",
            {"Name": "Mix", "Inputs": "1-2", "Outputs": "*", "Value": True},
        ),
    ]


async def test_mixer_set_of_inputs_names_no_outputs() -> None:
    core = RecordingCore()
    await core.mixer_set("Mix", "input", "mute", False, inputs="3", outputs="1")
    assert core.sent == [("Mixer.SetInputMute", {"Name": "Mix", "Inputs": "3", "Value": False})]


async def test_component_set_asks_for_values_and_types_the_echo() -> None:
    core = RecordingCore(
        reply={"Name": "Bar", "Controls": [{"Name": "mute", "Value": 1, "String": "muted"}]}
    )
    values = await core.set_component(
        "Bar",
        [ControlWrite("gain", position=0.5, ramp=2.0), ControlWrite("mute", value=True)],
        kinds={ControlRef("main", "Bar", "mute"): "Boolean"},
    )
    assert core.sent == [
        (
            "Component.Set",
            {
                "Name": "Bar",
                "Controls": [
                    {"Name": "gain", "Position": 0.5, "Ramp": 2.0},
                    {"Name": "mute", "Value": True},
                ],
                "ResponseValues": True,
            },
        )
    ]
    assert [(v.ref, v.value, v.string) for v in values] == [
        (ControlRef("main", "Bar", "mute"), True, "muted")
    ]


async def test_snapshot_commands_say_what_the_core_answered_besides_true() -> None:
    core = RecordingCore()
    assert await core.load_snapshot("Scenes", 2, ramp=3.0) is None
    core.reply = {"odd": 1}
    assert await core.save_snapshot("Scenes", 2) == "{'odd': 1}"
    assert core.sent == [
        ("Snapshot.Load", {"Name": "Scenes", "Bank": 2, "Ramp": 3.0}),
        ("Snapshot.Save", {"Name": "Scenes", "Bank": 2}),
    ]
