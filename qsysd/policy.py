"""The safety policy applied to every write, whatever the door (MCP, REST, plugins).

Rules, each named in the :class:`~qsysd.errors.PolicyViolation` it raises:

- ``read_only``: the whole daemon is read-only; no write of any kind.
- ``protected``: the control matches a protected glob (``"Fire_*.*"``, ``"main:Amp.mute"``).
- ``direction``: the Core reports the control as Read Only.
- ``type``: the value does not fit the control's type (a word for a gain, 2.5 for an Integer).
- ``range``: the value is outside the control's own range, not a finite number, or a position
  outside 0..1.
- ``bounds``: the value is outside a configured ``[[policy.bounds]]`` for the (numeric)
  control.
- ``max_gain``: a gain above ``max_gain_db``.
- ``max_step``: a gain raised by more than ``max_gain_step_db`` without ``confirm: true``;
  also a gain that qsysd's own writes would raise by more than that within
  ``max_gain_step_window_s`` (so many small steps cannot add up to a big one). Lowering a
  level is not the hazard this guards against, so it never counts.
- ``max_drop``: a gain lowered by more than ``max_gain_drop_db`` (off by default) without
  ``confirm: true``.
- ``role``: the caller's role has a ``[policy.roles.NAME]`` that does not allow this write:
  the control (or snapshot trigger ``Bank.load.N``) matches none of its ``controls``, or the
  role is ``read_only``. The call path says which role is acting (:func:`acting_role`), so
  every write of a call, a plugin tool's through its ``ToolContext`` too, is checked.

Patterns match ``Component.control`` (or the named control's name), case-insensitively (a
pattern that differs from the design only in case still protects); a pattern with a ``:``
matches ``core:Component.control``.

A *gain* is a numeric control whose unit is dB (its Core string, or its range's strings, end
in ``dB``) or a Float whose own name (not its component's) has a word gain, level, volume,
vol, lvl or trim: zone and mixer gains, named controls like ``MainGain``, EQ band gains and
other dB controls alike. For a gain, and for any control with configured bounds, the policy
must know the number a write aims at: a position needs the control's range, a string must be
a plain number with an optional ``dB``; otherwise the write is refused. The policy is pure:
it never talks to a Core.
"""

from __future__ import annotations

import collections
import contextvars
import math
import re
import time
from collections.abc import Callable
from fnmatch import fnmatchcase

import attrs

from qsysd.config import PolicyConfig, RolePolicyConfig
from qsysd.errors import PolicyViolation

__all__ = ["Policy", "ProposedWrite", "acting_role", "parse_number", "parse_strict_number"]

#: The role of the call being served; writes outside a call (a plugin's own service) have none.
_ACTING_ROLE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "qsysd_acting_role", default=None
)


class acting_role:  # lower case: it reads as the function it was, ``with acting_role(r):``
    """Within this block, writes are checked against ``role``'s ``[policy.roles]`` entry.

    A class, not a generator context manager: it is entered on every tool call, and this
    costs a third as much. Blocks nest; leaving one (by an exception too) restores the role
    of the block around it.
    """

    __slots__ = ("_role", "_token")

    def __init__(self, role: str | None) -> None:
        self._role = role

    def __enter__(self) -> None:
        self._token = _ACTING_ROLE.set(self._role)

    def __exit__(self, *exc_info: object) -> None:
        _ACTING_ROLE.reset(self._token)


_GAIN_WORDS = frozenset({"gain", "level", "volume", "vol", "lvl", "trim"})
_NUMERIC_TYPES = ("Float", "Integer")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_STRICT_NUMBER = re.compile(
    r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?:db)?\s*$", re.IGNORECASE
)
_INF = re.compile(r"^\s*-\s*inf", re.IGNORECASE)


def parse_number(text: str) -> float | None:
    """The number at the start of a Core string (``"-12.0dB"`` -> -12.0); None if there is none."""
    if _INF.match(text):
        return float("-inf")
    m = _NUMBER.match(text)
    return float(m.group(1)) if m else None


