"""The facade's mixer preflight: channel strings, touched controls and Mixer.Set* calls."""

from __future__ import annotations

import pytest

from qsysd.api import parse_channels
from qsysd.api._mixer import channel_count, mixer_controls
from qsysd.errors import ToolInputError


@pytest.mark.parametrize(
    ("spec", "channels"),
    [
        ("*", [1, 2, 3, 4]),
        ("1 3", [1, 3]),
        ("1,2", [1, 2]),
        ("2-4", [2, 3, 4]),
        ("* !2-3", [1, 4]),
        ("!2", [1, 3, 4]),  # exclusions alone start from every channel, as on the Core
    ],
)
def test_parse_channels_expands_lists_ranges_and_exclusions(spec: str, channels: list[int]) -> None:
    assert parse_channels(spec, 4, "inputs") == channels


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (None, "give a channel string"),
        ("  ", "give a channel string"),
        ("5", "inputs '5': channel 5 is out of range 1-4"),
        ("0-2", "channel 0 is out of range"),
        ("4-2", "range '4-2' runs backwards; write 2-4"),
        ("a", "'a' is not a channel"),
        ("* !1-4", "selects no channel"),
    ],
)
def test_parse_channels_says_what_is_wrong(spec: str | None, message: str) -> None:
    with pytest.raises(ToolInputError, match=message):
        parse_channels(spec, 4, "inputs")


def test_channel_count_is_the_highest_numbered_channel() -> None:
    names = ["input.1.gain", "input.12.gain", "input.3.mute", "output.2.gain"]
    assert channel_count(names, r"input\.(\d+)\.gain") == 12
    assert channel_count([], r"input\.(\d+)\.gain") == 0


def test_mixer_controls_of_crosspoints_are_every_input_output_pair() -> None:
    controls = mixer_controls("crosspoint", [1, 2], [3])
    assert controls == {
        "gain": ["input.1.output.3.gain", "input.2.output.3.gain"],
        "mute": ["input.1.output.3.mute", "input.2.output.3.mute"],
    }
    assert mixer_controls("output", [], [2])["gain"] == ["output.2.gain"]
