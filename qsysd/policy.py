"""The safety policy applied to every write, whatever the door (MCP, REST, plugins).

Rules, each named in the :class:`~qsysd.errors.PolicyViolation` it raises:

- ``read_only``: the whole daemon is read-only; no write of any kind.
- ``protected``: the control matches a protected glob (``"Fire_*.*"``, ``"main:Amp.mute"``).
- ``direction``: the Core reports the control as Read Only.
- ``range``: the value is outside the control's own range, or a position outside 0..1.
- ``bounds``: the value is outside a configured ``[[policy.bounds]]`` for the control.
- ``max_gain``: a gain above ``max_gain_db``.
- ``max_step``: a gain change larger than ``max_gain_step_db`` without ``confirm: true``.

Patterns match ``Component.control`` (or the named control's name); a pattern with a ``:``
matches ``core:Component.control``. The policy is pure: it never talks to a Core.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

import attrs

from qsysd.config import PolicyConfig
from qsysd.errors import PolicyViolation

__all__ = ["Policy", "ProposedWrite", "parse_number"]

_GAIN_WORDS = ("gain", "level", "volume", "vol")
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_INF = re.compile(r"^\s*-\s*inf", re.IGNORECASE)


def parse_number(text: str) -> float | None:
    """The number at the start of a Core string (``"-12.0dB"`` -> -12.0); None if there is none."""
    if _INF.match(text):
        return float("-inf")
    m = _NUMBER.match(text)
    return float(m.group(1)) if m else None


@attrs.frozen
class ProposedWrite:
    """One control write as the policy sees it: the control, what it holds, what is asked."""

    control: str  # "Lobby_BGM.gain", or a named control "MainGain"
    core: str = ""
    type: str = "Float"
    direction: str = "Read/Write"
    value_min: float | None = None
    value_max: float | None = None
    current: float | int | bool | str | None = None
    current_string: str | None = None
    value: float | int | bool | str | None = None
    position: float | None = None
    string: str | None = None

    @property
    def is_gain(self) -> bool:
        """A gain in dB: a Float named like a gain/level, or whose Core string is in dB."""
        if self.type != "Float":
            return False
        last = self.control.rsplit(".", 1)[-1].lower()
        if any(word in last for word in _GAIN_WORDS) or "gain" in self.control.lower():
            return True
        return (self.current_string or "").strip().lower().endswith("db")

    def target(self) -> float | None:
        """The numeric value this write aims at, when it can be known before the Core answers."""
        if self.value is not None:
            if isinstance(self.value, bool):
                return float(self.value)
            if isinstance(self.value, int | float):
                return float(self.value)
            return parse_number(self.value)
        if self.position is not None:
            if self.value_min is None or self.value_max is None:
                return None
            # A gain's position is linear over its range on real Cores (see qrc-protocol.md).
            return self.value_min + self.position * (self.value_max - self.value_min)
        if self.string is not None:
            return parse_number(self.string)
        return None

    def current_number(self) -> float | None:
        if isinstance(self.current, bool):
            return float(self.current)
        if isinstance(self.current, int | float):
            return float(self.current)
        if isinstance(self.current, str):
            return parse_number(self.current)
        return None


class Policy:
    """Checks writes against a :class:`~qsysd.config.PolicyConfig`; raises PolicyViolation."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()

    @property
    def read_only(self) -> bool:
        return self.config.read_only

    def check_writable(self, what: str) -> None:
        """Raise if the daemon is read-only; ``what`` says which operation was refused."""
        if self.config.read_only:
            raise PolicyViolation(
                "read_only", f"the daemon is in read-only mode; {what} is not allowed"
            )

    def is_protected(self, control: str, core: str = "") -> bool:
        return self._protected_by(control, core) is not None

    def _protected_by(self, control: str, core: str) -> str | None:
        for pattern in self.config.protected:
            subject = f"{core}:{control}" if ":" in pattern else control
            if fnmatchcase(subject, pattern):
                return pattern
        return None

    def bounds_for(self, control: str, core: str = "") -> tuple[float | None, float | None]:
        """The tightest configured (min, max) for a control; None where unbounded."""
        low: float | None = None
        high: float | None = None
        for bound in self.config.bounds:
            subject = f"{core}:{control}" if ":" in bound.pattern else control
            if not fnmatchcase(subject, bound.pattern):
                continue
            if bound.min is not None:
                low = bound.min if low is None else max(low, bound.min)
            if bound.max is not None:
                high = bound.max if high is None else min(high, bound.max)
        return low, high

    def check_write(self, write: ProposedWrite, *, confirm: bool = False) -> float | None:
        """Check one write; return its numeric target when known. Raise PolicyViolation."""
        name = write.control
        self.check_writable(f"writing {name}")
        pattern = self._protected_by(name, write.core)
        if pattern is not None:
            raise PolicyViolation(
                "protected", f"{name} is protected (pattern {pattern!r}) and never writable"
            )
        if write.direction == "Read Only":
            raise PolicyViolation("direction", f"{name} is a Read Only control")
        if write.position is not None and not 0.0 <= write.position <= 1.0:
            raise PolicyViolation(
                "range", f"position {write.position} for {name} is outside 0.0..1.0"
            )
        target = write.target()
        low, high = self.bounds_for(name, write.core)
        numeric_request = write.value is None or not isinstance(write.value, str)
        if target is None and (low is not None or high is not None) and not numeric_request:
            raise PolicyViolation(
                "bounds",
                f"{name} has configured bounds and {write.value!r} is not a number; "
                "send a numeric value",
            )
        if target is None and write.string is not None and (low is not None or high is not None):
            raise PolicyViolation(
                "bounds",
                f"{name} has configured bounds and the string {write.string!r} has no number; "
                "send a numeric value",
            )
        if target is not None and write.type in ("Float", "Integer"):
            self._check_range(write, target)
            if (low is not None and target < low) or (high is not None and target > high):
                raise PolicyViolation(
                    "bounds",
                    f"{_fmt(target)} for {name} is outside the configured bounds "
                    f"{_fmt(low)}..{_fmt(high)}",
                )
        if write.is_gain and target is not None:
            self._check_gain(write, target, confirm=confirm)
        return target

    def _check_range(self, write: ProposedWrite, target: float) -> None:
        if write.position is not None:
            return  # checked as a position already
        low, high = write.value_min, write.value_max
        if (low is not None and target < low) or (high is not None and target > high):
            raise PolicyViolation(
                "range",
                f"{_fmt(target)} for {write.control} is outside the control's range "
                f"{_fmt(low)}..{_fmt(high)}",
            )

    def _check_gain(self, write: ProposedWrite, target: float, *, confirm: bool) -> None:
        limit = self.config.max_gain_db
        if limit is not None and target > limit:
            raise PolicyViolation(
                "max_gain",
                f"{_fmt(target)} dB for {write.control} is above the maximum gain of "
                f"{_fmt(limit)} dB",
            )
        step = self.config.max_gain_step_db
        if step is None or confirm:
            return
        current = write.current_number()
        if current is None:
            raise PolicyViolation(
                "max_step",
                f"the current value of {write.control} is unknown, so the step to "
                f"{_fmt(target)} dB cannot be checked; pass confirm: true to apply it",
            )
        if current == float("-inf"):
            current = write.value_min if write.value_min is not None else -100.0
        delta = target - current
        if abs(delta) > step:
            raise PolicyViolation(
                "max_step",
                f"{write.control} would change by {delta:+.1f} dB ({_fmt(current)} -> "
                f"{_fmt(target)} dB), more than the {_fmt(step)} dB step limit; pass "
                "confirm: true to apply it, or change it in smaller steps",
            )

    def alias(self, phrase: str) -> str | None:
        """The ``Component.control`` a configured alias names, matched case-insensitively."""
        wanted = " ".join(phrase.lower().split())
        for key, target in self.config.aliases.items():
            if " ".join(key.lower().split()) == wanted:
                return target
        return None


def _fmt(number: float | None) -> str:
    if number is None:
        return "unbounded"
    return f"{number:g}"
