"""The mixer channel-string syntax: ``*``, lists, ranges, exclusions."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from qsysd.emulator import parse_channels
from qsysd.errors import IllegalMixerChannel


@pytest.mark.parametrize(
    ("spec", "channels"),
    [
        ("*", [1, 2, 3, 4, 5, 6, 7, 8]),
        ("1 2 3", [1, 2, 3]),
        ("1,2,3", [1, 2, 3]),
        ("1, 2 ,3", [1, 2, 3]),
        ("1-6 9", [1, 2, 3, 4, 5, 6]),
        ("1-8 !3", [1, 2, 4, 5, 6, 7, 8]),
        ("* !3-5", [1, 2, 6, 7, 8]),
        ("!2", [1, 3, 4, 5, 6, 7, 8]),
        ("3 3 1", [1, 3]),
        ("5", [5]),
        (5, [5]),
    ],
)
def test_channel_strings_name_the_right_channels(spec: object, channels: list[int]) -> None:
    count = 9 if spec == "1-6 9" else 8
    expected = [*channels, 9] if spec == "1-6 9" else channels
    assert parse_channels(spec, count) == expected


@pytest.mark.parametrize(
    "spec", ["0", "9", "1-9", "!9", "5-3", "a", "1..3", "", "  ", "1-", None, 1.5]
)
def test_out_of_range_or_malformed_channels_are_error_9(spec: object) -> None:
    with pytest.raises(IllegalMixerChannel) as info:
        parse_channels(spec, 8)
    assert info.value.qrc_code == 9
    assert info.value.qrc_message == "Illegal mixer channel index"


@given(st.sets(st.integers(1, 16), min_size=1), st.sets(st.integers(1, 16)))
def test_list_minus_exclusions_is_the_set_difference(include: set[int], exclude: set[int]) -> None:
    spec = " ".join(str(n) for n in sorted(include)) + "".join(f",!{n}" for n in exclude)
    assert parse_channels(spec, 16) == sorted(include - exclude)
