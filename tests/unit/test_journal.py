"""The journal: change history and write audit in real SQLite; batching, retention, queries."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, strategies as st

from qsysd.api._audit import AuditTrail
from qsysd.state import (
    CallRecord,
    ComponentInfo,
    ControlInfo,
    ControlRef,
    ControlValue,
    Journal,
    StateStore,
)
from qsysd.state._journal import _decode, _row

GAIN = ControlRef("main", "Lobby", "gain")
MUTE = ControlRef("main", "Lobby", "mute")
OTHER = ControlRef("backup", "Hall", "gain")
NAMED = ControlRef("main", None, "Master")


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def value(ref: ControlRef, v: float | bool | str | None, string: str = "") -> ControlValue:
    return ControlValue(ref, v, string or str(v), None)


async def test_changes_and_writes_are_recorded_and_read_back_newest_first(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    with trio.fail_after(10):
        async with Journal.open(tmp_path / "journal.db", clock=clock) as journal:
            journal.record_change(value(GAIN, -3.0, "-3dB"), value(GAIN, -6.0, "-6dB"))
            clock.now += 1
            await journal.record_write(
                MUTE,
                principal="alice",
                before=value(MUTE, False),
                after=value(MUTE, True),
                outcome="ok",
            )
            clock.now += 1
            await journal.record_write(
                NAMED,
                principal="bob",
                before=None,
                after=None,
                outcome="error",
                error="Core main unreachable",
            )
            rows = await journal.query()
    assert [r.kind for r in rows] == ["write", "write", "change"]
    failed, write, change = rows
    assert (failed.ref, failed.principal, failed.outcome) == (NAMED, "bob", "error")
    assert failed.error == "Core main unreachable"
    assert failed.before is None and failed.after is None
    assert (write.before, write.after, write.after_string) == (False, True, "True")
    assert (change.ref, change.before, change.after) == (GAIN, -6.0, -3.0)
    assert change.before_string == "-6dB"
    assert change.at == clock.now - 2
    assert change.principal is None


async def test_journal_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with trio.fail_after(10):
        async with Journal.open(path) as journal:
            journal.record_change(value(GAIN, 1.0), value(GAIN, 0.0))
        async with Journal.open(path) as journal:
            assert journal.statistics().rows == 1
            [row] = await journal.query()
    assert row.after == 1.0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_changes_are_batched_into_few_transactions() -> None:
    with trio.fail_after(10):
        async with Journal.open(":memory:", flush_interval=3600, batch_size=500) as journal:
            for i in range(1000):
                journal.record_change(value(GAIN, float(i)), value(GAIN, float(i - 1)))
            await journal.flush()
            stats = journal.statistics()
    assert stats.pending == 0
    assert stats.rows == 1000
    assert stats.flushes <= 3  # one per full batch at most, never one per row
    assert stats.changes_recorded == 1000


async def test_flush_task_takes_buffered_changes_on_its_interval(
    mock_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(10):
        async with Journal.open(":memory:", flush_interval=5.0) as journal:
            journal.record_change(value(GAIN, 1.0), value(GAIN, 0.0))
            mock_clock.jump(4)
            await trio.testing.wait_all_tasks_blocked()
            assert journal.statistics().pending == 1
            mock_clock.jump(2)
            await trio.testing.wait_all_tasks_blocked()
            assert journal.statistics().pending == 0  # the flush task took them
            assert len(await journal.query()) == 1


async def test_closing_flushes_what_is_buffered(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with trio.fail_after(10):
        async with Journal.open(path, flush_interval=3600) as journal:
            journal.record_change(value(GAIN, 1.0), value(GAIN, 0.0))
        async with Journal.open(path) as journal:
            assert len(await journal.query()) == 1


async def test_query_filters_by_core_component_control_kind_and_time() -> None:
    clock = FakeClock(1000.0)
    with trio.fail_after(10):
        async with Journal.open(":memory:", clock=clock, retention_days=None) as journal:
            for ref in (GAIN, MUTE, OTHER, NAMED):
                journal.record_change(value(ref, 1.0), value(ref, 0.0))
                clock.now += 10
            await journal.record_write(
                GAIN, principal="alice", before=None, after=value(GAIN, 2.0), outcome="ok"
            )

            async def refs(**filters: object) -> list[ControlRef]:
                return [r.ref for r in await journal.query(**filters)]  # type: ignore[arg-type]

            assert await refs(core="backup") == [OTHER]
            assert await refs(component="Lobby") == [GAIN, MUTE, GAIN]
            assert await refs(control="gain") == [GAIN, OTHER, GAIN]
            assert await refs(kind="write") == [GAIN]
            assert await refs(kind="change", core="main", control="gain") == [GAIN]
            assert await refs(principal="alice") == [GAIN]
            assert await refs(since=1010.0, until=1030.0) == [OTHER, MUTE]
            journal.record_change(value(ControlRef("main", "Lobby", "Master"), 1.0), value(GAIN, 0))
            assert await refs(control="Master", named=True) == [NAMED]


async def test_query_pages_with_limit_and_offset() -> None:
    clock = FakeClock(1000.0)
    with trio.fail_after(10):
        async with Journal.open(":memory:", clock=clock) as journal:
            for i in range(10):
                journal.record_change(value(GAIN, float(i)), value(GAIN, float(i - 1)))
                clock.now += 1
            first = await journal.query(limit=4)
            second = await journal.query(limit=4, offset=4)
            last = await journal.query(limit=4, offset=8)
            with pytest.raises(ValueError, match="negative"):
                await journal.query(limit=-1)
    assert [r.after for r in first + second + last] == [float(i) for i in range(9, -1, -1)]


async def test_retention_prunes_rows_older_than_the_age_limit() -> None:
    clock = FakeClock()
    with trio.fail_after(10):
        async with Journal.open(":memory:", clock=clock, retention_days=1) as journal:
            journal.record_change(value(GAIN, 1.0), value(GAIN, 0.0))
            clock.now += 2 * 86_400
            journal.record_change(value(GAIN, 2.0), value(GAIN, 1.0))
            await journal.flush()
            assert await journal.prune() == 1
            rows = await journal.query()
            assert journal.statistics().pruned == 1
    assert [r.after for r in rows] == [2.0]


async def test_retention_keeps_only_the_newest_max_rows() -> None:
    clock = FakeClock()
    with trio.fail_after(10):
        async with Journal.open(":memory:", clock=clock, max_rows=5) as journal:
            for i in range(8):
                journal.record_change(value(GAIN, float(i)), value(GAIN, float(i - 1)))
                clock.now += 1
            await journal.flush()  # 8 > 5 * 1.1: the flush prunes by itself
            rows = await journal.query()
            assert journal.statistics().rows == 5
    assert [r.after for r in rows] == [7.0, 6.0, 5.0, 4.0, 3.0]


async def test_follow_records_store_changes_but_not_first_values() -> None:
    store = StateStore()
    store.replace_design(
        "main",
        "code",
        [ComponentInfo("main", "Lobby", "gain", "id")],
        [ControlInfo(GAIN, "Float", "Read/Write")],
        [],
    )
    with trio.fail_after(10):
        async with Journal.open(":memory:") as journal:
            unfollow = journal.follow(store)
            store.apply([value(GAIN, 1.0)])  # first value: not a change
            store.apply([value(GAIN, 2.0)])
            store.apply([value(GAIN, 3.0)])
            unfollow()
            store.apply([value(GAIN, 4.0)])
            rows = await journal.query()
    assert [(r.before, r.after) for r in rows] == [(2.0, 3.0), (1.0, 2.0)]


async def test_text_and_null_values_keep_their_types() -> None:
    with trio.fail_after(10):
        async with Journal.open(":memory:") as journal:
            journal.record_change(value(NAMED, "hello"), value(NAMED, None, "none"))
            [row] = await journal.query()
    assert (row.before, row.after, row.ref) == (None, "hello", NAMED)


async def test_a_full_buffer_drops_the_oldest_changes_and_counts_them() -> None:
    with trio.fail_after(10):
        async with Journal.open(":memory:", max_pending=3, flush_interval=3600) as journal:
            for i in range(5):
                journal.record_change(value(GAIN, float(i)), value(GAIN, float(i - 1)))
            assert journal.statistics().dropped == 2
            rows = await journal.query()
    assert [r.after for r in rows] == [4.0, 3.0, 2.0]


async def test_using_a_closed_journal_fails_clearly() -> None:
    with trio.fail_after(10):
        async with Journal.open(":memory:") as journal:
            pass
        with pytest.raises(trio.ClosedResourceError, match="closed"):
            await journal.query()


async def test_a_failing_journal_warns_at_first_then_rarely(tmp_path: Path) -> None:
    import io
    import json

    from qsysd.logs import configure_logging
    from qsysd.state import ControlRef, ControlValue

    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    try:
        async with Journal.open(str(tmp_path / "j.sqlite3")) as journal:
            connection = journal._conn
            assert connection is not None
            connection.close()  # every flush fails from now on, as on a full disk
            value = ControlValue(ControlRef("main", "Bar", "gain"), -1.0, "-1.0dB")
            for _ in range(61):
                journal.record_change(value, value)
                await journal.flush()
            assert journal.statistics().failures == 61
            assert journal.statistics().pending == 61  # kept for the next try, not lost
    finally:
        configure_logging("debug", "console")
    warnings = [
        json.loads(line)
        for line in stream.getvalue().splitlines()
        if '"journal.flush_failed"' in line
    ]
    assert [w["failures_in_a_row"] for w in warnings] == [1, 61]


def count_rows(path: Path, table: str) -> int:
    """Rows of ``table`` as another process would see them (its own connection)."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