def parse_strict_number(text: str) -> float | None:
    """A written string that is only a number, with an optional ``dB`` (``"-6 dB"``); else None.

    Stricter than :func:`parse_number` on purpose: a Core may read ``"1_0dB"`` or ``"6dB!"``
    otherwise than qsysd would, so a checked write accepts only what both read the same.
    """
    m = _STRICT_NUMBER.match(text)
    return float(m.group(1)) if m else None


def _words(name: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(name)}


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
    #: The control's own name ("band.1.gain"); None: the part of ``control`` after the last dot.
    name: str | None = None
    #: The Core's string for the top of the range ("20.0dB"), a hint of the unit.
    string_max: str | None = None

    @property
    def control_name(self) -> str:
        return self.name if self.name is not None else self.control.rsplit(".", 1)[-1]

    @property
    def is_gain(self) -> bool:
        """A level in dB: see the module docstring for what counts as a gain."""
        if self.type not in _NUMERIC_TYPES:
            return False
        units = (self.current_string, self.string_max)
        if any((s or "").strip().lower().endswith("db") for s in units):
            return True
        return self.type == "Float" and bool(_words(self.control_name) & _GAIN_WORDS)

    @property
    def requested(self) -> str:
        """What was asked, for messages: ``value -3``, ``position 0.9``, ``string '+6dB'``."""
        if self.position is not None:
            return f"position {self.position:g}"
        if self.string is not None:
            return f"string {self.string!r}"
        return f"value {self.value!r}"

    def target(self) -> float | None:
        """The numeric value this write aims at, when it can be known before the Core answers."""
        if self.value is not None:
            if isinstance(self.value, bool):
                return float(self.value)
            if isinstance(self.value, int | float):
                return float(self.value)
            return parse_strict_number(self.value)
        if self.position is not None:
            if self.value_min is None or self.value_max is None:
                return None
            # A gain's position is linear over its range on real Cores (docs/protocol.md, 4).
            return self.value_min + self.position * (self.value_max - self.value_min)
        if self.string is not None:
            return parse_strict_number(self.string)
        return None

    def current_number(self) -> float | None:
        if isinstance(self.current, bool):
            return float(self.current)
        if isinstance(self.current, int | float):
            return float(self.current)
        if isinstance(self.current, str):
            return parse_number(self.current)
        return None


_MAX_TRACKED = 10_000  # controls with recent gain writes remembered (pruned when exceeded)
_MAX_PER_CONTROL = 64  # recent writes remembered per control


def _key(write: ProposedWrite) -> tuple[str, str]:
    return write.core, write.control.casefold()


