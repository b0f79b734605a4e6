"""Fixtures for integration tests: emulated Cores on loopback, and raw QRC/QRWC clients.

``emulator`` is a started :class:`qsysd.emulator.EmulatorServer` (demo design, QRC on TCP and
QRWC on WebSocket, ports chosen by the OS); ``start_emulator(**options)`` starts others
(same options as ``serve_emulator``) and ``start_pair(**options)`` a redundant pair. The
raw clients speak through the codec only, so they test the emulator, not qsysd's client.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio
import trio_websocket

from qsysd.emulator import (
    QRWC_PATH,
    EmulatorPair,
    EmulatorServer,
    serve_emulator,
    serve_redundant_pair,
)
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

#: Upper bound for any single wait in these tests; nothing should come close.
WAIT = 5.0


class RawClient:
    """A minimal QRC/QRWC peer: send requests, read every message in order."""

    def __init__(
        self,
        send: Callable[[bytes | str], Awaitable[None]],
        receive: Callable[[], Awaitable[bytes | str]],
        transport: str,
    ) -> None:
        self._send = send
        self._receive = receive
        self.transport = transport
        self._decoder = FrameDecoder()
        self._ready: list[Message] = []
        self._ids = itertools.count(1)
        #: Notifications read while waiting for a response, oldest first.
        self.notifications: list[Notification] = []

    async def send_raw(self, data: bytes | str) -> None:
        await self._send(data)

    async def send(self, method: str, params: Any = None, *, id: Any = None) -> Any:
        """Send a request (a fresh numeric id unless given); return its id."""
        msg_id = next(self._ids) if id is None else id
        message = Request(method, params, msg_id)
        await self._send(encode_text(message) if self.transport == "ws" else encode_frame(message))
        return msg_id

    async def receive(self) -> Message:
        """The next message from the emulator (EOF raises EOFError)."""
        while not self._ready:
            data = await self._receive()
            if not data:
                raise EOFError("the emulator closed the connection")
            if isinstance(data, str) or self.transport == "ws":
                self._ready.append(decode_frame(data))
                continue
            self._decoder.receive_data(data)
            while (message := self._decoder.next_message()) is not None:
                self._ready.append(message)
        return self._ready.pop(0)

    async def response(self, msg_id: Any) -> Response | ErrorResponse:
        """Read until the answer to ``msg_id``, keeping notifications in ``notifications``."""
        while True:
            message = await self.receive()
            if isinstance(message, Notification):
                self.notifications.append(message)
            elif isinstance(message, Response | ErrorResponse) and message.id == msg_id:
                return message

    async def call(
        self, method: str, params: Any = None, *, id: Any = None
    ) -> Response | ErrorResponse:
        return await self.response(await self.send(method, params, id=id))

    async def result(self, method: str, params: Any = None) -> Any:
        """The result of a call; an error answer fails the test."""
        reply = await self.call(method, params)
        assert isinstance(reply, Response), f"{method} failed: {reply}"
        return reply.result

    async def error(self, method: str, params: Any = None) -> ErrorResponse:
        """The error answer of a call; a success fails the test."""
        reply = await self.call(method, params)
        assert isinstance(reply, ErrorResponse), f"{method} unexpectedly succeeded: {reply}"
        return reply

    async def notification(self, method: str | None = None) -> Notification:
        """The next notification (of ``method``), read earlier or now."""
        while True:
            for index, note in enumerate(self.notifications):
                if method is None or note.method == method:
                    return self.notifications.pop(index)
            message = await self.receive()
            if isinstance(message, Notification):
                self.notifications.append(message)


@asynccontextmanager
async def open_tcp_client(port: int, host: str = "127.0.0.1") -> AsyncIterator[RawClient]:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:

        async def send(data: bytes | str) -> None:
            await stream.send_all(data.encode() if isinstance(data, str) else data)

        async def receive() -> bytes:
            return await stream.receive_some(65536)

        yield RawClient(send, receive, "tcp")


@asynccontextmanager
async def open_ws_client(
    port: int, host: str = "127.0.0.1", path: str = QRWC_PATH
) -> AsyncIterator[RawClient]:
    # We own the TCP stream: trio-websocket 0.12's client never closes it itself when the
    # server closes first (it waits for the server's TCP close, then leaks the socket).
    stream = await trio.open_tcp_stream(host, port)
    async with stream, trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(nursery, stream, host, path)

        async def receive() -> bytes | str:
            try:
                return await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return b""

        try:
            yield RawClient(ws.send_message, receive, "ws")
        finally:
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                await ws.aclose()
            nursery.cancel_scope.cancel()


def open_client(
    emu: EmulatorServer, transport: str = "tcp"
) -> AbstractAsyncContextManager[RawClient]:
    """A raw client connected to ``emu`` over ``transport`` ("tcp" or "ws")."""
    if transport == "ws":
        assert emu.ws_port is not None, "start the emulator with ws_port=0"
        return open_ws_client(emu.ws_port, emu.host)
    return open_tcp_client(emu.tcp_port, emu.host)


@pytest.fixture
async def start_emulator() -> AsyncIterator[Callable[..., Awaitable[EmulatorServer]]]:
    """Start emulators with ``await start_emulator(**serve_emulator options)``; stopped after."""
    async with trio.open_nursery() as nursery:

        async def start(design: Any = None, **options: Any) -> EmulatorServer:
            options.setdefault("ws_port", 0)

            async def hold(*, task_status: trio.TaskStatus[EmulatorServer]) -> None:
                async with serve_emulator(design, **options) as emu:
                    task_status.started(emu)
                    await trio.sleep_forever()

            server: EmulatorServer = await nursery.start(hold)
            return server

        yield start
        nursery.cancel_scope.cancel()


@pytest.fixture
async def start_pair() -> AsyncIterator[Callable[..., Awaitable[EmulatorPair]]]:
    """Start redundant pairs with ``await start_pair(**serve_redundant_pair options)``."""
    async with trio.open_nursery() as nursery:

        async def start(design: Any = None, **options: Any) -> EmulatorPair:
            async def hold(*, task_status: trio.TaskStatus[EmulatorPair]) -> None:
                async with serve_redundant_pair(design, **options) as pair:
                    task_status.started(pair)
                    await trio.sleep_forever()

            pair: EmulatorPair = await nursery.start(hold)
            return pair

        yield start
        nursery.cancel_scope.cancel()


@pytest.fixture
async def emulator(start_emulator: Callable[..., Awaitable[EmulatorServer]]) -> EmulatorServer:
    """An emulated Core with the demo design, QRC and QRWC on loopback, no access control."""
    return await start_emulator()


@pytest.fixture
def client() -> Callable[..., AbstractAsyncContextManager[RawClient]]:
    """``async with client(emu, "tcp" | "ws") as c``: a raw client of an emulator."""
    return open_client
