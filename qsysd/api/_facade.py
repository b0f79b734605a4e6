"""The facade that tools use: reads from the StateStore, writes through the CoreLinks.

Tools never touch a connection. Every write goes through the :class:`~qsysd.policy.Policy`,
is sent with the Core's acknowledgement requested, updates the store with what the Core
answered, and is journaled (principal, before, after, result). A write is reported as done
only when the Core acknowledged it.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, Literal

import attrs
import structlog
import trio

from qsysd.api._mixer import channel_count, mixer_controls, parse_channels
from qsysd.api._reads import QsysReads
from qsysd.api._results import (
    ControlChange,
    ControlResult,
    MixerOutcome,
    SetOutcome,
    SnapshotOutcome,
    WriteFailed,
    describe_error,
    string_of,
)
from qsysd.core import ControlWrite, MixerTarget, mixer_method
from qsysd.errors import (
    CoreError,
    PolicyViolation,
    QsysdError,
    RequestTimeout,
    ToolInputError,
    UnknownControl,
)
from qsysd.policy import ProposedWrite
from qsysd.state import ControlInfo, ControlReading, ControlRef, ControlValue, Scalar

log = structlog.get_logger(__package__)  # events keep the logger name "qsysd.api"

# A change that passed the policy: (its index in the call, ref, change, reading before).
_Planned = tuple[int, ControlRef, ControlChange, ControlReading]


class QsysApi(QsysReads):
    """The operations tools can perform on the Cores, their state and their history."""

    def call_row_follows(self, follows: bool = True) -> AbstractContextManager[None]:
        """Within this block the caller records the call's audit row before answering it
        (:meth:`record_call`): the block's write rows are committed with that row, in one
        transaction, instead of at the end of each write operation."""
        return self._audit.call_row_follows(follows)

    async def set(
        self,
        changes: Sequence[ControlChange],
        *,
        principal: str,
        core: str | None = None,
        confirm: bool = False,
        dry_run: bool = False,
    ) -> SetOutcome:
        """Write controls; per-control results with the Core's own strings."""
        async with self._audit.writing():  # one commit for every control's audit row
            return await self._set(changes, principal, core, confirm, dry_run)

    async def _set(
        self,
        changes: Sequence[ControlChange],
        principal: str,
        core: str | None,
        confirm: bool,
        dry_run: bool,
    ) -> SetOutcome:
        core_name = self.core(core)
        self._policy.check_writable("writing controls")
        for i, change in enumerate(changes):
            _check_ramp(change.ramp, f"changes[{i}].ramp")
        results: dict[int, ControlResult] = {}
        refs: dict[int, ControlRef] = {}
        befores: dict[int, ControlValue | None] = {}
        planned: list[_Planned] = []
        checked: dict[int, tuple[ProposedWrite, float | None]] = {}
        for i, change in enumerate(changes):
            try:
                ref = self.resolve(core_name, change.control)
                refs[i] = ref
                reading = self._store.read(ref)
                befores[i] = reading.value
                write = _proposed(ref, reading, change)
                target = self._policy.check_write(write, confirm=confirm)
                checked[i] = (write, target)
            except PolicyViolation as exc:
                results[i] = ControlResult(
                    str(refs.get(i, change.control)), ok=False, error=str(exc), rule=exc.rule
                )
                continue
            except QsysdError as exc:
                results[i] = ControlResult(change.control, ok=False, error=str(exc))
                continue
            if target is not None and change.value is None and self._policy.constrains(write):
                # Send the very number the limits were checked against, not a position or a
                # string the Core might read otherwise (a gain's taper, "1_0dB").
                change = attrs.evolve(change, value=target, position=None, string=None)
            planned.append((i, ref, change, reading))
        _refuse_duplicates(changes, refs)
        if dry_run:
            for i, ref, change, reading in planned:
                results[i] = ControlResult(
                    str(ref),
                    ok=True,
                    before=string_of(reading),
                    value=change.value,
                    string=change.string,
                    position=change.position,
                    error=None,
                )
        else:
            await self._send_sets(core_name, planned, results)
            for i, (write, target) in checked.items():
                if results[i].ok:
                    self._policy.record_write(write, target)
        ordered = tuple(results[i] for i in range(len(changes)))
        for i, result in enumerate(ordered):
            ref = refs.get(i, ControlRef(core_name, None, changes[i].control))
            # The Core's answer to this write, not the store: another write or a poll may have
            # moved the control since, and the audit row must say what this call did.
            after = (
                ControlValue(ref, result.value, result.string, result.position)
                if result.ok and not dry_run and result.string is not None
                else None
            )
            outcome = (
                "dry_run"
                if dry_run
                else "ok"
                if result.ok
                else ("refused" if result.rule else "error")
            )
            await self._audit.record(ref, principal, befores.get(i), after, outcome, result.error)
        return SetOutcome(core_name, dry_run, ordered)

    async def _send_sets(
        self, core: str, planned: Sequence[_Planned], results: dict[int, ControlResult]
    ) -> None:
        groups: dict[str | None, list[_Planned]] = collections.defaultdict(list)
        for item in planned:
            groups[item[1].component].append(item)

        async def component_set(component: str, items: list[_Planned]) -> None:
            writes = [_control_write(ref, change) for _, ref, change, _ in items]
            kinds = self._kinds(ref for _, ref, _, _ in items)
            try:
                values = await self._link(core).set_component(component, writes, kinds=kinds)
            except UnknownControl as exc:
                if len(items) > 1:  # isolate the unknown one: retry each control alone
                    for item in items:
                        await component_set(component, [item])
                    return
                _fail_all(results, items, exc, core)
                return
            except Exception as exc:
                _fail_all(results, items, exc, core)
                return
            self._store.apply(values)
            await self._settle(core, items, values, results)

        async def named_set(item: _Planned) -> None:
            _, ref, change, _ = item
            try:
                link = self._link(core)
                values = await link.set_named(_control_write(ref, change), kinds=self._kinds([ref]))
            except Exception as exc:
                _fail_all(results, [item], exc, core)
                return
            self._store.apply(values)
            await self._settle(core, [item], values, results)

        sends: list[Callable[[], Awaitable[None]]] = []
        for component, items in groups.items():
            if component is None:
                sends.extend(partial(named_set, item) for item in items)
            else:
                sends.append(partial(component_set, component, items))
        if len(sends) == 1:  # one request: sent from this task (no task, no nursery to wait on)
            await sends[0]()
            return
        async with trio.open_nursery() as nursery:
            for send in sends:
                nursery.start_soon(send)

    async def _settle(
        self,
        core: str,
        items: Sequence[_Planned],
        values: Sequence[ControlValue],
        results: dict[int, ControlResult],
    ) -> None:
        """Turn the Core's answer into results; ask the Core for any it did not echo."""
        by_ref = {v.ref: v for v in values}
        missing = [ref for _, ref, _, _ in items if ref not in by_ref]
        if missing:  # the Core answered `true` only: read back its strings
            failures = await self._refresh(missing)
            for ref in missing:
                if ref not in failures:
                    reading = self._store.read(ref)
                    if reading.value is not None:
                        by_ref[ref] = reading.value
        for i, ref, change, reading in items:
            value = by_ref.get(ref)
            error = None if value else "the Core acknowledged the write without its new value"
            result = _acknowledged(ref, reading, value, error)
            if change.ramp:
                result = attrs.evolve(result, ramp=change.ramp, target=change.value)
            results[i] = result

    async def load_snapshot(
        self,
        bank: str,
        number: int,
        *,
        principal: str,
        core: str | None = None,
        ramp: float = 0.0,
        dry_run: bool = False,
    ) -> SnapshotOutcome:
        """Recall snapshot ``number`` of the snapshot bank component ``bank``."""
        return await self._snapshot("load", bank, number, principal, core, ramp, dry_run)

    async def save_snapshot(
        self,
        bank: str,
        number: int,
        *,
        principal: str,
        core: str | None = None,
        dry_run: bool = False,
    ) -> SnapshotOutcome:
        """Store the current state into snapshot ``number`` of the bank ``bank``."""
        return await self._snapshot("save", bank, number, principal, core, 0.0, dry_run)

    async def _snapshot(self, *args: Any) -> SnapshotOutcome:
        async with self._audit.writing():
            return await self._snapshot_once(*args)

    async def _snapshot_once(
        self,
        operation: Literal["load", "save"],
        bank: str,
        number: int,
        principal: str,
        core: str | None,
        ramp: float,
        dry_run: bool,
    ) -> SnapshotOutcome:
        core_name = self.core(core)
        # Journaled as the bank's own trigger control for that snapshot ("load.3").
        ref = ControlRef(core_name, bank, f"{operation}.{number}")
        try:
            self._policy.check_writable(f"{operation}ing a snapshot")
            info = self._store.component(core_name, bank)
            if "snapshot" not in info.type.lower():
                raise ToolInputError(
                    f"{bank!r} is a {info.type} component, not a snapshot bank; find banks with "
                    "qsys_list_components type='snapshot_controller'"
                )
            if number < 1:
                raise ToolInputError(f"snapshot number must be 1 or more, got {number}")
            _check_ramp(ramp, "ramp")
            # "Scenes.*" or "Scenes.load.2" protects a bank's snapshots like its controls.
            self._policy.check_not_protected(str(ref), core_name)
            if dry_run:
                message = f"would {operation} snapshot {number} of {bank}"
            else:
                link = self._link(core_name)
                if operation == "load":
                    reply = await link.load_snapshot(bank, number, ramp=ramp)
                else:
                    reply = await link.save_snapshot(bank, number)
                method = "Snapshot.Load" if operation == "load" else "Snapshot.Save"
                message = (
                    f"the Core acknowledged {method} of snapshot {number} on {bank}"
                    + (f" (ramping over {ramp:g} s)" if ramp else "")
                    + ("" if reply is None else f"; it answered {reply}")
                )
        except QsysdError as exc:
            await self._audit.record(ref, principal, None, None, _outcome(exc), str(exc))
            raise
        await self._audit.record(ref, principal, None, None, "dry_run" if dry_run else "ok", None)
        return SnapshotOutcome(core_name, bank, number, operation, ramp, dry_run, message)

    async def mixer_set(
        self,
        mixer: str,
        target: MixerTarget,
        *,
        principal: str,
        core: str | None = None,
        inputs: str | None = None,
        outputs: str | None = None,
        gain: float | None = None,
        mute: bool | None = None,
        ramp: float | None = None,
        confirm: bool = False,
        dry_run: bool = False,
    ) -> MixerOutcome:
        """Set gain and/or mute of a mixer's crosspoints, inputs or outputs (channel strings)."""
        async with self._audit.writing():  # one commit for every control's audit row
            return await self._mixer_set(
                mixer, target, principal, core, inputs, outputs, gain, mute, ramp, confirm, dry_run
            )

    async def _mixer_set(
        self,
        mixer: str,
        target: MixerTarget,
        principal: str,
        core: str | None,
        inputs: str | None,
        outputs: str | None,
        gain: float | None,
        mute: bool | None,
        ramp: float | None,
        confirm: bool,
        dry_run: bool,
    ) -> MixerOutcome:
        core_name = self.core(core)
        self._policy.check_writable("writing a mixer")
        if gain is None and mute is None:
            raise ToolInputError("give gain, mute or both")
        _check_ramp(ramp, "ramp")
        info = self._store.component(core_name, mixer)
        names = {r.info.ref.name for r in self._store.controls(core_name, mixer)}
        n_in = channel_count(names, r"input\.(\d+)\.gain")
        n_out = channel_count(names, r"output\.(\d+)\.gain")
        if not n_in and not n_out:
            raise ToolInputError(
                f"{mixer!r} is a {info.type} component, not a mixer (it has no input.N.gain or "
                "output.N.gain controls); find mixers with qsys_list_components type='mixer'"
            )
        # Channels that cannot take effect are refused, not ignored: the caller meant something.
        if target == "input" and outputs is not None:
            raise ToolInputError(
                "outputs: an input target sets whole inputs (to every output); leave outputs "
                "out, or use target 'crosspoint' for input-to-output gains"
            )
        if target == "output" and inputs is not None:
            raise ToolInputError(
                "inputs: an output target sets whole outputs; leave inputs out, or use target "
                "'crosspoint' for input-to-output gains"
            )
        ins = parse_channels(inputs, n_in, "inputs") if target in ("crosspoint", "input") else []
        outs = parse_channels(outputs, n_out, "outputs") if target != "input" else []
        controls = mixer_controls(target, ins, outs)
        # The policy sees every control the channel strings expand to; one refusal refuses
        # the whole call, since one Mixer method sets them all.
        per_call: list[list[tuple[ControlRef, ControlReading, Scalar]]] = []
        calls: list[tuple[Literal["gain", "mute"], float | bool]] = []
        checked: dict[ControlRef, tuple[ProposedWrite, float | None]] = {}
        wanted: tuple[tuple[Literal["gain", "mute"], float | bool | None], ...] = (
            ("gain", gain),
            ("mute", mute),
        )
        for suffix, value in wanted:
            if value is None:
                continue
            calls.append((suffix, value))
            affected: list[tuple[ControlRef, ControlReading, Scalar]] = []
            for ctl in controls[suffix]:
                ref = ControlRef(core=core_name, component=mixer, name=ctl)
                reading = self._store.read(ref)
                change = ControlChange(str(ref), value=value, ramp=ramp)
                write = _proposed(ref, reading, change)
                try:
                    checked[ref] = (write, self._policy.check_write(write, confirm=confirm))
                except PolicyViolation as exc:
                    await self._audit.record(
                        ref, principal, reading.value, None, "refused", str(exc)
                    )
                    raise
                affected.append((ref, reading, value))
            per_call.append(affected)
        methods = tuple(mixer_method(target, what) for what, _ in calls)
        if dry_run:
            results = tuple(
                ControlResult(str(ref), ok=True, before=string_of(reading), value=value)
                for affected in per_call
                for ref, reading, value in affected
            )
            for affected in per_call:
                for ref, reading, _ in affected:
                    await self._audit.record(ref, principal, reading.value, None, "dry_run", None)
            return MixerOutcome(core_name, mixer, methods, True, results)
        out: dict[ControlRef, ControlResult] = {}
        sent: list[tuple[ControlRef, ControlReading, Scalar]] = []
        for (what, value), affected in zip(calls, per_call, strict=True):
            try:
                await self._link(core_name).mixer_set(
                    mixer, target, what, value, inputs=inputs, outputs=outputs, ramp=ramp
                )
            except Exception as exc:  # per method: the other one may still be applied
                if not isinstance(exc, QsysdError):
                    log.error("api.unexpected_error", error=repr(exc))
                error = describe_error(exc, core=core_name, writing=True)
                for ref, reading, _ in affected:
                    out[ref] = ControlResult(
                        str(ref),
                        ok=False,
                        before=string_of(reading),
                        error=error,
                        retryable=_retryable(exc),
                        uncertain=isinstance(exc, RequestTimeout),
                    )
                    await self._audit.record(
                        ref, principal, reading.value, None, _outcome(exc), error
                    )
                continue
            sent.extend(affected)
        # The Mixer methods answer `true`: read the affected controls back for the Core's strings.
        failures = await self._refresh([ref for ref, _, _ in sent])
        for ref, reading, _ in sent:
            self._policy.record_write(*checked[ref])
            now = self._store.read(ref).value
            out[ref] = _acknowledged(ref, reading, now, failures.get(ref))
            await self._audit.record(ref, principal, reading.value, now, "ok", None)
        ordered = tuple(out[ref] for affected in per_call for ref, _, _ in affected)
        if not sent:
            raise WriteFailed(ordered)
        return MixerOutcome(core_name, mixer, methods, False, ordered)