async def test_a_write_and_a_call_are_committed_before_their_record_returns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    call = CallRecord(1.0, "stdio", "admin", "stdio", None, "7", "qsys_set", "{}", "ok", None, None)
    with trio.fail_after(10):
        async with Journal.open(path, flush_interval=3600) as journal:
            await journal.record_write(GAIN, principal="p", before=None, after=None, outcome="ok")
            await journal.record_call(call)
            # committed, not buffered: another connection sees both while this one is open
            assert count_rows(path, "journal") == 1
            assert count_rows(path, "calls") == 1


async def test_the_flush_task_checkpoints_the_wal_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    call = CallRecord(1.0, "stdio", "admin", "stdio", None, "7", "qsys_set", "{}", "ok", None, None)
    with trio.fail_after(10):
        async with Journal.open(path, flush_interval=0.05) as journal:
            for _ in range(3):
                await journal.record_call(call)
            while journal.statistics().flushes == 0:  # a flush task round, then its checkpoint
                journal.record_change(value(GAIN, 1.0), value(GAIN, 0.0))
                await trio.sleep(0.05)
            await trio.sleep(0.2)
            # the database file alone (without its WAL) holds the calls: they were checkpointed
            copy = tmp_path / "alone.db"
            copy.write_bytes(path.read_bytes())
            assert count_rows(copy, "calls") == 3


