"""The compiled fast check never accepts what the full JSON Schema validator refuses.

validate_arguments answers valid arguments from a check compiled once per input class and
runs jsonschema only for the others, so every refusal keeps jsonschema's exact errors.
"""

from __future__ import annotations

from typing import Any

import attrs
import jsonschema
from hypothesis import given, settings, strategies as st

from qsysd.plugins import Registry, doc, json_schema
from qsysd.plugins._schema import _acceptor

REGISTRY = Registry(entry_points=False)
TOOLS = REGISTRY.tools()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-300, 300),
    st.floats(-300, 300),
    st.sampled_from([1.0, 0.0, -20.0, True, False, 1, 0]),
    st.text(max_size=5),
    st.sampled_from(["", " ", "A.gain", "input", "output", "Scenes", "x" * 300]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["control", "value", "position", "ramp", "name", "x"]), inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)  # fmt: skip


def keys_of(schema: dict[str, Any]) -> list[str]:
    return [*schema.get("properties", {}), "unknown"]


@settings(max_examples=400)
@given(data=st.data())
def test_fast_check_accepts_only_what_jsonschema_accepts(data: st.DataObject) -> None:
    tool = data.draw(st.sampled_from(TOOLS))
    accepts = _acceptor(tool.input_type)
    assert accepts is not None, f"{tool.name}'s schema has a keyword the fast check lacks"
    random = st.dictionaries(st.sampled_from(keys_of(tool.input_schema)), json_values, max_size=4)
    # an example with one field replaced: near-valid arguments, where a lax check would slip
    examples = [e for e in tool.examples if e]
    mutated = st.builds(
        lambda example, key, value: {**example, key: value},
        st.sampled_from(examples or [{}]),
        st.sampled_from(keys_of(tool.input_schema)),
        json_values,
    )
    arguments = data.draw(st.one_of(random, mutated))
    if accepts(arguments):
        errors = list(jsonschema.Draft202012Validator(tool.input_schema).iter_errors(arguments))
        assert errors == [], (tool.name, arguments)


def test_fast_check_accepts_every_documented_example() -> None:
    for tool in TOOLS:
        accepts = _acceptor(tool.input_type)
        assert accepts is not None
        for example in tool.examples:
            assert accepts(example), (tool.name, example)


def test_a_keyword_the_fast_check_lacks_leaves_every_call_to_jsonschema() -> None:
    @attrs.frozen
    class Odd:
        code: str = attrs.field(metadata=doc("A code.", const="x"))

    assert "const" in json_schema(Odd)["properties"]["code"]
    assert _acceptor(Odd) is None


non_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])


@settings(max_examples=300)
@given(data=st.data())
def test_fast_check_refuses_every_nan_and_infinity(data: st.DataObject) -> None:
    # The check stands in for the non-finite walk too: a value anywhere in the arguments,
    # including under a field the schema leaves open, sends the call to the walk's error.
    tool = data.draw(st.sampled_from(TOOLS))
    accepts = _acceptor(tool.input_type)
    assert accepts is not None
    examples = [e for e in tool.examples if e] or [{}]
    example = data.draw(st.sampled_from(examples))
    key = data.draw(st.sampled_from(keys_of(tool.input_schema)))
    bad = data.draw(
        st.one_of(
            non_finite,
            st.lists(non_finite, min_size=1, max_size=2),
            st.builds(lambda v: {"value": v}, non_finite),
            st.builds(lambda v: [{"control": "A.gain", "value": v}], non_finite),
        )
    )
    assert not accepts({**example, key: bad}), (tool.name, key, bad)


def test_fast_check_refuses_nan_under_an_open_field() -> None:
    @attrs.frozen
    class Open:
        data: Any = attrs.field(metadata=doc("Anything."))
        table: dict[str, float] = attrs.field(factory=dict, metadata=doc("Numbers."))

    accepts = _acceptor(Open)
    assert accepts is not None
    assert accepts({"data": {"a": [1.5, "x"]}, "table": {"a": 1.0}})
    assert not accepts({"data": {"a": [float("nan")]}})
    assert not accepts({"data": 1, "table": {"a": float("inf")}})
