"""Bad tool arguments give a specific message naming the field, never a traceback."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, strategies as st

from qsysd.errors import ToolInputError
from qsysd.plugins import Registry, validate_arguments
from qsysd.tools._read import GetInput, HistoryInput, ListComponentsInput
from qsysd.tools._write import MixerSetInput, SetInput, SnapshotLoadInput

REGISTRY = Registry(entry_points=False)


def problem(cls: type, arguments: Any) -> str:
    with pytest.raises(ToolInputError) as caught:
        validate_arguments(cls, arguments)
    return str(caught.value)


@pytest.mark.parametrize(
    ("cls", "arguments", "message"),
    [
        (SetInput, {"changes": [{"control": "A.gain", "value": math.nan}]}, "changes[0].value"),
        (SetInput, {"changes": [{"control": "A.gain", "value": math.inf}]}, "inf"),
        (SetInput, {"changes": [{"control": "A.gain", "position": math.nan}]}, "position"),
        (SetInput, {"changes": [{"control": "A.gain", "value": -3, "ramp": math.nan}]}, "ramp"),
        (
            MixerSetInput,
            {"mixer": "M", "target": "input", "inputs": "1", "gain": math.nan},
            "gain is nan",
        ),
        (SnapshotLoadInput, {"bank": "Scenes", "number": 1, "ramp": -math.inf}, "ramp is -inf"),
        (HistoryInput, {"since_minutes": math.inf}, "since_minutes"),
    ],
)
def test_nan_and_infinity_are_refused_naming_the_field(
    cls: type, arguments: dict[str, Any], message: str
) -> None:
    text = problem(cls, arguments)
    assert message in text and "finite number" in text


@pytest.mark.parametrize(
    ("cls", "arguments", "message"),
    [
        (SetInput, {"changes": [{"control": "   ", "value": 1}]}, "changes[0].control: must not"),
        (SetInput, {"changes": [{"control": "", "value": 1}]}, "changes[0].control: must not be"),
        (SetInput, {"changes": [{"control": "x" * 5000, "value": 1}]}, "5000 characters"),
        (SetInput, {"changes": [{"control": "A.gain", "value": 1}] * 101}, "101 items"),
        (SetInput, {"changes": [{"control": "A.gain", "value": 1, "ramp": 1e9}]}, "ramp"),
        (SetInput, {"changes": [{"control": "A.gain", "value": [1]}]}, "changes[0].value"),
        (SetInput, {"changes": [{"control": "A.gain", "value": 1, "colour": 1}]}, "'colour'"),
        (GetInput, {"controls": ["A.gain", ""]}, "controls[1]: must not be empty"),
        (GetInput, {"controls": ["A.gain"] * 201}, "201 items"),
        (ListComponentsInput, {"offset": 10**12}, "offset"),
        (ListComponentsInput, {"limit": 10**6}, "limit"),
        (ListComponentsInput, {"filter": "z" * 400}, "filter: 400 characters"),
        (
            MixerSetInput,
            {"mixer": "M", "target": "input", "inputs": "1" * 400, "gain": -3},
            "inputs",
        ),
        (MixerSetInput, {"mixer": "M", "target": "input", "inputs": "1", "ramp": 1e9}, "ramp"),
        (SnapshotLoadInput, {"bank": "Scenes", "number": 0}, "number"),
    ],
)
def test_bad_arguments_name_the_field(cls: type, arguments: dict[str, Any], message: str) -> None:
    assert message in problem(cls, arguments)


def test_arguments_that_are_not_an_object_are_refused() -> None:
    assert "expected an object, got array" in problem(SetInput, [1, 2])


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@given(
    arguments=st.dictionaries(
        st.sampled_from(["changes", "core", "confirm", "dry_run", "x"]), json_values
    )
)
def test_any_arguments_either_validate_or_raise_tool_input_error(arguments: Any) -> None:
    for tool in REGISTRY.tools():
        try:
            validate_arguments(tool.input_type, arguments)
        except ToolInputError as exc:
            assert str(exc).startswith("invalid arguments: ")
