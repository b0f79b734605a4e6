"""Snapshots: JSON round trip, atomic file writes, corrupt files set aside, the snapshot task."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import structlog
import trio
import trio.testing

from qsysd.state import (
    SNAPSHOT_FORMAT,
    ComponentInfo,
    ControlInfo,
    ControlRef,
    ControlValue,
    FileStateBackend,
    Snapshot,
    SnapshotCorrupt,
    SnapshotTask,
    StateStore,
    decode_snapshot,
    encode_snapshot,
    run_snapshots,
)

GAIN = ControlRef("main", "Lobby", "gain")
LABEL = ControlRef("main", None, "Label")
CHOICE = ControlRef("main", "Lobby", "source")


def make_store() -> StateStore:
    store = StateStore()
    store.replace_design(
        "main",
        "code-1",
        [ComponentInfo("main", "Lobby", "gain", "id-1", (("a", "1"),))],
        [
            ControlInfo(GAIN, "Float", "Read/Write", -100.0, 20.0, "-100dB", "20dB"),
            ControlInfo(LABEL, "Text", "Read/Write"),
            ControlInfo(CHOICE, "Text", "Read/Write"),
        ],
        [
            ControlValue(GAIN, -6.5, "-6.5dB", 0.7),
            ControlValue(LABEL, "héllo", "héllo"),
            ControlValue(CHOICE, "B", "B", None, {"Choices": ["A", "B"], "Disabled": False}),
        ],
    )
    return store


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class MemoryBackend:
    def __init__(self, *, fail: bool = False) -> None:
        self.saved: list[Snapshot] = []
        self.fail = fail

    async def save(self, snapshot: Snapshot) -> None:
        await trio.lowlevel.checkpoint()
        if self.fail:
            raise OSError("disk full")
        self.saved.append(snapshot)

    async def load(self) -> Snapshot | None:
        await trio.lowlevel.checkpoint()
        return self.saved[-1] if self.saved else None


def test_encoded_snapshot_round_trips_with_its_format_version() -> None:
    picture = make_store().picture()
    data = encode_snapshot(picture)
    assert json.loads(data)["format"] == SNAPSHOT_FORMAT
    assert decode_snapshot(data) == picture


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"format": 99, "taken_at": 1}', "format 99"),
        (b'{"format": 1}', "invalid snapshot"),
        (b'{"format": 1, "taken_at": 1, "extra": 2}', "invalid snapshot"),
    ],
)
def test_decode_rejects_unreadable_snapshots_saying_why(data: bytes, reason: str) -> None:
    with pytest.raises(SnapshotCorrupt, match=reason):
        decode_snapshot(data)


def test_decode_rejects_a_truncated_snapshot() -> None:
    data = encode_snapshot(make_store().picture())
    with pytest.raises(SnapshotCorrupt, match="not JSON"):
        decode_snapshot(data[: len(data) // 2])


async def test_file_backend_saves_and_loads_leaving_no_temp_files(tmp_path: Path) -> None:
    backend = FileStateBackend(tmp_path / "snapshot.json")
    picture = make_store().picture()
    with trio.fail_after(10):
        await backend.save(picture)
        await backend.save(picture)
        assert await backend.load() == picture
    assert names(tmp_path) == ["snapshot.json"]
    assert (tmp_path / "snapshot.json").stat().st_mode & 0o077 == 0


async def test_load_removes_temp_files_of_saves_a_crash_cut_short(tmp_path: Path) -> None:
    backend = FileStateBackend(tmp_path / "snapshot.json")
    picture = make_store().picture()
    with trio.fail_after(10):
        await backend.save(picture)
        for n in range(3):  # what SIGKILL during _write_atomically leaves behind
            (tmp_path / f".snapshot.json.{n}abc.tmp").write_bytes(b'{"format": 1, "co')
        (tmp_path / ".other.json.x.tmp").write_bytes(b"not ours")
        with structlog.testing.capture_logs() as logs:
            assert await backend.load() == picture
    assert names(tmp_path) == [".other.json.x.tmp", "snapshot.json"]
    [event] = [e for e in logs if e["event"] == "state.snapshot_temp_removed"]
    assert event["files"] == 3


async def test_file_backend_syncs_the_file_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without both, a power cut can leave an empty snapshot or the old one behind the rename.
    path = tmp_path / "snapshot.json"
    folder = os.stat(tmp_path).st_ino
    events: list[tuple[str, int]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with trio.fail_after(10):
        await FileStateBackend(path).save(make_store().picture())
    monkeypatch.undo()
    file = os.stat(path).st_ino
    assert [e for e in events if e[1] in (file, folder)] == [
        ("fsync", file),
        ("replace", file),
        ("fsync", folder),
    ]


async def test_file_backend_load_without_a_file_returns_none(tmp_path: Path) -> None:
    with trio.fail_after(10):
        assert await FileStateBackend(tmp_path / "none.json").load() is None


async def test_failed_write_keeps_the_previous_snapshot_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "snapshot.json"
    backend = FileStateBackend(path)
    store = make_store()
    first = store.picture()
    with trio.fail_after(10):
        await backend.save(first)
        store.apply([ControlValue(GAIN, 1.0, "1dB", 0.9)])

        def broken_replace(src: str, dst: str) -> None:
            raise OSError("read-only file system")

        monkeypatch.setattr(os, "replace", broken_replace)
        with pytest.raises(OSError, match="read-only"):
            await backend.save(store.picture())
        monkeypatch.undo()
        assert await backend.load() == first
    assert names(tmp_path) == ["snapshot.json"]


@pytest.mark.parametrize("cut", ["truncated", "garbage"])
async def test_corrupt_snapshot_file_is_set_aside_and_reported(tmp_path: Path, cut: str) -> None:
    path = tmp_path / "snapshot.json"
    backend = FileStateBackend(path)
    with trio.fail_after(10):
        await backend.save(make_store().picture())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3] if cut == "truncated" else b"\x00garbage")
        with structlog.testing.capture_logs() as logs:
            assert await backend.load() is None
        assert await backend.load() is None  # nothing left to trip over
    aside = [tmp_path / n for n in names(tmp_path) if n.startswith("snapshot.json.corrupt-")]
    assert len(aside) == 1
    assert not path.exists()
    [event] = [e for e in logs if e["event"] == "state.snapshot_corrupt"]
    assert event["log_level"] == "warning"
    assert "not JSON" in event["reason"]
    assert event["set_aside"] == str(aside[0])


async def test_restore_from_file_marks_values_stale_until_the_core_confirms(
    tmp_path: Path,
) -> None:
    backend = FileStateBackend(tmp_path / "snapshot.json")
    original = make_store()
    with trio.fail_after(10):
        await backend.save(original.picture())
        snapshot = await backend.load()
    assert snapshot is not None
    store = StateStore()
    store.restore(snapshot)
    reading = store.read(CHOICE)
    assert reading.stale
    assert reading.value == original.read(CHOICE).value
    assert reading.value is not None and reading.value.metadata["Choices"] == ["A", "B"]
    store.mark_live("main")
    assert not store.read(CHOICE).stale


async def test_snapshot_task_saves_on_the_interval_only_when_changed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = make_store()
    backend = MemoryBackend()
    task = SnapshotTask(store, backend, interval=10)
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(task.run)
            await trio.sleep(25)  # two intervals, nothing changed since start
            assert backend.saved == []
            store.apply([ControlValue(GAIN, 3.0, "3dB", 0.9)])
            await trio.sleep(10)
            assert len(backend.saved) == 1
            task.stop()
    assert len(backend.saved) == 1  # the final save had nothing new
    assert task.statistics().saves == 1


async def test_snapshot_task_saves_once_more_when_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = make_store()
    backend = MemoryBackend()
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_snapshots, store, backend, 60.0)
            store.apply([ControlValue(GAIN, 3.0, "3dB", 0.9)])
            nursery.cancel_scope.cancel()
    assert len(backend.saved) == 1
    assert backend.saved[0].cores == store.picture().cores


async def test_snapshot_failures_are_counted_and_never_fatal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = make_store()
    backend = MemoryBackend(fail=True)
    task = SnapshotTask(store, backend, interval=1)
    with trio.fail_after(100), structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(task.run)
            store.apply([ControlValue(GAIN, 3.0, "3dB", 0.9)])
            await trio.sleep(3.5)
            task.stop()
    stats = task.statistics()
    assert stats.saves == 0
    assert stats.failures >= 3
    assert stats.last_error == "OSError: disk full"
    assert any(e["event"] == "state.snapshot_failed" for e in logs)


def test_snapshot_task_rejects_a_useless_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        SnapshotTask(make_store(), MemoryBackend(), interval=0)


# Written by format 1 (controls as JSON objects, defaults left out), before format 2.
FORMAT_1 = (
    '{"taken_at":1764633600.5,"cores":[{"name":"main","design_code":"code-1","components":'
    '[{"core":"main","name":"Lobby","type":"gain","id":"id-1","properties":[["a","1"]]}],'
    '"controls":[{"component":"Lobby","name":"gain","type":"Float","direction":"Read/Write",'
    '"value_min":-100.0,"value_max":20.0,"string_min":"-100dB","string_max":"20dB",'
    '"has_value":true,"value":-6.5,"string":"-6.5dB","position":0.7,"changed_at":1764633500.25,'
    '"confirmed_at":1764633590.0,"version":3},{"component":"Lobby","name":"source","type":"Text",'
    '"direction":"Read/Write","has_value":true,"value":"B","string":"B","metadata":{"Choices":'
    '["A","B"],"Disabled":false},"changed_at":1764633500.25,"confirmed_at":1764633590.0,'
    '"version":1},{"component":null,"name":"Label","type":"Text","direction":"Read/Write",'
    '"has_value":true,"value":"h\u00e9llo","string":"h\u00e9llo","changed_at":1.0,'
    '"confirmed_at":2.0,"version":1},{"component":"Lobby","name":"meter","type":"Float",'
    '"direction":"Read Only"}]}],"format":1}'
).encode()


def test_a_format_1_snapshot_still_loads_with_every_field() -> None:
    snapshot = decode_snapshot(FORMAT_1)
    store = StateStore()
    store.restore(snapshot)
    gain = store.read(GAIN)
    assert gain.stale and gain.version == 3 and gain.changed_at == 1764633500.25
    assert gain.info == ControlInfo(GAIN, "Float", "Read/Write", -100.0, 20.0, "-100dB", "20dB")
    assert gain.value == ControlValue(GAIN, -6.5, "-6.5dB", 0.7)
    source = store.read(CHOICE).value
    assert source is not None and source.metadata == {"Choices": ["A", "B"], "Disabled": False}
    label = store.read(LABEL).value
    assert label is not None and label.value == "héllo"
    assert store.read(ControlRef("main", "Lobby", "meter")).value is None  # no value yet
    assert store.component("main", "Lobby").properties == (("a", "1"),)
    # saved again, it is written in the current format and reads back the same
    again = encode_snapshot(store.picture())
    assert json.loads(again)["format"] == SNAPSHOT_FORMAT == 2
    assert decode_snapshot(again).cores == store.picture().cores


def test_a_control_is_stored_as_an_array_and_bad_rows_are_refused() -> None:
    data = json.loads(encode_snapshot(make_store().picture()))
    row = data["cores"][0]["controls"][0]
    assert row[:4] == ["Lobby", "gain", "Float", "Read/Write"]
    row[9] = {"not": "a scalar"}
    with pytest.raises(SnapshotCorrupt, match=r"invalid snapshot: .*controls\[0\]"):
        decode_snapshot(json.dumps(data).encode())
    data["cores"][0]["controls"][0] = ["Lobby"]  # too short
    with pytest.raises(SnapshotCorrupt, match="invalid snapshot"):
        decode_snapshot(json.dumps(data).encode())


def test_equal_metadata_is_read_once_and_bad_metadata_is_refused_as_before() -> None:
    data = json.loads(encode_snapshot(make_store().picture()))
    rows = data["cores"][0]["controls"]
    rows[0][12] = {"Color": "red", "Legend": ""}
    rows[1][12] = {"Legend": "", "Color": "red"}  # other text, equal content
    rows[2][12] = {"Color": "red", "Legend": ""}
    snapshot = decode_snapshot(json.dumps(data).encode())
    gain, label, choice = snapshot.cores[0].controls
    assert gain.metadata == label.metadata == choice.metadata == {"Color": "red", "Legend": ""}
    assert gain.metadata is choice.metadata  # one copy per distinct text
    store = StateStore()
    store.restore(snapshot)
    assert store.picture().cores[0].controls[1:] == snapshot.cores[0].controls[1:]
    # metadata that is not an object: the same refusal, naming the row, as every other field
    rows[2][12] = ["not", "an object"]
    with pytest.raises(SnapshotCorrupt, match=r"invalid snapshot: .*controls\[2\]"):
        decode_snapshot(json.dumps(data).encode())
    rows[2][12] = None
    with pytest.raises(SnapshotCorrupt, match=r"invalid snapshot: .*controls\[2\]"):
        decode_snapshot(json.dumps(data).encode())


def test_the_fast_reading_of_a_control_has_the_fields_of_saved_control() -> None:
    from qsysd.state import SavedControl
    from qsysd.state._snapshot import _ReadControl

    assert _ReadControl.__struct_fields__ == SavedControl.__struct_fields__
    read, saved = _ReadControl.__struct_defaults__, SavedControl.__struct_defaults__
    metadata = SavedControl.__struct_fields__.index("metadata") - 4  # the first 4 have none
    assert read[:metadata] + read[metadata + 1 :] == saved[:metadata] + saved[metadata + 1 :]


def test_equal_texts_and_numbers_are_read_once_keeping_their_types_and_signs() -> None:
    store = StateStore()
    refs = [ControlRef("main", f"Zone{i}", "level") for i in range(4)]
    store.replace_design(
        "main",
        "code-1",
        [ComponentInfo("main", r.component or "", "gain", f"id-{i}") for i, r in enumerate(refs)],
        [ControlInfo(r, "Float", "Read/Write", -100.0, 20.0, "-100dB", "20dB") for r in refs],
        [
            ControlValue(refs[0], -0.0, "-0.0dB", 0.5),
            ControlValue(refs[1], 0.0, "-0.0dB", 0.5),
            ControlValue(refs[2], 1, "1", 0.5),
            ControlValue(refs[3], 1.0, "1", -0.0),
        ],
    )
    snapshot = decode_snapshot(encode_snapshot(store.picture()))
    a, b, c, d = snapshot.cores[0].controls
    # one object per distinct text and number, whatever control it came with
    assert a.string is b.string and c.string is d.string
    assert a.string_min is d.string_min and a.value_min is d.value_min
    assert a.position is b.position is c.position
    # but never across types or signs: -0.0 and 0.0, 1 and 1.0, stay what they were
    assert [str(x.value) for x in (a, b, c, d)] == ["-0.0", "0.0", "1", "1.0"]
    assert str(d.position) == "-0.0"
    restored = StateStore()
    restored.restore(snapshot)
    assert restored.picture().cores[0].controls == snapshot.cores[0].controls
