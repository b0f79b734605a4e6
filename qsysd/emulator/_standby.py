"""A Standby Core in its own process: it follows an Active Core over QRC and takes over.

``qsysd emulate --standby-of HOST:PORT``: the DesignCode comes from the Active Core's
StatusGet at start-up; then a QRC connection (NoOp keepalive) watches it. When the Active Core
reports Standby, or its connection is lost and not back within ``takeover_after`` seconds,
this Core becomes Active and pushes EngineStatus, as the surviving Core of a pair does.
Values are not shared with the other process.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
import trio

from qsysd.emulator._design import Design
from qsysd.emulator._server import EmulatorServer
from qsysd.errors import CoreError, InvalidReply, ProtocolError
from qsysd.qrc import QrcConnection, open_qrc_connection, open_transport

__all__ = ["ActiveWatch", "serve_standby"]

_log = structlog.get_logger(__name__)


class ActiveWatch:
    """Watches the Active Core for a Standby :class:`EmulatorServer`; takes over when it goes."""

    def __init__(
        self,
        server: EmulatorServer,
        host: str,
        port: int,
        *,
        takeover_after: float = 3.0,
        keepalive_interval: float = 1.0,
        request_timeout: float = 2.0,
        retry_interval: float = 0.25,
    ) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.takeover_after = takeover_after
        self.keepalive_interval = keepalive_interval
        self.request_timeout = request_timeout
        self.retry_interval = retry_interval
        #: The Active Core's last StatusGet result or EngineStatus.
        self.active_status: dict[str, Any] | None = None
        self.takeover_reason: str | None = None
        self._took_over = trio.Event()
        self._connections = 0
        self._losses = 0

    @property
    def active_address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def took_over(self) -> bool:
        return self._took_over.is_set()

    async def wait_active(self) -> None:
        """Wait until this Core has taken over (is Active)."""
        await self._took_over.wait()

    def statistics(self) -> dict[str, Any]:
        return {
            "active": self.active_address,
            "connections": self._connections,
            "losses": self._losses,
            "took_over": self.took_over,
            "takeover_reason": self.takeover_reason,
        }

    async def fetch_status(self, *, connect_timeout: float = 5.0) -> dict[str, Any]:
        """The Active Core's StatusGet result; TransportError and the like when unreachable."""
        async with self._connect(connect_timeout) as conn:
            return await self._status_get(conn)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the Active Core until this one takes over, then return.

        Reports started once it follows the Active Core (or has taken over).
        """
        started = False
        lost_since: float | None = None
        reason = "the Active Core reports Standby"
        why: BaseException | None = None
        while True:
            deadline = math.inf if lost_since is None else lost_since + self.takeover_after
            # The grace deadline covers reconnecting only: once the Active Core answers
            # again, following it has no deadline.
            with trio.CancelScope(deadline=deadline) as scope:
                try:
                    async with self._connect(self.request_timeout) as conn:
                        status = await self._status_get(conn)
                        scope.deadline = math.inf
                        if not started:
                            task_status.started()
                            started = True
                        if lost_since is not None:
                            _log.info("emulator.active_back", active=self.active_address)
                        lost_since = None
                        if await self._follow(conn, status):
                            break
                        why = conn.close_reason
                except (CoreError, ProtocolError) as exc:
                    why = exc
                now = trio.current_time()
                if lost_since is None:
                    lost_since = now
                    self._losses += 1
                    _log.warning(
                        "emulator.active_lost",
                        active=self.active_address,
                        error=str(why),
                        takeover_after=self.takeover_after,
                    )
                await trio.sleep(min(self.retry_interval, max(0.0, deadline - now)))
            if lost_since is not None and trio.current_time() >= lost_since + self.takeover_after:
                reason = f"the Active Core was gone for {self.takeover_after:g} s"
                break
        self._take_over(reason)
        if not started:
            task_status.started()

    @asynccontextmanager
    async def _connect(self, connect_timeout: float) -> AsyncIterator[QrcConnection]:
        async with (
            open_transport(self.host, self.port, connect_timeout=connect_timeout) as transport,
            open_qrc_connection(
                transport,
                name=f"active {self.active_address}",
                request_timeout=self.request_timeout,
                keepalive_interval=self.keepalive_interval,
            ) as conn,
        ):
            self._connections += 1
            yield conn

    async def _status_get(self, conn: QrcConnection) -> dict[str, Any]:
        status = await conn.request("StatusGet", 0)
        if not isinstance(status, dict) or not isinstance(status.get("DesignCode"), str):
            raise InvalidReply(f"{conn.peer}: StatusGet result has no DesignCode: {status!r:.80}")
        self._adopt(status)
        return status

    async def _follow(self, conn: QrcConnection, status: dict[str, Any]) -> bool:
        """Watch until the connection is lost (False) or the Active Core reports Standby."""
        standby = trio.Event()

        def on_status(params: Any) -> None:
            if isinstance(params, dict):
                self._adopt(params)
                if params.get("State") == "Standby":
                    standby.set()

        conn.on_notification("EngineStatus", on_status)
        on_status(status)
        async with trio.open_nursery() as nursery:

            async def wait_lost() -> None:
                await conn.wait_closed()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait_lost)
            await standby.wait()
            nursery.cancel_scope.cancel()
        return standby.is_set()

    def _adopt(self, status: dict[str, Any]) -> None:
        """Take the Active Core's DesignCode (a redeploy there is one here too)."""
        self.active_status = status
        code = status.get("DesignCode")
        engine = self.server.engine
        if isinstance(code, str) and code and code != engine.design_code:
            if self.server.tcp_port:  # serving: a redeploy drops our clients, as on a Core
                _log.info("emulator.following_redeploy", design_code=code)
                self.server.restart(code)
            else:
                engine.design_code = code
        name = status.get("DesignName")
        if isinstance(name, str) and name != self.server.core.design.name:
            _log.warning(
                "emulator.design_name_differs",
                active=self.active_address,
                active_design=name,
                design=self.server.core.design.name,
            )

    def _take_over(self, reason: str) -> None:
        self.takeover_reason = reason
        self.server.engine.update_status(state="Active")
        self._took_over.set()
        _log.warning("emulator.takeover", reason=reason, tcp_port=self.server.tcp_port)


@asynccontextmanager
async def serve_standby(
    design: Design | None = None,
    *,
    active: tuple[str, int],
    host: str = "127.0.0.1",
    port: int = 0,
    ws_port: int | None = None,
    password: str | None = None,
    user: str | None = None,
    idle_timeout: float = 60.0,
    takeover_after: float = 3.0,
    keepalive_interval: float = 1.0,
    request_timeout: float = 2.0,
    connect_timeout: float = 5.0,
) -> AsyncIterator[ActiveWatch]:
    """Serve a Standby Core of the Active Core at ``active`` for the block.

    Raises TransportError (or another CoreError) when the Active Core does not answer
    StatusGet at start-up. ``watch.server`` is the Standby Core.
    """
    server = EmulatorServer(
        design,
        host=host,
        port=port,
        ws_port=ws_port,
        password=password,
        user=user,
        idle_timeout=idle_timeout,
        state="Standby",
        is_redundant=True,
    )
    watch = ActiveWatch(
        server,
        *active,
        takeover_after=takeover_after,
        keepalive_interval=keepalive_interval,
        request_timeout=request_timeout,
    )
    await watch.fetch_status(connect_timeout=connect_timeout)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await nursery.start(watch.run)
        try:
            yield watch
        finally:
            nursery.cancel_scope.cancel()
