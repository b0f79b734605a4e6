"""Mixer.* and Snapshot.* methods, and the mixer channel-string syntax."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qsysd import qrc
from qsysd.emulator._model import Component, Core, ramp_seconds
from qsysd.emulator._templates import int_property
from qsysd.emulator._values import coerce_value
from qsysd.errors import IllegalMixerChannel, InvalidParams

if TYPE_CHECKING:
    from qsysd.emulator._session import Session

__all__ = ["METHODS", "parse_channels"]

_TOKEN = re.compile(r"^(!?)(\*|\d+(?:-\d+)?)$")


def parse_channels(spec: object, count: int) -> list[int]:
    """Channels 1..``count`` named by a mixer channel string; anything wrong is error 9."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = str(spec)
    if not isinstance(spec, str):
        raise IllegalMixerChannel("Illegal mixer channel index")
    try:
        return qrc.parse_channels(spec, count)
    except qrc.ChannelStringError:
        raise IllegalMixerChannel("Illegal mixer channel index") from None


def _mixer(core: Core, params: dict[str, Any]) -> Component:
    component = core.component(params.get("Name"))
    if component.type != "mixer":
        raise InvalidParams(f"Invalid params: '{component.name}' is not a mixer")
    return component


def _count(component: Component, kind: str) -> int:
    defaults = {"inputs": 4, "outputs": 2, "cues": 0}
    return int_property(component.properties, f"n_{kind}", defaults[kind])


def _setter(
    names: Callable[[Component, dict[str, Any]], list[str]], *, ramps: bool
) -> Callable[[Session, Any, float], object]:
    """A Mixer.Set* method: ``names`` lists the controls it writes ``Value`` to."""

    def method(session: Session, params: Any, now: float) -> object:
        core = session.engine.core
        component = _mixer(core, params)
        if "Value" not in params:
            raise InvalidParams("Invalid params: 'Value' is required")
        ramp = ramp_seconds(params.get("Ramp")) if ramps else 0.0
        writes = []
        for name in names(component, params):
            control = core.control(component, name)
            writes.append((control, coerce_value(params["Value"], control.spec, name)))
        for control, value in writes:
            core.write(control, value, now=now, ramp=ramp)
        return True

    return method


def _channels(component: Component, params: dict[str, Any], kind: str) -> list[int]:
    key = kind.capitalize()
    if key not in params:
        raise InvalidParams(f"Invalid params: '{key}' is required")
    return parse_channels(params[key], _count(component, kind))


def _crosspoints(suffix: str) -> Callable[[Component, dict[str, Any]], list[str]]:
    def names(component: Component, params: dict[str, Any]) -> list[str]:
        inputs = _channels(component, params, "inputs")
        outputs = _channels(component, params, "outputs")
        return [f"input.{i}.output.{o}.{suffix}" for i in inputs for o in outputs]

    return names


def _strip(kind: str, suffix: str) -> Callable[[Component, dict[str, Any]], list[str]]:
    prefix = kind[:-1]  # "inputs" -> "input"

    def names(component: Component, params: dict[str, Any]) -> list[str]:
        return [f"{prefix}.{n}.{suffix}" for n in _channels(component, params, kind)]

    return names


def _input_cues(suffix: str) -> Callable[[Component, dict[str, Any]], list[str]]:
    def names(component: Component, params: dict[str, Any]) -> list[str]:
        inputs = _channels(component, params, "inputs")
        cues = _channels(component, params, "cues")
        return [f"input.{i}.cue.{c}.{suffix}" for i in inputs for c in cues]

    return names


def _snapshot_number(params: dict[str, Any]) -> int:
    number = params.get("Bank")
    if isinstance(number, bool) or not isinstance(number, int | float) or number != int(number):
        raise InvalidParams("Invalid params: 'Bank' must be a snapshot number")
    return int(number)


def _snapshot_load(session: Session, params: Any, now: float) -> object:
    core = session.engine.core
    bank = core.bank(params.get("Name"))
    number = _snapshot_number(params)
    core.load_snapshot(bank, number, now=now, ramp=ramp_seconds(params.get("Ramp")))
    return True


def _snapshot_save(session: Session, params: Any, now: float) -> object:
    core = session.engine.core
    core.save_snapshot(core.bank(params.get("Name")), _snapshot_number(params), now=now)
    return True


METHODS: dict[str, Callable[[Session, Any, float], object]] = {
    "Mixer.SetCrossPointGain": _setter(_crosspoints("gain"), ramps=True),
    "Mixer.SetCrossPointDelay": _setter(_crosspoints("delay"), ramps=True),
    "Mixer.SetCrossPointMute": _setter(_crosspoints("mute"), ramps=False),
    "Mixer.SetCrossPointSolo": _setter(_crosspoints("solo"), ramps=False),
    "Mixer.SetInputGain": _setter(_strip("inputs", "gain"), ramps=True),
    "Mixer.SetInputMute": _setter(_strip("inputs", "mute"), ramps=False),
    "Mixer.SetInputSolo": _setter(_strip("inputs", "solo"), ramps=False),
    "Mixer.SetOutputGain": _setter(_strip("outputs", "gain"), ramps=True),
    "Mixer.SetOutputMute": _setter(_strip("outputs", "mute"), ramps=False),
    "Mixer.SetCueGain": _setter(_strip("cues", "gain"), ramps=True),
    "Mixer.SetCueMute": _setter(_strip("cues", "mute"), ramps=False),
    "Mixer.SetInputCueEnable": _setter(_input_cues("enable"), ramps=False),
    "Mixer.SetInputCueAfl": _setter(_input_cues("afl"), ramps=False),
    "Snapshot.Load": _snapshot_load,
    "Snapshot.Save": _snapshot_save,
}
