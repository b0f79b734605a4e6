"""Transports that carry QRC messages: TCP with NUL framing, and QRWC over WebSocket.

Every failure of the underlying stream is mapped to :class:`~qsysd.errors.TransportError`
here, once; bad frames surface as :class:`~qsysd.errors.ProtocolError` and leave the
transport usable.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Literal, NoReturn, Protocol

import trio
import trio_websocket

from qsysd.errors import InvalidFrame, TransportError
from qsysd.qrc._framing import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder,
    decode_frame,
    encode_frame,
    encode_text as _encode_text,
)
from qsysd.qrc._messages import Message

__all__ = [
    "TcpTransport",
    "Transport",
    "WebSocketTransport",
    "open_transport",
]

_RECEIVE_SIZE = 65536


class Transport(Protocol):
    """A bidirectional channel of QRC messages."""

    @property
    def peer(self) -> str:
        """Where the transport leads, for messages (``tcp://host:port``)."""
        ...

    async def send(self, message: Message) -> None:
        """Send one message; raise TransportError when the channel is broken."""
        ...

    async def send_many(self, messages: Sequence[Message]) -> None:
        """Send messages in order, together where the channel allows (one write on TCP)."""
        ...

    async def receive(self) -> Message:
        """The next message; TransportError at the end, ProtocolError for one bad frame."""
        ...

    async def aclose(self) -> None:
        """Close the channel; never raises."""
        ...


def describe_os_error(exc: OSError) -> str:
    """A short reason such as ``connection refused`` for an OSError."""
    if isinstance(exc.errno, int) and exc.errno > 0:
        return os.strerror(exc.errno).lower()  # trio words strerror "Error connecting to ..."
    if exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    # trio.open_tcp_stream: "all attempts to connect ... failed", the real errors in a group
    group = exc.__context__ or exc.__cause__
    if isinstance(group, BaseExceptionGroup):
        for inner in group.exceptions:
            if isinstance(inner, OSError) and inner.strerror:
                return describe_os_error(inner)
    return str(exc) or type(exc).__name__


@contextmanager
def map_transport_errors(peer: str) -> Iterator[None]:
    """Turn socket, trio and WebSocket failures into TransportError (the one mapping place)."""
    try:
        yield
    except TransportError:
        raise
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__
        reason = describe_os_error(cause) if isinstance(cause, OSError) else "connection broken"
        raise TransportError(f"{peer}: {reason}") from exc
    except trio.ClosedResourceError as exc:
        raise TransportError(f"{peer}: connection closed") from exc
    except trio_websocket.ConnectionClosed as exc:
        close = exc.reason
        detail = f" ({close.code} {close.name})" if close is not None else ""
        raise TransportError(f"{peer}: WebSocket closed{detail}") from exc
    except trio_websocket.ConnectionRejected as exc:
        raise TransportError(f"{peer}: WebSocket rejected (HTTP {exc.status_code})") from exc
    except trio_websocket.ConnectionTimeout as exc:
        raise TransportError(f"{peer}: no WebSocket connection in time") from exc
    except trio_websocket.HandshakeError as exc:
        if isinstance(exc.__cause__, OSError):
            raise TransportError(f"{peer}: {describe_os_error(exc.__cause__)}") from exc
        raise TransportError(f"{peer}: WebSocket handshake failed ({exc!r})") from exc
    except OSError as exc:
        raise TransportError(f"{peer}: {describe_os_error(exc)}") from exc


class TcpTransport:
    """QRC over a byte stream: UTF-8 JSON objects, each terminated by a NUL byte."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        peer: str = "stream",
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        send_timeout: float = 10.0,
    ) -> None:
        self._stream = stream
        self._peer = peer
        self._decoder = FrameDecoder(max_frame_size)
        self._send_lock = trio.Lock()
        self._send_timeout = send_timeout
        self._eof = False
        self._broken: str | None = None

    @property
    def peer(self) -> str:
        return self._peer

    async def send(self, message: Message) -> None:
        await self._send_bytes(encode_frame(message))

    async def send_many(self, messages: Sequence[Message]) -> None:
        await self._send_bytes(b"".join([encode_frame(m) for m in messages]))

    async def _send_bytes(self, data: bytes) -> None:
        lock = self._send_lock
        fd = self._socket_fd()
        if fd is not None and not lock.locked() and self._broken is None:
            # Most frames fit the socket's buffer: written here at once, without the two
            # scheduler rounds of an uncontended lock and a socket send. What does not fit
            # goes as below, under the lock taken before anything else can send.
            with map_transport_errors(self._peer):
                try:
                    sent = os.write(fd, data)
                except BlockingIOError:
                    sent = 0
                except BaseException:
                    self._broken = "connection broken during a send"
                    raise
            if sent == len(data):
                return
            lock.acquire_nowait()
            try:
                await self._send_locked(data[sent:])
            finally:
                lock.release()
            return
        async with lock:
            await self._send_locked(data)

    def _socket_fd(self) -> int | None:
        """The socket's descriptor, for a send without a yield; None for any other stream."""
        stream = self._stream
        if not isinstance(stream, trio.SocketStream):
            return None
        fd = stream.socket.fileno()
        return fd if fd >= 0 else None

    async def _send_locked(self, data: bytes) -> None:
        if self._broken is not None:
            raise TransportError(f"{self._peer}: {self._broken}")
        # A send cancelled halfway would leave half a frame on the wire and corrupt the
        # stream for every later message: finish it (under its own deadline) or break.
        with trio.CancelScope(shield=True):
            with (
                trio.move_on_after(self._send_timeout) as scope,
                map_transport_errors(self._peer),
            ):
                try:
                    await self._stream.send_all(data)
                except BaseException:
                    self._broken = "connection broken during a send"
                    raise
            if scope.cancelled_caught:
                self._broken = f"send stalled for {self._send_timeout:g} s"
                raise TransportError(f"{self._peer}: {self._broken}")

    async def receive(self) -> Message:
        while True:
            message = self._decoder.next_message()  # may raise a ProtocolError for one frame
            if message is not None:
                return message
            if self._eof:
                raise TransportError(f"{self._peer}: connection closed by the Core")
            with map_transport_errors(self._peer):
                data = await self._stream.receive_some(_RECEIVE_SIZE)
            self._decoder.receive_data(bytes(data))
            if not data:
                self._eof = True
                if self._decoder.buffered:
                    raise TransportError(
                        f"{self._peer}: connection closed by the Core in the middle of a frame"
                    )

    async def aclose(self) -> None:
        self._broken = self._broken or "connection closed"
        with (
            trio.CancelScope(shield=True),
            suppress(TransportError),
            map_transport_errors(self._peer),
        ):
            await trio.aclose_forcefully(self._stream)


class WebSocketTransport:
    """QRWC: one JSON-RPC object per WebSocket text frame."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, *, peer: str) -> None:
        self._ws = ws
        self._peer = peer
        self._send_lock = trio.Lock()

    @property
    def peer(self) -> str:
        return self._peer

    async def send(self, message: Message) -> None:
        text = _encode_text(message)
        async with self._send_lock:
            with map_transport_errors(self._peer):
                await self._ws.send_message(text)

    async def send_many(self, messages: Sequence[Message]) -> None:
        texts = [_encode_text(m) for m in messages]  # one JSON object per text frame
        async with self._send_lock:
            with map_transport_errors(self._peer):
                for text in texts:
                    await self._ws.send_message(text)

    async def receive(self) -> Message:
        with map_transport_errors(self._peer):
            data = await self._ws.get_message()
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidFrame("binary WebSocket frame is not UTF-8") from exc
        return decode_frame(data.rstrip("\0"))

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            try:
                with map_transport_errors(self._peer):
                    await self._ws.aclose()
            except TransportError:
                pass


@asynccontextmanager
async def open_transport(
    host: str,
    port: int,
    *,
    kind: Literal["tcp", "ws"] = "tcp",
    ws_path: str = "/qrc-public-api/v0",
    connect_timeout: float = 5.0,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> AsyncIterator[Transport]:
    """Connect to a Core within ``connect_timeout``; the transport is closed on exit."""
    scheme = "tcp" if kind == "tcp" else "ws"
    peer = f"{scheme}://{host}:{port}" + (ws_path if kind == "ws" else "")
    deadline = trio.current_time() + connect_timeout
    stream = await _connect_tcp(host, port, peer, connect_timeout)
    transport: Transport
    if kind == "tcp":
        transport = TcpTransport(stream, peer=peer, max_frame_size=max_frame_size)
        try:
            yield transport
        finally:
            await transport.aclose()
        return
    # We own the TCP stream and close it on every path: trio-websocket 0.12 leaves it open
    # when the Core closes first, and when the handshake fails or is cancelled.
    try:
        async with trio.open_nursery() as nursery:
            ws = await _handshake(
                nursery, stream, host, port, ws_path, peer, deadline, max_frame_size
            )
            transport = WebSocketTransport(ws, peer=peer)
            try:
                yield transport
            finally:
                await transport.aclose()
                # trio-websocket's reader would otherwise wait for the Core to close the TCP.
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # the block's own error, or a failure of trio-websocket's reader: give it back alone
        if len(group.exceptions) == 1:
            with map_transport_errors(peer):
                reraise(group.exceptions[0])
        raise
    finally:
        await trio.aclose_forcefully(stream)


async def _handshake(
    nursery: trio.Nursery,
    stream: trio.SocketStream,
    host: str,
    port: int,
    ws_path: str,
    peer: str,
    deadline: float,
    max_frame_size: int,
) -> trio_websocket.WebSocketConnection:
    with trio.move_on_at(deadline) as scope, map_transport_errors(peer):
        return await trio_websocket.wrap_client_stream(
            nursery, stream, f"{host}:{port}", ws_path, max_message_size=max_frame_size
        )
    assert scope.cancelled_caught
    raise TransportError(f"{peer}: no WebSocket connection in time")


def reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` unwrapped from the group it was caught in, its own context kept."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context  # not the group we unwrapped it from
        del exc, context


async def _connect_tcp(host: str, port: int, peer: str, seconds: float) -> trio.SocketStream:
    with trio.move_on_after(seconds) as scope, map_transport_errors(peer):
        return await trio.open_tcp_stream(host, port)
    assert scope.cancelled_caught
    raise TransportError(f"{peer}: no connection within {seconds:g} s")
