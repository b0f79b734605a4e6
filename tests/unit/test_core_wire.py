"""Wire shapes -> state model: both reply shapes, booleans as 0/1 or JSON, extra members."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from qsysd.core import (
    components_from_reply,
    controls_from_reply,
    discover,
    engine_status_from_wire,
    normalize_value,
    poll_from_wire,
    values_from_reply,
)
from qsysd.errors import InvalidReply, UnknownComponent
from qsysd.state import ControlRef, share_leaf


def test_engine_status_is_read_with_defaults_for_missing_members() -> None:
    status = engine_status_from_wire(
        {
            "Platform": "Core 110f",
            "State": "Active",
            "DesignName": "Hotel",
            "DesignCode": "srOW2FUZF3HC",
            "IsRedundant": False,
            "IsEmulator": 1,
            "Status": {"Code": 0, "String": "OK"},
            "Extra": "ignored",
        }
    )
    assert status.state == "Active" and status.design_code == "srOW2FUZF3HC"
    assert status.is_emulator is True and status.status_code == 0
    with pytest.raises(InvalidReply, match="engine status is null"):
        engine_status_from_wire(None)
    assert engine_status_from_wire({"State": "Standby"}).design_code == ""


def test_components_keep_property_values_as_strings() -> None:
    result = [
        {
            "ID": "MyGain",
            "Name": "MyGain",
            "Type": "gain",
            "Properties": [{"Name": "max_gain", "Value": "0", "PrettyName": "Max Gain (dB)"}],
            "Controls": None,
            "ControlSource": 2,
        },
        "not an object",
        {"NoName": True},
    ]
    (component,) = components_from_reply("main", result)
    assert component.properties == (("max_gain", "0"),)
    assert component.id == "MyGain" and component.type == "gain"


def test_get_controls_gives_descriptions_and_typed_values() -> None:
    result = {
        "Name": "MyGain",
        "Controls": [
            {
                "Name": "gain",
                "Type": "Float",
                "Value": 0,
                "ValueMin": -100.0,
                "ValueMax": 20.0,
                "StringMin": "-100dB",
                "StringMax": "20.0dB",
                "String": "0dB",
                "Position": 0.8333,
                "Direction": "Read/Write",
            },
            {"Name": "mute", "Type": "Boolean", "Value": False, "String": "unmuted", "Position": 0},
        ],
    }
    infos, values = controls_from_reply("main", "MyGain", result)
    assert [i.ref.name for i in infos] == ["gain", "mute"]
    assert infos[0].value_min == -100.0 and infos[0].string_max == "20.0dB"
    assert infos[1].direction == "Read/Write"
    assert values[0].value == 0.0 and isinstance(values[0].value, float)
    assert values[1].value is False and values[1].position == 0.0
    # a bare list is accepted too
    assert len(controls_from_reply("main", "MyGain", result["Controls"])[0]) == 2


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        (1, "Boolean", True),
        (0.0, "Boolean", False),
        (True, "Boolean", True),
        (-12, "Float", -12.0),
        (3.0, "Integer", 3),
        ("x", "Text", "x"),
        (1, None, 1),
        ([1, 2], "Float", None),
    ],
)
def test_values_are_normalized_by_control_type(raw: Any, kind: str | None, expected: Any) -> None:
    value = normalize_value(raw, kind)
    assert value == expected and type(value) is type(expected)


def test_poll_items_carry_component_and_metadata() -> None:
    kinds = {ControlRef("main", "Zone1", "mute"): "Boolean"}
    group, values = poll_from_wire(
        "main",
        {
            "Id": "1",
            "Changes": [
                {"Name": "MainGain", "Value": -3, "String": "-3.0dB", "Position": 0.8},
                {
                    "Component": "Zone1",
                    "Name": "mute",
                    "Value": 1.0,
                    "String": "muted",
                    "Position": 1.0,
                    "Color": "red",
                    "Choices": ["a"],
                },
                "junk",
            ],
        },
        kinds,
    )
    assert group == "1"
    assert values[0].ref == ControlRef("main", None, "MainGain")
    assert values[1].ref == ControlRef("main", "Zone1", "mute")
    assert values[1].value is True
    assert values[1].metadata == {"Color": "red", "Choices": ["a"]}
    with pytest.raises(InvalidReply, match=r"ChangeGroup\.Poll carried null"):
        poll_from_wire("main", None)


def test_set_replies_of_every_shape_give_values() -> None:
    listed = values_from_reply(
        "main", [{"Component": "Gain", "Name": "gain", "String": "-10.0dB", "Value": -10}]
    )
    assert listed[0].ref == ControlRef("main", "Gain", "gain")
    named = values_from_reply("main", {"Name": "MainGain", "Value": -12, "String": "-12.0dB"})
    assert named[0].ref == ControlRef("main", None, "MainGain")
    assert values_from_reply("main", True) == []
    component_get = values_from_reply(
        "main", {"Name": "Zone1", "Controls": [{"Name": "mute", "Value": 0, "String": "unmuted"}]}
    )
    assert component_get[0].ref == ControlRef("main", "Zone1", "mute")


async def test_discovery_asks_for_controls_concurrently_within_the_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock_in_flight = 0
    peak = 0
    asked: list[str] = []

    async def request(method: str, params: Any) -> Any:
        nonlocal clock_in_flight, peak
        if method == "Component.GetComponents":
            return [{"Name": f"C{i}", "Type": "gain", "ID": f"C{i}"} for i in range(40)]
        clock_in_flight += 1
        peak = max(peak, clock_in_flight)
        await trio.sleep(0.01)
        clock_in_flight -= 1
        asked.append(params["Name"])
        if params["Name"] == "C7":
            raise UnknownComponent("gone")
        return {"Name": params["Name"], "Controls": [{"Name": "gain", "Type": "Float", "Value": 1}]}

    with trio.fail_after(5):
        found = await discover(request, "main", design_code="abc", concurrency=4)
    assert peak == 4
    assert sorted(asked) == sorted(f"C{i}" for i in range(40))
    assert len(found.components) == 39 and found.vanished == ("C7",)
    assert [c.name for c in found.components][:3] == ["C0", "C1", "C2"]
    assert len(found.controls) == 39 and len(found.values) == 39


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (0.25, 0.25),
        (0.0, 0.0),
        (-0.0, 0.0),  # clamped like any other: never "-0.0" to a client
        (1.0, 1.0),
        (1.5, 1.0),
        (-2.0, 0.0),
        (1, 1.0),
        (True, None),
        ("0.5", None),
        (1e400, None),
        (None, None),
    ],
)
def test_poll_positions_are_clamped_floats_or_none(position: Any, expected: Any) -> None:
    item = {"Name": "n", "Value": 1, "String": "1", "Position": position}
    params = {"Id": "g", "Changes": [item]}
    _, [value] = poll_from_wire("main", params)
    assert value.position == expected
    assert str(value.position) == str(expected)


def test_equal_metadata_in_one_poll_is_one_read_only_copy() -> None:
    def item(name: str, **extra: Any) -> dict[str, Any]:
        return {"Component": "Bar", "Name": name, "Value": 1, "String": "1", **extra}

    params = {
        "Id": "g",
        "Changes": [
            item("a", Color="", Disabled=False),
            item("b", Color="", Disabled=False),
            item("c", Color="", Disabled=0),  # equal to False, but not the same value
            item("d", Choices=["x", "y"]),
            item("e"),
        ],
    }
    _, (a, b, c, d, e) = poll_from_wire("main", params)
    assert a.metadata is b.metadata and a.metadata == {"Color": "", "Disabled": False}
    assert c.metadata is not a.metadata and type(c.metadata["Disabled"]) is int
    assert d.metadata == {"Choices": ["x", "y"]}
    assert e.metadata == {}
    with pytest.raises(TypeError):
        a.metadata["Color"] = "red"  # type: ignore[index]


def test_a_shared_leaf_keeps_its_type_and_sign() -> None:
    copies: dict[Any, Any] = {}
    # decoded, so every occurrence is its own object, as from a Core
    texts = json.loads('["-12dB", "-12dB"]')
    floats = json.loads("[-100.0, -100.0, 0.0, -0.0, 1.0, 1, true]")
    assert texts[0] is not texts[1] and floats[0] is not floats[1]
    assert share_leaf(copies, texts[0]) is share_leaf(copies, texts[1]) is texts[0]
    assert share_leaf(copies, floats[0]) is share_leaf(copies, floats[1]) is floats[0]
    zero, negative_zero, one_float, one, true = (share_leaf(copies, v) for v in floats[2:])
    assert str(zero) == "0.0" and str(negative_zero) == "-0.0"  # 0.0 == -0.0: never merged
    assert str(share_leaf(copies, json.loads("-0.0"))) == "-0.0"
    assert (type(one_float), type(one), type(true)) == (float, int, bool)
    assert str(share_leaf(copies, json.loads("1.0"))) == "1.0"
    assert share_leaf(copies, None) is None


def test_one_discovery_shares_equal_ranges_and_texts_across_its_replies() -> None:
    def reply(component: str) -> Any:
        return json.loads(
            json.dumps(
                {
                    "Name": component,
                    "Controls": [
                        {
                            "Name": "gain",
                            "Type": "Float",
                            "Value": -100.0,
                            "String": "-100dB",
                            "Position": 0.0,
                            "ValueMin": -100.0,
                            "ValueMax": 20.0,
                            "StringMin": "-100dB",
                            "StringMax": "20dB",
                        },
                        {
                            "Name": "steps",
                            "Type": "Integer",
                            "Value": 1,
                            "String": "1",
                            "ValueMin": 0,
                            "ValueMax": 20,
                        },
                        {
                            "Name": "mute",
                            "Type": "Boolean",
                            "Value": True,
                            "String": "true",
                            "Position": 1.0,
                        },
                    ],
                }
            )
        )

    copies: dict[Any, Any] = {}
    infos_a, values_a = controls_from_reply("main", "A", reply("A"), copies)
    infos_b, values_b = controls_from_reply("main", "B", reply("B"), copies)
    assert infos_a[0].value_min is infos_b[0].value_min == -100.0
    assert infos_a[0].string_max is infos_b[0].string_max == "20dB"
    assert values_a[0].string is values_b[0].string is infos_a[0].string_min
    assert values_a[0].value is values_b[0].value is infos_b[0].value_min
    # the same numbers in other types stay apart: 1, 1.0 and True
    assert (values_b[1].value, type(values_b[1].value)) == (1, int)
    assert (values_b[2].value, type(values_b[2].value)) == (True, bool)
    assert (values_b[2].position, type(values_b[2].position)) == (1.0, float)
    assert values_a[0].position == 0.0 and str(values_a[0].position) == "0.0"
    # without a discovery's dict, one reply still reads the same
    alone, _ = controls_from_reply("main", "C", reply("C"))
    assert [i.value_min for i in alone] == [i.value_min for i in infos_a]
