"""The read side of the facade: which Core, which control, its value, search and history."""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, Protocol

import trio

from qsysd.api._audit import AuditTrail
from qsysd.api._index import SearchIndex
from qsysd.api._results import ComponentPage, Match, ReadResult, Summary, describe_error
from qsysd.api._search import close_names, name_matches
from qsysd.api._summary import summarize
from qsysd.core import ControlWrite, MixerTarget
from qsysd.errors import CoreUnavailable, LookupFailed, QsysdError, ToolInputError
from qsysd.policy import Policy
from qsysd.state import (
    CallRecord,
    ChangeListener,
    ComponentInfo,
    ControlReading,
    ControlRef,
    ControlRow,
    ControlValue,
    CoreStatus,
    Journal,
    JournalEntry,
    StateStore,
    Watcher,
)


class CoreLinkLike(Protocol):
    """What the facade needs of a :class:`qsysd.core.CoreLink`: its typed commands.

    A :class:`qsysd.core.CoreCommands` subclass that implements ``request`` has them all.
    """

    @property
    def name(self) -> str: ...

    def status(self) -> CoreStatus: ...

    async def get_component(
        self, component: str, names: Sequence[str], *, kinds: Mapping[ControlRef, str]
    ) -> list[ControlValue]: ...

    async def get_named(
        self, names: Sequence[str], *, kinds: Mapping[ControlRef, str]
    ) -> list[ControlValue]: ...

    async def set_component(
        self, component: str, writes: Sequence[ControlWrite], *, kinds: Mapping[ControlRef, str]
    ) -> list[ControlValue]: ...

    async def set_named(
        self, write: ControlWrite, *, kinds: Mapping[ControlRef, str]
    ) -> list[ControlValue]: ...

    async def load_snapshot(self, bank: str, number: int, *, ramp: float = 0.0) -> str | None: ...

    async def save_snapshot(self, bank: str, number: int) -> str | None: ...

    async def mixer_set(
        self,
        mixer: str,
        target: MixerTarget,
        what: Literal["gain", "mute"],
        value: float | bool,
        *,
        inputs: str | None = None,
        outputs: str | None = None,
        ramp: float | None = None,
    ) -> str: ...


