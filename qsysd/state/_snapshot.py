"""Snapshots of the state store, where they are kept, and the task that keeps them current."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import msgspec
import structlog
import trio

from qsysd.errors import StateUnavailable
from qsysd.state._model import EMPTY_METADATA, ComponentInfo, Scalar, share_leaf

if TYPE_CHECKING:
    from qsysd.state._store import StateStore

__all__ = [
    "SNAPSHOT_FORMAT",
    "CoreSnapshot",
    "FileStateBackend",
    "SavedControl",
    "Snapshot",
    "SnapshotCorrupt",
    "SnapshotStatistics",
    "SnapshotTask",
    "StateBackend",
    "decode_snapshot",
    "encode_snapshot",
    "run_snapshots",
]

log = structlog.get_logger(__name__)

#: The snapshot format this code writes; it also reads format 1. Bump it when the shape changes
#: (2: a control is a JSON array, not an object).
SNAPSHOT_FORMAT = 2


class SavedControl(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One control in a snapshot, flat (its Core is the enclosing :class:`CoreSnapshot`).

    ``has_value`` tells "no value yet" from a value of None. Stored as a JSON array, not an
    object: a large design holds tens of thousands, and the array is a third of the size and
    decodes straight into this class.
    """

    component: str | None
    name: str
    type: str
    direction: str
    value_min: float | None = None
    value_max: float | None = None
    string_min: str | None = None
    string_max: str | None = None
    has_value: bool = False
    value: Scalar = None
    string: str = ""
    position: float | None = None
    metadata: Mapping[str, Any] = EMPTY_METADATA
    changed_at: float = 0.0
    confirmed_at: float = 0.0
    version: int = 0


class CoreSnapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One Core's design and values."""

    name: str
    design_code: str | None
    components: tuple[ComponentInfo, ...] = ()
    controls: tuple[SavedControl, ...] = ()


class Snapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole store at one moment, as :meth:`StateStore.picture` takes it."""

    taken_at: float
    cores: tuple[CoreSnapshot, ...] = ()
    format: int = SNAPSHOT_FORMAT


class SnapshotCorrupt(ValueError):
    """A stored snapshot cannot be read; the message says why."""


class StateBackend(Protocol):
    """Where snapshots are kept (a file, Redis, ...)."""

    async def save(self, snapshot: Snapshot) -> None:
        """Store ``snapshot`` atomically, replacing the previous one; raise on failure."""
        ...

    async def load(self) -> Snapshot | None:
        """The last snapshot, or None if there is none or it was unreadable (set aside)."""
        ...


# -- format 1 (until 0.x): the same fields as JSON objects, defaults left out ----------------


class _SavedControlV1(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    name: str
    type: str
    direction: str
    component: str | None = None
    value_min: float | None = None
    value_max: float | None = None
    string_min: str | None = None
    string_max: str | None = None
    has_value: bool = False
    value: Scalar = None
    string: str = ""
    position: float | None = None
    metadata: dict[str, Any] = {}
    changed_at: float = 0.0
    confirmed_at: float = 0.0
    version: int = 0


class _ComponentV1(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    core: str
    name: str
    type: str
    id: str
    properties: tuple[tuple[str, str], ...] = ()


class _CoreV1(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    design_code: str | None = None
    components: tuple[_ComponentV1, ...] = ()
    controls: tuple[_SavedControlV1, ...] = ()


class _SnapshotV1(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    taken_at: float
    format: int
    cores: tuple[_CoreV1, ...] = ()


def _from_v1(old: _SnapshotV1) -> Snapshot:
    return Snapshot(
        taken_at=old.taken_at,
        cores=tuple(
            CoreSnapshot(
                name=core.name,
                design_code=core.design_code,
                components=tuple(
                    ComponentInfo(c.core, c.name, c.type, c.id, c.properties)
                    for c in core.components
                ),
                controls=tuple(SavedControl(**msgspec.structs.asdict(c)) for c in core.controls),
            )
            for core in old.cores
        ),
    )


class _Head(msgspec.Struct):
    format: Any = None


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Mapping):  # metadata is a read-only view in the store
        return dict(obj)
    raise NotImplementedError(f"cannot store a {type(obj).__name__} in a snapshot")


# -- this format, read a control at a time, each distinct text and metadata kept once ---------


class _ReadControl(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """:class:`SavedControl` as read, its metadata left as JSON text (same fields, in order).

    40,000 controls decoded straight into SavedControl held 40,000 equal metadata dicts
    (about 14 MiB) until the store shared them; most controls share a few distinct texts.
    """

    component: str | None
    name: str
    type: str
    direction: str
    value_min: float | None = None
    value_max: float | None = None
    string_min: str | None = None
    string_max: str | None = None
    has_value: bool = False
    value: Scalar = None
    string: str = ""
    position: float | None = None
    metadata: msgspec.Raw = msgspec.Raw(b"{}")
    changed_at: float = 0.0
    confirmed_at: float = 0.0
    version: int = 0


class _ReadCore(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A Core as read: each control left as JSON text, decoded one at a time.

    Decoded all at once, 40,000 controls with a new object for every text and number in them
    stood 28 MiB above the file at the snapshot's peak (the daemon's, on a warm start); one at
    a time, each is freed as soon as it is turned into a :class:`SavedControl` of shared parts.
    """

    name: str
    design_code: str | None
    components: tuple[ComponentInfo, ...] = ()
    controls: tuple[msgspec.Raw, ...] = ()


