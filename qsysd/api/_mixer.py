"""Mixer channel strings: what a Mixer.Set* call touches, and the calls themselves."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from qsysd.core import ChannelStringError, MixerTarget, parse_channels as parse_channel_string
from qsysd.errors import ToolInputError


def parse_channels(spec: str | None, count: int, what: str) -> list[int]:
    """Expand a Core channel string (``*``, ``1 2 3``, ``1-6 9``, ``* !3-5``) to channels."""
    if spec is None or not spec.strip():
        raise ToolInputError(f"{what}: give a channel string such as '1', '1-4' or '*'")
    try:
        chosen = parse_channel_string(spec, count)
    except ChannelStringError as exc:
        raise ToolInputError(f"{what} {spec!r}: {exc}") from None
    if not chosen:
        raise ToolInputError(f"{what}: {spec!r} selects no channel")
    return chosen


def channel_count(names: Iterable[str], pattern: str) -> int:
    """The highest channel number among control names matching ``pattern`` (one group)."""
    found = [int(m.group(1)) for n in names if (m := re.fullmatch(pattern, n))]
    return max(found, default=0)


def mixer_controls(
    target: MixerTarget, ins: Sequence[int], outs: Sequence[int]
) -> dict[str, list[str]]:
    """The gain and mute control names of the chosen crosspoints, inputs or outputs."""
    if target == "crosspoint":
        bases = [f"input.{i}.output.{o}" for i in ins for o in outs]
    elif target == "input":
        bases = [f"input.{i}" for i in ins]
    else:
        bases = [f"output.{o}" for o in outs]
    return {"gain": [f"{b}.gain" for b in bases], "mute": [f"{b}.mute" for b in bases]}
