"""The one state store: every Core's components, controls and values, with their freshness."""

from __future__ import annotations

import difflib
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar, overload

import attrs
import msgspec
import structlog

from qsysd.errors import LookupFailed
from qsysd.state._model import (
    EMPTY_METADATA,
    ComponentInfo,
    ControlInfo,
    ControlReading,
    ControlRef,
    ControlValue,
    CoreStatus,
    Scalar,
)
from qsysd.state._snapshot import CoreSnapshot, SavedControl, Snapshot
from qsysd.state._watch import Watcher

__all__ = ["ChangeListener", "StateStatistics", "StateStore"]

#: Called synchronously for every change: (new value, previous value or None, UNIX time).
ChangeListener = Callable[[ControlValue, ControlValue | None, float], None]

#: The type and direction given to a control the Core reported but never described.
UNKNOWN = "Unknown"


@attrs.frozen
class StateStatistics:
    """Counts for the metrics layer."""

    cores: int
    stale_cores: int
    components: int
    controls: int
    changes_applied: int
    unknown_added: int
    unknown_ignored: int
    watchers: int
    version: int


#: One control of a listing: (info, value, string, position, age, stale); see control_rows.
ControlRow = tuple[ControlInfo, Scalar, str | None, float | None, float, bool]


_NEVER = float("-inf")  # below every confirmation time


class _Entry(msgspec.Struct, gc=False, eq=False):
    """One control's description and mutable state, kept flat to stay small (see bench/).

    A struct the garbage collector does not track: nothing it holds can lead back to it (its
    metadata is decoded JSON). A large design's 40,000 entries would otherwise be walked by
    every full collection for the daemon's lifetime, and creating them starts several.
    """

    info: ControlInfo
    changed_at: float
    confirmed_at: float
    # string None means "no value yet" (value None is a real value of some controls)
    value: Scalar = None
    string: str | None = None
    position: float | None = None
    metadata: Mapping[str, Any] = EMPTY_METADATA
    version: int = 0

    def control_value(self) -> ControlValue | None:
        if self.string is None:
            return None
        return ControlValue(self.info.ref, self.value, self.string, self.position, self.metadata)

    def same_value(self, v: ControlValue) -> bool:
        old = self.value
        new = v.value
        return (
            self.string == v.string
            and old == new
            and type(old) is type(new)  # True == 1, but a Boolean is not an Integer
            and self.position == v.position
        )

    def store(self, v: ControlValue, metadata: Mapping[str, Any]) -> None:
        self.value = v.value
        self.string = v.string
        self.position = v.position
        self.metadata = metadata


@attrs.define(eq=False)
class _Core:
    name: str
    design_code: str | None = None
    status: CoreStatus | None = None
    stale: bool = True
    confirmed_at: float = 0.0
    unknown_added: int = 0
    components: dict[str, ComponentInfo] = attrs.Factory(dict)
    # component name (None: named controls) -> control name -> entry, in the Core's order
    controls: dict[str | None, dict[str, _Entry]] = attrs.Factory(dict)


