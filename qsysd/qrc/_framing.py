"""Sans-IO framing: NUL-terminated JSON over TCP (QRC) and one object per text frame (QRWC).

No sockets and no trio here; the connection and the emulator feed bytes in and take
messages out, so both sides share one codec.
"""

from __future__ import annotations

import json
import re

from qsysd.errors import FrameTooLarge, InvalidFrame
from qsysd.qrc._messages import Message, from_wire, to_wire

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FrameDecoder",
    "decode_frame",
    "encode_frame",
    "encode_text",
]

DEFAULT_MAX_FRAME_SIZE = 32 * 1024 * 1024
_NUL = 0
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# Text holding lone surrogates (legal as JSON escapes, not encodable as UTF-8) goes out escaped.
_ascii_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> None:
    # NaN and Infinity are not JSON; accepting them would make replies unencodable.
    raise ValueError(f"{name} is not valid JSON")


def encode_text(message: Message) -> str:
    """One message as JSON text: a QRWC WebSocket text frame.

    The text is always encodable as UTF-8: lone surrogates go out as ``\\uXXXX`` escapes.
    """
    try:
        text = _encoder.encode(to_wire(message))
        # isascii() is O(1) on CPython; only non-ASCII text is searched for surrogates.
        if not text.isascii() and _SURROGATE.search(text):
            text = _ascii_encoder.encode(to_wire(message))
    except (TypeError, ValueError) as exc:
        raise InvalidFrame(f"cannot encode {type(message).__name__}: {exc}") from exc
    return text


def encode_frame(message: Message) -> bytes:
    """One message as a QRC frame: UTF-8 JSON and a NUL terminator."""
    return encode_text(message).encode("utf-8") + b"\0"


def decode_frame(frame: bytes | str) -> Message:
    """One frame's content (without its NUL) as a message, or raise :class:`InvalidFrame`."""
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
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no NUL
        self._discarding = False  # inside an oversize frame: drop bytes up to its NUL

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def next_message(self) -> Message | None:
        """The next whole message, or None when more bytes are needed."""
        while True:
            end = self._buffer.find(_NUL, self._scanned)
            if end < 0:
                self._scanned = len(self._buffer)
                if self._discarding:
                    self._buffer.clear()
                    self._scanned = 0
                elif len(self._buffer) > self.max_frame_size:
                    size = len(self._buffer)
                    self._buffer.clear()
                    self._scanned = 0
                    self._discarding = True
                    raise FrameTooLarge(
                        f"frame exceeds {self.max_frame_size} bytes ({size} buffered without "
                        "a NUL terminator); discarding it"
                    )
                return None
            frame = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._scanned = 0
            if self._discarding:
                self._discarding = False
                continue
            if len(frame) > self.max_frame_size:
                raise FrameTooLarge(
                    f"frame of {len(frame)} bytes exceeds the limit of {self.max_frame_size}"
                )
            if not frame.strip():
                continue  # stray whitespace between frames
            return decode_frame(frame)
