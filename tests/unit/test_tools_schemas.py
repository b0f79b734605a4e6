"""Every tool's schemas are valid JSON Schema; arguments are validated with clear messages."""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs
import cattrs
import msgspec
import pytest
from jsonschema import Draft202012Validator

from qsysd.errors import ToolInputError
from qsysd.plugins import (
    Registry,
    Tool,
    doc,
    json_schema,
    structure_arguments,
    unstructure_output,
    validate_arguments,
)
from qsysd.state import (
    ComponentInfo,
    ControlInfo,
    ControlReading,
    ControlRef,
    ControlRow,
    ControlValue,
    StateStore,
)
from qsysd.tools._browse import ListControlsOutput
from qsysd.tools._common import control_out, controls_json
from qsysd.tools._write import SetInput

REGISTRY = Registry(entry_points=False)
TOOLS = REGISTRY.tools()


def properties(schema: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    """Every property schema, at any depth (inside objects and arrays), with its path."""
    out = []
    for name, sub in schema.get("properties", {}).items():
        out.append((f"{path}.{name}", sub))
        out += properties(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += properties(schema["items"], f"{path}[]")
    return out


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_every_tool_schema_is_a_valid_described_object_schema(tool: Tool) -> None:
    for schema in (tool.input_schema, tool.output_schema):
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
        for path, sub in properties(schema):
            assert sub.get("description"), f"{tool.name}: {path} has no description"
    assert tool.input_schema["additionalProperties"] is False
    assert tool.description.strip() and len(tool.description) > 60


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_every_tool_has_a_valid_example_and_consistent_hints(tool: Tool) -> None:
    assert tool.examples, f"{tool.name} has no example"
    for example in tool.examples:
        Draft202012Validator(tool.input_schema).validate(example)
    hints = tool.annotations()
    # Only reads are read-only, but for the audit: an admin's read.
    assert hints["readOnlyHint"] == (tool.permission == "read" or tool.name == "qsys_audit")


def test_schemas_describe_nested_objects_and_arrays() -> None:
    changes = REGISTRY.tool("qsys_set").input_schema["properties"]["changes"]
    assert changes["type"] == "array" and changes["minItems"] == 1
    item = changes["items"]
    assert item["type"] == "object" and item["required"] == ["control"]
    assert item["properties"]["ramp"]["minimum"] == 0
    results = REGISTRY.tool("qsys_set").output_schema["properties"]["results"]
    assert results["items"]["properties"]["string"]["type"] == ["string", "null"]


@attrs.frozen
class Inner:
    """Inner."""

    level: float = attrs.field(metadata=doc("A level.", minimum=-100, maximum=20))


@attrs.frozen
class Outer:
    """Outer."""

    mode: Literal["a", "b"] = attrs.field(metadata=doc("A mode."))
    inner: Inner = attrs.field(metadata=doc("One inner."))
    many: list[Inner] = attrs.field(factory=list, metadata=doc("Several."))
    tags: dict[str, int] = attrs.field(factory=dict, metadata=doc("Tags."))
    note: str | None = attrs.field(default=None, metadata=doc("A note."))


def test_json_schema_from_attrs_covers_literals_nesting_lists_dicts_optionals() -> None:
    schema = json_schema(Outer)
    Draft202012Validator.check_schema(schema)
    props = schema["properties"]
    assert props["mode"]["enum"] == ["a", "b"]
    assert props["inner"]["properties"]["level"]["maximum"] == 20
    assert props["many"]["items"]["type"] == "object"
    assert props["tags"]["additionalProperties"] == {"type": "integer"}
    assert props["note"] == {"type": ["string", "null"], "description": "A note.", "default": None}
    assert schema["required"] == ["mode", "inner"]


def test_valid_arguments_become_typed_objects() -> None:
    args = structure_arguments(
        Outer, {"mode": "a", "inner": {"level": -3}, "many": [{"level": 1.5}]}
    )
    assert args == Outer("a", Inner(-3.0), [Inner(1.5)])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "<arguments>: 'changes' is a required property"),
        ({"changes": []}, "changes: must not be empty"),
        ({"changes": [{"control": "A.gain", "ramp": -1}]}, "changes[0].ramp: -1 is out of range"),
        ({"changes": [{"control": 5}]}, "changes[0].control: expected string, got number 5"),
        ({"changes": [{"control": "A.gain"}], "confrim": True}, "unknown field(s) 'confrim'"),
        (
            {"changes": [{"control": "A.gain", "position": 2}]},
            "changes[0].position: 2 is out of range [0, 1]",
        ),
        ({"changes": [{"control": "A.gain"}], "dry_run": "yes"}, "dry_run: expected boolean"),
    ],
)
def test_invalid_arguments_name_the_field(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ToolInputError) as caught:
        validate_arguments(SetInput, arguments)
    assert message in str(caught.value)