class _SharedMetadata:
    """One read-only copy of each distinct metadata mapping (most controls share theirs).

    A newer Core sends the same display metadata (Color, Legend, Disabled, ...) with every
    control at rest: 40,000 controls would otherwise hold 40,000 equal dicts. Mappings whose
    values cannot be hashed, and any once ``limit`` copies are kept, are stored as they come.
    """

    __slots__ = ("_copies", "_last", "_limit")

    def __init__(self, limit: int = 4096) -> None:
        self._copies: dict[tuple[tuple[str, Any], ...], Mapping[str, Any]] = {}
        self._limit = limit
        self._last: tuple[Mapping[str, Any], Mapping[str, Any]] = (EMPTY_METADATA, EMPTY_METADATA)

    def __call__(self, metadata: Mapping[str, Any]) -> Mapping[str, Any]:
        if not metadata:
            return EMPTY_METADATA
        if metadata is self._last[0] and type(metadata) is MappingProxyType:
            return self._last[1]  # the same read-only mapping again (a poll shares its copies)
        shared = self._share(metadata)
        self._last = (metadata, shared)
        return shared

    def _share(self, metadata: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            key = tuple(metadata.items())  # scalars only, the usual case: no Python loop
            shared = self._copies.get(key)
        except TypeError:  # a list (Choices): keyed as a tuple
            try:
                key = tuple(
                    (k, tuple(v) if isinstance(v, list) else v) for k, v in metadata.items()
                )
                shared = self._copies.get(key)
            except TypeError:  # a value that cannot be hashed (a dict, a nested list)
                return metadata
        if shared is None:
            if len(self._copies) >= self._limit:
                return metadata
            shared = self._copies[key] = (
                metadata
                if isinstance(metadata, MappingProxyType)
                else MappingProxyType(dict(metadata))
            )
        return shared


_T = TypeVar("_T")


class _Kinds(Mapping[ControlRef, str]):
    """A live, read-only view: control -> its type, for one Core (no copy per control)."""

    __slots__ = ("_state",)

    def __init__(self, state: _Core) -> None:
        self._state = state

    def __getitem__(self, ref: ControlRef) -> str:
        kind = self.get(ref)
        if kind is None:
            raise KeyError(ref)
        return kind

    @overload
    def get(self, ref: ControlRef) -> str | None: ...
    @overload
    def get(self, ref: ControlRef, default: str | _T) -> str | _T: ...
    def get(self, ref: ControlRef, default: object = None) -> object:
        # Mapping.get would go through __getitem__ and a KeyError: once per polled value
        by_name = self._state.controls.get(ref.component)
        entry = None if by_name is None or ref.core != self._state.name else by_name.get(ref.name)
        return default if entry is None else entry.info.type

    def __iter__(self) -> Iterator[ControlRef]:
        for entries in self._state.controls.values():
            for entry in entries.values():
                yield entry.info.ref

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._state.controls.values())


def _suggest(name: str, candidates: Iterable[str]) -> list[str]:
    """Up to three known names close to ``name``, ignoring case (agents get case wrong)."""
    folded: dict[str, str] = {}
    for candidate in candidates:
        folded.setdefault(candidate.casefold(), candidate)
    matches = difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=0.6)
    return [folded[m] for m in matches]


log = structlog.get_logger(__name__)

#: Controls a Core may add by reporting values for names discovery never saw (bounds memory
#: against a Core, or a peer posing as one, that pushes endless new names).
MAX_UNKNOWN_PER_CORE = 10_000


