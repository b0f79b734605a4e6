"""Sans-IO framing: NUL-terminated JSON over TCP (QRC), one object per text frame (QRWC).

:class:`RecordSplitter` is the one delimiter splitter (NUL for QRC, newline for stdio).

No sockets and no trio here; the connection and the emulator feed bytes in and take
messages out, so both sides share one codec.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import orjson

from qsysd.errors import FrameTooLarge, InvalidFrame
from qsysd.qrc._messages import Message, from_wire, to_wire

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FrameDecoder",
    "RecordSplitter",
    "decode_frame",
    "encode_frame",
    "encode_text",
    "paused_collection",
]

DEFAULT_MAX_FRAME_SIZE = 32 * 1024 * 1024
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# Text holding lone surrogates (legal as JSON escapes, not encodable as UTF-8) goes out escaped.
_ascii_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Fast paths (orjson writes, msgspec reads); stdlib json stays the reference for every edge:
# - orjson writes NaN and Infinity as null (stdlib refuses them, so must we): output holding
#   a null is encoded again by stdlib json, which raises for them;
# - orjson refuses lone surrogates, integers past 64 bits and non-string keys (TypeError):
#   stdlib json takes those;
# - stdlib json reads integers exactly but refuses one past its digit limit: text holding a
#   run of 19 digits or more (any integer past 64 bits) is read by stdlib json;
# - anything msgspec cannot read is read again by stdlib json, for the same acceptance (1e400
#   is inf) and the same error messages.
# digits -> "1", every other byte -> "0": a run of 19 digits is then a plain substring search
# (a regex for it costs 15 times more on a frame of numbers)
_DIGITS = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))
_LONG_RUN = b"1" * 19
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
# Frames this long are read with the cyclic collector paused (see paused_collection).
_LARGE_FRAME = 64 * 1024
# Reading: msgspec builds the Python objects straight from the text, where orjson first
# builds a whole document of its own (a 3 MB AutoPoll push doubled the sync's peak memory).
_read = msgspec.json.Decoder().decode


def _reject_constant(name: str) -> None:
    # NaN and Infinity are not JSON; accepting them would make replies unencodable.
    raise ValueError(f"{name} is not valid JSON")


def encode_text(message: Message) -> str:
    """One message as JSON text: a QRWC WebSocket text frame.

    The text is always encodable as UTF-8: lone surrogates go out as ``\\uXXXX`` escapes.
    """
    return _encode(message).decode("utf-8")


def encode_frame(message: Message) -> bytes:
    """One message as a QRC frame: UTF-8 JSON and a NUL terminator."""
    return _encode(message) + b"\0"


def _encode(message: Message) -> bytes:
    wire = to_wire(message)
    try:
        data = orjson.dumps(wire, option=_ORJSON_OPTIONS)
    except TypeError:
        pass
    else:
        if b"null" not in data:
            return data
    return _encode_stdlib(message, wire).encode("utf-8")


def _encode_stdlib(message: Message, wire: object) -> str:
    try:
        text = _encoder.encode(wire)
        # isascii() is O(1) on CPython; only non-ASCII text is searched for surrogates.
        if not text.isascii() and _SURROGATE.search(text):
            text = _ascii_encoder.encode(wire)
    except (TypeError, ValueError) as exc:
        raise InvalidFrame(f"cannot encode {type(message).__name__}: {exc}") from exc
    return text


@contextmanager
def paused_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector for a burst of allocations that makes no cycles.

    Reading a multi-megabyte AutoPoll push (and turning it into values) allocates hundreds of
    thousands of dicts and values that stay alive until the burst ends: each allocation
    threshold crossed starts a collection, and the survivors promoted on the way start full
    ones, each walking every object of the daemon. Decoded JSON holds no cycles, so nothing
    is lost by collecting after the burst instead (refcounting frees it meanwhile). Use it
    only around code that never awaits.
    """
    if not gc.isenabled():
        yield  # paused already (a nested burst) or turned off by the application
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def decode_frame(frame: bytes | str) -> Message:
    """One frame's content (without its NUL) as a message, or raise :class:`InvalidFrame`."""
    if len(frame) < _LARGE_FRAME:
        return _decode(frame)
    with paused_collection():
        return _decode(frame)


def _decode(frame: bytes | str) -> Message:
    data = frame if isinstance(frame, bytes) else frame.encode("utf-8", "surrogatepass")
    if _LONG_RUN not in data.translate(_DIGITS):
        try:
            obj = _read(data)
        except (msgspec.MsgspecError, RecursionError):
            pass
        else:
            return from_wire(obj)
    return _decode_stdlib(frame)


