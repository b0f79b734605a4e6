"""One client connection's I/O: bytes in, session replies and pushes out, faults between.

Each connection runs two tasks: a reader (bytes -> messages -> replies, with the idle
timeout) and a writer (replies, EngineStatus and AutoPoll pushes, in order).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from typing import Any

import structlog
import trio

from qsysd.emulator._engine import Faults
from qsysd.emulator._session import Session
from qsysd.errors import ProtocolError
from qsysd.qrc import (
    ErrorResponse,
    FrameDecoder,
    Message,
    Notification,
    Request,
    Response,
    decode_frame,
    encode_frame,
    encode_text,
)

__all__ = ["WAKE", "ClientConnection", "Item"]

_log = structlog.get_logger(__name__)
WAKE = object()  # tells a writer to look for pushes
Item = object  # a Message, raw bytes/str (faults), or WAKE


class ClientConnection:
    """The I/O of one client: its session, outbox and cancel scope (to drop it)."""

    def __init__(
        self,
        session: Session,
        transport: str,
        faults: Faults,
        *,
        idle_timeout: float,
        max_frame_size: int,
    ) -> None:
        self.session = session
        self.transport = transport
        self.faults = faults
        self.idle_timeout = idle_timeout
        self.max_frame_size = max_frame_size
        self.scope = trio.CancelScope()
        self._outbox, self._inbox = trio.open_memory_channel[Item](256)
        session.wakeup = lambda: self.offer(WAKE)

    def offer(self, item: Item) -> None:
        """Queue without waiting; a full queue drops it (the writer is busy anyway)."""
        with suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self._outbox.send_nowait(item)

    async def serve(
        self,
        receive: Callable[[], Awaitable[bytes | str]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Read and answer until the client goes, idles out or :attr:`scope` is cancelled."""
        with self.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, send)
                await self._reader(receive)
                nursery.cancel_scope.cancel()

    async def _reader(self, receive: Callable[[], Awaitable[bytes | str]]) -> None:
        decoder = FrameDecoder(self.max_frame_size)
        session, faults = self.session, self.faults
        while True:
            with trio.move_on_after(self.idle_timeout) as idle:
                data = await receive()
            if idle.cancelled_caught:
                _log.info("emulator.idle_timeout", seconds=self.idle_timeout)
                return
            if not data:
                return
            for item in self._messages(decoder, data):
                if faults.stalled:
                    continue  # a hung Core: the request is read and never acted on
                if isinstance(item, ProtocolError):
                    replies = session.handle_invalid(item)
                else:
                    replies = session.handle(item, trio.current_time())
                if replies and faults.reply_delay > 0:
                    await trio.sleep(faults.reply_delay)
                for reply in replies:
                    await self._outbox.send(reply)

    def _messages(
        self, decoder: FrameDecoder, data: bytes | str
    ) -> Iterator[Message | ProtocolError]:
        """Each message (or decoding error) in ``data``: one WS message, or TCP bytes."""
        if self.transport == "ws":
            try:
                yield decode_frame(data)
            except ProtocolError as exc:
                yield exc
            return
        assert isinstance(data, bytes)
        decoder.receive_data(data)
        while True:
            try:
                message = decoder.next_message()
            except ProtocolError as exc:
                yield exc
                continue
            if message is None:
                return
            yield message

    async def _writer(self, send: Callable[[Any], Awaitable[None]]) -> None:
        inbox = self._inbox
        session = self.session
        while True:
            pushes = session.take_notifications(trio.current_time())
            if not self.faults.stalled:
                for push in pushes:
                    await self._write(send, push)
            item: Item = WAKE
            with trio.move_on_at(session.next_deadline()):
                item = await inbox.receive()
            # Written outside the deadline scope: a push falling due must not cut a reply short.
            if item is not WAKE:
                await self._write(send, item)

    async def _write(self, send: Callable[[Any], Awaitable[None]], item: Item) -> None:
        data: bytes | str
        if isinstance(item, bytes | str):
            data = item
            if self.transport == "ws" and isinstance(data, bytes):
                data = data.decode("utf-8", "replace")
        else:
            assert isinstance(item, Request | Notification | Response | ErrorResponse)
            data = encode_text(item) if self.transport == "ws" else encode_frame(item)
        if self.faults.split_frames and self.transport == "tcp" and len(data) > 1:
            half = len(data) // 2
            await send(data[:half])
            await trio.sleep(0.005)
            await send(data[half:])
        else:
            await send(data)
