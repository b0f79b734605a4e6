"""Mixer channel strings, as the Core reads them: ``*``, ``1 2 3``, ``1-6 9``, ``* !3-5``."""

from __future__ import annotations

import re

__all__ = ["ChannelStringError", "parse_channels"]

_TOKEN = re.compile(r"^(!?)(\*|\d+(?:-\d+)?)$")


class ChannelStringError(ValueError):
    """A channel string does not parse, or names a channel outside the mixer."""


def parse_channels(spec: str, count: int) -> list[int]:
    """Channels 1..``count`` named by ``spec``, ascending.

    ``*`` is every channel, ``1 2 3`` a list, ``1-6`` a range, ``!3`` or ``!3-5`` removes;
    spaces or commas separate. A string of exclusions only starts from every channel.
    """
    tokens = [t for t in re.split(r"[\s,]+", spec.strip()) if t]
    if not tokens:
        raise ChannelStringError("empty channel string; use e.g. '1', '1-4' or '*'")
    include: set[int] = set()
    exclude: set[int] = set()
    positive = False
    for token in tokens:
        match = _TOKEN.match(token)
        if match is None:
            raise ChannelStringError(f"{token!r} is not a channel, range or '*' (e.g. '1-8 !3')")
        negate, body = match.groups()
        if body == "*":
            channels = set(range(1, count + 1))
        else:
            first, _, last = body.partition("-")
            lo, hi = int(first), int(last or first)
            if lo > hi:
                raise ChannelStringError(f"range {body!r} runs backwards; write {hi}-{lo}")
            if lo < 1 or hi > count:
                bad = lo if lo < 1 else hi
                raise ChannelStringError(f"channel {bad} is out of range 1-{count}")
            channels = set(range(lo, hi + 1))
        if negate:
            exclude |= channels
        else:
            positive = True
            include |= channels
    if not positive:
        include = set(range(1, count + 1))
    return sorted(include - exclude)