def _decode_stdlib(frame: bytes | str) -> Message:
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidFrame(f"frame is not valid UTF-8 (byte {exc.start})") from exc
    try:
        obj = json.loads(frame, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidFrame(
            f"frame is not valid JSON ({exc.msg} at {exc.pos}): {_preview(frame)!r}"
        ) from exc
    except ValueError as exc:
        # NaN/Infinity, or an integer past Python's digit limit (sys.set_int_max_str_digits).
        raise InvalidFrame(f"frame is not valid JSON ({exc}): {_preview(frame)!r}") from exc
    except RecursionError as exc:
        raise InvalidFrame("frame is nested too deeply") from exc
    return from_wire(obj)


def _preview(frame: str) -> str:
    return frame[:60] + ("..." if len(frame) > 60 else "")


class RecordSplitter:
    """Sans-IO splitting of a byte stream into records ended by ``delimiter``.

    Feed bytes with :meth:`receive_data`, then call :meth:`next_record` until it returns
    None; at end of stream :meth:`finish` hands over an unterminated last record. A record
    longer than ``max_size`` raises :class:`FrameTooLarge` once, as soon as it is known to be
    too long, and is then skipped up to its delimiter: the splitter never holds more than
    ``max_size`` bytes plus one read, and splitting goes on with the next record.

    Consumed bytes are dropped once per :meth:`receive_data`, not per record, so a burst of
    many small records in one read costs time linear in its size.
    """

    def __init__(self, delimiter: bytes, max_size: int, *, noun: str = "record") -> None:
        if len(delimiter) != 1:
            raise ValueError("the delimiter must be one byte")
        if max_size < 1:
            raise ValueError("max_size must be positive")
        self.delimiter = delimiter
        self.max_size = max_size
        self.noun = noun  # what a record is called in errors: "frame", "line"
        self._buffer = bytearray()
        self._start = 0  # first byte of _buffer not yet handed out
        self._scanned = 0  # bytes of _buffer from _start known to hold no delimiter
        self._skipping = False  # inside an oversize record: drop bytes up to its delimiter

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole record."""
        return len(self._buffer) - self._start

    def receive_data(self, data: bytes | bytearray) -> None:
        if self._start:
            del self._buffer[: self._start]
            self._start = 0
        self._buffer += data

    def next_record(self) -> bytes | None:
        """The next whole record (without its delimiter), or None when more bytes are needed."""
        buffer = self._buffer
        while True:
            end = buffer.find(self.delimiter, self._start + self._scanned)
            if end < 0:
                held = len(buffer) - self._start
                if self._skipping:
                    buffer.clear()
                    self._start = self._scanned = 0
                elif held > self.max_size:
                    buffer.clear()
                    self._start = self._scanned = 0
                    self._skipping = True
                    raise FrameTooLarge(
                        f"{self.noun} exceeds {self.max_size} bytes ({held} held without a "
                        f"{self.delimiter!r} delimiter); skipping it"
                    )
                else:
                    self._scanned = held
                return None
            start, self._start, self._scanned = self._start, end + 1, 0
            if self._skipping:
                self._skipping = False
                continue
            if end - start > self.max_size:
                raise FrameTooLarge(
                    f"{self.noun} of {end - start} bytes exceeds the limit of {self.max_size}"
                )
            return bytes(memoryview(buffer)[start:end])  # one copy, not two

    def finish(self) -> bytes | None:
        """At end of stream: the unterminated last record, if any (never an oversize one)."""
        record = None if self._skipping else bytes(self._buffer[self._start :])
        self._buffer.clear()
        self._start = self._scanned = 0
        self._skipping = False
        return record or None


class FrameDecoder:
    """Incremental decoder for a NUL-framed QRC byte stream.

    Feed bytes with :meth:`receive_data`, then call :meth:`next_message` until it returns
    None. A bad frame raises :class:`InvalidFrame` or :class:`FrameTooLarge` once; the decoder
    has already moved past it, so decoding can go on with the next frame.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 1:
            raise ValueError("max_frame_size must be positive")
        self.max_frame_size = max_frame_size
        self._splitter = RecordSplitter(b"\0", max_frame_size, noun="frame")

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole frame."""
        return self._splitter.buffered

    def receive_data(self, data: bytes) -> None:
        self._splitter.receive_data(data)

    def next_message(self) -> Message | None:
        """The next whole message, or None when more bytes are needed."""
        while (frame := self._splitter.next_record()) is not None:
            if frame.strip():  # stray whitespace between frames is skipped
                return decode_frame(frame)
        return None
