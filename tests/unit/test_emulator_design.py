"""Design files: loading, validation with paths, templates, the demo and the generator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qsysd.emulator import (
    Core,
    DesignError,
    demo_design,
    design_from_dict,
    design_to_dict,
    generate_design,
    load_design,
)
from qsysd.errors import ConfigError


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Test",
        "components": [
            {
                "name": "Zone",
                "type": "gain",
                "properties": {"max_gain": 20},
                "controls": [
                    {"name": "gain", "type": "Float", "min": -100, "max": 20, "value": -6}
                ],
            }
        ],
        **extra,
    }


def problems_of(obj: object) -> list[str]:
    with pytest.raises(DesignError) as info:
        design_from_dict(obj)
    assert isinstance(info.value, ConfigError)
    return info.value.problems


def test_minimal_design_loads_with_template_controls_added() -> None:
    design = design_from_dict(minimal())
    zone = design.components[0]
    assert [c.name for c in zone.controls] == ["gain", "mute", "invert", "bypass"]
    assert zone.controls[0].value == -6  # the explicit control replaced the template's


def test_mixer_template_is_sized_by_its_properties() -> None:
    design = design_from_dict(
        {
            "name": "M",
            "components": [
                {"name": "Mix", "type": "mixer", "properties": {"n_inputs": "2", "n_outputs": 3}}
            ],
        }
    )
    names = {c.name for c in design.components[0].controls}
    assert {"input.2.gain", "input.1.mute", "output.3.gain", "output.3.mute"} <= names
    assert {"input.2.output.3.gain", "input.2.output.3.mute", "input.1.output.1.delay"} <= names
    assert "input.3.gain" not in names


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["components"][0].update(colour="red"), "$.components[0]"),
        (lambda d: d["components"][0].update(name=5), "$.components[0].name"),
        (lambda d: d["components"][0]["controls"][0].update(min="low"), "controls[0].min"),
        (
            lambda d: d["components"].append(dict(d["components"][0])),
            "duplicate component name 'Zone'",
        ),
        (
            lambda d: d["components"][0]["controls"][0].update(type="Knob"),
            "controls[0].type: 'Knob'",
        ),
        (
            lambda d: d["components"][0]["controls"][0].update(direction="Up"),
            "controls[0].direction",
        ),
        (lambda d: d["components"][0]["controls"][0].update(value=99), "controls[0].value: 99"),
        (lambda d: d["components"][0]["controls"][0].update(min=30), "'min' must be below 'max'"),
        (lambda d: d["components"][0]["controls"][0].update(format="loud"), "controls[0].format"),
        (
            lambda d: d.update(named_controls=[{"name": "X", "type": "Float"}]),
            "$.named_controls[0]: a Float control needs 'min' and 'max'",
        ),
        (
            lambda d: d.update(snapshot_banks=[{"name": "S", "members": [{"component": "Nope"}]}]),
            "$.snapshot_banks[0].members[0].component: unknown 'Nope'",
        ),
        (
            lambda d: d.update(
                snapshot_banks=[
                    {
                        "name": "S",
                        "count": 2,
                        "members": [{"component": "Zone", "controls": ["gain"]}],
                        "snapshots": {"3": {}},
                    }
                ]
            ),
            "$.snapshot_banks[0].snapshots.3",
        ),
        (
            lambda d: d.update(
                snapshot_banks=[
                    {
                        "name": "S",
                        "members": [{"component": "Zone", "controls": ["gain"]}],
                        "snapshots": {"1": {"Zone": {"mute": True}}},
                    }
                ]
            ),
            "snapshots.1.Zone.mute: not a member",
        ),
    ],
)
def test_invalid_designs_name_the_problem_and_its_path(change: Any, expected: str) -> None:
    obj = minimal()
    change(obj)
    problems = problems_of(obj)
    assert any(expected in p for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    obj = minimal()
    obj["components"][0]["controls"][0].update(type="Knob", direction="Up")
    assert len(problems_of(obj)) == 2


def test_load_design_reports_the_file_and_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    with pytest.raises(DesignError, match=r"bad\.json: not valid JSON"):
        load_design(path)
    with pytest.raises(DesignError, match="cannot read"):
        load_design(tmp_path / "missing.json")
    path.write_text(json.dumps(minimal(platform=3)))
    with pytest.raises(DesignError, match=r"bad.json: .*\$\.platform"):
        load_design(path)


def test_design_round_trips_through_its_json_form(tmp_path: Path) -> None:
    design = demo_design()
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(design_to_dict(design)))
    assert load_design(path) == design


def test_demo_design_looks_like_a_small_venue() -> None:
    design = demo_design()
    core = Core(design)
    types = {c.name: c.type for c in core.components.values()}
    for zone in ("Lobby_BGM", "Restaurant", "Bar", "Boardroom", "Ballroom"):
        assert types[zone] == "gain"
    assert "mixer" in types.values()
    assert "router_with_output" in types.values()
    assert types["Scenes"] == "snapshot_controller"
    assert {"MainGain", "MainMute"} <= set(core.named)
    read_only = [c for c in core.all_controls() if c.spec.direction == "Read Only"]
    assert any(c.component == "Core_Status" for c in read_only)
    mixer = core.components["Ballroom_Mics"].controls
    assert {
        "input.1.gain",
        "input.1.mute",
        "output.1.gain",
        "output.1.mute",
        "input.1.output.2.gain",
        "input.1.output.2.mute",
    } <= set(mixer)


def test_generated_design_is_deterministic_and_sized() -> None:
    design = generate_design(200, seed=3)
    assert design == generate_design(200, seed=3)
    assert design != generate_design(200, seed=4)
    assert len(design.components) == 200
    core = Core(design)
    assert 200 * 10 < core.statistics()["controls"] < 200 * 35
    assert len({c.type for c in design.components}) >= 4
    assert design_from_dict(design_to_dict(design)) == design  # valid by the same rules


def test_snapshot_bank_becomes_a_snapshot_controller_component() -> None:
    core = Core(demo_design())
    scenes = core.components["Scenes"]
    assert scenes.properties["num_snapshots"] == "8"
    assert {"load.1", "save.8", "match.1", "ramp.time"} <= set(scenes.controls)
