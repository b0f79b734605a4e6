"""The audit trail of writes: the journal, or without one a bounded in-memory record."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Literal

import attrs
import trio

from qsysd.logs import HotLogger
from qsysd.state import CallRecord, ControlRef, ControlValue, Journal, JournalEntry

# Events keep the logger name "qsysd.api"; bound once, as it logs every audited write.
log = HotLogger("qsysd.api")

#: True within a call whose audit row is recorded (:meth:`AuditTrail.record_call`) before it
#: is answered: its write rows then go in that row's transaction, one commit per call.
_CALL_ROW_FOLLOWS: ContextVar[bool] = ContextVar("qsysd_call_row_follows", default=False)
#: True within :meth:`AuditTrail.writing`: write rows are buffered until its end.
_WRITING: ContextVar[bool] = ContextVar("qsysd_writing", default=False)


class AuditTrail:
    """Records who wrote what (principal, before, after, outcome) and answers history queries."""

    def __init__(self, journal: Journal | None, clock: Callable[[], float], size: int) -> None:
        self.journal = journal
        self._clock = clock
        # Without a journal, the latest writes are still kept (in memory) for qsys_history.
        self._recent: collections.deque[JournalEntry] = collections.deque(maxlen=size)
        self._recent_calls: collections.deque[CallRecord] = collections.deque(maxlen=size)
        #: Called synchronously with every audited write (plugin observers' queues).
        self.listeners: list[Callable[[JournalEntry], None]] = []

    def call_row_follows(self, follows: bool = True) -> _CallRowFollows:
        """Within this block, a call's audit row is recorded before its answer (the call path).

        Write rows are then committed with that row, in one transaction; a call left without
        it (cancelled, so never answered) has its rows committed by the flush task, within
        one flush interval.
        """
        return _CallRowFollows(follows)

    def writing(self) -> _Writing:
        """One write operation: its rows (one per control) are committed once, at its end.

        Committed before the block ends, unless the call's audit row follows
        (:meth:`call_row_follows`), which commits them before the answer.
        """
        return _Writing(self.journal)

    async def record(
        self,
        ref: ControlRef,
        principal: str,
        before: ControlValue | None,
        after: ControlValue | None,
        outcome: str,
        error: str | None,
    ) -> None:
        """Record one write; a failure to record is logged, never raised."""
        log.info("write.audited", principal=principal, core=ref.core, control=str(ref),
                 outcome=outcome)  # fmt: skip
        entry = None
        if self.journal is None or self.listeners:
            entry = JournalEntry(
                id=len(self._recent) + 1,
                at=self._clock(),
                kind="write",
                ref=ref,
                before=before.value if before else None,
                before_string=before.string if before else None,
                after=after.value if after else None,
                after_string=after.string if after else None,
                principal=principal,
                outcome=outcome,
                error=error,
            )
            for listener in self.listeners:  # queue offers: never block, never raise
                listener(entry)
        if self.journal is None:
            assert entry is not None
            self._recent.append(entry)
            return
        try:
            # within writing(): committed at the operation's end or with the call's audit row
            await self.journal.record_write(
                ref,
                principal=principal,
                before=before,
                after=after,
                outcome=outcome,
                error=error,
                commit=not _WRITING.get(),
            )
        except Exception as exc:  # the write happened: never fail it on the audit trail
            log.error("journal.record_failed", error=repr(exc), control=str(ref))

    async def query(
        self,
        *,
        kind: Literal["change", "write"],
        core: str | None,
        ref: ControlRef | None,
        component: str | None = None,
        principal: str | None,
        since: float | None,
        until: float | None = None,
        limit: int,
        offset: int = 0,
    ) -> list[JournalEntry]:
        """Entries newest first (``since`` inclusive, ``until`` not), skipping ``offset``.

        Without a journal there are writes only, no changes.
        """
        if ref is not None:
            core, component = ref.core, ref.component
        if self.journal is not None:
            return await self.journal.query(
                kind=kind,
                core=core,
                component=component,
                control=ref.name if ref else None,
                named=ref is not None and ref.component is None,
                principal=principal,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
            )
        if kind == "change":
            return []
        matching = (
            entry
            for entry in reversed(self._recent)
            if (core is None or entry.ref.core == core)
            and (ref is None or entry.ref == ref)
            and (component is None or entry.ref.component == component)
            and (principal is None or entry.principal == principal)
            and (since is None or entry.at >= since)
            and (until is None or entry.at < until)
        )
        return list(itertools.islice(matching, offset, offset + limit))

    async def record_call(self, record: CallRecord) -> None:
        """Record one tool call or refusal; a failure to record is logged, never raised."""
        if self.journal is None:
            self._recent_calls.append(attrs.evolve(record, id=len(self._recent_calls) + 1))
            return
        try:
            await self.journal.record_call(record)
        except Exception as exc:  # the call was answered: never fail it on the audit trail
            log.error("journal.record_failed", error=repr(exc), tool=record.tool)

    async def query_calls(
        self,
        *,
        principal: str | None,
        outcome: str | None,
        tool: str | None,
        since: float | None,
        until: float | None,
        limit: int,
        offset: int,
    ) -> list[CallRecord]:
        """Audited calls newest first (``since`` inclusive, ``until`` not), skipping ``offset``."""
        if self.journal is not None:
            return await self.journal.query_calls(
                principal=principal, outcome=outcome, tool=tool, since=since, until=until,
                limit=limit, offset=offset,
            )  # fmt: skip
        matching = (
            r
            for r in reversed(self._recent_calls)
            if (principal is None or r.principal == principal)
            and (outcome is None or r.outcome == outcome)
            and (tool is None or r.tool == tool)
            and (since is None or r.at >= since)
            and (until is None or r.at < until)
        )
        return list(itertools.islice(matching, offset, offset + limit))


# Classes, not generator context managers: entered on every tool call and write operation,
# they cost a third as much.


class _CallRowFollows:
    """:meth:`AuditTrail.call_row_follows`."""

    __slots__ = ("_follows", "_token")

    def __init__(self, follows: bool) -> None:
        self._follows = follows

    def __enter__(self) -> None:
        self._token = _CALL_ROW_FOLLOWS.set(self._follows)

    def __exit__(self, *exc_info: object) -> None:
        _CALL_ROW_FOLLOWS.reset(self._token)


class _Writing:
    """:meth:`AuditTrail.writing`."""

    __slots__ = ("_journal", "_token")

    def __init__(self, journal: Journal | None) -> None:
        self._journal = journal

    async def __aenter__(self) -> None:
        self._token = _WRITING.set(True)

    async def __aexit__(self, *exc_info: object) -> None:
        _WRITING.reset(self._token)
        if self._journal is not None and not _CALL_ROW_FOLLOWS.get():
            with trio.CancelScope(shield=True), trio.move_on_after(10.0):
                try:
                    await self._journal.flush()
                except Exception as exc:  # the write happened: never fail it on the audit
                    log.error("journal.record_failed", error=repr(exc))