class _ReadSnapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    taken_at: float
    cores: tuple[_ReadCore, ...] = ()
    format: int = SNAPSHOT_FORMAT


_read_control = msgspec.json.Decoder(_ReadControl).decode
_read_metadata = msgspec.json.Decoder(dict[str, Any]).decode
_EMPTY_TEXT = b"{}"


def _from_read(read: _ReadSnapshot) -> Snapshot:
    """The snapshot with each distinct metadata text decoded once (shared, read-only), and
    equal texts and numbers one object each (names, types and directions interned).

    Raises msgspec.DecodeError for a control or a metadata text that does not fit.
    """
    shared: dict[bytes, Mapping[str, Any]] = {_EMPTY_TEXT: EMPTY_METADATA}
    leaves: dict[Any, Any] = {}
    leaf = leaves.setdefault  # texts and floats only: a falsy one (None, "", +-0.0) stays
    intern = sys.intern
    cores = []
    for core in read.cores:
        controls = []
        for raw in core.controls:
            c = _read_control(raw)
            text = bytes(c.metadata)
            metadata = shared.get(text)
            if metadata is None:
                metadata = shared[text] = MappingProxyType(_read_metadata(text))
            component, value_min, value_max = c.component, c.value_min, c.value_max
            string_min, string_max, string = c.string_min, c.string_max, c.string
            position, changed_at, confirmed_at = c.position, c.changed_at, c.confirmed_at
            controls.append(
                SavedControl(
                    component and leaf(component, component),
                    intern(c.name),
                    intern(c.type),
                    intern(c.direction),
                    value_min and leaf(value_min, value_min),
                    value_max and leaf(value_max, value_max),
                    string_min and leaf(string_min, string_min),
                    string_max and leaf(string_max, string_max),
                    c.has_value,
                    share_leaf(leaves, c.value),
                    string and leaf(string, string),
                    position and leaf(position, position),
                    metadata,
                    changed_at and leaf(changed_at, changed_at),
                    confirmed_at and leaf(confirmed_at, confirmed_at),
                    c.version,
                )
            )
        cores.append(CoreSnapshot(core.name, core.design_code, core.components, tuple(controls)))
    return Snapshot(taken_at=read.taken_at, cores=tuple(cores), format=read.format)


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
_head = msgspec.json.Decoder(_Head)
_decoders: dict[int, msgspec.json.Decoder[Any]] = {
    1: msgspec.json.Decoder(_SnapshotV1),
    SNAPSHOT_FORMAT: msgspec.json.Decoder(Snapshot),
}
_read_current = msgspec.json.Decoder(_ReadSnapshot).decode


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The snapshot as compact JSON bytes (CPU-bound: call it off the trio thread if large)."""
    return _encoder.encode(snapshot)


def decode_snapshot(data: bytes) -> Snapshot:
    """Parse snapshot bytes (this format or format 1); raise :class:`SnapshotCorrupt` saying why.

    A snapshot of another format is refused, never guessed at: the Cores refill the store.
    """
    try:
        fmt = _head.decode(data).format
    except msgspec.ValidationError as exc:  # JSON, but not an object
        raise SnapshotCorrupt(f"expected a JSON object ({exc})") from exc
    except msgspec.DecodeError as exc:
        raise SnapshotCorrupt(f"not JSON ({exc})") from exc
    decoder = _decoders.get(fmt) if type(fmt) is int else None
    if decoder is None:
        supported = " or ".join(str(f) for f in sorted(_decoders, reverse=True))
        raise SnapshotCorrupt(f"format {fmt!r} is not a supported format ({supported})")
    if fmt == SNAPSHOT_FORMAT:
        try:
            return _from_read(_read_current(data))
        except msgspec.DecodeError:
            pass  # read again below, for the same refusal and message as ever
    try:
        snapshot = decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SnapshotCorrupt(f"invalid snapshot: {exc}") from exc
    return _from_v1(snapshot) if isinstance(snapshot, _SnapshotV1) else snapshot


def _set_aside_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    return candidate


def _fsync_folder(folder: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(folder, flags)
    except OSError:  # some platforms cannot open a folder; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_temp_files(path: Path) -> int:
    """Delete what saves interrupted by a crash left (``_write_atomically``'s temp files)."""
    removed = 0
    for stale in path.parent.glob(f"{_temp_prefix(path)}*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
            removed += 1
    return removed


def _write_atomically(path: Path, data: bytes) -> None:
    folder = path.parent
    # mkstemp creates the file 0600: a snapshot holds the whole plant's settings.
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_folder(folder)


class FileStateBackend:
    """Snapshots in one JSON file, replaced atomically; an unreadable file is set aside."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileStateBackend({str(self.path)!r})"

    async def save(self, snapshot: Snapshot) -> None:
        def work() -> None:
            _write_atomically(self.path, encode_snapshot(snapshot))

        await trio.to_thread.run_sync(work)

    async def load(self) -> Snapshot | None:
        """The snapshot in the file; None if there is none, or it cannot be read (logged).

        Temporary files of saves cut short (a crash, SIGKILL) are removed first: the folder
        belongs to one daemon, and this runs at its start.

        A file that is not a valid snapshot is renamed aside (``.corrupt-<time>``); a file
        that cannot be read at all (a folder, no permission) is left where it is.
        """

        def work() -> Snapshot | tuple[str, str, Path | None] | None:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                return ("state.snapshot_unreadable", f"{type(exc).__name__}: {exc}", None)
            try:
                return decode_snapshot(data)
            except SnapshotCorrupt as exc:
                target = _set_aside_name(self.path)
                try:
                    os.replace(self.path, target)
                except OSError:  # e.g. a read-only folder: start empty all the same
                    return ("state.snapshot_corrupt", str(exc), None)
                return ("state.snapshot_corrupt", str(exc), target)

        removed = await trio.to_thread.run_sync(_remove_temp_files, self.path)
        if removed:
            log.info("state.snapshot_temp_removed", path=str(self.path), files=removed)
        result = await trio.to_thread.run_sync(work)
        if isinstance(result, tuple):
            event, reason, aside = result
            log.warning(
                event,
                path=str(self.path),
                reason=reason,
                set_aside=str(aside) if aside is not None else None,
                hint="starting without the saved state; it comes back from the Cores",
            )
            return None
        return result


@attrs.frozen
class SnapshotStatistics:
    """Counts of the snapshot task; ``last_saved_at`` is UNIX time (None before the first)."""

    saves: int
    failures: int
    skipped: int
    last_saved_at: float | None
    last_error: str | None


class SnapshotTask:
    """Saves the store to a backend every ``interval`` seconds if it changed, and at stop.

    The final save runs shielded from cancellation, bounded by ``final_timeout``. A failed save
    is logged and counted, never fatal. :meth:`restore` loads the last snapshot at start; if
    the backend cannot be reached then, each save first tries the load again, so the first
    save after the backend is back keeps what the old snapshot held.
    """

    def __init__(
        self,
        store: StateStore,
        backend: StateBackend,
        interval: float = 30.0,
        *,
        final_timeout: float = 10.0,
    ) -> None:
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError(f"snapshot interval must be a positive number, got {interval!r}")
        self.store = store
        self.backend = backend
        self.interval = interval
        self.final_timeout = final_timeout
        self._stop = trio.Event()
        self._saved_version: int | None = None
        self._saves = 0
        self._failures = 0
        self._skipped = 0
        self._last_saved_at: float | None = None
        self._last_error: str | None = None
        self._restore_pending = False

    async def restore(self) -> bool:
        """Load the backend's last snapshot into the store; False if it cannot be reached.

        Cores the store already has data for keep it (live data wins). Errors other than
        :class:`StateUnavailable` propagate.
        """
        started = time.perf_counter()
        try:
            snapshot = await self.backend.load()
        except StateUnavailable as exc:
            first = not self._restore_pending
            self._restore_pending = True
            self._last_error = str(exc)
            if first:
                log.warning(
                    "state.snapshot_unavailable",
                    backend=repr(self.backend),
                    error=str(exc),
                    hint=f"starting without the saved state; retrying every {self.interval:g} s"
                    " (check that Redis runs and state.redis_url)",
                )
            return False
        if self._restore_pending:
            log.info("state.snapshot_available", backend=repr(self.backend))
        self._restore_pending = False
        if snapshot is not None:
            self.store.restore(snapshot)
            log.info(
                "state.restored",
                controls=self.store.statistics().controls,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        return True

    def stop(self) -> None:
        """Ask :meth:`run` to make its final save and return."""
        self._stop.set()

    async def save_now(self, *, force: bool = False) -> bool:
        """Save if the store changed since the last save (or ``force``); True if saved."""
        if self._restore_pending and not await self.restore():
            self._failures += 1
            log.warning("state.snapshot_failed", backend=repr(self.backend), error=self._last_error)
            return False
        version = self.store.version
        if not force and version == self._saved_version:
            self._skipped += 1
            await trio.lowlevel.checkpoint()
            return False
        snapshot = self.store.picture()
        try:
            await self.backend.save(snapshot)
        except Exception as exc:
            self._failures += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.warning("state.snapshot_failed", backend=repr(self.backend), error=self._last_error)
            return False
        self._saved_version = version
        self._saves += 1
        self._last_saved_at = snapshot.taken_at
        log.debug("state.snapshot_saved", backend=repr(self.backend), version=version)
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Save on the interval until stopped or cancelled, then save once more."""
        # Whatever is in the store now (e.g. just restored) counts as saved.
        self._saved_version = self.store.version
        task_status.started()
        try:
            while not self._stop.is_set():
                with trio.move_on_after(self.interval):
                    await self._stop.wait()
                await self.save_now()
        finally:
            with trio.move_on_after(self.final_timeout, shield=True) as scope:
                await self.save_now()
            if scope.cancelled_caught:
                log.warning("state.snapshot_final_timeout", timeout=self.final_timeout)

    def statistics(self) -> SnapshotStatistics:
        return SnapshotStatistics(
            saves=self._saves,
            failures=self._failures,
            skipped=self._skipped,
            last_saved_at=self._last_saved_at,
            last_error=self._last_error,
        )


async def run_snapshots(
    store: StateStore,
    backend: StateBackend,
    interval: float = 30.0,
    *,
    final_timeout: float = 10.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a :class:`SnapshotTask` until cancelled (for ``nursery.start``)."""
    task = SnapshotTask(store, backend, interval, final_timeout=final_timeout)
    await task.run(task_status=task_status)
