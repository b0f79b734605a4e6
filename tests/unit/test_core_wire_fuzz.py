"""The wire converters on arbitrary JSON: valid model objects, or InvalidReply, nothing else."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from qsysd.core import (
    EngineStatus,
    components_from_reply,
    control_value_from_wire,
    controls_from_reply,
    engine_status_from_wire,
    poll_from_wire,
    values_from_reply,
)
from qsysd.errors import InvalidReply
from qsysd.state import ComponentInfo, ControlInfo, ControlRef, ControlValue

# What json.loads can give (NaN is refused by the codec; 1e400 parses as inf).
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.just(10**400)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
KEYS = [
    "Name", "Component", "Value", "String", "Position", "Type", "Direction", "ValueMin",
    "ValueMax", "StringMin", "StringMax", "Choices", "Controls", "Components", "Properties",
    "Changes", "Id", "ID", "State", "DesignCode", "DesignName", "Platform", "IsRedundant",
    "IsEmulator", "Status", "Code",
]  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=12,
)
control_objects = st.fixed_dictionaries(
    {"Name": st.text(max_size=6)},
    optional={k: json_values for k in KEYS if k != "Name"},
)
plausible = (
    json_values
    | st.lists(control_objects, max_size=4)
    | st.fixed_dictionaries({"Controls": st.lists(control_objects | json_values, max_size=4)})
    | st.fixed_dictionaries(
        {"Id": json_values, "Changes": st.lists(control_objects | json_values, max_size=4)}
    )
)


def check_ref(ref: ControlRef) -> None:
    assert isinstance(ref, ControlRef)
    assert isinstance(ref.core, str) and isinstance(ref.name, str)
    assert ref.component is None or isinstance(ref.component, str)


def check_number(value: Any) -> None:
    assert value is None or (isinstance(value, float) and math.isfinite(value))


def check_value(value: ControlValue) -> None:
    assert isinstance(value, ControlValue)
    check_ref(value.ref)
    v = value.value
    assert (
        v is None or isinstance(v, bool | int | str) or (isinstance(v, float) and math.isfinite(v))
    )
    assert isinstance(value.string, str)
    check_number(value.position)
    assert value.position is None or 0.0 <= value.position <= 1.0
    assert isinstance(value.metadata, Mapping)
    assert "Choices" not in value.metadata or isinstance(value.metadata["Choices"], list)
    hash(value)


def check_info(info: ControlInfo) -> None:
    assert isinstance(info, ControlInfo)
    check_ref(info.ref)
    assert isinstance(info.type, str) and isinstance(info.direction, str)
    check_number(info.value_min)
    check_number(info.value_max)
    assert info.string_min is None or isinstance(info.string_min, str)
    assert info.string_max is None or isinstance(info.string_max, str)


@settings(max_examples=100, deadline=None)
@given(plausible)
def test_components_from_any_json(obj: Any) -> None:
    try:
        components = components_from_reply("main", obj)
    except InvalidReply as exc:
        assert "Component.GetComponents returned" in str(exc)
        return
    names = [c.name for c in components]
    assert len(names) == len(set(names))
    for c in components:
        assert isinstance(c, ComponentInfo)
        assert all(isinstance(x, str) for x in (c.core, c.name, c.type, c.id))
        assert all(isinstance(n, str) and isinstance(v, str) for n, v in c.properties)


@settings(max_examples=100, deadline=None)
@given(plausible)
def test_controls_from_any_json(obj: Any) -> None:
    try:
        infos, values = controls_from_reply("main", "Gain", obj)
    except InvalidReply as exc:
        assert 'Component.GetControls of "Gain"' in str(exc)
        return
    for info in infos:
        check_info(info)
        assert info.ref.component == "Gain"
    for value in values:
        check_value(value)
    assert len({i.ref for i in infos}) == len(infos)


@settings(max_examples=100, deadline=None)
@given(plausible, st.sampled_from([None, "Float", "Boolean", "Integer", "Text"]))
def test_poll_from_any_json(obj: Any, kind: str | None) -> None:
    kinds = {ControlRef("main", None, ""): kind} if kind else None
    try:
        group, values = poll_from_wire("main", obj, kinds)
    except InvalidReply as exc:
        assert "ChangeGroup.Poll" in str(exc)
        return
    assert group is None or isinstance(group, str)
    for value in values:
        check_value(value)


@settings(max_examples=100, deadline=None)
@given(plausible)
def test_values_from_any_json_never_raise(obj: Any) -> None:
    for value in values_from_reply("main", obj, component="Gain"):
        check_value(value)


# Items alike in layout, as a real poll's are, with values that are equal but not the same
# (0, False, 0.0), and some that cannot be shared (lists) or must be checked (Choices, Value).
METADATA = ["Color", "Legend", "Disabled", "Invisible", "Choices", "Value", "Indeterminate"]
POOL = st.sampled_from([0, False, 0.0, -0.0, 1, True, 1.0, "", "x", None, [1], {"a": 1}])


@st.composite
def alike_items(draw: st.DrawFn) -> list[dict[str, Any]]:
    layout = draw(st.lists(st.sampled_from(METADATA), unique=True, max_size=4))
    return [
        {"Component": "A", "Name": f"c{i}", **{k: draw(POOL | json_values) for k in layout}}
        for i in range(draw(st.integers(0, 6)))
    ]


@settings(max_examples=200, deadline=None)
@given(alike_items())
def test_a_poll_reads_each_item_as_an_item_read_alone(items: list[dict[str, Any]]) -> None:
    # the poll shares equal metadata, texts and numbers; each value must be what the item
    # read on its own gives, types included (0, False and 0.0 are three metadata)
    _, polled = poll_from_wire("main", {"Id": "g", "Changes": items})
    alone = [control_value_from_wire("main", item) for item in items]
    assert polled == alone
    for p, a in zip(polled, alone, strict=True):
        assert dict(p.metadata) == dict(a.metadata)
        assert [type(v) for v in p.metadata.values()] == [type(v) for v in a.metadata.values()]
        assert list(p.metadata) == list(a.metadata)  # the Core's order
        assert type(p.value) is type(a.value) and str(p.position) == str(a.position)


@settings(max_examples=100, deadline=None)
@given(control_objects, st.sampled_from([None, "Float", "Boolean", "Integer", "Text"]))
def test_one_control_object_of_any_content(obj: dict[str, Any], kind: str | None) -> None:
    check_value(control_value_from_wire("main", obj, component="Gain", kind=kind))


@settings(max_examples=100, deadline=None)
@given(json_values | st.dictionaries(st.sampled_from(KEYS), json_values))
def test_engine_status_from_any_json(obj: Any) -> None:
    base = EngineStatus(state="Active", design_code="abc", status_code=0, status_string="OK")
    try:
        status = engine_status_from_wire(obj, base)
    except InvalidReply as exc:
        assert "engine status is" in str(exc)
        assert not isinstance(obj, Mapping)
        return
    for name in ("platform", "state", "design_name", "design_code", "status_string"):
        assert isinstance(getattr(status, name), str)
    assert isinstance(status.is_redundant, bool) and isinstance(status.is_emulator, bool)
    assert isinstance(status.status_code, int) and abs(status.status_code) < 2**31


# -- the shapes the review named, one by one -------------------------------------------------


@pytest.mark.parametrize(
    "result", [{"Name": "x"}, {"Components": None}, ["a", "b"], True, None, "x", 3]
)
def test_get_components_without_a_list_is_an_invalid_reply(result: Any) -> None:
    if isinstance(result, list):
        assert components_from_reply("main", result) == []  # a list of strings: none usable
        return
    with pytest.raises(InvalidReply, match="expected a list of components"):
        components_from_reply("main", result)


def test_components_missing_a_name_or_with_odd_properties_are_read_or_skipped() -> None:
    result = [
        {"Type": "gain"},
        {"Name": 5},
        {"Name": "A", "Properties": "none"},
        {"Name": "B", "Properties": [{"Name": "p", "Value": {"deep": 1}}, "x", {"Value": "1"}]},
        {"Name": "A", "Type": "second A"},
    ]
    a, b = components_from_reply("main", result)
    assert (a.name, a.properties, a.type) == ("A", (), "")
    assert b.properties == (("p", ""),)


def test_get_controls_with_null_controls_is_a_component_without_controls() -> None:
    assert controls_from_reply("main", "Gain", {"Name": "Gain", "Controls": None}) == ([], [])
    with pytest.raises(InvalidReply, match="expected an object with a list of Controls"):
        controls_from_reply("main", "Gain", {"Name": "Gain", "Controls": "gain"})


def test_get_controls_with_odd_members_gives_sane_values() -> None:
    (info,), (value,) = controls_from_reply(
        "main",
        "Gain",
        {
            "Controls": [
                {
                    "Name": "gain",
                    "Type": "Float",
                    "Value": float("inf"),
                    "ValueMin": "-100",
                    "ValueMax": 10**400,
                    "String": None,
                    "Position": 1.5,
                    "Choices": "a,b",
                }
            ]
        },
    )
    assert info.value_min is None and info.value_max is None
    assert value.value is None and value.string == "" and value.position == 1.0
    assert "Choices" not in value.metadata


def test_engine_status_push_with_missing_or_odd_members_keeps_the_previous_ones() -> None:
    base = engine_status_from_wire(
        {"State": "Active", "DesignCode": "abc", "Status": {"Code": 0, "String": "OK"}}
    )
    pushed = engine_status_from_wire(
        {"State": 5, "IsRedundant": [], "Status": {"Code": 1e400, "String": 3}}, base
    )
    assert pushed == base
    assert engine_status_from_wire({"State": "Standby"}, base).design_code == "abc"
    with pytest.raises(InvalidReply, match="engine status is true"):
        engine_status_from_wire(True)