class Policy:
    """Checks writes against a :class:`~qsysd.config.PolicyConfig`; raises PolicyViolation."""

    def __init__(
        self, config: PolicyConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or PolicyConfig()
        self._clock = clock
        # (core, control) -> (time, dB change) of recent acknowledged gain writes, oldest first
        self._recent: dict[tuple[str, str], collections.deque[tuple[float, float]]] = {}

    def record_write(self, write: ProposedWrite, target: float | None) -> None:
        """Remember a gain change the Core acknowledged, for the step limit over a window."""
        current = write.current_number()
        window = self.config.max_gain_step_window_s
        if not window or target is None or current is None or not write.is_gain:
            return
        if not (math.isfinite(current) and math.isfinite(target)) or target == current:
            return
        now = self._clock()
        if len(self._recent) > _MAX_TRACKED:
            self._recent = {k: d for k, d in self._recent.items() if d and d[-1][0] > now - window}
        recent = self._recent.setdefault(_key(write), collections.deque(maxlen=_MAX_PER_CONTROL))
        recent.append((now, target - current))

    def _recent_change(self, write: ProposedWrite) -> float:
        """The net dB change qsysd's writes made to this gain within the window."""
        recent = self._recent.get(_key(write))
        if not recent:
            return 0.0
        since = self._clock() - self.config.max_gain_step_window_s
        while recent and recent[0][0] <= since:
            recent.popleft()
        return sum(delta for _, delta in recent)

    @property
    def read_only(self) -> bool:
        return self.config.read_only

    def check_writable(self, what: str) -> None:
        """Raise if the daemon (or the acting role) is read-only; ``what`` names the operation."""
        if self.config.read_only:
            raise PolicyViolation(
                "read_only", f"the daemon is in read-only mode; {what} is not allowed"
            )
        role, scope = self._acting()
        if scope is not None and scope.read_only:
            raise PolicyViolation(
                "role", f"role {role!r} is read-only (policy.roles.{role}); {what} is not allowed"
            )

    def _acting(self) -> tuple[str | None, RolePolicyConfig | None]:
        """The acting role and its ``[policy.roles]`` entry (None: not narrowed)."""
        role = _ACTING_ROLE.get()
        return role, self.config.roles.get(role) if role is not None else None

    def is_protected(self, control: str, core: str = "") -> bool:
        return self._protected_by(control, core) is not None

    def check_not_protected(self, control: str, core: str = "") -> None:
        """Raise if ``control`` (``Component.control``) is protected or out of the role's reach."""
        pattern = self._protected_by(control, core)
        if pattern is not None:
            raise PolicyViolation(
                "protected", f"{control} is protected (pattern {pattern!r}) and never writable"
            )
        role, scope = self._acting()
        if scope is not None and not any(_matches(p, control, core) for p in scope.controls):
            raise PolicyViolation(
                "role",
                f"role {role!r} may write only controls matching "
                f"{', '.join(map(repr, scope.controls))} (policy.roles.{role}); {control} is "
                "not one of them",
            )

    def _protected_by(self, control: str, core: str) -> str | None:
        for pattern in self.config.protected:
            if _matches(pattern, control, core):
                return pattern
        return None

    def bounds_for(self, control: str, core: str = "") -> tuple[float | None, float | None]:
        """The tightest configured (min, max) for a control; None where unbounded."""
        low: float | None = None
        high: float | None = None
        for bound in self.config.bounds:
            if not _matches(bound.pattern, control, core):
                continue
            if bound.min is not None:
                low = bound.min if low is None else max(low, bound.min)
            if bound.max is not None:
                high = bound.max if high is None else min(high, bound.max)
        return low, high

    def check_write(self, write: ProposedWrite, *, confirm: bool = False) -> float | None:
        """Check one write; return its numeric target when known. Raise PolicyViolation.

        When the control is a gain or has configured bounds, the target returned is the
        number every limit was checked against: send it as the ``Value``.
        """
        name = write.control
        self.check_writable(f"writing {name}")
        self.check_not_protected(name, write.core)
        if write.direction == "Read Only":
            raise PolicyViolation(
                "direction",
                f"{name} is a Read Only control (the Core reports its direction as "
                "'Read Only'): it can be read, never written",
            )
        if write.position is not None and not 0.0 <= write.position <= 1.0:
            raise PolicyViolation(
                "range", f"position {write.position} for {name} is outside 0.0..1.0"
            )
        self._check_type(write)
        target = write.target()
        if target is not None and math.isnan(target):
            raise PolicyViolation("range", f"{write.requested} for {name} is not a number")
        low, high = self.bounds_for(name, write.core)
        # Bounds limit numbers: a mute or a text under a broad pattern is not refused by them.
        bounded = write.type in _NUMERIC_TYPES and (low is not None or high is not None)
        if target is None and (bounded or (write.is_gain and self._limits_gains(confirm))):
            raise PolicyViolation(
                "bounds" if bounded else self._gain_rule(),
                f"cannot tell which number {write.requested} sets {name} to"
                + (
                    " (its range is unknown)"
                    if write.position is not None
                    else " (give a plain number, optionally with dB)"
                )
                + ", so its limits cannot be checked; send the value as a number instead",
            )
        if target is not None and write.type in _NUMERIC_TYPES:
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

    def constrains(self, write: ProposedWrite) -> bool:
        """Whether the limits of this write depend on its number (a gain, or bounds)."""
        if write.type not in _NUMERIC_TYPES:
            return False
        low, high = self.bounds_for(write.control, write.core)
        return write.is_gain or low is not None or high is not None

    def _limits_gains(self, confirm: bool) -> bool:
        config = self.config
        stepped = config.max_gain_step_db is not None or config.max_gain_drop_db is not None
        return config.max_gain_db is not None or (stepped and not confirm)

    def _gain_rule(self) -> str:
        if self.config.max_gain_db is not None:
            return "max_gain"
        return "max_step" if self.config.max_gain_step_db is not None else "max_drop"

    def _check_type(self, write: ProposedWrite) -> None:
        value, name = write.value, write.control
        if value is None:
            return
        if write.type in _NUMERIC_TYPES:
            if isinstance(value, str):
                raise PolicyViolation(
                    "type",
                    f"{name} is a {write.type} control and value {value!r} is not a number; "
                    "send a number in value (dB for a gain), or the text in string",
                )
            if isinstance(value, bool) and write.is_gain:
                raise PolicyViolation(
                    "type", f"{name} is a gain in dB; {value!r} is not a level: send a number"
                )
            if (
                write.type == "Integer"
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value != int(value)
            ):
                raise PolicyViolation(
                    "type", f"{name} is an Integer control; {value!r} is not a whole number"
                )
        elif write.type == "Boolean":
            if isinstance(value, str) or (not isinstance(value, bool) and value not in (0, 1)):
                raise PolicyViolation(
                    "type", f"{name} is a Boolean control; send true or false, not {value!r}"
                )
        elif write.type == "Text" and not isinstance(value, str):
            raise PolicyViolation("type", f"{name} is a Text control; send a string, not {value!r}")

    def _check_range(self, write: ProposedWrite, target: float) -> None:
        if not math.isfinite(target):
            raise PolicyViolation(
                "range", f"{write.requested} for {write.control} is not a finite number"
            )
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
        step, drop = self.config.max_gain_step_db, self.config.max_gain_drop_db
        if confirm or (step is None and drop is None):
            return
        current = write.current_number()
        if current is None or math.isnan(current):
            raise PolicyViolation(
                "max_step" if step is not None else "max_drop",
                f"the current value of {write.control} is unknown, so the step to "
                f"{_fmt(target)} dB cannot be checked; pass confirm: true to apply it",
            )
        if current == float("-inf"):
            current = write.value_min if write.value_min is not None else -100.0
        delta = target - current
        change = f"{delta:+.1f} dB ({_fmt(current)} -> {_fmt(target)} dB)"
        if step is not None and delta > step:
            raise PolicyViolation(
                "max_step",
                f"{write.control} would rise by {change}, more than the {_fmt(step)} dB step "
                "limit; pass confirm: true to apply it",
            )
        if drop is not None and -delta > drop:
            raise PolicyViolation(
                "max_drop",
                f"{write.control} would drop by {change}, more than the {_fmt(drop)} dB drop "
                "limit; pass confirm: true to apply it",
            )
        window = self.config.max_gain_step_window_s
        if step is None or not window or delta <= 0:
            return
        rise = self._recent_change(write) + delta
        if rise > step:
            raise PolicyViolation(
                "max_step",
                f"{write.control} would rise by {rise:+.1f} dB within {_fmt(window)} s through "
                f"qsysd ({delta:+.1f} dB now, after earlier raises), more than the "
                f"{_fmt(step)} dB step limit; pass confirm: true to apply it",
            )

    def alias(self, phrase: str) -> str | None:
        """The ``Component.control`` a configured alias names, matched case-insensitively."""
        wanted = " ".join(phrase.lower().split())
        for key, target in self.config.aliases.items():
            if " ".join(key.lower().split()) == wanted:
                return target
        return None


def _matches(pattern: str, control: str, core: str) -> bool:
    """A protected/bounds glob against ``Component.control`` (``core:...`` with a colon)."""
    subject = f"{core}:{control}" if ":" in pattern else control
    # Case-insensitive: a pattern that differs from the design only in case must not
    # silently stop protecting (a false match only refuses a write).
    return fnmatchcase(subject.casefold(), pattern.casefold())


def _fmt(number: float | None) -> str:
    if number is None:
        return "unbounded"
    return f"{number:g}"
