"""What a plugin's tools see: the facade's public operations, bound to the calling principal.

This is the plugin API's contract. A :class:`ToolContext` reads (with ages), writes and loads
snapshots (always through the safety policy and the audit, as its principal), watches for
changes, and hands the plugin its own configuration. Nothing on it reaches a Core connection,
the state store's internals, the policy or the journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from qsysd.api import (
        ComponentPage,
        ControlChange,
        Match,
        MixerOutcome,
        QsysApi,
        ReadResult,
        SetOutcome,
        SnapshotOutcome,
        Summary,
    )
    from qsysd.core import MixerTarget
    from qsysd.state import (
        CallRecord,
        ComponentInfo,
        ControlReading,
        ControlRef,
        ControlRow,
        CoreStatus,
        JournalEntry,
        Watcher,
    )

__all__ = ["ToolContext"]


@attrs.frozen
class ToolContext:
    """What a tool receives besides its arguments: who calls, its plugin's config, the facade.

    ``ToolContext(api, principal)``; the registry adds the owning plugin's name and
    ``config`` before the tool runs.
    """

    _api: QsysApi = attrs.field(alias="api", repr=False)
    principal: str
    #: The plugin's configuration: an instance of the class its ``qsysd_plugin_config``
    #: declares, built from ``[plugins.config.NAME]``; None when it declares none.
    config: Any = None
    plugin: str | None = None

    def for_plugin(self, plugin: str, config: Any) -> ToolContext:
        """The same call, seen by ``plugin`` with its own configuration."""
        return attrs.evolve(self, plugin=plugin, config=config)

    # reads -----------------------------------------------------------------------------------

    def now(self) -> float:
        """The daemon's wall clock (UNIX time)."""
        return self._api.now()

    def core_names(self) -> list[str]:
        return self._api.core_names()

    def core(self, core: str | None = None) -> str:
        """The Core a call is about: the one given, or the only one configured."""
        return self._api.core(core)

    def statuses(self) -> list[CoreStatus]:
        """Connection and engine status of every Core."""
        return self._api.statuses()

    def components(
        self,
        core: str | None = None,
        *,
        filter: str | None = None,
        type: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> ComponentPage:
        """A page of components, filtered by name (substring or glob) and type."""
        return self._api.components(core, filter=filter, type=type, offset=offset, limit=limit)

    def all_components(self, core: str | None = None) -> list[ComponentInfo]:
        return self._api.all_components(core)

    def component(self, core: str | None, component: str) -> ComponentInfo:
        return self._api.component(core, component)

    def controls(
        self, core: str | None, component: str | None, *, filter: str | None = None
    ) -> list[ControlReading]:
        """A component's controls with their values and ages (``component=None``: named)."""
        return self._api.controls(core, component, filter=filter)

    def control_rows(
        self, core: str | None, component: str | None, *, filter: str | None = None
    ) -> list[ControlRow]:
        """:meth:`controls` as rows ``(info, value, string, position, age, stale)``: cheaper
        for listing many controls (``string`` None: no value yet)."""
        return self._api.control_rows(core, component, filter=filter)

    def resolve(self, core: str | None, control: str) -> ControlRef:
        """The ref of ``"Component.control"``, a named control, or a configured alias."""
        return self._api.resolve(core, control)

    async def get(
        self, controls: Sequence[str], *, core: str | None = None, fresh: bool = False
    ) -> list[ReadResult]:
        """Values with their age, from the store, or ``fresh`` from the Core."""
        return await self._api.get(controls, core=core, fresh=fresh)

    def find_controls(self, query: str, *, core: str | None = None, limit: int = 10) -> list[Match]:
        return self._api.find_controls(query, core=core, limit=limit)

    def summary(self, core: str | None = None, *, max_zones: int = 40) -> Summary:
        return self._api.summary(core, max_zones=max_zones)

    @property
    def has_journal(self) -> bool:
        """Whether value changes are recorded (writes are always audited)."""
        return self._api.has_journal

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
        """Value changes or audited writes, newest first."""
        return await self._api.history(
            kind=kind,
            core=core,
            control=control,
            component=component,
            principal=principal,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )

    async def audit(
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
        """Audited tool calls and refusals on every door, newest first (an admin tool's)."""
        return await self._api.calls(
            principal=principal, outcome=outcome, tool=tool, since=since, until=until,
            limit=limit, offset=offset,
        )  # fmt: skip

    def watch(self, controls: Sequence[str] | None = None, *, core: str | None = None) -> Watcher:
        """Changes to ``controls`` (None: every control), as batches of the latest values.

        ``async with ctx.watch(["Bar.gain"]) as watcher: async for batch in watcher: ...``
        """
        refs = None if controls is None else [self._api.resolve(core, c) for c in controls]
        return self._api.watch(refs)

    # writes: always through the policy and the audit, as this principal ---------------------

    async def set(
        self,
        changes: Sequence[ControlChange],
        *,
        core: str | None = None,
        confirm: bool = False,
        dry_run: bool = False,
    ) -> SetOutcome:
        """Write controls; per-control results with the Core's own strings."""
        return await self._api.set(
            changes, principal=self.principal, core=core, confirm=confirm, dry_run=dry_run
        )

    async def load_snapshot(
        self,
        bank: str,
        number: int,
        *,
        core: str | None = None,
        ramp: float = 0.0,
        dry_run: bool = False,
    ) -> SnapshotOutcome:
        """Recall snapshot ``number`` of the snapshot bank ``bank``."""
        return await self._api.load_snapshot(
            bank, number, principal=self.principal, core=core, ramp=ramp, dry_run=dry_run
        )

    async def save_snapshot(
        self, bank: str, number: int, *, core: str | None = None, dry_run: bool = False
    ) -> SnapshotOutcome:
        """Store the current state into snapshot ``number`` of the bank ``bank``."""
        return await self._api.save_snapshot(
            bank, number, principal=self.principal, core=core, dry_run=dry_run
        )

    async def mixer_set(
        self,
        mixer: str,
        target: MixerTarget,
        *,
        core: str | None = None,
        inputs: str | None = None,
        outputs: str | None = None,
        gain: float | None = None,
        mute: bool | None = None,
        ramp: float | None = None,
        confirm: bool = False,
        dry_run: bool = False,
    ) -> MixerOutcome:
        """Set gain and/or mute of a mixer's crosspoints, inputs or outputs."""
        return await self._api.mixer_set(
            mixer,
            target,
            principal=self.principal,
            core=core,
            inputs=inputs,
            outputs=outputs,
            gain=gain,
            mute=mute,
            ramp=ramp,
            confirm=confirm,
            dry_run=dry_run,
        )