class StateStore:
    """Components, controls and values of every Core, with versions, freshness and watchers.

    One instance per daemon, shared by all Cores. Nothing here waits: every method is plain
    ``def`` and must be called from the trio thread. ``clock`` gives wall-clock UNIX time.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.time, max_unknown: int = MAX_UNKNOWN_PER_CORE
    ) -> None:
        self._clock = clock
        self._max_unknown = max_unknown
        self._cores: dict[str, _Core] = {}
        self._version = 0
        self._changes_applied = 0
        self._unknown_added = 0
        self._unknown_ignored = 0
        self._watch_all: list[Watcher] = []
        self._watch_by_ref: dict[ControlRef, list[Watcher]] = {}
        self._watcher_count = 0
        self._listeners: list[ChangeListener] = []
        self._shared = _SharedMetadata()

    # -- cores ---------------------------------------------------------------------------

    def _core(self, core: str) -> _Core:
        state = self._cores.get(core)
        if state is None:
            state = self._cores[core] = _Core(core)
        return state

    def _known_core(self, core: str) -> _Core:
        state = self._cores.get(core)
        if state is None:
            raise LookupFailed(
                f'no Core named "{core}"',
                _suggest(core, self._cores),
                hint="qsys_status lists them.",
            )
        return state

    def cores(self) -> list[str]:
        """The names of every Core the store has heard of."""
        return list(self._cores)

    def set_core_status(self, core: str, status: CoreStatus) -> None:
        self._core(core).status = status

    def core_status(self, core: str) -> CoreStatus | None:
        state = self._cores.get(core)
        return None if state is None else state.status

    def design_code(self, core: str) -> str | None:
        state = self._cores.get(core)
        return None if state is None else state.design_code

    def mark_stale(self, core: str) -> None:
        """The Core is away: its values may be out of date until it confirms them."""
        state = self._core(core)
        if not state.stale:
            state.stale = True
            self._version += 1

    def mark_live(self, core: str) -> None:
        """The Core confirmed its values (connected and subscribed)."""
        state = self._core(core)
        state.confirmed_at = self._clock()
        if state.stale:
            state.stale = False
            self._version += 1

    def confirm(self, core: str) -> None:
        """The Core just confirmed every value it reports on (e.g. an AutoPoll answered).

        A change group only reports changes, so silence from a live Core means "unchanged":
        this resets the age of every value of ``core`` without touching each one.
        """
        state = self._cores.get(core)
        if state is not None and not state.stale:
            state.confirmed_at = self._clock()

    def is_stale(self, core: str) -> bool:
        """True if the Core is away, unknown, or its values are restored and not confirmed."""
        state = self._cores.get(core)
        return True if state is None else state.stale

    @property
    def version(self) -> int:
        """Counts every change to the store (values, designs, staleness)."""
        return self._version

    # -- design --------------------------------------------------------------------------

    def replace_design(
        self,
        core: str,
        design_code: str | None,
        components: Sequence[ComponentInfo],
        controls: Sequence[ControlInfo],
        values: Sequence[ControlValue],
    ) -> None:
        """Install what discovery found, dropping what the Core no longer has; marks it live.

        Controls that survive keep their version and time of last change unless their value
        differs. ``values`` for controls not in ``controls`` are ignored (and counted).
        """
        now = self._clock()
        state = self._core(core)
        old = state.controls
        new: dict[str | None, dict[str, _Entry]] = {}
        for info in controls:
            ref = info.ref
            if ref.core != core:
                raise ValueError(f"control {ref} belongs to Core {ref.core!r}, not {core!r}")
            previous = old.get(ref.component, {}).get(ref.name)
            entry = _Entry(info, now, now)
            if previous is not None:
                entry.value = previous.value
                entry.string = previous.string
                entry.position = previous.position
                entry.metadata = previous.metadata
                entry.changed_at = previous.changed_at
                entry.confirmed_at = previous.confirmed_at
                entry.version = previous.version
            new.setdefault(ref.component, {})[ref.name] = entry
        for component in components:
            if component.core != core:
                raise ValueError(
                    f"component {component.name} belongs to Core {component.core!r}, not {core!r}"
                )
        state.components = {c.name: c for c in components}
        state.unknown_added = 0
        state.controls = new
        state.design_code = design_code
        state.stale = False
        state.confirmed_at = now
        self._version += 1
        self._apply(state, values, now, add_unknown=False)

    # -- values --------------------------------------------------------------------------

    def apply(self, values: Iterable[ControlValue]) -> int:
        """Store values the Core reported; return how many really changed.

        A value for an unknown control of a known component (or an unknown named control of a
        known Core) adds that control with type and direction "Unknown"; any other unknown value
        is ignored and counted in :meth:`statistics`.
        """
        now = self._clock()
        changed = 0
        cores = self._cores
        batch: list[ControlValue] = []
        last_core: _Core | None = None
        for v in values:
            if last_core is None or last_core.name != v.ref.core:
                if last_core is not None:
                    changed += self._apply(last_core, batch, now, add_unknown=True)
                    batch = []
                last_core = cores.get(v.ref.core)
                if last_core is None:
                    self._unknown_ignored += 1
                    continue
            batch.append(v)
        if last_core is not None and batch:
            changed += self._apply(last_core, batch, now, add_unknown=True)
        return changed

    def _apply(
        self, state: _Core, values: Iterable[ControlValue], now: float, *, add_unknown: bool
    ) -> int:
        changed = 0
        controls = state.controls
        notify = bool(self._watch_all or self._watch_by_ref or self._listeners)
        for v in values:
            ref = v.ref
            by_name = controls.get(ref.component)
            entry = None if by_name is None else by_name.get(ref.name)
            if entry is None:
                if (
                    not add_unknown
                    or (ref.component is not None and ref.component not in state.components)
                    or state.unknown_added >= self._max_unknown
                ):
                    self._unknown_ignored += 1
                    continue
                entry = _Entry(ControlInfo(ref, UNKNOWN, UNKNOWN), now, now)
                controls.setdefault(ref.component, {})[ref.name] = entry
                self._unknown_added += 1
                state.unknown_added += 1
                if state.unknown_added == self._max_unknown:
                    log.warning(
                        "state.unknown_controls_capped", core=state.name, limit=self._max_unknown
                    )
            entry.confirmed_at = now
            if entry.string is not None and entry.same_value(v):
                if entry.metadata is v.metadata or entry.metadata == v.metadata:
                    continue
                if entry.metadata is EMPTY_METADATA:
                    # First metadata of a known value: GetControls carries none, a newer
                    # Core's first poll all of it. Not a change (nor 40,000 journal rows).
                    entry.metadata = self._shared(v.metadata)
                    continue
            before = entry.control_value() if self._listeners else None
            entry.store(v, self._shared(v.metadata))
            entry.changed_at = now
            entry.version += 1
            changed += 1
            if notify:
                self._notify(v, before, now)
        if changed:
            self._changes_applied += changed
            self._version += changed
        return changed

    def _notify(self, value: ControlValue, before: ControlValue | None, now: float) -> None:
        for watcher in self._watch_all:
            watcher.offer(value)
        if self._watch_by_ref:
            for watcher in self._watch_by_ref.get(value.ref, ()):
                watcher.offer(value)
        for listener in self._listeners:
            listener(value, before, now)

    # -- reads ---------------------------------------------------------------------------

    def components(self, core: str) -> list[ComponentInfo]:
        return list(self._known_core(core).components.values())

    def has_component(self, core: str, name: str) -> bool:
        """True if ``core`` (a known Core) has a component called ``name``."""
        return name in self._known_core(core).components

    def component(self, core: str, name: str) -> ComponentInfo:
        """One component; raise :class:`LookupFailed` with the closest names if unknown."""
        state = self._known_core(core)
        info = state.components.get(name)
        if info is None:
            raise LookupFailed(
                f'no component "{name}" on Core "{core}"', _suggest(name, state.components)
            )
        return info

    def controls(self, core: str, component: str | None) -> list[ControlReading]:
        """Every control of a component (None: the named controls), in the Core's order."""
        state = self._known_core(core)
        if component is not None and component not in state.components:
            self.component(core, component)  # raises with suggestions
        now = self._clock()
        entries = state.controls.get(component, {})
        return [self._reading(state, e, now) for e in entries.values()]

    def control_rows(self, core: str, component: str | None) -> list[ControlRow]:
        """:meth:`controls` as flat rows ``(info, value, string, position, age, stale)``.

        For listings: the fields straight from the entries, no reading or value object built
        per control. ``string`` None means no value yet (value and position are None then).
        """
        state = self._known_core(core)
        if component is not None and component not in state.components:
            self.component(core, component)  # raises with suggestions
        now = self._clock()
        stale = state.stale
        floor = _NEVER if stale else state.confirmed_at  # as _reading: the Core's confirmation
        return [
            (
                e.info,
                e.value,
                e.string,
                e.position,
                max(0.0, now - (floor if floor > e.confirmed_at else e.confirmed_at)),
                stale,
            )
            for e in state.controls.get(component, {}).values()
        ]

    def control_infos(self, core: str) -> dict[str | None, list[ControlInfo]]:
        """Every control's description, by component (None: named controls), in order.

        For the subscription plan: no values, no readings, nothing built per control.
        """
        state = self._known_core(core)
        return {
            comp: [e.info for e in entries.values()] for comp, entries in state.controls.items()
        }

    def kinds(self, core: str) -> Mapping[ControlRef, str]:
        """A live view of each control's type on ``core`` (to type the values it pushes)."""
        return _Kinds(self._core(core))

    def read(self, ref: ControlRef) -> ControlReading:
        """One control; raise :class:`LookupFailed` with the closest names if unknown."""
        state = self._known_core(ref.core)
        by_name = state.controls.get(ref.component)
        entry = None if by_name is None else by_name.get(ref.name)
        if entry is None:
            if ref.component is not None and ref.component not in state.components:
                self.component(ref.core, ref.component)  # raises with suggestions
            where = (
                f'named control "{ref.name}"'
                if ref.component is None
                else f'control "{ref.name}" in component "{ref.component}"'
            )
            raise LookupFailed(
                f'no {where} on Core "{ref.core}"', _suggest(ref.name, by_name or ())
            )
        return self._reading(state, entry, self._clock())

    def _reading(self, state: _Core, entry: _Entry, now: float) -> ControlReading:
        confirmed = entry.confirmed_at
        if not state.stale and state.confirmed_at > confirmed:
            confirmed = state.confirmed_at
        return ControlReading(
            info=entry.info,
            value=entry.control_value(),
            changed_at=entry.changed_at,
            age=max(0.0, now - confirmed),
            version=entry.version,
            stale=state.stale,
        )

    # -- watchers and listeners ----------------------------------------------------------

    def watch(self, refs: Iterable[ControlRef] | None = None) -> Watcher:
        """A watcher of changes to ``refs`` (None: everything); close it when done."""
        watcher = Watcher(refs, self._unwatch)
        if watcher.refs is None:
            self._watch_all.append(watcher)
        else:
            for ref in watcher.refs:
                self._watch_by_ref.setdefault(ref, []).append(watcher)
        self._watcher_count += 1
        return watcher

    def _unwatch(self, watcher: Watcher) -> None:
        if watcher.refs is None:
            self._watch_all.remove(watcher)
        else:
            for ref in watcher.refs:
                watchers = self._watch_by_ref[ref]
                watchers.remove(watcher)
                if not watchers:
                    del self._watch_by_ref[ref]
        self._watcher_count -= 1

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener`` synchronously on every change; returns a function that removes it.

        For in-process consumers that need every change with its previous value (the journal);
        a listener must be quick and must not raise.
        """
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    # -- snapshots -----------------------------------------------------------------------

    def picture(self) -> Snapshot:
        """The whole store as a :class:`Snapshot` (cheap: values are immutable)."""
        cores = []
        for state in self._cores.values():
            saved = []
            for entries in state.controls.values():
                for e in entries.values():
                    i = e.info
                    has_value = e.string is not None
                    # positional: this runs on the trio thread for every control
                    saved.append(
                        SavedControl(
                            i.ref.component,
                            i.ref.name,
                            i.type,
                            i.direction,
                            i.value_min,
                            i.value_max,
                            i.string_min,
                            i.string_max,
                            has_value,
                            e.value,
                            e.string or "",
                            e.position,
                            e.metadata,
                            e.changed_at,
                            e.confirmed_at,
                            e.version,
                        )
                    )
            cores.append(
                CoreSnapshot(
                    name=state.name,
                    design_code=state.design_code,
                    components=tuple(state.components.values()),
                    controls=tuple(saved),
                )
            )
        return Snapshot(taken_at=self._clock(), cores=tuple(cores))

    def restore(self, snapshot: Snapshot) -> None:
        """Load a snapshot, marking its Cores stale; Cores with a design already are skipped.

        A Core the store knows only by its status (a link that has not connected yet) is
        filled in: a snapshot loaded late, once its backend is back, keeps what it held.
        """
        for saved_core in snapshot.cores:
            known = self._cores.get(saved_core.name)
            if known is not None and (known.design_code is not None or known.components):
                continue  # live data (or an earlier restore) wins
            state = self._core(saved_core.name)
            state.design_code = saved_core.design_code
            state.components = {c.name: c for c in saved_core.components}
            core_name = saved_core.name
            # one string object per component name (the dict key), type, direction and name
            names: dict[str, str] = {name: name for name in state.components}
            intern = sys.intern
            # a decoded snapshot shares each distinct metadata: its copy is looked up once
            # (the snapshot holds every mapping, so an id stays theirs while this runs)
            shared: dict[int, Mapping[str, Any]] = {}
            for s in saved_core.controls:
                component = (
                    s.component
                    if s.component is None
                    else names.setdefault(s.component, s.component)
                )
                ref = ControlRef(core_name, component, intern(s.name))
                info = ControlInfo(
                    ref,
                    intern(s.type),
                    intern(s.direction),
                    s.value_min,
                    s.value_max,
                    s.string_min,
                    s.string_max,
                )
                entry = _Entry(info, s.changed_at, s.changed_at)
                if s.has_value:
                    entry.value = s.value
                    entry.string = s.string
                    entry.position = s.position
                    metadata = shared.get(id(s.metadata))
                    if metadata is None:
                        metadata = shared[id(s.metadata)] = self._shared(s.metadata)
                    entry.metadata = metadata
                entry.confirmed_at = s.confirmed_at
                entry.version = s.version
                state.controls.setdefault(component, {})[ref.name] = entry
            state.stale = True
            self._version += 1

    # -- introspection -------------------------------------------------------------------

    def statistics(self) -> StateStatistics:
        cores = self._cores.values()
        return StateStatistics(
            cores=len(self._cores),
            stale_cores=sum(1 for c in cores if c.stale),
            components=sum(len(c.components) for c in cores),
            controls=sum(len(d) for c in cores for d in c.controls.values()),
            changes_applied=self._changes_applied,
            unknown_added=self._unknown_added,
            unknown_ignored=self._unknown_ignored,
            watchers=self._watcher_count,
            version=self._version,
        )
