"""CoreLink: one Core (or redundant pair) kept connected, discovered and subscribed, forever."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import attrs
import structlog
import trio

from qsysd.config import CoreConfig
from qsysd.core._backoff import Backoff
from qsysd.core._breaker import CircuitBreaker
from qsysd.core._commands import CoreCommands
from qsysd.core._endpoint import ConnectSettings, Endpoint
from qsysd.core._redundancy import CorePair
from qsysd.core._session import Session, SessionSettings
from qsysd.core._stats import CoreLinkStatistics, RequestCounters
from qsysd.core._wire import EngineStatus
from qsysd.errors import (
    CoreError,
    CoreOnStandby,
    CoreUnavailable,
    ProtocolError,
    QrcError,
    RequestTimeout,
    TransportError,
)
from qsysd.qrc import ErrorResponse, QrcConnection, Response
from qsysd.state import CoreStatus, StateStore

__all__ = ["CoreLink"]

log = structlog.get_logger(__name__)


def _clock_text(unix: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix))


class CoreLink(CoreCommands):
    """Keeps one Core (and its redundant backup) connected, discovered and subscribed.

    :meth:`run` supervises until :meth:`stop` or cancellation: connect -> logon -> StatusGet ->
    discover (when the DesignCode is new) -> subscribe -> serve; any failure marks the store
    stale, then it reconnects after a backoff with full jitter. :meth:`request` never waits for
    a connection: while the Core is away it fails at once with CoreUnavailable.
    """

    def __init__(
        self,
        config: CoreConfig,
        store: StateStore,
        *,
        request_timeout: float | None = None,
        connect_timeout: float | None = None,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
        named_controls: Sequence[str] = (),
        max_change_groups: int = 3,
        failover_check_interval: float = 1.0,
        max_invalid_frames: int = 10,
        restart_delay: float = 5.0,
    ) -> None:
        self.name = config.name
        self._restart_delay = restart_delay
        self.config = config
        self._store = store
        self._request_timeout = request_timeout or config.request_timeout
        self._breaker = breaker or CircuitBreaker()
        self._failover_check_interval = failover_check_interval
        self._session_settings = SessionSettings(
            core=config.name,
            store=store,
            discovery_concurrency=config.discovery_concurrency,
            poll_rate=config.poll_rate,
            named_controls=tuple(named_controls),
            max_change_groups=max_change_groups,
            prime_timeout=self._request_timeout + 2 * config.poll_rate,
        )
        connect = ConnectSettings(
            config=config,
            connect_timeout=connect_timeout or self._request_timeout,
            request_timeout=self._request_timeout,
            max_invalid_frames=max_invalid_frames,
        )
        endpoint = partial(
            Endpoint,
            settings=connect,
            request=self._internal,
            on_status=self._on_engine_status,
            on_down=self._endpoint_down,
            on_closed=self._notify_change,
        )
        template = backoff or Backoff(
            initial=config.reconnect_initial, maximum=config.reconnect_max
        )
        endpoints = [endpoint(role="primary", host=config.host, port=config.port, backoff=template)]
        if config.backup_host:
            backup_port = config.backup_port or config.port
            backup_backoff = attrs.evolve(template, attempt=0)
            endpoints.append(
                endpoint(
                    role="backup", host=config.backup_host, port=backup_port, backoff=backup_backoff
                )
            )
        self._pair = CorePair(config.name, endpoints)
        self._session: Session | None = None
        self._stop = trio.Event()
        self._changed = trio.Event()
        self._connected = trio.Event()
        self._disconnected = trio.Event()
        self._since = time.time()
        self._last_error: str | None = None
        self._counters = RequestCounters()
        self._discoveries = 0
        self._pushes = 0
        self._last_push: float | None = None  # trio time of the last AutoPoll push
        self._values_pushed = 0

    # -- public ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise the link until :meth:`stop` is called or the task is cancelled."""
        log.info("core.link_started", core=self.name, host=self.config.host)
        self._publish_status()
        try:
            async with trio.open_nursery() as nursery:
                for endpoint in self._pair.endpoints:
                    nursery.start_soon(
                        self._keep_running, endpoint.run, f"endpoint {endpoint.role}"
                    )
                nursery.start_soon(
                    self._keep_running, partial(self._supervise, nursery), "supervisor"
                )
                task_status.started()
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._end_session("link stopped")
            self._store.mark_stale(self.name)
            self._publish_status()
            log.info("core.link_stopped", core=self.name)

    def stop(self) -> None:
        """Stop the link: connections close, :meth:`run` returns."""
        self._stop.set()

    async def wait_connected(self) -> None:
        """Wait until the link is serving (connected, discovered, subscribed)."""
        while not self.connected:
            if self._session is not None and self._session.serving:
                # its connection has just closed; the session ends at the endpoint's next step
                await self._disconnected.wait()
            else:
                await self._connected.wait()

    async def wait_disconnected(self) -> None:
        """Wait until the link is not serving (returns at once if it is not)."""
        while self.connected:
            await self._disconnected.wait()

    @property
    def connected(self) -> bool:
        """True while serving: connected, discovered and subscribed."""
        session = self._session
        # A connection closes a step before its session ends: closed is not serving.
        return session is not None and session.serving and not session.connection.closed

    @property
    def active_address(self) -> str | None:
        """``host:port`` of the Core requests go to, while serving."""
        session = self._session
        return session.endpoint.address if session is not None and session.serving else None

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- a per-request deadline is the API
    ) -> Any:
        """Send a request to the Active Core and return its result.

        Raises CoreUnavailable at once while disconnected or while the breaker is open,
        RequestTimeout, TransportError, or the QrcError subclass of the Core's error reply.
        A -32604 (Standby) reply re-checks the pair and retries once on the other Core.
        """
        session = self._session
        if session is None or not session.serving or session.connection.closed:
            self._counters.record(method, "unavailable")
            await trio.lowlevel.checkpoint()  # fail fast, but let the link run
            raise CoreUnavailable(self._unavailable_message())
        if not self._breaker.allow():
            self._counters.record(method, "unavailable")
            await trio.lowlevel.checkpoint()
            raise CoreUnavailable(self._breaker_message())
        try:
            return await self._call(session.connection, method, params, timeout)
        except CoreOnStandby:
            other = await self._pair.recheck_after_standby(session.endpoint)
            connection = other.live() if other is not None else None
            if other is None or connection is None:
                raise
            log.info("core.standby_retry", core=self.name, host=other.address, method=method)
            return await self._call(connection, method, params, timeout, count_breaker=False)

    def status(self) -> CoreStatus:
        session = self._session
        endpoint = session.endpoint if session is not None else self._pair.first_live()
        engine = endpoint.engine or EngineStatus()
        serving = session is not None and session.serving
        return CoreStatus(
            core=self.name,
            connected=self.connected,
            state=engine.state if endpoint.live() else "Unknown",
            platform=engine.platform,
            design_name=engine.design_name,
            design_code=engine.design_code,
            is_redundant=engine.is_redundant or self._pair.redundant,
            is_emulator=engine.is_emulator,
            status_code=engine.status_code,
            status_string=engine.status_string,
            active_host=endpoint.host if serving else None,
            since=self._since,
            last_error=self._last_error,
            breaker=self._breaker.state.value,
        )

    def statistics(self) -> CoreLinkStatistics:
        endpoints = self._pair.endpoints
        session = self._session
        return CoreLinkStatistics(
            core=self.name,
            connected=self.connected,
            breaker=self._breaker.state.value,
            breaker_opened=self._breaker.times_opened,
            reconnects=sum(e.reconnects for e in endpoints),
            connect_failures=sum(e.connect_failures for e in endpoints),
            requests=self._counters.by_method_outcome(),
            latency_buckets=self._counters.cumulative_buckets(),
            latency_sum=self._counters.latency_sum,
            latency_count=self._counters.latency_count,
            in_flight=sum(e.in_flight() for e in endpoints),
            pushes=self._pushes,
            values_pushed=self._values_pushed,
            invalid_frames=sum(e.invalid_frames() for e in endpoints),
            discoveries=self._discoveries,
            change_groups=session.change_groups if session is not None else 0,
            design_mismatch=self._pair.design_mismatch,
            last_push_age=(
                None if self._last_push is None else trio.current_time() - self._last_push
            ),
            breaker_retry_in=self._breaker.retry_in(),
            retry_every=max(e.retry_ceiling for e in endpoints),
        )

    # -- requests --------------------------------------------------------------------------

    async def _call(
        self,
        connection: QrcConnection,
        method: str,
        params: Any,
        timeout: float | None,  # noqa: ASYNC109
        *,
        count_breaker: bool = True,
    ) -> Any:
        start = trio.current_time()
        try:
            result = await connection.request(
                method, params, timeout=self._request_timeout if timeout is None else timeout
            )
        except (RequestTimeout, TransportError) as exc:
            outcome = "timeout" if isinstance(exc, RequestTimeout) else "transport_error"
            self._counters.record(method, outcome, trio.current_time() - start)
            # qsys_status shows why requests fail, not only why a connection ended
            self._last_error = str(exc)
            self._publish_status()
            if count_breaker:
                self._breaker.record_failure()
            raise
        except QrcError:
            self._counters.record(method, "qrc_error", trio.current_time() - start)
            if count_breaker:
                self._breaker.record_success()  # an error reply is still an answer
            raise
        except BaseException:
            if count_breaker:
                self._breaker.record_abandoned()
            raise
        self._counters.record(method, "ok", trio.current_time() - start)
        if count_breaker:
            self._breaker.record_success()
        return result

    async def _internal(self, connection: QrcConnection, method: str, params: Any) -> Any:
        """A request of the link itself (discovery, change groups): counted, no breaker."""
        return await self._call(connection, method, params, None, count_breaker=False)

    async def _internal_batch(
        self,
        connection: QrcConnection,
        method: str,
        params: Sequence[Any],
        on_answer: Callable[[int, Any], None],
        *,
        in_reader: bool = False,
    ) -> None:
        """The link's own bulk requests (discovery, change groups): pipelined, no breaker.

        Each request is counted as :meth:`_call` counts it; a timeout or a dead connection
        raises (counted once), an error answer is handed over as its QrcError. With
        ``in_reader``, ``on_answer`` runs in the connection's reader (see request_batch).
        """
        record = self._counters.record

        def on_reply(index: int, reply: Response | ErrorResponse, latency: float) -> None:
            if isinstance(reply, ErrorResponse):
                record(method, "qrc_error", latency)
                on_answer(index, reply.to_exception())
            else:
                record(method, "ok", latency)
                on_answer(index, reply.result)

        start = trio.current_time()
        try:
            await connection.request_batch(
                method,
                params,
                on_reply,
                window=self.config.discovery_concurrency,
                timeout=self._request_timeout,
                in_reader=in_reader,
            )
        except (RequestTimeout, TransportError) as exc:
            outcome = "timeout" if isinstance(exc, RequestTimeout) else "transport_error"
            record(method, outcome, trio.current_time() - start)
            self._last_error = str(exc)
            self._publish_status()
            raise

    # -- endpoints -------------------------------------------------------------------------

    def _on_engine_status(self, endpoint: Endpoint) -> None:
        self._pair.check_design_match()
        self._notify_change()
        self._publish_status()

    def _endpoint_down(self, endpoint: Endpoint, reason: BaseException) -> None:
        session = self._session
        if session is not None and session.endpoint is endpoint:
            self._last_error = str(reason)
            self._end_session(str(reason))
        elif session is None and (not self._pair.redundant or endpoint.role == "primary"):
            self._last_error = str(reason)
        self._publish_status()

    # -- the active session ----------------------------------------------------------------

    async def _keep_running(self, run: Callable[[], Awaitable[None]], task: str) -> None:
        """Run a task of the link that should never end; restart it after a failure (a bug).

        Only stop() or cancellation end :meth:`run`: an escaped exception is logged with its
        traceback and the task restarts after the longest backoff delay.
        """
        while True:
            try:
                await run()
                reason = "returned"
            except Exception as exc:
                reason = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.error("core.task_failed", core=self.name, task=task, error=reason, exc_info=exc)
            self._last_error = f"internal error in the link's {task} ({reason}); restarting"
            self._end_session(self._last_error)
            await trio.sleep(self._restart_delay)

    async def _supervise(self, nursery: trio.Nursery) -> None:
        """Start a session on the Core to follow; restart it when that choice changes."""
        pair = self._pair
        while True:
            changed = self._changed
            session = self._session
            chosen = pair.choose_active(session.endpoint if session is not None else None)
            if session is not None:
                engine = session.endpoint.engine
                moved = chosen is not session.endpoint
                reconnected = session.endpoint.live() is not session.connection
                redeployed = engine is not None and engine.design_code != session.design_code
                if moved or reconnected or redeployed:
                    reason = (
                        f"design changed (DesignCode {session.design_code} -> "
                        f"{engine.design_code if engine else None}); rediscovering"
                        if redeployed and not (moved or reconnected)
                        else "failover"
                        if moved and chosen is not None
                        else "connection lost"
                    )
                    if reason != "connection lost":  # a lost connection says why itself
                        self._last_error = reason
                    # a redundant pair shares its state: a failover keeps values fresh
                    self._end_session(reason, keep_fresh=reason == "failover")
                    session = None
                    chosen = pair.choose_active(None)  # ending may have closed a connection
            if session is None and chosen is not None:
                connection = chosen.live()
                assert connection is not None and chosen.engine is not None
                self._session = Session(chosen, connection, chosen.engine.design_code)
                nursery.start_soon(self._run_session, self._session)
            # With no Active Core in sight but Cores connected, ask them: a failover may not push.
            wait = self._failover_check_interval if chosen is None and pair.any_live() else math.inf
            with trio.move_on_after(wait) as timer:
                await changed.wait()
            if timer.cancelled_caught:
                await pair.refresh_status()

    async def _run_session(self, session: Session) -> None:
        with session.scope:
            started = trio.current_time()
            request = partial(self._internal, session.connection)
            batch = partial(self._internal_batch, session.connection)
            in_reader = partial(batch, in_reader=True)
            try:
                if await session.discover(self._session_settings, request, batch):
                    self._discoveries += 1
                await session.subscribe(
                    self._session_settings, request, self._count_push, batch, in_reader
                )
            except Exception as exc:
                expected = isinstance(exc, CoreError | ProtocolError)
                error = str(exc) if expected else f"internal error ({type(exc).__name__}: {exc})"
                log.log(
                    logging.WARNING if expected else logging.ERROR,
                    "core.session_failed",
                    core=self.name,
                    host=session.endpoint.address,
                    error=error[:300],
                    exc_info=None if expected else exc,
                )
                # Treat a failed setup like a failed connection: drop it and back off.
                session.connection.close(TransportError(f"setting up the session failed: {error}"))
                return
            self._store.mark_live(self.name)
            self._breaker.record_success()  # a fresh session starts with a closed breaker
            session.serving = True
            self._since = time.time()
            self._connected.set()
            self._disconnected = trio.Event()
            self._publish_status()
            log.info(
                "core.serving",
                core=self.name,
                host=session.endpoint.address,
                change_groups=session.change_groups,
                setup_ms=round((trio.current_time() - started) * 1000),
            )
            await trio.sleep_forever()

    def _end_session(self, reason: str, *, keep_fresh: bool = False) -> None:
        session = self._session
        if session is None:
            return
        self._session = None
        session.end(reason)
        if session.serving:
            self._since = time.time()
            self._connected = trio.Event()
            self._disconnected.set()
            if not keep_fresh:
                self._store.mark_stale(self.name)
            log.info("core.session_ended", core=self.name, reason=reason)
        self._publish_status()

    # -- status ----------------------------------------------------------------------------

    def _count_push(self, values: int) -> None:
        self._pushes += 1
        self._last_push = trio.current_time()
        self._values_pushed += values

    def _notify_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _publish_status(self) -> None:
        self._store.set_core_status(self.name, self.status())

    def _unavailable_message(self) -> str:
        since = _clock_text(self._since)
        if self._pair.any_live():
            if self._pair.redundant and self._pair.choose_active(None) is None:
                return (
                    f'Core "{self.name}" has no Active Core in its redundant pair '
                    f"({self._pair.describe_states()}) since {since}; waiting for a failover"
                )
            after = f" after: {self._last_error}" if self._last_error else ""
            return (
                f'Core "{self.name}" is connecting (discovering and subscribing) since {since}'
                f"{after}; try again in a few seconds"
            )
        reason = self._last_error or "not connected yet"
        ceiling = max(e.retry_ceiling for e in self._pair.endpoints)
        retry = f"; retrying every {ceiling:.3g} s" if ceiling else "; connecting"
        return f'Core "{self.name}" unreachable since {since} ({reason}){retry}'

    def _breaker_message(self) -> str:
        failures = self._breaker.consecutive_failures
        return (
            f'Core "{self.name}" is not answering ({failures} requests in a row failed or timed '
            f"out); requests are paused for {self._breaker.retry_in():.1f} s (circuit breaker open)"
        )
