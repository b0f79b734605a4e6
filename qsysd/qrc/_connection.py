"""One QRC session on a transport: pipelined requests, notifications, keepalive."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import structlog
import trio

from qsysd.errors import (
    CoreError,
    LogonRequired,
    ProtocolError,
    QrcError,
    RequestTimeout,
    TransportError,
)
from qsysd.qrc._messages import ErrorResponse, JsonId, Notification, Request, Response
from qsysd.qrc._transport import Transport, reraise

__all__ = [
    "ConnectionStatistics",
    "NotificationHandler",
    "QrcConnection",
    "open_qrc_connection",
]

log = structlog.get_logger(__name__)

# isinstance() with a tuple: an ``A | B`` union is built anew at every call (4x slower)
_REPLY = (Response, ErrorResponse)

#: Called with a notification's ``params``; must not block (hand work to a channel instead).
#: A handler raises ProtocolError (e.g. InvalidReply) for params it cannot read: the connection
#: counts that like an invalid frame.
NotificationHandler = Callable[[Any], None]


@attrs.frozen
class ConnectionStatistics:
    """Counters of one connection."""

    requests_sent: int
    in_flight: int
    replies: int
    timeouts: int
    late_replies: int
    wrong_ids: int  # replies with an id this connection never sent
    notifications: int
    invalid_frames: int
    keepalives: int


class _Batch:
    """What a :meth:`QrcConnection.request_batch` waits on: any of its replies arriving."""

    __slots__ = ("wake",)

    def __init__(self) -> None:
        self.wake = trio.Event()


@attrs.define
class _Pending:
    method: str
    sent_at: float = 0.0  # trio time
    done: trio.Event = attrs.Factory(trio.Event)
    reply: Response | ErrorResponse | None = None
    failure: CoreError | None = None
    batch: _Batch | None = None
    answered_at: float = 0.0  # trio time, for a batch's latencies
    # called in the reader as the reply is read: in order with the notifications around it
    on_reply: Callable[[Response | ErrorResponse, float], None] | None = None

    def finish(self) -> None:
        if self.batch is not None:
            self.answered_at = trio.current_time()
            self.batch.wake.set()
        self.done.set()


def _id_key(msg_id: JsonId) -> JsonId:
    """The request id a reply refers to; Cores echo ids, some as floats or strings."""
    if isinstance(msg_id, float) and msg_id.is_integer():
        return int(msg_id)
    # Our ids are small counters: a longer string (or "²", which isdigit() accepts and int()
    # refuses) is no id of ours, and int() of thousands of digits would raise.
    if isinstance(msg_id, str) and len(msg_id) <= 20 and msg_id.isascii() and msg_id.isdigit():
        return int(msg_id)
    return msg_id


class QrcConnection:
    """A QRC client session: many requests in flight, matched to replies by id.

    Run it with :func:`open_qrc_connection`. When the transport fails, the keepalive goes
    unanswered or too many invalid frames arrive, the connection closes itself: every pending
    request fails at once with TransportError and :meth:`wait_closed` returns the reason.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        name: str = "core",
        request_timeout: float = 5.0,
        keepalive_interval: float | None = 20.0,
        max_invalid_frames: int = 10,
        invalid_frame_window: float = 10.0,
    ) -> None:
        self.name = name
        self.request_timeout = request_timeout
        self.keepalive_interval = keepalive_interval
        self.max_invalid_frames = max_invalid_frames
        self.invalid_frame_window = invalid_frame_window
        self._transport = transport
        self._ids = itertools.count(1)
        self._pending: dict[JsonId, _Pending] = {}
        self._handlers: dict[str, list[NotificationHandler]] = {}
        self._closed = trio.Event()
        self._close_reason: CoreError | None = None
        self._cancel_scope: trio.CancelScope | None = None
        self._recent_invalid: deque[float] = deque()
        self._requests_sent = 0
        self._replies = 0
        self._timeouts = 0
        self._late_replies = 0
        self._notifications = 0
        self._invalid_frames = 0
        self._keepalives = 0
        self._last_id = 0
        # What came instead of answers, to name the real cause when a request times out:
        # (trio time, description) of the last reply with an id we never sent, and of the
        # last invalid frame, plus how many of each.
        self._wrong_ids = 0
        self._last_wrong_id: tuple[float, str] | None = None
        self._last_invalid: tuple[float, str] | None = None
        self._probe_wanted = trio.Event()

    @property
    def peer(self) -> str:
        return self._transport.peer

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def close_reason(self) -> CoreError | None:
        return self._close_reason

    def on_notification(self, method: str, handler: NotificationHandler) -> Callable[[], None]:
        """Call ``handler(params)`` for each notification ``method``; returns an unsubscriber."""
        self._handlers.setdefault(method, []).append(handler)

        def remove() -> None:
            handlers = self._handlers.get(method, [])
            if handler in handlers:
                handlers.remove(handler)

        return remove

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- a per-request deadline is the API
    ) -> Any:
        """Send a request and return its ``result``.

        Raises RequestTimeout after ``timeout`` (default: the connection's request timeout),
        TransportError when the connection fails, a QrcError subclass for an error reply.
        """
        if self._close_reason is not None:
            await trio.lowlevel.checkpoint()  # fail fast, but never in a loop without a yield
            raise self._closed_error()
        timeout = self.request_timeout if timeout is None else timeout
        msg_id = self._last_id = next(self._ids)
        pending = _Pending(method, trio.current_time())
        self._pending[msg_id] = pending
        try:
            with trio.move_on_after(timeout):
                try:
                    await self._transport.send(Request(method=method, params=params, id=msg_id))
                except TransportError as exc:
                    self.close(exc)
                    raise
                self._requests_sent += 1
                await pending.done.wait()
        finally:
            self._pending.pop(msg_id, None)
        if pending.failure is not None:
            raise TransportError(str(pending.failure)) from pending.failure
        if isinstance(pending.reply, Response):
            return pending.reply.result
        if isinstance(pending.reply, ErrorResponse):
            raise pending.reply.to_exception()
        self._timeouts += 1
        # A Core that answers nothing within the deadline may be frozen: probe it now rather
        # than at the next keepalive, so a stall ends the connection one deadline later.
        self._probe_wanted.set()
        raise RequestTimeout(
            f'Core "{self.name}" did not answer {method} within {timeout:g} s'
            + self._timeout_cause(pending.sent_at)
        )

    async def request_batch(
        self,
        method: str,
        params: Sequence[Any],
        on_reply: Callable[[int, Response | ErrorResponse, float], None],
        *,
        window: int = 8,
        timeout: float | None = None,  # noqa: ASYNC109 -- a per-request deadline is the API
        in_reader: bool = False,
    ) -> None:
        """Send one ``method`` request per item of ``params``; ``on_reply(index, reply, latency)``
        as each reply is taken (any order; an error reply too, not raised). With
        ``in_reader``, it is called by the reader as the reply is read: in order with the
        notifications around it (a poll's reply, between AutoPoll pushes), and it must not
        block.

        The bulk path of a session's set-up: at most ``window`` requests in flight, the
        frames of each top-up written together, one wait for any reply instead of a task,
        a cancel scope and an event wait per request; replies are handed over as they come
        (never all held at once). Raises RequestTimeout when a request is
        unanswered ``timeout`` after it was sent (the Core is probed at once, as for
        :meth:`request`), TransportError when the connection fails.
        """
        if self._close_reason is not None:
            await trio.lowlevel.checkpoint()
            raise self._closed_error()
        timeout = self.request_timeout if timeout is None else timeout
        window = max(1, window)
        batch = _Batch()
        count = len(params)
        sent: dict[JsonId, tuple[int, _Pending]] = {}  # in flight, oldest first
        following = 0
        try:
            while following < count or sent:
                if following < count and len(sent) < window:
                    messages = []
                    now = trio.current_time()
                    while following < count and len(sent) < window:
                        msg_id = self._last_id = next(self._ids)
                        pending = _Pending(method, now, batch=batch)
                        if in_reader:
                            pending.on_reply = partial(on_reply, following)
                        self._pending[msg_id] = pending
                        sent[msg_id] = (following, pending)
                        messages.append(Request(method=method, params=params[following], id=msg_id))
                        following += 1
                    try:
                        await self._transport.send_many(messages)
                    except TransportError as exc:
                        self.close(exc)
                        raise
                    self._requests_sent += len(messages)
                for key, (index, pending) in list(sent.items()):
                    if pending.failure is not None:
                        raise TransportError(str(pending.failure)) from pending.failure
                    if pending.reply is not None:
                        del sent[key]
                        del self._pending[key]
                        if not in_reader:
                            on_reply(index, pending.reply, pending.answered_at - pending.sent_at)
                if not sent or (following < count and len(sent) < window):
                    continue
                oldest = next(iter(sent.values()))[1]
                with trio.move_on_at(oldest.sent_at + timeout):
                    await batch.wake.wait()
                batch.wake = trio.Event()
                unanswered = oldest.reply is None and oldest.failure is None
                if unanswered and trio.current_time() >= oldest.sent_at + timeout:
                    self._timeouts += 1
                    self._probe_wanted.set()
                    raise RequestTimeout(
                        f'Core "{self.name}" did not answer {method} within {timeout:g} s'
                        + self._timeout_cause(oldest.sent_at)
                    )
        finally:
            for key in sent:
                self._pending.pop(key, None)

    def _timeout_cause(self, since: float) -> str:
        """What arrived instead of the answer since ``since``, said as a clause, or ''."""
        causes = []
        if self._last_wrong_id is not None and self._last_wrong_id[0] >= since:
            causes.append(
                f"replies with ids it was never sent arrived instead ({self._wrong_ids} so far, "
                f"last {self._last_wrong_id[1]}): the peer is not following QRC's request ids"
            )
        if self._last_invalid is not None and self._last_invalid[0] >= since:
            causes.append(f"an invalid frame arrived instead ({self._last_invalid[1]})")
        return "; " + "; ".join(causes) if causes else ""

    async def logon(self, user: str, password: str) -> None:
        """Log on; wrong credentials raise LogonRequired with a message free of the password."""
        try:
            result = await self.request("Logon", {"User": user, "Password": password})
        except LogonRequired:
            result = False
        if result is False:
            raise LogonRequired(
                f'Core "{self.name}" refused the logon of user "{user}": wrong username or '
                "password; check the user in Q-SYS Administrator and the configured password"
            ) from None

    async def wait_closed(self) -> CoreError:
        """Wait until the connection is closed; return why."""
        await self._closed.wait()
        assert self._close_reason is not None
        return self._close_reason

    def close(self, reason: CoreError | None = None) -> None:
        """Close now: pending requests fail with TransportError, background tasks stop."""
        if self._close_reason is not None:
            return
        self._close_reason = reason or TransportError(f"connection to {self.peer} closed")
        for pending in self._pending.values():
            if not pending.done.is_set():
                pending.failure = self._close_reason
                pending.finish()
        self._closed.set()
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            requests_sent=self._requests_sent,
            in_flight=len(self._pending),
            replies=self._replies,
            timeouts=self._timeouts,
            late_replies=self._late_replies,
            wrong_ids=self._wrong_ids,
            notifications=self._notifications,
            invalid_frames=self._invalid_frames,
            keepalives=self._keepalives,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read replies and send keepalives until closed; closes the transport at the end."""
        try:
            with trio.CancelScope() as self._cancel_scope:
                if self._close_reason is not None:
                    self._cancel_scope.cancel()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_loop)
                    if self.keepalive_interval is not None:
                        nursery.start_soon(self._keepalive_loop, self.keepalive_interval)
                    task_status.started()
        finally:
            self.close()
            await self._transport.aclose()

    def _closed_error(self) -> TransportError:
        reason = self._close_reason
        if isinstance(reason, TransportError):
            return TransportError(str(reason))
        return TransportError(f"connection to {self.peer} is closed: {reason}")

    async def _read_loop(self) -> None:
        while self._close_reason is None:
            try:
                message = await self._transport.receive()
            except TransportError as exc:
                self.close(exc)
                return
            except ProtocolError as exc:
                self._invalid_frame(exc)
                continue
            if isinstance(message, _REPLY):
                self._reply(message)
            elif isinstance(message, Notification):
                self._notify(message)
            else:
                log.debug("qrc.unexpected_request", core=self.name, method=message.method)
            # A poll's document can be megabytes of objects: not held while the next is read.
            del message

    def _reply(self, message: Response | ErrorResponse) -> None:
        key = _id_key(message.id)
        pending = self._pending.get(key)
        if pending is None or pending.done.is_set():
            ours = isinstance(key, int) and not isinstance(key, bool) and 0 < key <= self._last_id
            if message.id is not None and not ours:
                self._wrong_id(message.id)
                return
            self._late_replies += 1
            if isinstance(message, ErrorResponse) and message.id is None:
                # the Core could not read something we sent; that request will time out
                log.warning(
                    "qrc.error_without_id",
                    core=self.name,
                    code=message.code,
                    error=message.message[:200],
                )
            else:
                log.debug("qrc.unmatched_reply", core=self.name, id=repr(message.id)[:40])
            return
        self._replies += 1
        pending.reply = message
        pending.finish()
        if pending.on_reply is not None:
            try:
                pending.on_reply(message, pending.answered_at - pending.sent_at)
            except ProtocolError as exc:
                self._invalid_frame(exc)
            except Exception:
                log.exception("qrc.reply_handler_failed", core=self.name, method=pending.method)
            if isinstance(message, Response):
                # handed over: the batch only needs to know it was answered, not hold the
                # result (a first poll's) until its task next runs
                pending.reply = Response(id=message.id, result=None)

    def _wrong_id(self, msg_id: JsonId) -> None:
        self._wrong_ids += 1
        shown = repr(msg_id)[:40]
        self._last_wrong_id = (trio.current_time(), shown)
        count = self._wrong_ids
        # the first, then the 10th, 100th...: a peer echoing wrong ids must not flood the log
        if count & (count - 1) == 0 or str(count).rstrip("0") == "1":
            log.warning(
                "qrc.reply_with_unknown_id",
                core=self.name,
                peer=self.peer,
                id=shown,
                count=count,
                last_id_sent=self._last_id,
            )

    def _notify(self, message: Notification) -> None:
        self._notifications += 1
        for handler in tuple(self._handlers.get(message.method, ())):
            try:
                handler(message.params)
            except ProtocolError as exc:
                self._invalid_frame(exc)
            except Exception:
                log.exception(
                    "qrc.notification_handler_failed", core=self.name, method=message.method
                )

    def _invalid_frame(self, exc: ProtocolError) -> None:
        self._invalid_frames += 1
        now = trio.current_time()
        recent = self._recent_invalid
        recent.append(now)
        while recent and recent[0] < now - self.invalid_frame_window:
            recent.popleft()
        # The codec's messages carry at most a short preview of the frame, never all of it.
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
        self._last_invalid = (now, error)
        log.warning("qrc.invalid_frame", core=self.name, peer=self.peer, error=error)
        if len(recent) > self.max_invalid_frames:
            self.close(
                TransportError(
                    f"{self.peer}: {len(recent)} invalid frames within "
                    f"{self.invalid_frame_window:g} s; dropping the connection"
                )
            )

    async def _keepalive_loop(self, interval: float) -> None:
        # NoOp on a fixed beat, busy or not: it both resets the Core's 60 s idle timer and
        # proves the Core still answers (pushes alone do not). A timed-out request asks for
        # the NoOp at once: a stall then shows one deadline after it, not a beat later.
        while True:
            with trio.move_on_after(interval):
                await self._probe_wanted.wait()
            after_timeout = self._probe_wanted.is_set()
            self._probe_wanted = trio.Event()
            self._keepalives += 1
            try:
                await self.request("NoOp", {})
            except RequestTimeout:
                why = "after a request timed out" if after_timeout else "as keepalive"
                self.close(
                    TransportError(
                        f"{self.peer}: stalled: a NoOp sent {why} got no answer within "
                        f"{self.request_timeout:g} s; connection considered dead"
                    )
                )
                return
            except QrcError:
                pass  # any answer proves the Core is alive
            except TransportError:
                return


@asynccontextmanager
async def open_qrc_connection(
    transport: Transport,
    *,
    name: str = "core",
    request_timeout: float = 5.0,
    keepalive_interval: float | None = 20.0,
    max_invalid_frames: int = 10,
    invalid_frame_window: float = 10.0,
) -> AsyncIterator[QrcConnection]:
    """Run a :class:`QrcConnection` on ``transport`` for the duration of the block."""
    connection = QrcConnection(
        transport,
        name=name,
        request_timeout=request_timeout,
        keepalive_interval=keepalive_interval,
        max_invalid_frames=max_invalid_frames,
        invalid_frame_window=invalid_frame_window,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(connection.run)
            try:
                yield connection
            finally:
                connection.close()
    except BaseExceptionGroup as group:
        # run() never raises, so a lone error is the block's own: give it back unwrapped.
        if len(group.exceptions) == 1:
            reraise(group.exceptions[0])
        raise