def test_enum_error_lists_the_allowed_values() -> None:
    with pytest.raises(ToolInputError, match="'c' is not one of 'a', 'b'"):
        validate_arguments(Outer, {"mode": "c", "inner": {"level": 0}})


def _readings() -> list[ControlReading]:
    """Readings of every shape a listing meets: no value yet, each scalar type, NaN, ranges."""
    out = []
    values: list[Any] = [None, -12.5, 3, True, "text", math.nan, math.inf, ""]
    for i, value in enumerate(values):
        ref = ControlRef("main", "Mixer", f"input.{i}.gain")
        info = ControlInfo(ref, "Float", "Read/Write", -100.0 if i % 2 else None, 20.0)
        reading = None if value is None else ControlValue(ref, value, f"{value}", 0.25 * (i % 3))
        out.append(ControlReading(info, reading, 1.0, 0.123456 * i, i, bool(i % 2)))
    return out


def _row(r: ControlReading) -> ControlRow:
    v = r.value
    if v is None:
        return (r.info, None, None, None, r.age, r.stale)
    return (r.info, v.value, v.string, v.position, r.age, r.stale)


@pytest.mark.parametrize("component", ["Mixer", None])
def test_a_listing_built_as_json_objects_is_what_cattrs_makes_of_control_outs(
    component: str | None,
) -> None:
    readings = _readings()
    objects = controls_json([_row(r) for r in readings])
    fast = ListControlsOutput("main", component, "mixer", objects)  # type: ignore[arg-type]
    plain = ListControlsOutput("main", component, "mixer", [control_out(r) for r in readings])
    expected = cattrs.Converter().unstructure(plain)
    assert unstructure_output(fast) == expected == unstructure_output(plain)
    assert list(unstructure_output(fast)["controls"][1]) == list(expected["controls"][1])


@pytest.mark.parametrize("stale", [False, True])
@pytest.mark.parametrize("component", ["Mixer", None])
def test_a_listing_from_store_rows_is_what_cattrs_makes_of_the_readings(
    component: str | None, stale: bool
) -> None:
    """The listing's row path (no reading objects) answers byte for byte what readings did,
    ages (per-control and the Core's confirmation) and staleness included."""
    now = [1000.0]
    store = StateStore(clock=lambda: now[0])
    readings = _readings()
    infos = [
        msgspec.structs.replace(r.info, ref=ControlRef("main", component, r.info.ref.name))
        for r in readings
    ]
    values = [
        attrs.evolve(r.value, ref=info.ref)
        for r, info in zip(readings, infos, strict=True)
        if r.value is not None
    ]
    store.replace_design(
        "main", "code", [ComponentInfo("main", "Mixer", "mixer", "1")], infos, values
    )
    now[0] = 1003.5
    store.apply([attrs.evolve(values[1], value=-3.0, string="-3.0dB")])  # confirms one control
    now[0] = 1004.25
    if stale:
        store.mark_stale("main")
    else:
        store.confirm("main")
    now[0] = 1007.123456
    from_rows = ListControlsOutput(
        "main",
        component,
        "mixer",
        controls_json(store.control_rows("main", component)),  # type: ignore[arg-type]
    )
    from_readings = ListControlsOutput(
        "main", component, "mixer", [control_out(r) for r in store.controls("main", component)]
    )
    expected = cattrs.Converter().unstructure(from_readings)
    assert unstructure_output(from_rows) == expected
    assert {c["stale"] for c in expected["controls"]} == {stale}
    assert len({c["age_s"] for c in expected["controls"]}) == (2 if stale else 1)
