"""One Core of a link and the life of its connection: connect, log on, follow, back off."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio

from qsysd.config import CoreConfig
from qsysd.core._backoff import Backoff
from qsysd.core._wire import EngineStatus, engine_status_from_wire
from qsysd.errors import CoreError, InvalidReply, ProtocolError, TransportError
from qsysd.qrc import QrcConnection, open_qrc_connection, open_transport

__all__ = ["ConnectSettings", "Endpoint", "LinkRequest"]

log = structlog.get_logger(__name__)

#: A request the link makes itself on a given connection (counted, outside the breaker).
LinkRequest = Callable[[QrcConnection, str, Any], Awaitable[Any]]


@attrs.frozen
class ConnectSettings:
    """How a link reaches and talks to each of its Cores."""

    config: CoreConfig
    connect_timeout: float
    request_timeout: float
    max_invalid_frames: int


@attrs.define(eq=False, kw_only=True)
class Endpoint:
    """One Core of a link (the primary, or the backup of a redundant pair) and its connection.

    :meth:`run` keeps it connected, logged on and its EngineStatus followed, forever. The link
    hears of it through ``on_status`` (a new EngineStatus), ``on_down`` (why a connection
    failed or ended) and ``on_closed`` (the connection is gone, whatever the reason).
    """

    role: str
    host: str
    port: int
    backoff: Backoff
    settings: ConnectSettings
    request: LinkRequest
    on_status: Callable[[Endpoint], None]
    on_down: Callable[[Endpoint, Exception], None]
    on_closed: Callable[[], None]
    connection: QrcConnection | None = None
    engine: EngineStatus | None = None
    connected_at: float = 0.0  # trio time
    retry_ceiling: float = 0.0
    sessions: int = 0
    connect_failures: int = 0
    closed_invalid_frames: int = 0  # of the connections that are gone

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def core(self) -> str:
        return self.settings.config.name

    @property
    def reconnects(self) -> int:
        return max(0, self.sessions - 1)

    def in_flight(self) -> int:
        connection = self.connection
        return connection.statistics().in_flight if connection is not None else 0

    def invalid_frames(self) -> int:
        """Invalid frames received, on every connection so far."""
        connection = self.connection
        current = connection.statistics().invalid_frames if connection is not None else 0
        return self.closed_invalid_frames + current

    def live(self) -> QrcConnection | None:
        """The connection, once it is open and the Core's status is known."""
        conn = self.connection
        return conn if conn is not None and not conn.closed and self.engine is not None else None

    def is_active(self) -> bool:
        return self.live() is not None and self.engine is not None and self.engine.state == "Active"

    async def run(self) -> None:
        """Keep this Core connected and logged on, forever."""
        while True:
            reason, connected_for = await self._connect_and_serve()
            if connected_for is not None:
                self.backoff.note_session(connected_for)
                log.warning(
                    "core.disconnected",
                    core=self.core,
                    host=self.address,
                    role=self.role,
                    reason=str(reason),
                    connected_s=round(connected_for, 3),
                )
            else:
                self.connect_failures += 1
                log.warning(
                    "core.connect_failed",
                    core=self.core,
                    host=self.address,
                    role=self.role,
                    reason=str(reason),
                    attempt=self.backoff.attempt + 1,
                )
            self.on_down(self, reason)
            self.retry_ceiling = self.backoff.ceiling
            delay = self.backoff.next_delay()
            log.debug("core.reconnect_wait", core=self.core, host=self.address, delay_s=delay)
            await trio.sleep(delay)

    async def refresh_status(self) -> None:
        """Ask the Core for its status (StatusGet); a failure is only logged."""
        connection = self.live()
        if connection is None:
            return
        try:
            status = await self.request(connection, "StatusGet", 0)
            self._update_engine(status)
        except (CoreError, ProtocolError) as exc:
            log.debug("core.status_check_failed", core=self.core, host=self.address, error=str(exc))

    async def _connect_and_serve(self) -> tuple[Exception, float | None]:
        """One connection, from connect to close; why it ended, and how long it was up."""
        settings = self.settings
        config = settings.config
        connected_for: float | None = None
        reason: Exception
        try:
            async with (
                open_transport(
                    self.host,
                    self.port,
                    kind=config.transport,
                    ws_path=config.ws_path,
                    connect_timeout=settings.connect_timeout,
                ) as transport,
                open_qrc_connection(
                    transport,
                    name=config.name,
                    request_timeout=settings.request_timeout,
                    keepalive_interval=config.keepalive_interval,
                    max_invalid_frames=settings.max_invalid_frames,
                ) as connection,
            ):
                self.connection = connection
                try:
                    reason = await self._serve(connection)
                finally:
                    self.closed_invalid_frames += connection.statistics().invalid_frames
                    self.connection = None
                    # Told before the transport is torn down, so that the supervisor, woken
                    # by on_closed, finds the session already ended with the real reason.
                    if connection.close_reason is not None:
                        self.on_down(self, connection.close_reason)
                    if self.connected_at:
                        connected_for = trio.current_time() - self.connected_at
                        self.connected_at = 0.0
                    self.on_closed()
        except (CoreError, ProtocolError) as exc:
            reason = exc
        except Exception as exc:
            # A bug (ours, or a frame we failed to foresee) must not take the daemon down:
            # log it with its traceback and treat it like a lost connection.
            log.error(
                "core.internal_error",
                core=self.core,
                host=self.address,
                error=repr(exc)[:300],
                exc_info=exc,
            )
            reason = TransportError(
                f"{self.address}: internal error ({type(exc).__name__}: {str(exc)[:200]}); "
                "reconnecting"
            )
        return reason, connected_for

    async def _serve(self, connection: QrcConnection) -> CoreError:
        """Log on and read the status, then wait until the connection closes; return why."""
        config = self.settings.config
        if config.username:
            password = config.password.reveal() if config.password else ""
            await connection.logon(config.username, password)
        # Followed only once logged on: a status pushed before would make the link start a
        # session whose requests fail with "Logon required" while the logon is still refused.
        connection.on_notification("EngineStatus", self._update_engine)
        status = await self.request(connection, "StatusGet", 0)
        try:
            engine = engine_status_from_wire(status)
        except InvalidReply as exc:
            # Serve anyway (a lone Core is followed whatever its State): with no DesignCode
            # known, every connect re-discovers.
            log.warning("core.status_invalid", core=self.core, host=self.address, error=str(exc))
            engine = EngineStatus()
        self.connected_at = trio.current_time()
        self.sessions += 1
        self._set_engine(engine)
        engine = self.engine or EngineStatus()
        log.info(
            "core.connected",
            core=self.core,
            host=self.address,
            role=self.role,
            state=engine.state,
            design=engine.design_name,
            design_code=engine.design_code,
        )
        return await connection.wait_closed()

    def _update_engine(self, params: Any) -> None:
        """Follow an EngineStatus push or StatusGet result (missing members keep their value).

        Raises InvalidReply for params that are not an object; the status is then unchanged.
        """
        self._set_engine(engine_status_from_wire(params, self.engine))

    def _set_engine(self, engine: EngineStatus) -> None:
        previous = self.engine
        self.engine = engine
        if previous != engine:
            log.info(
                "core.engine_status",
                core=self.core,
                host=self.address,
                state=engine.state,
                design_code=engine.design_code,
                status=engine.status_string,
            )
        self.on_status(self)
