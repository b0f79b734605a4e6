"""The audit trail of writes: the journal, or without one a bounded in-memory record."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Literal

import structlog

from qsysd.state import ControlRef, ControlValue, Journal, JournalEntry

log = structlog.get_logger(__package__)  # events keep the logger name "qsysd.api"


class AuditTrail:
    """Records who wrote what (principal, before, after, outcome) and answers history queries."""

    def __init__(self, journal: Journal | None, clock: Callable[[], float], size: int) -> None:
        self.journal = journal
        self._clock = clock
        # Without a journal, the latest writes are still kept (in memory) for qsys_history.
        self._recent: collections.deque[JournalEntry] = collections.deque(maxlen=size)

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
        if self.journal is None:
            self._recent.append(
                JournalEntry(
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
            )
            return
        try:
            await self.journal.record_write(
                ref, principal=principal, before=before, after=after, outcome=outcome, error=error
            )
        except Exception as exc:  # the write happened: never fail it on the audit trail
            log.error("journal.record_failed", error=repr(exc), control=str(ref))

    async def query(
        self,
        *,
        kind: Literal["change", "write"],
        core: str | None,
        ref: ControlRef | None,
        principal: str | None,
        since: float | None,
        limit: int,
    ) -> list[JournalEntry]:
        """Entries newest first; without a journal there are writes only, no changes."""
        if self.journal is not None:
            return await self.journal.query(
                kind=kind,
                core=ref.core if ref else core,
                component=ref.component if ref else None,
                control=ref.name if ref else None,
                principal=principal,
                since=since,
                limit=limit,
            )
        if kind == "change":
            return []
        out = []
        for entry in reversed(self._recent):
            if (
                (core is not None and entry.ref.core != core)
                or (ref is not None and entry.ref != ref)
                or (principal is not None and entry.principal != principal)
                or (since is not None and entry.at < since)
            ):
                continue
            out.append(entry)
            if len(out) >= limit:
                break
        return out