async def test_buffered_writes_are_committed_with_the_call_row_in_one_transaction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    call = CallRecord(1.0, "stdio", "admin", "stdio", None, "8", "qsys_set", "{}", "ok", None, None)
    with trio.fail_after(10):
        async with Journal.open(path, flush_interval=3600) as journal:
            for ref in (GAIN, MUTE):
                await journal.record_write(
                    ref, principal="p", before=None, after=None, outcome="ok", commit=False
                )
            assert count_rows(path, "journal") == 0
            assert journal.statistics().pending == 2
            await journal.record_call(call)
            assert count_rows(path, "journal") == 2
            assert count_rows(path, "calls") == 1
            stats = journal.statistics()
            assert stats.pending == 0 and stats.flushes == 1


async def test_a_write_operation_commits_its_rows_once_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with trio.fail_after(10):
        async with Journal.open(path, flush_interval=3600) as journal:
            audit = AuditTrail(journal, FakeClock(), 10)
            async with audit.writing():
                await audit.record(GAIN, "p", None, value(GAIN, -3.0), "ok", None)
                await audit.record(MUTE, "p", None, value(MUTE, True), "ok", None)
                assert count_rows(path, "journal") == 0
            assert count_rows(path, "journal") == 2
            assert journal.statistics().flushes == 1
            # Outside an operation, a write row is committed before record() returns.
            await audit.record(NAMED, "p", None, value(NAMED, 1.0), "ok", None)
            assert count_rows(path, "journal") == 3


async def test_within_a_call_path_the_call_row_commits_the_operation_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    call = CallRecord(1.0, "stdio", "admin", "stdio", None, "9", "qsys_set", "{}", "ok", None, None)
    with trio.fail_after(10):
        async with Journal.open(path, flush_interval=3600) as journal:
            audit = AuditTrail(journal, FakeClock(), 10)
            with audit.call_row_follows():
                async with audit.writing():
                    await audit.record(GAIN, "p", None, value(GAIN, -3.0), "ok", None)
                assert count_rows(path, "journal") == 0
            await audit.record_call(call)
            assert count_rows(path, "journal") == 1
            assert count_rows(path, "calls") == 1
            assert journal.statistics().flushes == 1
            # A call that records no row of its own (a read tool) commits at the operation's end.
            with audit.call_row_follows(False):
                async with audit.writing():
                    await audit.record(MUTE, "p", None, value(MUTE, True), "ok", None)
            assert count_rows(path, "journal") == 2


@given(st.one_of(st.floats(), st.integers(), st.booleans(), st.text(max_size=20), st.none()))
def test_a_value_is_stored_as_json_dumps_writes_it(value: float | int | bool | str | None) -> None:
    row = _row(1.0, "change", GAIN, None, ControlValue(GAIN, value, "s"))
    assert row[7] == json.dumps(value)  # after_value
    assert _decode(row[7]) == value or value != value  # NaN is NaN