def _acknowledged(
    ref: ControlRef, before: ControlReading, now: ControlValue | None, error: str | None
) -> ControlResult:
    """A written control's result: its string before, and what the Core reports now."""
    return ControlResult(
        str(ref),
        ok=True,
        before=string_of(before),
        value=now.value if now else None,
        string=now.string if now else None,
        position=now.position if now else None,
        error=error,
    )


def _retryable(exc: BaseException) -> bool:
    """A retry may help: the Core was away, not a timeout (the write may have been applied)."""
    return isinstance(exc, CoreError) and exc.retryable and not isinstance(exc, RequestTimeout)


def _fail_all(
    results: dict[int, ControlResult], items: Iterable[_Planned], exc: Exception, core: str
) -> None:
    retryable = _retryable(exc)
    if not isinstance(exc, QsysdError):
        log.error("api.unexpected_error", error=repr(exc))
    for i, ref, _, reading in items:
        results[i] = ControlResult(
            str(ref),
            ok=False,
            before=string_of(reading),
            error=describe_error(exc, core=core, writing=True),
            retryable=retryable,
            uncertain=isinstance(exc, RequestTimeout),
        )


def _outcome(exc: BaseException) -> str:
    return "refused" if isinstance(exc, PolicyViolation) else "error"


def _proposed(ref: ControlRef, reading: ControlReading, change: ControlChange) -> ProposedWrite:
    info: ControlInfo = reading.info
    current = reading.value
    return ProposedWrite(
        control=str(ref),
        core=ref.core,
        type=info.type,
        direction=info.direction,
        value_min=info.value_min,
        value_max=info.value_max,
        current=current.value if current else None,
        current_string=current.string if current else None,
        value=change.value,
        position=change.position,
        string=change.string,
        name=ref.name,
        string_max=info.string_max,
    )


def _check_ramp(ramp: float | None, field: str) -> None:
    """A ramp is a finite number of seconds, 0 or more (a tool's schema also caps it)."""
    if ramp is None:
        return
    if isinstance(ramp, bool) or not isinstance(ramp, int | float) or not math.isfinite(ramp):
        raise ToolInputError(f"{field}: {ramp!r} is not a number of seconds")
    if ramp < 0:
        raise ToolInputError(f"{field}: {ramp:g} s is negative; give 0 or more seconds")


def _refuse_duplicates(changes: Sequence[ControlChange], refs: Mapping[int, ControlRef]) -> None:
    """One call changes each control once: two values for one control are ambiguous."""
    first: dict[ControlRef, int] = {}
    for i, ref in sorted(refs.items()):
        if ref in first:
            raise ToolInputError(
                f"changes[{first[ref]}] ({changes[first[ref]].control}) and changes[{i}] "
                f"({changes[i].control}) both change {ref}; give each control once per call"
            )
        first[ref] = i


def _control_write(ref: ControlRef, change: ControlChange) -> ControlWrite:
    return ControlWrite(
        ref.name,
        value=change.value,
        string=change.string,
        position=change.position,
        ramp=change.ramp or None,
    )
