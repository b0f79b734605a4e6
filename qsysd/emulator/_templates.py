"""The standard controls of known component types, so design files need not list them.

A component of type ``gain``, ``mixer``, ``router_with_output`` or ``snapshot_controller``
gets the controls a real Core shows for it (sized by its properties); controls the design
lists explicitly replace template ones of the same name or add to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from qsysd.emulator._design import ComponentSpec, ControlSpec

__all__ = ["expand_component", "int_property", "snapshot_controls"]

GAIN_MIN = -100.0
GAIN_MAX = 20.0


def int_property(properties: Mapping[str, Any], name: str, default: int) -> int:
    """An integer property ("8" or 8); ``default`` when absent or not a number."""
    try:
        return int(str(properties.get(name, default)))
    except ValueError:
        return default


def _gain(name: str, value: float = 0.0, lo: float = GAIN_MIN, hi: float = GAIN_MAX) -> ControlSpec:
    return ControlSpec(name=name, type="Float", format="dB", min=lo, max=hi, value=value)


def _switch(name: str, value: bool = False, fmt: str | None = None) -> ControlSpec:
    return ControlSpec(name=name, type="Boolean", format=fmt, value=value)


def gain_controls(properties: Mapping[str, Any]) -> list[ControlSpec]:
    lo = float(int_property(properties, "min_gain", int(GAIN_MIN)))
    hi = float(int_property(properties, "max_gain", int(GAIN_MAX)))
    return [
        _gain("gain", min(max(0.0, lo), hi), lo, hi),
        _switch("mute"),
        _switch("invert"),
        _switch("bypass"),
    ]


def mixer_controls(properties: Mapping[str, Any]) -> list[ControlSpec]:
    n_in = int_property(properties, "n_inputs", 4)
    n_out = int_property(properties, "n_outputs", 2)
    n_cue = int_property(properties, "n_cues", 0)
    out: list[ControlSpec] = []
    for i in range(1, n_in + 1):
        out += [_gain(f"input.{i}.gain"), _switch(f"input.{i}.mute"), _switch(f"input.{i}.solo")]
    for o in range(1, n_out + 1):
        out += [_gain(f"output.{o}.gain"), _switch(f"output.{o}.mute")]
    for c in range(1, n_cue + 1):
        out += [_gain(f"cue.{c}.gain"), _switch(f"cue.{c}.mute")]
    for i in range(1, n_in + 1):
        for o in range(1, n_out + 1):
            xp = f"input.{i}.output.{o}"
            out += [
                _gain(f"{xp}.gain", 0.0 if i == o else GAIN_MIN),
                _switch(f"{xp}.mute"),
                _switch(f"{xp}.solo"),
                ControlSpec(
                    name=f"{xp}.delay", type="Float", format="ms", min=0.0, max=500.0, value=0.0
                ),
            ]
        for c in range(1, n_cue + 1):
            out += [_switch(f"input.{i}.cue.{c}.enable"), _switch(f"input.{i}.cue.{c}.afl")]
    return out


def router_controls(properties: Mapping[str, Any]) -> list[ControlSpec]:
    n_in = int_property(properties, "n_inputs", 4)
    n_out = int_property(properties, "n_outputs", 1)
    out: list[ControlSpec] = []
    for o in range(1, n_out + 1):
        out += [
            ControlSpec(name=f"select.{o}", type="Integer", min=0, max=n_in, value=min(1, n_in)),
            _switch(f"mute.{o}"),
        ]
    return out


def snapshot_controls(count: int) -> list[ControlSpec]:
    """The controls of a ``snapshot_controller`` component with ``count`` snapshots."""
    out: list[ControlSpec] = []
    for n in range(1, count + 1):
        out += [
            ControlSpec(name=f"load.{n}", type="Trigger"),
            ControlSpec(name=f"save.{n}", type="Trigger"),
            ControlSpec(name=f"match.{n}", type="Boolean", direction="Read Only", value=False),
        ]
    out.append(
        ControlSpec(name="ramp.time", type="Float", format="s", min=0.0, max=60.0, value=0.0)
    )
    return out


_TEMPLATES: dict[str, Callable[[Mapping[str, Any]], list[ControlSpec]]] = {
    "gain": gain_controls,
    "mixer": mixer_controls,
    "router_with_output": router_controls,
    "snapshot_controller": lambda p: snapshot_controls(int_property(p, "num_snapshots", 8)),
}


def expand_component(comp: ComponentSpec) -> ComponentSpec:
    """``comp`` with the template controls of its type added (explicit controls win)."""
    template = _TEMPLATES.get(comp.type)
    if template is None:
        return comp
    explicit = {c.name: c for c in comp.controls}
    merged = [explicit.pop(c.name, c) for c in template(comp.properties)]
    merged += [c for c in comp.controls if c.name in explicit]
    return attrs.evolve(comp, controls=tuple(merged))
