"""The policy against writes that could get around it: positions, strings, NaN, names, case."""

from __future__ import annotations

import math

import pytest

from qsysd.config import PolicyConfig, ValueBound
from qsysd.errors import PolicyViolation
from qsysd.policy import Policy, ProposedWrite, parse_strict_number


def write(control: str = "Lobby_BGM.gain", **fields: object) -> ProposedWrite:
    base: dict[str, object] = {
        "core": "main",
        "type": "Float",
        "value_min": -100.0,
        "value_max": 20.0,
        "current": -20.0,
        "current_string": "-20.0dB",
    }
    base.update(fields)
    return ProposedWrite(control, **base)  # type: ignore[arg-type]


def rule(policy: Policy, proposed: ProposedWrite, *, confirm: bool = False) -> str:
    with pytest.raises(PolicyViolation) as caught:
        policy.check_write(proposed, confirm=confirm)
    return caught.value.rule


def test_named_gain_by_position_without_a_known_range_is_refused() -> None:
    # Named controls come without ValueMin/ValueMax: position 1.0 could be +20 dB.
    main = write("MainGain", value_min=None, value_max=None, current=-12.0, position=1.0)
    assert rule(Policy(), main) == "max_gain"
    assert rule(Policy(PolicyConfig(max_gain_db=None)), main) == "max_step"


def test_gain_by_position_is_checked_through_the_range() -> None:
    assert rule(Policy(), write(position=1.0), confirm=True) == "max_gain"  # +20 dB


def test_gain_string_that_is_not_a_plain_number_is_refused() -> None:
    for text in ("loud", "1_0dB", "6dB!", "+inf", "0x10", "−6dB"):
        assert rule(Policy(), write(string=text)) == "max_gain", text


def test_gain_string_is_checked_by_its_number() -> None:
    assert rule(Policy(), write(current=-3.0, string="+10 dB")) == "max_gain"
    assert Policy().check_write(write(string="-18dB")) == -18.0


def test_not_a_number_is_refused_whatever_the_control() -> None:
    assert rule(Policy(), write(value=math.nan), confirm=True) == "range"
    integer = write(
        "BGM_Router.select.1",
        type="Integer",
        value_min=0.0,
        value_max=4.0,
        current=1,
        current_string="1",
        value=math.nan,
    )
    assert rule(Policy(), integer) == "range"
    assert rule(Policy(PolicyConfig(max_gain_db=None)), write(value=math.inf)) == "range"


@pytest.mark.parametrize(
    ("control", "name", "fields"),
    [
        ("Boardroom_EQ.band.1.gain", "band.1.gain", {"value_min": -18.0, "value_max": 18.0}),
        ("Ballroom_Mics.input.3.gain", "input.3.gain", {}),
        ("Zone_Amp.gain.2", "gain.2", {}),
        ("MainGain", "MainGain", {"value_min": None, "value_max": None}),
        ("Limiter.threshold", "threshold", {"current_string": "-3.0dB", "current": -3.0}),
    ],
)
def test_controls_in_db_or_named_as_gains_obey_max_gain(
    control: str, name: str, fields: dict[str, object]
) -> None:
    proposed = write(control, name=name, value=6.0, **fields)
    assert proposed.is_gain
    assert rule(Policy(), proposed, confirm=True) == "max_gain"


def test_a_gain_in_the_component_name_does_not_make_a_frequency_a_gain() -> None:
    frequency = write(
        "MainGain_EQ.band.1.frequency",
        name="band.1.frequency",
        value_min=20.0,
        value_max=20000.0,
        current=1000.0,
        current_string="1.00kHz",
        value=2000.0,
    )
    assert not frequency.is_gain
    assert Policy().check_write(frequency) == 2000.0


def test_the_db_unit_of_the_range_makes_a_gain_before_any_value_is_known() -> None:
    proposed = write(
        "Amp.out", name="out", current=None, current_string=None, string_max="20.0dB", value=3.0
    )
    assert proposed.is_gain and rule(Policy(), proposed, confirm=True) == "max_gain"


def test_a_boolean_or_a_word_for_a_gain_is_refused_as_a_type_error() -> None:
    assert rule(Policy(), write(value=True)) == "type"
    assert rule(Policy(), write(value="+10dB")) == "type"


@pytest.mark.parametrize(
    ("fields", "value"),
    [
        ({"type": "Integer", "value_min": 0.0, "value_max": 4.0, "current": 1}, 2.5),
        ({"type": "Boolean", "value_min": None, "value_max": None, "current": False}, "yes"),
        ({"type": "Boolean", "value_min": None, "value_max": None, "current": False}, 7),
        ({"type": "Text", "value_min": None, "value_max": None, "current": "Jazz"}, 5),
    ],
)
def test_a_value_that_does_not_fit_the_control_type_is_refused(
    fields: dict[str, object], value: object
) -> None:
    proposed = write("Comp.ctl", name="ctl", current_string="x", value=value, **fields)
    assert rule(Policy(), proposed) == "type"


def test_booleans_still_write_named_mutes_discovered_as_floats() -> None:
    mute = write(
        "MainMute",
        value_min=None,
        value_max=None,
        current=0.0,
        current_string="unmuted",
        value=True,
    )
    Policy().check_write(mute)


def test_read_only_refusal_names_the_direction() -> None:
    meter = write("Lobby_Meter.meter.1", direction="Read Only", value=-10.0)
    with pytest.raises(PolicyViolation, match=r"'Read Only'.*never written") as caught:
        Policy().check_write(meter)
    assert caught.value.rule == "direction"


def test_protected_and_bounds_patterns_match_whatever_the_case() -> None:
    policy = Policy(
        PolicyConfig(
            protected=["fire_alarm.*", "MAIN:lobby_bgm.mute"],
            bounds=[ValueBound("lobby_*.GAIN", max=-10.0)],
        )
    )
    assert rule(policy, write("Fire_Alarm.level", value=-30.0)) == "protected"
    mute = write("Lobby_BGM.mute", type="Boolean", current=False, value=True)
    assert rule(policy, mute) == "protected"
    assert rule(policy, write(value=-5.0)) == "bounds"


def test_bounds_apply_to_numbers_only() -> None:
    policy = Policy(PolicyConfig(bounds=[ValueBound("Lobby_*.*", min=-60.0, max=-10.0)]))
    policy.check_write(write("Lobby_BGM.mute", type="Boolean", current=False, value=True))
    policy.check_write(write("Lobby_Source.source", type="Text", current="Jazz", value="Rock"))
    assert rule(policy, write(string="-5dB")) == "bounds"


def test_policy_knows_which_writes_must_be_sent_as_the_checked_number() -> None:
    policy = Policy(PolicyConfig(bounds=[ValueBound("Router.select.*", max=3.0)]))
    assert policy.constrains(write(position=0.5))
    select = write(
        "Router.select.1",
        type="Integer",
        value_min=0.0,
        value_max=4.0,
        current=1,
        current_string="1",
        position=0.5,
    )
    assert policy.constrains(select)
    assert not policy.constrains(write("Amp.mute", type="Boolean", current=False, value=True))


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("-6", -6.0),
        ("-6dB", -6.0),
        (" +3.5 db ", 3.5),
        ("1e1", 10.0),
        ("1_0", None),
        ("6dB!", None),
        ("inf", None),
        ("", None),
        ("-", None),
    ],
)
def test_strict_numbers_accept_only_a_number_and_db(text: str, number: float | None) -> None:
    assert parse_strict_number(text) == number
