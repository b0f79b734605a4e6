"""The safety policy: one test per rule, and what passes."""

from __future__ import annotations

import pytest

from qsysd.config import PolicyConfig, ValueBound
from qsysd.errors import PolicyViolation
from qsysd.policy import Policy, ProposedWrite, parse_number


def gain(current: float | None = -20.0, **request: object) -> ProposedWrite:
    return ProposedWrite(
        control="Lobby_BGM.gain",
        core="main",
        type="Float",
        value_min=-100.0,
        value_max=20.0,
        current=current,
        current_string=None if current is None else f"{current}dB",
        **request,  # type: ignore[arg-type]
    )


def refused(policy: Policy, write: ProposedWrite, *, confirm: bool = False) -> PolicyViolation:
    with pytest.raises(PolicyViolation) as caught:
        policy.check_write(write, confirm=confirm)
    return caught.value


def test_small_gain_change_within_every_limit_passes() -> None:
    assert Policy().check_write(gain(value=-16.0)) == -16.0


def test_read_only_mode_refuses_every_write() -> None:
    policy = Policy(PolicyConfig(read_only=True))
    assert refused(policy, gain(value=-20.0)).rule == "read_only"
    with pytest.raises(PolicyViolation, match="loading a snapshot"):
        policy.check_writable("loading a snapshot")


def test_protected_glob_refuses_the_control_and_names_the_pattern() -> None:
    policy = Policy(PolicyConfig(protected=["Lobby_*.gain"]))
    exc = refused(policy, gain(value=-20.0))
    assert exc.rule == "protected" and "'Lobby_*.gain'" in str(exc)
    assert policy.is_protected("Lobby_BGM.gain") and not policy.is_protected("Bar.gain")


def test_protected_pattern_with_a_core_prefix_matches_only_that_core() -> None:
    policy = Policy(PolicyConfig(protected=["backup:Lobby_BGM.*"]))
    policy.check_write(gain(value=-20.0))
    assert refused(policy, ProposedWrite("Lobby_BGM.mute", core="backup", type="Boolean",
                                         value=True)).rule == "protected"  # fmt: skip


def test_read_only_control_is_refused() -> None:
    write = ProposedWrite("FireAlarmActive", type="Boolean", direction="Read Only", value=True)
    assert refused(Policy(), write).rule == "direction"


def test_value_outside_the_controls_range_is_refused_with_the_range() -> None:
    exc = refused(Policy(PolicyConfig(max_gain_db=None)), gain(value=30.0))
    assert exc.rule == "range" and "-100..20" in str(exc)


def test_position_outside_zero_to_one_is_refused() -> None:
    assert refused(Policy(), gain(position=1.5)).rule == "range"


def test_configured_bounds_refuse_values_outside_them() -> None:
    policy = Policy(PolicyConfig(bounds=[ValueBound("Lobby_*.gain", min=-60.0, max=-10.0)]))
    exc = refused(policy, gain(value=-5.0))
    assert exc.rule == "bounds" and "-60..-10" in str(exc)
    assert refused(policy, gain(current=-60.0, value=-70.0), confirm=True).rule == "bounds"
    policy.check_write(gain(value=-24.0))


def test_bounds_apply_to_positions_through_the_range() -> None:
    policy = Policy(PolicyConfig(bounds=[ValueBound("*.gain", max=-10.0)], max_gain_step_db=None))
    assert refused(policy, gain(position=0.9)).rule == "bounds"  # -100 + 0.9*120 = 8 dB


def test_bounds_refuse_a_string_without_a_number() -> None:
    policy = Policy(PolicyConfig(bounds=[ValueBound("*.gain", max=-10.0)]))
    assert refused(policy, gain(string="loud")).rule == "bounds"


def test_gain_above_max_gain_db_is_refused_even_with_confirm() -> None:
    policy = Policy(PolicyConfig(max_gain_db=0.0))
    exc = refused(policy, gain(current=-2.0, value=3.0), confirm=True)
    assert exc.rule == "max_gain" and "maximum gain of 0 dB" in str(exc)


def test_large_gain_step_needs_confirm() -> None:
    policy = Policy(PolicyConfig(max_gain_step_db=6.0))
    exc = refused(policy, gain(current=-30.0, value=-10.0))
    assert exc.rule == "max_step" and "+20.0 dB" in str(exc) and "confirm: true" in str(exc)
    assert policy.check_write(gain(current=-30.0, value=-10.0), confirm=True) == -10.0


def test_gain_step_is_checked_for_string_writes_too() -> None:
    assert refused(Policy(), gain(current=-30.0, string="-3dB")).rule == "max_step"


def test_unknown_current_gain_needs_confirm() -> None:
    assert refused(Policy(), gain(current=None, value=-20.0)).rule == "max_step"


def test_step_limit_does_not_apply_to_non_gain_controls() -> None:
    mute = ProposedWrite("Lobby_BGM.mute", type="Boolean", current=False, value=True)
    Policy().check_write(mute)


def test_aliases_match_whatever_the_case_and_spacing() -> None:
    policy = Policy(PolicyConfig(aliases={"Lobby Music": "Lobby_BGM.gain"}))
    assert policy.alias("  lobby   MUSIC ") == "Lobby_BGM.gain"
    assert policy.alias("bar") is None


@pytest.mark.parametrize(
    ("text", "number"),
    [("-12.0dB", -12.0), ("3", 3.0), ("+6 dB", 6.0), ("-inf dB", float("-inf")), ("muted", None)],
)
def test_parse_number_reads_the_core_strings(text: str, number: float | None) -> None:
    assert parse_number(text) == number
