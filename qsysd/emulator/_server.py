"""The emulator's listeners: QRC over TCP (NUL frames) and QRWC over WebSocket, and faults.

Thin on purpose: each connection gets a :class:`~qsysd.emulator._session.Session` and a
:class:`~qsysd.emulator._client.ClientConnection` that moves its bytes; faults act there,
between the session and the socket, and the fault methods here switch them.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
import trio
import trio_websocket

from qsysd.emulator._client import ClientConnection
from qsysd.emulator._design import Design
from qsysd.emulator._engine import (
    MAX_CHANGE_GROUPS_PER_CONNECTION,
    Engine,
    Faults,
    new_design_code,
)
from qsysd.emulator._model import Core
from qsysd.qrc import DEFAULT_MAX_FRAME_SIZE, Notification, encode_frame

__all__ = ["QRWC_PATH", "EmulatorServer", "serve_emulator"]

QRWC_PATH = "/qrc-public-api/v0"
_log = structlog.get_logger(__name__)
_RECEIVE_SIZE = 65536
GARBAGE = b"\xff\xfe{not json at all\x00"


class EmulatorServer:
    """One emulated Core serving QRC on TCP and, optionally, QRWC on WebSocket."""

    def __init__(
        self,
        design: Design | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int | None = None,
        password: str | None = None,
        user: str | None = None,
        idle_timeout: float = 60.0,
        design_code: str | None = None,
        platform: str | None = None,
        state: str = "Active",
        is_redundant: bool = False,
        is_emulator: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        core: Core | None = None,
    ) -> None:
        if core is None:
            if design is None:
                from qsysd.emulator._generate import demo_design

                design = demo_design()
            core = Core(design)
        self.engine = Engine(
            core,
            design_code=design_code,
            platform=platform,
            state=state,
            is_redundant=is_redundant,
            is_emulator=is_emulator,
            password=password,
            user=user,
        )
        self.host = host
        self.idle_timeout = idle_timeout
        self.max_frame_size = max_frame_size
        self._want_tcp_port = port
        self._want_ws_port = ws_port
        self.tcp_port = 0
        self.ws_port: int | None = None
        self._connections: set[ClientConnection] = set()
        self._changed = trio.Event()
        self.connections_total = 0
        self._nursery: trio.Nursery | None = None
        self._listening = trio.CancelScope()
        self._tcp_addresses: list[tuple[int, Any]] = []  # (family, sockname) per listener
        self._ws_addresses: list[tuple[int, Any]] = []

    # -- what tests look at ---------------------------------------------------------------
    @property
    def core(self) -> Core:
        """The live model: read and set values directly (``core.set_value(...)``)."""
        return self.engine.core

    @property
    def faults(self) -> Faults:
        return self.engine.faults

    @property
    def design_code(self) -> str:
        return self.engine.design_code

    @property
    def state(self) -> str:
        return self.engine.state

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def online(self) -> bool:
        """False between ``offline(True)`` and ``offline(False)``."""
        return not self._listening.cancel_called

    def statistics(self) -> dict[str, Any]:
        return {
            "connections": len(self._connections),
            "connections_total": self.connections_total,
            "change_groups": self.engine.change_group_count(),
            **self.core.statistics(),
        }

    def set_value(
        self, component: str | None, name: str, value: object, *, ramp: float = 0.0
    ) -> None:
        """Set a control as the Core itself would (Read Only ones too), at trio time now."""
        self.core.set_value(component, name, value, now=trio.current_time(), ramp=ramp)

    def get_value(self, component: str | None, name: str) -> float | int | str:
        """A control's value as clients would read it now."""
        return self.core.get_control(component, name, now=trio.current_time()).wire_value()

    async def wait_connections(self, count: int) -> None:
        """Wait until exactly ``count`` clients are connected."""
        while len(self._connections) != count:
            await self._changed.wait()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- faults ---------------------------------------------------------------------------
    def drop_connections(self) -> None:
        """Close every client connection now (their change groups go with them)."""
        for conn in list(self._connections):
            conn.scope.cancel()

    def stall(self, stalled: bool = True) -> None:
        """Stop answering and pushing (sockets stay open); ``stall(False)`` resumes."""
        self.faults.stalled = stalled

    def set_reply_delay(self, seconds: float) -> None:
        """Wait ``seconds`` before each reply (0 turns it off)."""
        self.faults.reply_delay = max(0.0, seconds)

    def split_frames(self, split: bool = True) -> None:
        """Send every frame in two writes (valid, but fragmented)."""
        self.faults.split_frames = split

    def refuse_logon(self, refuse: bool = True) -> None:
        """Answer every Logon with error 10, right password or not."""
        self.faults.refuse_logon = refuse

    def limit_change_groups(self, per_connection: int | None = None) -> None:
        """Allow ``per_connection`` change groups (others' clients used the rest): beyond it
        AddControl answers code 5, exhausted. ``None`` restores the Core's 4."""
        limit = MAX_CHANGE_GROUPS_PER_CONNECTION if per_connection is None else per_connection
        self.engine.max_groups_per_connection = max(0, limit)

    def send_garbage(self, data: bytes | None = None) -> None:
        """Send bytes that are not a valid frame to every client (TCP: raw; WS: as text)."""
        for conn in self._connections:
            conn.offer(GARBAGE if data is None else data)

    def send_half_frame(self) -> None:
        """Send the first half of an EngineStatus frame, without its terminator."""
        frame = encode_frame(Notification("EngineStatus", self.engine.status()))
        for conn in self._connections:
            conn.offer(frame[: len(frame) // 2])

    def offline(self, offline: bool = True) -> None:
        """Power off or unplug: drop every client and stop listening, so connects are refused;
        ``offline(False)`` listens again at once on the same addresses, values kept."""
        if self._nursery is None:
            raise RuntimeError("the emulator is not running")
        if offline:
            self._listening.cancel()  # the listeners and every connection they accepted
            _log.info("emulator.offline")
        elif not self.online:
            self._listening = trio.CancelScope()
            tcp = [_listener(family, address) for family, address in self._tcp_addresses]
            ws = [_listener(family, address) for family, address in self._ws_addresses]
            self._nursery.start_soon(self._serve, tcp, ws, self._listening)
            _log.info("emulator.online")

    def restart(self, design_code: str | None = None) -> str:
        """Redeploy: new DesignCode, design values restored, every connection dropped."""
        self.core.reset()
        self.engine.design_code = design_code or new_design_code()
        self.drop_connections()
        _log.info("emulator.restarted", design_code=self.engine.design_code)
        return self.engine.design_code

    # -- serving --------------------------------------------------------------------------
    async def run(
        self, *, task_status: trio.TaskStatus[EmulatorServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report ``self`` through ``task_status``, and serve until cancelled."""
        async with trio.open_nursery() as nursery:
            tcp = await trio.open_tcp_listeners(self._want_tcp_port, host=self.host)
            self.tcp_port = tcp[0].socket.getsockname()[1]
            ws: list[trio.SocketListener] = []
            if self._want_ws_port is not None:
                ws = await trio.open_tcp_listeners(self._want_ws_port, host=self.host)
                self.ws_port = ws[0].socket.getsockname()[1]
            self._tcp_addresses = [(x.socket.family, x.socket.getsockname()) for x in tcp]
            self._ws_addresses = [(x.socket.family, x.socket.getsockname()) for x in ws]
            self._nursery = nursery
            nursery.start_soon(self._serve, tcp, ws, self._listening)
            _log.info(
                "emulator.listening",
                host=self.host,
                tcp_port=self.tcp_port,
                ws_port=self.ws_port,
                state=self.engine.state,
                design=self.core.design.name,
            )
            task_status.started(self)
            await trio.sleep_forever()  # keeps the nursery open for offline(False)

    async def _serve(
        self,
        tcp: list[trio.SocketListener],
        ws: list[trio.SocketListener],
        scope: trio.CancelScope,
    ) -> None:
        """Serve the listeners (and their connections) until ``scope`` is cancelled."""
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.serve_listeners, self._serve_tcp, tcp)
                if ws:
                    server = trio_websocket.WebSocketServer(
                        self._handle_ws,
                        ws,
                        max_message_size=self.max_frame_size,
                        disconnect_timeout=1.0,
                    )
                    nursery.start_soon(server.run)

    async def _serve_tcp(self, stream: trio.SocketStream) -> None:
        async def receive() -> bytes | str:
            return await stream.receive_some(_RECEIVE_SIZE)

        try:
            await self._serve_connection("tcp", receive, stream.send_all)
        finally:
            await trio.aclose_forcefully(stream)

    async def _handle_ws(self, request: trio_websocket.WebSocketRequest) -> None:
        if request.path != QRWC_PATH:
            await request.reject(404, body=b"not found: use " + QRWC_PATH.encode())
            return
        ws = await request.accept()

        async def receive() -> bytes | str:
            try:
                return await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return b""

        await self._serve_connection("ws", receive, ws.send_message)

    async def _serve_connection(
        self,
        transport: str,
        receive: Callable[[], Awaitable[bytes | str]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        session = self.engine.open_session(transport=transport)
        conn = ClientConnection(
            session,
            transport,
            self.faults,
            idle_timeout=self.idle_timeout,
            max_frame_size=self.max_frame_size,
        )
        self._connections.add(conn)
        self.connections_total += 1
        self._touch()
        _log.debug("emulator.client_connected", transport=transport)
        try:
            await conn.serve(receive, send)
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except* trio_websocket.ConnectionClosed:
            pass
        except* Exception:
            # One connection's bug must not take the whole Core (every client) down with it.
            _log.exception("emulator.connection_failed", transport=transport)
        finally:
            session.close()
            self._connections.discard(conn)
            self._touch()
            _log.debug("emulator.client_disconnected", transport=transport)


def _listener(family: int, address: Any) -> trio.SocketListener:
    """A listening socket bound to ``address`` again, synchronously (so it takes effect now)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


@asynccontextmanager
async def serve_emulator(
    design: Design | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ws_port: int | None = None,
    password: str | None = None,
    user: str | None = None,
    idle_timeout: float = 60.0,
    design_code: str | None = None,
    platform: str | None = None,
    is_emulator: bool = True,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> AsyncIterator[EmulatorServer]:
    """Serve an emulated Core for the block (default: the demo design on 127.0.0.1, any port).

    ``ws_port=0`` also serves QRWC on a free port; ``password`` turns access control on.
    """
    server = EmulatorServer(
        design,
        host=host,
        port=port,
        ws_port=ws_port,
        password=password,
        user=user,
        idle_timeout=idle_timeout,
        design_code=design_code,
        platform=platform,
        is_emulator=is_emulator,
        max_frame_size=max_frame_size,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
