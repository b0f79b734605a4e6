"""The values the facade takes and returns, and how a failed Core call is described."""

from __future__ import annotations

from typing import Literal

import attrs

from qsysd.errors import WriteFailed as WriteFailed, describe
from qsysd.state import ComponentInfo, ControlReading, CoreStatus, Scalar


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
    source: Literal["cache", "core", "none"] = "cache"
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


def describe_error(exc: BaseException, *, core: str = "", writing: bool = False) -> str:
    """The per-control message for a failed Core call (see :func:`qsysd.errors.describe`)."""
    return describe(exc, core=core or None, writing=writing).detail


def string_of(reading: ControlReading | None) -> str | None:
    """The Core's string for a reading's value, if it has one."""
    if reading is None or reading.value is None:
        return None
    return reading.value.string
