"""The state layer on bad ground: an unopenable journal, unreadable or odd snapshots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings, strategies as st

from qsysd.state import (
    ControlRef,
    ControlValue,
    FileStateBackend,
    Journal,
    SnapshotCorrupt,
    StateStore,
    decode_snapshot,
    encode_snapshot,
)


def unopenable(tmp_path: Path) -> Path:
    """A journal path that no one (root included) can create: its folder is a file."""
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    return blocker / "journal.sqlite3"


async def test_a_journal_that_cannot_be_opened_is_kept_in_memory(tmp_path: Path) -> None:
    ref = ControlRef("main", "Gain", "gain")
    with trio.fail_after(5):
        async with Journal.open(unopenable(tmp_path), max_rows=None) as journal:
            assert not journal.persistent and not journal.statistics().persistent
            assert journal.max_rows == 100_000  # bounded in memory
            await journal.record_write(
                ref,
                principal="alice",
                before=None,
                after=ControlValue(ref, -3.0, "-3.0dB"),
                outcome="ok",
            )
            (entry,) = await journal.query(kind="write")
            assert entry.principal == "alice" and entry.after == -3.0


async def test_a_file_that_is_not_a_journal_is_kept_in_memory_too(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"this is not an SQLite database" * 100)
    with trio.fail_after(5):
        async with Journal.open(path) as journal:
            assert not journal.persistent
    assert path.read_bytes().startswith(b"this is not")  # left for the operator to look at


async def test_a_snapshot_path_that_cannot_be_read_starts_empty(tmp_path: Path) -> None:
    folder = tmp_path / "snapshot.json"
    folder.mkdir()
    with trio.fail_after(5):
        assert await FileStateBackend(folder).load() is None
    assert folder.is_dir()


async def test_a_corrupt_snapshot_that_cannot_be_set_aside_starts_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text('{"format": 1, "cores": 5}')

    def refuse(*_: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with trio.fail_after(5):
        assert await FileStateBackend(path).load() is None
    assert path.exists()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
saved_controls = st.fixed_dictionaries(
    {"name": st.text(max_size=4), "type": st.just("Float"), "direction": st.just("Read/Write")},
    optional={
        "component": st.none() | st.text(max_size=4),
        "value": json_values,
        "has_value": json_values,
        "string": json_values,
        "position": json_values,
        "metadata": json_values,
        "version": json_values,
        "changed_at": json_values,
        "value_min": json_values,
    },
)
snapshots = st.fixed_dictionaries(
    {
        "format": st.just(1),
        "taken_at": st.floats(allow_nan=False) | json_values,
        "cores": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=4), "design_code": st.none() | st.text(max_size=4)},
                optional={"controls": st.lists(saved_controls, max_size=3)},
            ),
            max_size=2,
        ),
    }
)


@settings(max_examples=150, deadline=None)
@given(snapshots)
def test_a_snapshot_of_odd_values_is_read_or_refused_never_crashes(data: dict[str, Any]) -> None:
    try:
        snapshot = decode_snapshot(json.dumps(data).encode())
    except SnapshotCorrupt:
        return
    store = StateStore()
    store.restore(snapshot)
    for core in store.cores():
        assert store.is_stale(core)
        for component in [None, *(c.name for c in store.components(core))]:
            store.controls(core, component)
    again = decode_snapshot(encode_snapshot(store.picture()))
    assert {c.name for c in again.cores} == {c.name for c in snapshot.cores}


def test_unknown_controls_a_core_invents_are_capped() -> None:
    from qsysd.state import ControlRef, ControlValue, StateStore

    store = StateStore(max_unknown=5)
    store.replace_design("main", "code", [], [], [])
    invented = [ControlValue(ControlRef("main", None, f"ghost{i}"), 1.0, "1") for i in range(20)]
    store.apply(invented)
    assert len(store.controls("main", None)) == 5
    stats = store.statistics()
    assert (stats.unknown_added, stats.unknown_ignored) == (5, 15)
    store.replace_design("main", "code2", [], [], [])  # a new design starts a new allowance
    store.apply(invented[:3])
    assert len(store.controls("main", None)) == 3
