"""The state layer: one store of every Core's design and values, snapshots, and the journal.

``RedisStateBackend`` (the ``redis`` extra) is imported on first use, so the base install does
not need coredis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qsysd.state._journal import (
    CallRecord as CallRecord,
    Journal as Journal,
    JournalEntry as JournalEntry,
    JournalStatistics as JournalStatistics,
)
from qsysd.state._model import (
    EMPTY_METADATA as EMPTY_METADATA,
    ComponentInfo as ComponentInfo,
    ControlInfo as ControlInfo,
    ControlReading as ControlReading,
    ControlRef as ControlRef,
    ControlValue as ControlValue,
    CoreStatus as CoreStatus,
    Scalar as Scalar,
    share_leaf as share_leaf,
)
from qsysd.state._snapshot import (
    SNAPSHOT_FORMAT as SNAPSHOT_FORMAT,
    CoreSnapshot as CoreSnapshot,
    FileStateBackend as FileStateBackend,
    SavedControl as SavedControl,
    Snapshot as Snapshot,
    SnapshotCorrupt as SnapshotCorrupt,
    SnapshotStatistics as SnapshotStatistics,
    SnapshotTask as SnapshotTask,
    StateBackend as StateBackend,
    decode_snapshot as decode_snapshot,
    encode_snapshot as encode_snapshot,
    run_snapshots as run_snapshots,
)
from qsysd.state._store import (
    ChangeListener as ChangeListener,
    ControlRow as ControlRow,
    StateStatistics as StateStatistics,
    StateStore as StateStore,
)
from qsysd.state._watch import Watcher as Watcher, WatcherStatistics as WatcherStatistics

if TYPE_CHECKING:
    from qsysd.state._redis import RedisStateBackend as RedisStateBackend

__all__ = [
    "EMPTY_METADATA",
    "SNAPSHOT_FORMAT",
    "CallRecord",
    "ChangeListener",
    "ComponentInfo",
    "ControlInfo",
    "ControlReading",
    "ControlRef",
    "ControlRow",
    "ControlValue",
    "CoreSnapshot",
    "CoreStatus",
    "FileStateBackend",
    "Journal",
    "JournalEntry",
    "JournalStatistics",
    "RedisStateBackend",
    "SavedControl",
    "Scalar",
    "Snapshot",
    "SnapshotCorrupt",
    "SnapshotStatistics",
    "SnapshotTask",
    "StateBackend",
    "StateStatistics",
    "StateStore",
    "Watcher",
    "WatcherStatistics",
    "decode_snapshot",
    "encode_snapshot",
    "run_snapshots",
    "share_leaf",
]


def __getattr__(name: str) -> Any:
    if name == "RedisStateBackend":
        try:
            from qsysd.state._redis import RedisStateBackend
        except ImportError as exc:
            raise ImportError(
                "RedisStateBackend needs coredis: pip install 'qsysd[redis]'"
            ) from exc
        return RedisStateBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
