"""The built-in demo design, and generated designs of any size for load tests."""

from __future__ import annotations

import json
import random
from importlib import resources

from qsysd.emulator._design import (
    ComponentSpec,
    ControlSpec,
    Design,
    SnapshotBankSpec,
    SnapshotMember,
    design_from_dict,
)
from qsysd.emulator._templates import expand_component

__all__ = ["demo_design", "generate_design"]

_AREAS = (
    "Lobby",
    "Restaurant",
    "Bar",
    "Ballroom",
    "Boardroom",
    "Terrace",
    "Spa",
    "Gym",
    "Pool",
    "Corridor",
    "Suite",
    "Kitchen",
    "Cafe",
    "Library",
    "Chapel",
    "Foyer",
)
#: (kind, weight): about 20 controls per component on average, like a mid-size venue.
_MIX = (("gain", 50), ("mixer", 10), ("router", 15), ("meter", 15), ("status", 10))


def demo_design() -> Design:
    """The built-in demo venue: zones, a mic mixer, a router, scenes and status components."""
    text = resources.files("qsysd.emulator").joinpath("designs/demo.json").read_text("utf-8")
    return design_from_dict(json.loads(text))


def _component(kind: str, name: str, rng: random.Random) -> ComponentSpec:
    if kind == "gain":
        gain = ControlSpec(
            name="gain",
            type="Float",
            format="dB",
            min=-100.0,
            max=20.0,
            value=float(rng.randrange(-40, 1)),
        )
        spec = ComponentSpec(name, "gain", {"max_gain": "20", "min_gain": "-100"}, (gain,))
    elif kind == "mixer":
        spec = ComponentSpec(name, "mixer", {"n_inputs": "8", "n_outputs": "4", "n_cues": "0"})
    elif kind == "router":
        spec = ComponentSpec(name, "router_with_output", {"n_inputs": "4", "n_outputs": "2"})
    elif kind == "meter":
        meters = tuple(
            ControlSpec(
                name=f"meter.{n}",
                type="Float",
                format="dB",
                min=-120.0,
                max=20.0,
                value=-60.0,
                direction="Read Only",
            )
            for n in range(1, 9)
        )
        spec = ComponentSpec(name, "meter2", {"n_channels": "8"}, meters)
    else:
        spec = ComponentSpec(
            name,
            "status_amplifier",
            {"model": rng.choice(("CX-Q 2K4", "CX-Q 4K4", "SPA4-100"))},
            (
                ControlSpec(name="status", type="Status", value=0, direction="Read Only"),
                ControlSpec(
                    name="temperature",
                    type="Float",
                    format="celsius",
                    min=0.0,
                    max=120.0,
                    value=35.0,
                    direction="Read Only",
                ),
                ControlSpec(name="protect", type="Boolean", value=False, direction="Read Only"),
                ControlSpec(name="standby", type="Boolean", value=False),
            ),
        )
    return expand_component(spec)


def generate_design(n_components: int, seed: int = 0) -> Design:
    """A venue-like design of ``n_components`` components (about 20 controls each)."""
    rng = random.Random(seed)
    kinds = [k for k, _ in _MIX]
    weights = [w for _, w in _MIX]
    components: list[ComponentSpec] = []
    for index in range(1, n_components + 1):
        kind = rng.choices(kinds, weights)[0]
        area = _AREAS[index % len(_AREAS)]
        components.append(_component(kind, f"{area}_{kind.capitalize()}_{index}", rng))
    gains = [c.name for c in components if c.type == "gain"][:16]
    banks = (
        (
            SnapshotBankSpec(
                name="Scenes",
                count=8,
                members=tuple(SnapshotMember(g, ("gain", "mute")) for g in gains),
            ),
        )
        if gains
        else ()
    )
    return Design(
        name=f"Generated Venue ({n_components} components, seed {seed})",
        components=tuple(components),
        named_controls=(
            ControlSpec(
                name="MainGain", type="Float", format="dB", min=-100.0, max=20.0, value=0.0
            ),
            ControlSpec(name="MainMute", type="Boolean", format="mute", value=False),
        ),
        snapshot_banks=banks,
    )
