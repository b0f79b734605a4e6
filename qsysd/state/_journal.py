"""The journal: history of value changes and audit of writes, in SQLite."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs
import structlog
import trio

from qsysd.state._model import ControlRef, ControlValue, Scalar

if TYPE_CHECKING:
    from qsysd.state._store import StateStore

__all__ = ["CallRecord", "Journal", "JournalEntry", "JournalStatistics"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

Kind = Literal["change", "write"]

#: 1: value changes and writes; 2: adds ``calls``, the audit of tool calls and refusals
#: (a version 1 journal gains the table on opening and keeps its rows).
_SCHEMA_VERSION = 2
#: The most rows a journal kept in memory (its file could not be opened) holds.
_MEMORY_MAX_ROWS = 100_000
#: A commit of at most this many rows runs on the trio thread (see :meth:`Journal._commit`).
_INLINE_ROWS = 32
#: The WAL is checkpointed (in a worker thread) once it holds this many commits.
_CHECKPOINT_COMMITS = 200
_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    core TEXT NOT NULL,
    component TEXT,
    control TEXT NOT NULL,
    before_value TEXT,
    before_string TEXT,
    after_value TEXT,
    after_string TEXT,
    principal TEXT,
    outcome TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS journal_at ON journal (at);
CREATE INDEX IF NOT EXISTS journal_control ON journal (core, component, control, at);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    principal TEXT,
    role TEXT,
    door TEXT NOT NULL,
    address TEXT,
    request_id TEXT,
    tool TEXT,
    arguments TEXT,
    outcome TEXT NOT NULL,
    answer TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS calls_at ON calls (at);
CREATE INDEX IF NOT EXISTS calls_principal ON calls (principal, at);
"""
_CALL_COLUMNS = (
    "id, at, principal, role, door, address, request_id, tool, arguments, outcome, answer, error"
)
_INSERT_CALL = f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?)"
_COLUMNS = (
    "id, at, kind, core, component, control, before_value, before_string, "
    "after_value, after_string, principal, outcome, error"
)
_INSERT = (
    "INSERT INTO journal (at, kind, core, component, control, before_value, before_string, "
    "after_value, after_string, principal, outcome, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)

_Row = tuple[
    float, str, str, str | None, str, str | None, str | None, str | None, str | None,
    str | None, str | None, str | None,
]  # fmt: skip


@attrs.frozen
class JournalEntry:
    """One journal row. ``before``/``after`` are None when there was no value.

    For a write, ``principal`` is who asked, ``outcome`` is "ok", "error", "refused", ... and
    ``error`` the error text; for a change they are None.
    """

    id: int
    at: float
    kind: str
    ref: ControlRef
    before: Scalar
    before_string: str | None
    after: Scalar
    after_string: str | None
    principal: str | None = None
    outcome: str | None = None
    error: str | None = None


@attrs.frozen
class CallRecord:
    """One audited tool call or refusal: who, through which door, what, and the answer.

    ``arguments`` and ``answer`` are JSON text (bounded in size); ``principal`` and ``role``
    are None when the caller could not be authenticated. ``outcome`` is ok, rejected,
    refused (the safety policy), denied (403), limited (429), unauthenticated (401), failed
    or crashed. Never holds a credential.
    """

    at: float
    principal: str | None
    role: str | None
    door: str
    address: str | None
    request_id: str | None
    tool: str | None
    arguments: str | None
    outcome: str
    answer: str | None
    error: str | None
    id: int = 0

    def row(self) -> tuple[object, ...]:
        return (self.at, self.principal, self.role, self.door, self.address, self.request_id,
                self.tool, self.arguments, self.outcome, self.answer, self.error)  # fmt: skip


@attrs.frozen
class JournalStatistics:
    """Counts for the metrics layer; ``rows`` is the current row count."""

    rows: int
    changes_recorded: int
    writes_recorded: int
    pending: int
    flushes: int
    dropped: int
    pruned: int
    failures: int
    persistent: bool = True


def _encode(value: ControlValue | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    v = value.value
    # What json.dumps writes for a finite float (its repr), a bool or an int, without its
    # encoder: every audited write and change has two of these.
    if type(v) is float and math.isfinite(v):
        return float.__repr__(v), value.string
    if type(v) is bool:
        return ("true" if v else "false"), value.string
    if type(v) is int:
        return int.__repr__(v), value.string
    return json.dumps(v), value.string


def _row(
    at: float,
    kind: Kind,
    ref: ControlRef,
    before: ControlValue | None,
    after: ControlValue | None,
    principal: str | None = None,
    outcome: str | None = None,
    error: str | None = None,
) -> _Row:
    return (at, kind, ref.core, ref.component, ref.name, *_encode(before), *_encode(after),
            principal, outcome, error)  # fmt: skip


def _decode(text: str | None) -> Scalar:
    if text is None:
        return None
    result: Scalar = json.loads(text)
    return result


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    return JournalEntry(
        id=row[0],
        at=row[1],
        kind=row[2],
        ref=ControlRef(row[3], row[4], row[5]),
        before=_decode(row[6]),
        before_string=row[7],
        after=_decode(row[8]),
        after_string=row[9],
        principal=row[10],
        outcome=row[11],
        error=row[12],
    )


def _call(row: tuple[Any, ...]) -> CallRecord:
    fields = dict(zip(_CALL_COLUMNS.split(", "), row, strict=True))
    return CallRecord(**fields)


def _connect(path: str) -> sqlite3.Connection:
    # One connection used from worker threads one call at a time (serialized by a trio.Lock).
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        # No checkpoint inside a commit (it fsyncs): the flush task checkpoints in a worker
        # thread instead, so a commit on the trio thread is one append to the WAL file.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.executescript(_SCHEMA)
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version in (0, 1):  # new, or version 1 that just gained the calls table
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        elif version != _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"journal {path} has schema version {version}; this qsysd reads {_SCHEMA_VERSION}"
            )
    except BaseException:
        conn.close()
        raise
    return conn


class Journal:
    """History of value changes and audit of writes, in one SQLite database (WAL).

    Open it with ``async with Journal.open(path) as journal``; ``":memory:"`` works for tests.
    Changes are buffered and written in batches by a flush task (every ``flush_interval``
    seconds or ``batch_size`` rows); writes are flushed before :meth:`record_write` returns
    (or, with ``commit=False``, by the caller's next :meth:`flush` or :meth:`record_call`),
    and calls committed before :meth:`record_call` returns, with every row buffered before
    them in the same transaction, so what a caller was answered is committed: a committed
    row survives the process being killed (WAL, ``synchronous=NORMAL``: the commit is in
    the operating system's cache), and a power loss within about one
    ``flush_interval`` (the WAL is synced at each checkpoint). Rows older than
    ``retention_days`` and beyond the newest ``max_rows`` are pruned. A commit of a few rows
    runs on the trio thread (an append to the WAL, 15-70 us, a tenth of a worker-thread
    round trip); batches, checkpoints, pruning and queries run in a worker thread. The
    journal never sees secrets.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        retention_days: float | None = 30.0,
        max_rows: int | None = 1_000_000,
        flush_interval: float = 1.0,
        batch_size: int = 5_000,
        max_pending: int = 100_000,
        prune_interval: float = 3_600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        #: False when the database file could not be opened and rows are kept in memory.
        self.persistent = True
        self.retention_days = retention_days
        self.max_rows = max_rows
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.prune_interval = prune_interval
        self._clock = clock
        self._lock = trio.Lock()
        self._pending: deque[_Row] = deque(maxlen=max_pending)
        self._wakeup = trio.Event()
        self._rows = 0
        self._changes = 0
        self._writes = 0
        self._calls = 0
        self._call_rows = 0
        self._flushes = 0
        self._dropped = 0
        self._pruned = 0
        self._failures = 0
        self._failing = 0  # failed flushes since the last good one
        self._last_prune = -math.inf
        self._uncheckpointed = 0  # commits in the WAL since the last checkpoint

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        retention_days: float | None = 30.0,
        max_rows: int | None = 1_000_000,
        flush_interval: float = 1.0,
        batch_size: int = 5_000,
        max_pending: int = 100_000,
        prune_interval: float = 3_600.0,
        clock: Callable[[], float] = time.time,
    ) -> AsyncIterator[Journal]:
        """Open (creating if needed) the journal and run its flush task; flush and close at exit.

        A journal that cannot be opened (folder not writable, not a database, a newer schema)
        is not fatal: it is logged as ``journal.unavailable`` and kept in memory instead, so
        history and the audit of writes work until the daemon stops (``persistent`` is False).
        """
        try:
            conn = await trio.to_thread.run_sync(_connect, os.fspath(path))
            persistent = True
        except (sqlite3.Error, OSError) as exc:
            log.error(
                "journal.unavailable",
                path=os.fspath(path),
                error=f"{type(exc).__name__}: {exc}",
                hint="history is kept in memory until qsysd stops; make the state folder "
                "writable (or move the file aside), or set state.journal = false",
            )
            conn = await trio.to_thread.run_sync(_connect, ":memory:")
            persistent = False
        journal = cls(
            conn,
            retention_days=retention_days,
            max_rows=max_rows,
            flush_interval=flush_interval,
            batch_size=batch_size,
            max_pending=max_pending,
            prune_interval=prune_interval,
            clock=clock,
        )
        journal.persistent = persistent
        if not persistent:  # bounded in RAM whatever the configured size
            journal.max_rows = min(journal.max_rows or _MEMORY_MAX_ROWS, _MEMORY_MAX_ROWS)
        try:
            journal._rows = await journal._db(
                lambda c: int(c.execute("SELECT count(*) FROM journal").fetchone()[0])
            )
            await journal.prune()
            async with trio.open_nursery() as nursery:
                await nursery.start(journal._run_flusher)
                try:
                    yield journal
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            with trio.move_on_after(10.0, shield=True):
                await journal.flush()
            await journal._close()

    async def _db(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise trio.ClosedResourceError("the journal is closed")
            return await trio.to_thread.run_sync(fn, conn)

    async def _commit(self, fn: Callable[[sqlite3.Connection], None], rows: int) -> None:
        """Run ``fn`` (a small write) and commit it before returning.

        With the connection free and few rows, on the trio thread, without yielding: nothing
        else can use the connection meanwhile, and the commit is an append to the WAL (no
        checkpoint, no fsync). Otherwise, as every other call, in a worker thread.
        """
        conn = self._conn
        if conn is None or self._lock.locked() or rows > _INLINE_ROWS:
            await self._db(fn)
        else:
            fn(conn)  # no checkpoint after it: a cancel must not hide that it was committed
        self._uncheckpointed += 1
        if self._uncheckpointed >= _CHECKPOINT_COMMITS:
            self._wakeup.set()

    async def checkpoint(self) -> None:
        """Copy the WAL into the database and sync both (in a worker thread)."""
        if not self._uncheckpointed:
            return
        self._uncheckpointed = 0
        try:
            await self._db(lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        except (sqlite3.Error, OSError) as exc:
            log.warning("journal.checkpoint_failed", error=str(exc))

    async def _close(self) -> None:
        with trio.CancelScope(shield=True):
            async with self._lock:
                conn, self._conn = self._conn, None
                if conn is not None:
                    await trio.to_thread.run_sync(conn.close)

    # -- recording ----------------------------------------------------------------------

    def _push(self, row: _Row) -> None:
        if len(self._pending) == self._pending.maxlen:
            self._dropped += 1  # the deque drops the oldest row; counted, logged at flush
        self._pending.append(row)
        if len(self._pending) >= self.batch_size:
            self._wakeup.set()

    def record_change(
        self, value: ControlValue, before: ControlValue | None = None, at: float | None = None
    ) -> None:
        """Queue one change for the next batch (never waits; a :data:`ChangeListener`)."""
        self._push(_row(self._clock() if at is None else at, "change", value.ref, before, value))
        self._changes += 1

    def follow(self, store: StateStore) -> Callable[[], None]:
        """Record every change of ``store`` that has a previous value; returns the undo.

        First values (a control seen for the first time) are not changes and are skipped.
        """

        def listener(value: ControlValue, before: ControlValue | None, at: float) -> None:
            if before is not None:
                self.record_change(value, before, at)

        return store.add_listener(listener)

    async def record_write(
        self,
        ref: ControlRef,
        *,
        principal: str | None,
        before: ControlValue | None,
        after: ControlValue | None,
        outcome: str,
        error: str | None = None,
        at: float | None = None,
        commit: bool = True,
    ) -> None:
        """Audit one write and flush it (with any buffered changes) before returning.

        ``commit=False`` only buffers it: the caller commits it with :meth:`flush` or with the
        call's :meth:`record_call` before answering (one transaction for a whole call).
        """
        when = self._clock() if at is None else at
        self._push(_row(when, "write", ref, before, after, principal, outcome, error))
        self._writes += 1
        if commit:
            await self.flush()

    async def flush(self) -> None:
        """Write every buffered row in one transaction; on failure keep them for the next try."""
        if not self._pending:
            await trio.lowlevel.checkpoint()
            return
        rows = list(self._pending)
        self._pending.clear()

        def insert(conn: sqlite3.Connection) -> None:
            with conn:  # one transaction: the point of batching
                conn.execute("BEGIN")
                conn.executemany(_INSERT, rows)

        try:
            await self._commit(insert, len(rows))
        except (sqlite3.Error, OSError) as exc:
            self._failures += 1
            self._failing += 1
            self._requeue(rows)
            # A full disk fails every flush: say so at first, then every 60th time.
            if self._failing % 60 == 1:
                log.warning(
                    "journal.flush_failed",
                    rows=len(rows),
                    error=str(exc),
                    failures_in_a_row=self._failing,
                )
            return
        except BaseException:  # cancelled while waiting for the connection: nothing written
            self._requeue(rows)
            raise
        if self._failing:
            log.info("journal.flush_recovered", after_failures=self._failing)
            self._failing = 0
        self._rows += len(rows)
        self._flushes += 1
        if self._dropped:
            log.warning("journal.rows_dropped", dropped=self._dropped)
        over = self.max_rows is not None and self._rows > self.max_rows * 1.1
        if over or trio.current_time() - self._last_prune >= self.prune_interval:
            await self.prune()

    def _requeue(self, rows: list[_Row]) -> None:
        # Back in front of anything queued meanwhile; the bound still applies, oldest first out.
        newer = list(self._pending)
        self._pending.clear()
        total = len(rows) + len(newer)
        maxlen = self._pending.maxlen
        if maxlen is not None and total > maxlen:
            self._dropped += total - maxlen
        self._pending.extend(rows)
        self._pending.extend(newer)

    async def _run_flusher(self, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        while True:
            with trio.move_on_after(self.flush_interval):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            await self.flush()
            await self.checkpoint()

    # -- retention -----------------------------------------------------------------------

    async def prune(self) -> int:
        """Delete rows past the retention age and beyond ``max_rows``; return how many."""
        self._last_prune = trio.current_time()
        cutoff = None
        if self.retention_days is not None:
            cutoff = self._clock() - self.retention_days * 86_400.0
        max_rows = self.max_rows

        def work(conn: sqlite3.Connection) -> tuple[int, int, int]:
            deleted = 0
            with conn:
                conn.execute("BEGIN")
                for table in ("journal", "calls"):
                    if cutoff is not None:
                        deleted += conn.execute(
                            f"DELETE FROM {table} WHERE at < ?", (cutoff,)
                        ).rowcount
                    if max_rows is not None:
                        deleted += conn.execute(
                            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                            "ORDER BY at DESC, id DESC LIMIT -1 OFFSET ?)",
                            (max_rows,),
                        ).rowcount
            (rows,) = conn.execute("SELECT count(*) FROM journal").fetchone()
            (calls,) = conn.execute("SELECT count(*) FROM calls").fetchone()
            return deleted, int(rows), int(calls)

        try:
            deleted, self._rows, self._call_rows = await self._db(work)
        except (sqlite3.Error, OSError) as exc:
            self._failures += 1
            log.warning("journal.prune_failed", error=str(exc))
            return 0
        self._pruned += deleted
        if deleted:
            log.info("journal.pruned", rows=deleted)
        return deleted

    # -- queries -------------------------------------------------------------------------

    async def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        core: str | None = None,
        component: str | None = None,
        control: str | None = None,
        kind: Kind | None = None,
        principal: str | None = None,
        named: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[JournalEntry]:
        """Rows matching every given filter, newest first; ``since`` inclusive, ``until`` not.

        ``named`` keeps named controls only (no component), so a named control's history
        is not mixed with component controls of the same name.

        Buffered changes are flushed first, so a query sees everything recorded before it.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where, params = _where(
            ("at", ">=", since),
            ("at", "<", until),
            ("core", "=", core),
            ("component", "=", component),
            ("control", "=", control),
            ("kind", "=", kind),
            ("principal", "=", principal),
            extra=["component IS NULL"] if named else [],
        )
        sql = f"SELECT {_COLUMNS} FROM journal {where} ORDER BY at DESC, id DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        await self.flush()
        rows = await self._db(lambda c: c.execute(sql, params).fetchall())
        return [_entry(row) for row in rows]

    async def record_call(self, record: CallRecord) -> None:
        """Audit one tool call or refusal, committed before returning.

        Rows buffered before it (the call's writes, changes) go in the same transaction.
        """
        row = record.row()
        rows = list(self._pending)
        self._pending.clear()

        def insert(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN")
                if rows:
                    conn.executemany(_INSERT, rows)
                conn.execute(_INSERT_CALL, row)

        try:
            await self._commit(insert, len(rows) + 1)
        except BaseException:
            self._requeue(rows)  # the flusher tries them again
            raise
        if rows:
            self._rows += len(rows)
            self._flushes += 1
        self._calls += 1
        self._call_rows += 1
        # A flood of refusals (401s) must not outgrow the bound until the hourly prune.
        if self.max_rows is not None and self._call_rows > self.max_rows * 1.1:
            await self.prune()

    async def query_calls(
        self,
        *,
        principal: str | None = None,
        outcome: str | None = None,
        tool: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[CallRecord]:
        """Audited calls matching every given filter, newest first; ``since`` inclusive."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where, params = _where(
            ("at", ">=", since),
            ("at", "<", until),
            ("principal", "=", principal),
            ("outcome", "=", outcome),
            ("tool", "=", tool),
        )
        sql = (
            f"SELECT {_CALL_COLUMNS} FROM calls {where} ORDER BY at DESC, id DESC LIMIT ? OFFSET ?"
        )
        params += [limit, offset]
        rows = await self._db(lambda c: c.execute(sql, params).fetchall())
        return [_call(row) for row in rows]

    def statistics(self) -> JournalStatistics:
        return JournalStatistics(
            rows=self._rows,
            changes_recorded=self._changes,
            writes_recorded=self._writes,
            pending=len(self._pending),
            flushes=self._flushes,
            dropped=self._dropped,
            pruned=self._pruned,
            failures=self._failures,
            persistent=self.persistent,
        )


def _where(
    *filters: tuple[str, str, object | None], extra: list[str] | None = None
) -> tuple[str, list[object]]:
    """A WHERE clause of the filters whose value is given, and its parameters."""
    clauses = [f"{column} {op} ?" for column, op, value in filters if value is not None]
    params: list[object] = [value for _, _, value in filters if value is not None]
    clauses += extra or []
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params
