"""How the emulated Core formats values: strings, float32 precision, positions, parsing."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from qsysd.emulator import ControlSpec
from qsysd.emulator._values import (
    coerce_value,
    float32,
    format_string,
    position_of,
    resolve_format,
    value_from_position,
    value_from_string,
    wire_number,
)
from qsysd.errors import InvalidParams

GAIN = ControlSpec(name="gain", type="Float", min=-100.0, max=20.0)
MUTE = ControlSpec(name="mute", type="Boolean")


@pytest.mark.parametrize(
    ("value", "text"),
    [(-12.0, "-12.0dB"), (0.0, "0dB"), (-100.0, "-100dB"), (20.0, "20.0dB"), (-42.1, "-42.1dB")],
)
def test_gain_strings_look_like_a_cores(value: float, text: str) -> None:
    assert format_string("dB", value, GAIN) == text


@pytest.mark.parametrize(
    ("fmt", "value", "text"),
    [
        ("mute", 1.0, "muted"),
        ("mute", 0.0, "unmuted"),
        ("bypass", 1.0, "yes"),
        ("bypass", 0.0, "no"),
        ("invert", 1.0, "inverted"),
        ("invert", 0.0, "normal"),
        ("boolean", 1.0, "true"),
        ("Hz", 1000.0, "1.00kHz"),
        ("Hz", 20.0, "20.0Hz"),
        ("Hz", 250.0, "250Hz"),
        ("ms", 12.5, "12.5ms"),
        ("s", 2.0, "2.0s"),
        ("celsius", 42.5, "42.5°C"),
        ("integer", 3.0, "3"),
        ("status", 0.0, "OK"),
        ("status", 2.0, "Fault"),
        ("number", 0.7, "0.70"),
        ("trigger", 0.0, ""),
        ("text", "Jazz", "Jazz"),
    ],
)
def test_strings_per_format(fmt: str, value: float | str, text: str) -> None:
    assert format_string(fmt, value, GAIN) == text


def test_values_are_kept_at_float32_precision() -> None:
    assert float32(-42.1) != -42.1
    assert wire_number(-42.1) == -42.09999847


def test_gain_position_is_linear_over_its_range() -> None:
    assert round(position_of(0.0, GAIN), 4) == 0.8333
    assert position_of(-100.0, GAIN) == 0.0
    assert position_of(20.0, GAIN) == 1.0
    assert position_of(1.0, MUTE) == 1.0


def test_choice_position_is_its_index_over_the_choices() -> None:
    spec = ControlSpec(name="source", type="Text", choices=("a", "b", "c"))
    assert position_of("c", spec) == 1.0
    assert value_from_position(0.5, spec, "x") == "b"


@pytest.mark.parametrize(
    ("name", "type_", "fmt"),
    [
        ("input.1.mute", "Boolean", "mute"),
        ("bypass", "Boolean", "bypass"),
        ("invert", "Boolean", "invert"),
        ("enable", "Boolean", "boolean"),
        ("input.2.output.1.gain", "Float", "dB"),
        ("meter.1", "Float", "dB"),
        ("input.1.output.1.delay", "Float", "ms"),
        ("band.1.frequency", "Float", "Hz"),
        ("q", "Float", "number"),
        ("select.1", "Integer", "integer"),
        ("status", "Status", "status"),
        ("load.1", "Trigger", "trigger"),
    ],
)
def test_format_is_inferred_from_type_and_name(name: str, type_: str, fmt: str) -> None:
    assert resolve_format(ControlSpec(name=name, type=type_)) == fmt


def test_written_values_are_clamped_to_the_range() -> None:
    assert coerce_value(50, GAIN, "g") == 20.0
    assert coerce_value(-500, GAIN, "g") == -100.0
    assert coerce_value(True, MUTE, "m") == 1.0
    assert coerce_value(0, MUTE, "m") == 0.0


@pytest.mark.parametrize("raw", ["loud", None, [1], float("nan")])
def test_non_numbers_for_a_float_are_invalid_params(raw: object) -> None:
    with pytest.raises(InvalidParams, match="needs a number"):
        coerce_value(raw, GAIN, "control 'Zone.gain'")


def test_position_writes_map_back_over_the_range() -> None:
    assert value_from_position(0.5, GAIN, "g") == -40.0
    assert value_from_position(0.9, MUTE, "m") == 1.0
    with pytest.raises(InvalidParams, match="Position"):
        value_from_position("half", GAIN, "g")


@pytest.mark.parametrize(
    ("text", "spec", "fmt", "value"),
    [
        ("-6dB", GAIN, "dB", -6.0),
        ("-6.0 dB", GAIN, "dB", -6.0),
        ("muted", MUTE, "mute", 1.0),
        ("unmuted", MUTE, "mute", 0.0),
        ("true", MUTE, "mute", 1.0),
        ("1.00kHz", ControlSpec(name="f", min=20.0, max=20000.0), "Hz", 1000.0),
    ],
)
def test_string_writes_are_parsed(text: str, spec: ControlSpec, fmt: str, value: float) -> None:
    assert value_from_string(text, spec, fmt, "x") == value


def test_unparsable_string_write_is_invalid_params() -> None:
    with pytest.raises(InvalidParams, match="cannot be set to 'loud'"):
        value_from_string("loud", GAIN, "dB", "control 'Zone.gain'")


@given(st.floats(min_value=-100, max_value=20))
def test_position_and_value_round_trip_on_a_gain(value: float) -> None:
    stored = coerce_value(value, GAIN, "g")
    assert isinstance(stored, float)
    back = value_from_position(position_of(stored, GAIN), GAIN, "g")
    assert isinstance(back, float)
    assert abs(back - stored) < 1e-3
