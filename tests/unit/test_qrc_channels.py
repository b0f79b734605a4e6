"""Mixer channel strings: the one parser the client and the emulator share."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from qsysd.qrc import ChannelStringError, parse_channels


@pytest.mark.parametrize(
    ("spec", "channels"),
    [
        ("*", [1, 2, 3, 4, 5, 6, 7, 8]),
        ("1 2 3", [1, 2, 3]),
        ("1-6 9", None),
        ("1-6 8", [1, 2, 3, 4, 5, 6, 8]),
        ("1-8 !3", [1, 2, 4, 5, 6, 7, 8]),
        ("* !3-5", [1, 2, 6, 7, 8]),
        ("1,2, 3", [1, 2, 3]),
        ("!1", [2, 3, 4, 5, 6, 7, 8]),
    ],
)
def test_channel_strings_from_the_reference(spec: str, channels: list[int] | None) -> None:
    if channels is None:
        with pytest.raises(ChannelStringError, match="channel 9 is out of range 1-8"):
            parse_channels(spec, 8)
    else:
        assert parse_channels(spec, 8) == channels


@pytest.mark.parametrize("spec", ["", "  ", "x", "1--2", "3-1", "0", "1-"])
def test_bad_channel_strings_say_what_is_wrong(spec: str) -> None:
    with pytest.raises(ChannelStringError) as info:
        parse_channels(spec, 8)
    assert str(info.value)


@given(st.sets(st.integers(1, 16), min_size=1))
def test_a_list_of_channels_names_exactly_them(chosen: set[int]) -> None:
    spec = " ".join(str(c) for c in sorted(chosen, reverse=True))
    assert parse_channels(spec, 16) == sorted(chosen)