class QsysReads:
    """What tools can learn without writing: Cores, components, controls, values, history."""

    def __init__(
        self,
        links: Mapping[str, CoreLinkLike],
        store: StateStore,
        policy: Policy | None = None,
        journal: Journal | None = None,
        *,
        clock: Callable[[], float] = time.time,
        audit_size: int = 1000,
    ) -> None:
        self._links = dict(links)
        self._store = store
        self._policy = policy or Policy()
        self._journal = journal
        self._clock = clock
        self._audit = AuditTrail(journal, clock, audit_size)
        self._index = SearchIndex()

    def now(self) -> float:
        """The facade's wall clock (UNIX time)."""
        return self._clock()

    # cores ----------------------------------------------------------------------------------

    def core_names(self) -> list[str]:
        names = list(self._links)
        names += [c for c in self._store.cores() if c not in self._links]
        return names

    def core(self, core: str | None) -> str:
        """The Core a call is about: the one given, or the only one configured."""
        names = self.core_names()
        if core is None:
            if len(names) == 1:
                return names[0]
            if not names:
                raise LookupFailed("no Core is configured", hint="")
            raise ToolInputError(f"several Cores are configured; name one of: {', '.join(names)}")
        if core not in names:
            raise LookupFailed(
                f"unknown Core {core!r}", close_names(core, names), hint="qsys_status lists them."
            )
        return core

    def statuses(self) -> list[CoreStatus]:
        out = []
        for name in self.core_names():
            link = self._links.get(name)
            status = link.status() if link is not None else self._store.core_status(name)
            if status is not None:
                out.append(status)
        return out

    def _cores(self, core: str | None) -> list[str]:
        """The Core given, or every Core when none is."""
        return [self.core(core)] if core is not None else self.core_names()

    def _link(self, core: str) -> CoreLinkLike:
        link = self._links.get(core)
        if link is None:
            raise CoreUnavailable(f'Core "{core}" has no connection in this daemon')
        return link

    # components and controls ----------------------------------------------------------------

    def components(
        self,
        core: str | None = None,
        *,
        filter: str | None = None,
        type: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> ComponentPage:
        """Components of a Core, optionally filtered by name (substring or glob) and type."""
        name = self.core(core)
        found = self._store.components(name)
        if filter:
            found = [c for c in found if name_matches(c.name, filter)]
        if type:
            found = [c for c in found if c.type.lower() == type.lower()]
        page = found[offset : offset + limit]
        counts = tuple(len(self._store.controls(name, c.name)) for c in page)
        return ComponentPage(name, len(found), offset, tuple(page), counts)

    def all_components(self, core: str | None = None) -> list[ComponentInfo]:
        """Every component of a Core, in discovery order."""
        return self._store.components(self.core(core))

    def component(self, core: str | None, component: str) -> ComponentInfo:
        return self._store.component(self.core(core), component)

    def controls(
        self, core: str | None, component: str | None, *, filter: str | None = None
    ) -> list[ControlReading]:
        """A component's controls with their values (``component=None``: named controls)."""
        name = self.core(core)
        if component is not None:
            self._store.component(name, component)  # raises LookupFailed with suggestions
        readings = self._store.controls(name, component)
        if filter:
            readings = [r for r in readings if name_matches(r.info.ref.name, filter)]
        return readings

    def control_rows(
        self, core: str | None, component: str | None, *, filter: str | None = None
    ) -> list[ControlRow]:
        """:meth:`controls` as the store's flat rows (for listings: no object per control)."""
        rows = self._store.control_rows(self.core(core), component)
        if filter:
            rows = [r for r in rows if name_matches(r[0].ref.name, filter)]
        return rows

    def resolve(self, core: str | None, control: str) -> ControlRef:
        """The ref of ``"Component.control"``, a named control, or a configured alias."""
        return self._resolve(core, control)[0]

    def _resolve(self, core: str | None, control: str) -> tuple[ControlRef, ControlReading]:
        """:meth:`resolve`, and the reading that showed the control exists."""
        name = self.core(core)
        text = control.strip()
        alias = self._policy.alias(text)
        if alias is not None:
            text = alias
        if ":" in text and text.split(":", 1)[0] in self.core_names():
            prefix, text = text.split(":", 1)
            if core is not None and prefix != name:
                raise ToolInputError(f"{control!r} names Core {prefix!r}, not {name!r}")
            name = prefix
        # Control names contain dots ("input.1.gain"); component names may too: try each split.
        parts = text.split(".")
        for i in range(1, len(parts)):
            comp, ctl = ".".join(parts[:i]), ".".join(parts[i:])
            if self._store.has_component(name, comp):
                ref = ControlRef(core=name, component=comp, name=ctl)
                # raises LookupFailed with close control names
                return ref, self._store.read(ref)
        named = ControlRef(core=name, component=None, name=text)
        try:
            return named, self._store.read(named)
        except LookupFailed:
            pass
        candidates = [m.control for m in self.find_controls(text, core=name, limit=3)]
        if "." in text and not self._store.has_component(name, text.split(".", 1)[0]):
            comp = text.split(".", 1)[0]
            components = [c.name for c in self._store.components(name)]
            raise LookupFailed(
                f"unknown component {comp!r} on Core {name!r}",
                close_names(comp, components) or candidates,
            )
        raise LookupFailed(f"unknown control {control!r} on Core {name!r}", candidates)

    # reads -----------------------------------------------------------------------------------

    async def get(
        self, controls: Sequence[str], *, core: str | None = None, fresh: bool = False
    ) -> list[ReadResult]:
        """Values of controls: from the store with their age, or fresh from the Core."""
        if core is not None:
            self.core(core)  # an unknown Core fails the call, as on every other tool
        refs: list[ControlRef | None] = []
        readings: list[ControlReading | None] = []  # from resolving: current unless fresh
        errors: dict[int, str] = {}
        for i, text in enumerate(controls):
            try:
                found, reading = self._resolve(core, text)
            except QsysdError as exc:
                refs.append(None)
                readings.append(None)
                errors[i] = str(exc)
            else:
                refs.append(found)
                readings.append(reading)
        if fresh:
            wanted = [r for r in refs if r is not None]
            failures = await self._refresh(wanted)
            for i, ref in enumerate(refs):
                if ref is not None and ref in failures:
                    errors[i] = failures[ref]
        out = []
        for i, (text, ref, resolved) in enumerate(zip(controls, refs, readings, strict=True)):
            if ref is None or resolved is None or i in errors:
                out.append(
                    ReadResult(
                        control=text,
                        core=ref.core if ref else "",
                        source="none",
                        error=errors.get(i),
                    )
                )
                continue
            reading = self._store.read(ref) if fresh else resolved
            value = reading.value
            out.append(
                ReadResult(
                    control=str(ref),
                    core=ref.core,
                    value=value.value if value else None,
                    string=value.string if value else None,
                    position=value.position if value else None,
                    age=round(reading.age, 3),
                    stale=reading.stale,
                    source="core" if fresh else "cache",
                )
            )
        return out

    async def _refresh(self, refs: Sequence[ControlRef]) -> dict[ControlRef, str]:
        """Read refs from their Cores (Component.Get / Control.Get) into the store."""
        failures: dict[ControlRef, str] = {}
        groups: dict[tuple[str, str | None], list[ControlRef]] = collections.defaultdict(list)
        for ref in refs:
            groups[(ref.core, ref.component)].append(ref)

        async def one(core: str, component: str | None, group: list[ControlRef]) -> None:
            try:
                link = self._link(core)
                names = [r.name for r in group]
                kinds = self._kinds(group)
                if component is None:
                    values = await link.get_named(names, kinds=kinds)
                else:
                    values = await link.get_component(component, names, kinds=kinds)
                self._store.apply(values)
            except Exception as exc:  # every failure becomes a per-control error
                for ref in group:
                    failures[ref] = describe_error(exc, core=core)

        async with trio.open_nursery() as nursery:
            for (core, component), group in groups.items():
                nursery.start_soon(one, core, component, group)
        return failures

    def _kinds(self, refs: Iterable[ControlRef]) -> dict[ControlRef, str]:
        """What the store knows of each control's type, to type the Core's answers."""
        kinds = {}
        for ref in refs:
            with contextlib.suppress(LookupFailed):
                kinds[ref] = self._store.read(ref).info.type
        return kinds

    # changes ---------------------------------------------------------------------------------

    def watch(self, refs: Iterable[ControlRef] | None = None) -> Watcher:
        """Changes to ``refs`` (None: every control), as batches of the latest values.

        Use it as ``async with api.watch([ref]) as watcher: async for batch in watcher``.
        """
        return self._store.watch(refs)

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(value, before, at)`` synchronously on every change; returns a remover.

        For the daemon's plugin observers: a listener must only queue, never block or raise.
        """
        return self._store.add_listener(listener)

    def on_write(self, listener: Callable[[JournalEntry], None]) -> Callable[[], None]:
        """Call ``listener(entry)`` synchronously with every audited write; returns a remover."""
        self._audit.listeners.append(listener)
        return lambda: self._audit.listeners.remove(listener)

    @property
    def has_journal(self) -> bool:
        """Whether value changes are recorded (writes are always audited)."""
        return self._journal is not None

    # history, search and summary -------------------------------------------------------------

    async def record_call(self, record: CallRecord) -> None:
        """Audit one tool call or refusal (the call path does, once for every door)."""
        await self._audit.record_call(record)

    async def calls(
        self,
        *,
        principal: str | None = None,
        outcome: str | None = None,
        tool: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[CallRecord]:
        """Audited tool calls and refusals, newest first (the journal, or this process's)."""
        return await self._audit.query_calls(
            principal=principal, outcome=outcome, tool=tool, since=since, until=until,
            limit=limit, offset=offset,
        )  # fmt: skip

    async def history(
        self,
        *,
        kind: Literal["change", "write"] = "change",
        core: str | None = None,
        control: str | None = None,
        component: str | None = None,
        principal: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JournalEntry]:
        """Value changes (``change``) or audited writes (``write``), newest first.

        ``control`` is one control ("Component.control" or a named control); ``component``
        every control of one component. Without a journal there is no change history, and
        writes come from a bounded in-memory record of this process's writes.
        """
        wanted = core is not None or control is not None or component is not None
        name = self.core(core) if wanted else None
        ref = self.resolve(name, control) if control is not None else None
        if component is not None:
            component = self._store.component(self.core(name), component).name
        return await self._audit.query(
            kind=kind,
            core=name,
            ref=ref,
            component=component,
            principal=principal,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )

    def find_controls(self, query: str, *, core: str | None = None, limit: int = 10) -> list[Match]:
        """Controls ranked by how well their names, types and aliases match ``query``."""
        aliases = {key: target for key, target in self._policy.config.aliases.items() if target}
        return self._index.find(self._store, self._cores(core), query, aliases=aliases, limit=limit)

    def summary(self, core: str | None = None, *, max_zones: int = 40) -> Summary:
        """Cores, and every zone (a component with a gain and a mute) with its level."""
        return summarize(self._store, self._cores(core), self.statuses(), max_zones=max_zones)
