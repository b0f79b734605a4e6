"""The safety policy: one test per rule, and what passes."""

from __future__ import annotations

import pytest

from qsysd.config import PolicyConfig, RolePolicyConfig, ValueBound
from qsysd.errors import PolicyViolation
from qsysd.policy import Policy, ProposedWrite, acting_role, parse_number


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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gain_write(current: float, value: float) -> ProposedWrite:
    return ProposedWrite("Bar.gain", current=current, current_string=f"{current}dB", value=value)


def test_small_raises_cannot_add_up_past_the_step_limit_within_the_window() -> None:
    clock = Clock()
    policy = Policy(PolicyConfig(max_gain_step_db=6.0, max_gain_step_window_s=10.0), clock=clock)
    level = -30.0
    for _ in range(2):  # +3, +3: six in all, at the limit
        write = gain_write(level, level + 3)
        policy.record_write(write, policy.check_write(write))
        level += 3
        clock.now += 1
    with pytest.raises(PolicyViolation, match=r"would rise by \+9\.0 dB within 10 s") as info:
        policy.check_write(gain_write(level, level + 3))
    assert info.value.rule == "max_step"
    policy.check_write(gain_write(level, level + 3), confirm=True)  # a confirmed raise passes
    policy.check_write(gain_write(level, level - 6))  # lowering is never held back
    clock.now += 10  # the earlier raises leave the window
    policy.check_write(gain_write(level, level + 3))


def test_a_zero_window_limits_each_call_only() -> None:
    policy = Policy(PolicyConfig(max_gain_step_db=6.0, max_gain_step_window_s=0.0))
    level = -30.0
    for _ in range(5):
        write = gain_write(level, level + 5)
        policy.record_write(write, policy.check_write(write))
        level += 5


def test_lowering_then_raising_counts_the_net_change() -> None:
    clock = Clock()
    policy = Policy(PolicyConfig(max_gain_step_db=6.0), clock=clock)
    for current, target in ((-20.0, -26.0), (-26.0, -20.0), (-20.0, -14.0)):
        write = gain_write(current, target)
        policy.record_write(write, policy.check_write(write))
    with pytest.raises(PolicyViolation, match="max_step"):
        policy.check_write(gain_write(-14.0, -13.0))


def test_lowering_a_gain_is_not_held_back_by_the_step_limit() -> None:
    # The first thing a newcomer tries: background music down by 10 dB.
    assert Policy(PolicyConfig(max_gain_step_db=6.0)).check_write(gain(value=-30.0)) == -30.0
    assert refused(Policy(), gain(value=-10.0)).rule == "max_step"  # raising still is


def test_the_optional_drop_limit_holds_back_large_drops_unless_confirmed() -> None:
    policy = Policy(PolicyConfig(max_gain_drop_db=12.0))
    assert policy.check_write(gain(value=-32.0)) == -32.0
    exc = refused(policy, gain(value=-40.0))
    assert exc.rule == "max_drop" and "drop by -20.0 dB (-20 -> -40 dB)" in str(exc)
    assert "12 dB drop limit" in str(exc)
    assert policy.check_write(gain(value=-40.0), confirm=True) == -40.0


def test_drop_limit_alone_still_needs_the_current_value() -> None:
    policy = Policy(PolicyConfig(max_gain_step_db=None, max_gain_drop_db=6.0, max_gain_db=None))
    assert refused(policy, gain(current=None, value=-20.0)).rule == "max_drop"
    assert policy.check_write(gain(value=10.0)) == 10.0  # raises are not limited here


def test_acting_role_nests_and_restores_the_outer_role_on_an_exception() -> None:
    policy = Policy(PolicyConfig(roles={"kiosk": RolePolicyConfig(read_only=True)}))
    write = ProposedWrite("Lobby_BGM.mute", core="main", type="Boolean", value=True)

    def refused() -> bool:
        try:
            policy.check_write(write)
        except PolicyViolation:
            return True
        return False

    assert not refused()
    with acting_role("kiosk"):
        assert refused()
        with acting_role("operator"):
            assert not refused()
        assert refused()
        with pytest.raises(ValueError, match="boom"), acting_role("operator"):
            raise ValueError("boom")
        assert refused()  # the inner block left by an exception gave the outer role back
    assert not refused()
