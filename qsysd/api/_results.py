"""The values the facade takes and returns, and how a failed Core call is described."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs

from qsysd.errors import CoreError, QrcError, QsysdError, RequestTimeout
from qsysd.state import ComponentInfo, ControlReading, CoreStatus, Scalar


class WriteFailed(QsysdError):
    """No control of a write was written; ``results`` says why for each one."""

    def __init__(self, results: Sequence[ControlResult]) -> None:
        self.results = tuple(results)
        self.retryable = any(r.retryable for r in self.results)
        lines = "; ".join(f"{r.control}: {r.error}" for r in self.results)
        hint = " The same call may succeed later." if self.retryable else ""
        # After a timeout nobody knows whether the Core applied it: never say "nothing".
        head = (
            "no write was confirmed by the Core"
            if any(r.uncertain for r in self.results)
            else "nothing was written"
        )
        end = "" if lines.endswith((".", "?", "!")) else "."
        super().__init__(f"{head}. {lines}{end}{hint}")


@attrs.frozen
class ReadResult:
    """A control's value as known now; ``error`` set instead when it could not be read."""

    control: str
    core: str
    value: Scalar = None
    string: str | None = None
    position: float | None = None
    age: float | None = None
    stale: bool = False
    source: Literal["cache", "core"] = "cache"
    error: str | None = None


@attrs.frozen
class ControlChange:
    """One requested change: exactly one of value, position or string; ramp in seconds."""

    control: str
    value: Scalar = None
    position: float | None = None
    string: str | None = None
    ramp: float | None = None

    def requested(self) -> str:
        what = (
            f"position {self.position}"
            if self.position is not None
            else f"string {self.string!r}"
            if self.string is not None
            else f"value {self.value!r}"
        )
        return what + (f" ramp {self.ramp}s" if self.ramp else "")


@attrs.frozen
class ControlResult:
    """What happened to one control: the Core's acknowledged state, or why not."""

    control: str
    ok: bool
    before: str | None = None
    value: Scalar = None
    string: str | None = None
    position: float | None = None
    error: str | None = None
    rule: str | None = None
    retryable: bool = False
    #: The Core did not answer in time: the write may or may not have been applied.
    uncertain: bool = False
    #: A ramp was requested: ``value``/``string`` are what the Core reported on acknowledging
    #: it (the ramp's start); the control reaches ``target`` after ``ramp`` seconds.
    ramp: float | None = None
    target: Scalar = None


@attrs.frozen
class SetOutcome:
    core: str
    dry_run: bool
    results: tuple[ControlResult, ...]

    @property
    def all_failed(self) -> bool:
        return bool(self.results) and not any(r.ok for r in self.results)


@attrs.frozen
class SnapshotOutcome:
    core: str
    bank: str
    number: int
    operation: Literal["load", "save"]
    ramp: float
    dry_run: bool
    message: str


@attrs.frozen
class MixerOutcome:
    core: str
    mixer: str
    methods: tuple[str, ...]
    dry_run: bool
    results: tuple[ControlResult, ...]


@attrs.frozen
class ComponentPage:
    core: str
    total: int
    offset: int
    components: tuple[ComponentInfo, ...]
    control_counts: tuple[int, ...]

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.components)
        return end if end < self.total else None


@attrs.frozen
class Match:
    control: str
    core: str
    component: str | None
    name: str
    type: str
    component_type: str | None
    score: float
    string: str | None
    why: str


@attrs.frozen
class ZoneSummary:
    core: str
    name: str
    type: str
    gain: str | None
    gain_db: float | None
    muted: bool | None
    stale: bool


@attrs.frozen
class Summary:
    cores: tuple[CoreStatus, ...]
    zones: tuple[ZoneSummary, ...]
    zones_total: int
    components: int
    controls: int


def describe_error(exc: BaseException, *, core: str = "") -> str:
    """A message for a failed Core call that says what happened and whether to retry."""
    where = f'Core "{core}"' if core else "the Core"
    if isinstance(exc, RequestTimeout):
        return (
            f"{where} did not answer in time ({exc}); the write may or may not have been "
            "applied: read the control before retrying"
        )
    if isinstance(exc, QrcError):
        return f"{where} refused the request: {exc}; do not retry unchanged"
    if isinstance(exc, CoreError):
        hint = "retry later" if exc.retryable else "do not retry unchanged"
        text = str(exc) or type(exc).__name__
        if core and core not in text:
            text = f"{where}: {text}"
        return f"{text}; {hint}"
    if isinstance(exc, QsysdError):
        return str(exc)
    return f"unexpected {type(exc).__name__} talking to {where}: {exc}"


def string_of(reading: ControlReading | None) -> str | None:
    """The Core's string for a reading's value, if it has one."""
    if reading is None or reading.value is None:
        return None
    return reading.value.string
