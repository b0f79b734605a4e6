"""The stdio door's lean ``tools/call`` path: the SDK's validation and shaping, in process.

See :class:`LeanCalls`; docs/architecture.md ("Dispatch on the stdio door") has the numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import mcp_types as types
import orjson
import structlog
import trio
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.lowlevel import Server
from mcp.server.runner import modern_error_data
from mcp.shared.dispatcher import as_request_id, coerce_request_id
from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp_types import methods as sdk_methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from opentelemetry import trace

from qsysd._early import enveloped
from qsysd.access import Principal
from qsysd.server._mcp import QsysMcp, ToolAnswer

if TYPE_CHECKING:
    from qsysd.server._stdio import _Writer

__all__ = ["LeanCalls", "lean_calls"]

log = structlog.get_logger("qsysd.server._stdio")

#: How long an answer written at end of input may take (the SDK's bound for the same).
_SHUTDOWN_WRITE_S = 2.0
#: orjson refuses, rather than converts, what it would render otherwise than pydantic's JSON
#: dump (datetimes, dataclasses, subclasses of str/int/dict/list; non-str keys and ints past
#: 64 bits it refuses anyway): such an output is shaped by the SDK instead.
_PLAIN_JSON = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
#: Stand-ins for the text and the structured content in a result rendered once by the SDK.
_TEXT_MARK = "qsysd-lean-text-5e0b"
_OUTPUT_MARK = "qsysd-lean-output-5e0b"


class _Frames:
    """One era's ``tools/call`` result as the SDK renders it, cut where the values go.

    Rendered once per protocol version by ``LeanCalls.sdk_result`` from stand-ins, so every
    byte around the text and the structured content is the SDK's own (field order, the
    era's surface, ``resultType``, the ``serverInfo`` stamp); a call only fills them in.
    """

    def __init__(self, shape: Any) -> None:
        text, output = orjson.dumps(_TEXT_MARK), orjson.dumps({_OUTPUT_MARK: 0})
        marked = types.CallToolResult(
            content=[types.TextContent(text=_TEXT_MARK)], structured_content={_OUTPUT_MARK: 0}
        )
        ok = orjson.dumps(shape(marked))
        before, text_at, rest = ok.partition(text)
        between, output_at, after = rest.partition(output)
        failed = orjson.dumps(shape(ToolAnswer(None, _TEXT_MARK).result()))
        error_before, error_at, error_after = failed.partition(text)
        if not (text_at and output_at and error_at) or text in after or text in error_after:
            raise ValueError("the SDK's tools/call result has an unexpected shape")
        self.ok = (before, between, after)
        self.error = (error_before, error_after)

    def fill(self, msg_id: Any, answer: ToolAnswer) -> bytes:
        """The answer's line; TypeError when the output is not plain JSON (``_PLAIN_JSON``)."""
        head = b'{"jsonrpc":"2.0","id":' + orjson.dumps(msg_id) + b',"result":'
        if answer.error is not None:
            before, after = self.error
            return b"".join((head, before, orjson.dumps(answer.error), after, b"}\n"))
        output = orjson.dumps(answer.output, option=_PLAIN_JSON)
        before, between, after = self.ok
        text = orjson.dumps(output.decode())
        return b"".join((head, before, text, between, output, after, b"}\n"))


class LeanCalls:
    """``tools/call`` answered in process, exactly as the SDK's session layer would answer it.

    :meth:`take` sees every message the reader accepts and keeps the ``tools/call`` requests
    it can answer itself: the connection's era is known (the first request decides it, by
    the SDK's rule; a 2025 connection also needs its ``initialize`` answered), the SDK's
    request models accept the params, and nothing would observe the SDK's pipeline (no
    middleware beyond its OpenTelemetry span, no tracer configured, no cache hint). Each
    call runs in a task of :meth:`run`'s nursery, so the reader goes on reading: a
    ``notifications/cancelled`` for it cancels it unanswered, as in the SDK, and at
    end of input it is cancelled and answered "Connection closed".
    """

    def __init__(
        self, server: Server[Any], qsys: QsysMcp, principal: Principal, writer: _Writer
    ) -> None:
        self._server = server
        self._qsys = qsys
        self._principal = principal
        self._writer = writer
        self.hold: trio.Event | None = None
        self.era: str | None = None  # "legacy" or "modern", once the first request decided
        self.version: str | None = None  # legacy: the version an answered initialize chose
        self._initializing: set[Any] = set()
        self._in_flight: dict[Any, tuple[trio.CancelScope, list[bool]]] = {}
        self._nursery: trio.Nursery | None = None
        self._frames: dict[str, _Frames | None] = {}
        #: 2026 envelopes (params less arguments) the SDK's checks passed, with their version.
        self._modern: dict[bytes, str] = {}
        self.calls = 0  # answered here (statistics, tests)

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Own the calls' tasks until cancelled (at end of input)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def take(self, message: dict[str, Any], line: bytes) -> bool:
        """Whether ``message`` is answered here (else the SDK gets it)."""
        method = message.get("method")
        if method is None:
            return False  # a response to a request of ours
        params = message.get("params")
        msg_id = message.get("id")
        if msg_id is None:
            if method == "notifications/cancelled":
                self._cancel(params)
            return False
        if self.era is None:
            self._decide(line, method, params)
        if method == "initialize":
            if self.era == "legacy":
                self._initializing.add(msg_id)
                self._writer.watch = self._watch
            return False
        if method != "tools/call" or self._nursery is None or not self._plain():
            return False
        envelope = _envelope_key(params) if self.era == "modern" else None
        if envelope is not None and envelope in self._modern:  # checked before: passes again
            checked = cast(dict[str, Any], params)
            known = (checked["name"], checked.get("arguments"))
            return self._start(msg_id, known, self._modern[envelope])
        version = self._version(method, params)
        if version is None:
            return False
        call = plain_call(params) if self.era == "legacy" else None
        if call is None:
            try:  # as the SDK validates: the era's surface, then the handler's params model
                sdk_methods.validate_client_request(method, version, params)
                typed = types.CallToolRequestParams.model_validate(params or {}, by_name=False)
            except Exception:  # the SDK answers it with its own error
                return False
            call = (typed.name, typed.arguments)
            if envelope is not None:
                self._remember(envelope, version)
        return self._start(msg_id, call, version)

    def _start(self, msg_id: Any, call: tuple[str, dict[str, Any] | None], version: str) -> bool:
        # In flight from now on, so a cancel read before the task first runs still finds it.
        entry = (trio.CancelScope(), [False])
        self._in_flight[coerce_request_id(msg_id)] = entry
        assert self._nursery is not None
        self._nursery.start_soon(self._call, msg_id, call, version, entry)
        return True

    def _remember(self, envelope: bytes, version: str) -> None:
        """Remember that 2026 params with this :func:`_envelope_key` passed the SDK's checks:
        both depend on nothing else (``arguments`` may be any object or null, the route reads
        ``_meta`` only), so the next call with the same envelope needs neither."""
        if len(self._modern) >= _ENVELOPES_KEPT:
            self._modern.clear()  # a client varying its envelope: keep it bounded
        self._modern[envelope] = version

    def _decide(self, line: bytes, method: str, params: Any) -> None:
        """The SDK's rule: the first request (as its parser sees one) picks the era."""
        try:
            parsed = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except ValueError:
            return
        if isinstance(parsed, types.JSONRPCRequest):
            modern = method != "initialize" and enveloped(params)
            self.era = "modern" if modern else "legacy"

    def _version(self, method: str, params: Any) -> str | None:
        if self.era == "legacy":
            return None if enveloped(params) else self.version
        if self.era == "modern":
            route = classify_inbound_request({"method": method, "params": params})
            return None if isinstance(route, InboundLadderRejection) else route.protocol_version
        return None

    def _plain(self) -> bool:
        """Whether nothing would see a difference: only the SDK's span, and no tracer."""
        return (
            all(type(m) is OpenTelemetryMiddleware for m in self._server.middleware)
            and isinstance(
                trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
            )
            and "tools/call" not in self._server.cache_hints
        )

    def _watch(self, text: str) -> None:
        """Learn the negotiated version from the SDK's answer to ``initialize``."""
        try:
            answer = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if not isinstance(answer, dict) or answer.get("id") not in self._initializing:
            return
        self._initializing.discard(answer.get("id"))
        result = answer.get("result")
        if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
            self.version = result["protocolVersion"]
        if not self._initializing:
            self._writer.watch = None

    def _cancel(self, params: Any) -> None:
        request_id = as_request_id(params.get("requestId") if isinstance(params, dict) else None)
        if request_id is None:
            return
        entry = self._in_flight.get(coerce_request_id(request_id))
        if entry is not None:
            entry[1][0] = True  # cancelled by the peer: never answered
            entry[0].cancel()

    async def _call(
        self,
        msg_id: Any,
        call: tuple[str, dict[str, Any] | None],
        version: str,
        entry: tuple[trio.CancelScope, list[bool]],
    ) -> None:
        key = coerce_request_id(msg_id)
        scope, peer_cancelled = entry
        answering = False
        try:
            with scope:
                try:
                    if self.hold is not None and not self.hold.is_set():
                        await self.hold.wait()
                    answer = await self._qsys.answer_tool(
                        self._principal, *call, request_id=str(msg_id)
                    )
                    line = self.wire(msg_id, version, answer)
                except Exception as exc:  # as the SDK's dispatcher maps it, per era
                    error = {"jsonrpc": "2.0", "id": msg_id, "error": self._error(version, exc)}
                    line = orjson.dumps(error) + b"\n"
                finally:
                    if self._in_flight.get(key) is entry:
                        del self._in_flight[key]
                if not peer_cancelled[0]:
                    answering = True
                    self.calls += 1
                    await self._write(line, msg_id)
        except trio.Cancelled:
            if not answering and not peer_cancelled[0]:  # end of input: say so, as the SDK does
                closed = {"code": types.CONNECTION_CLOSED, "message": "Connection closed"}
                with trio.move_on_after(_SHUTDOWN_WRITE_S, shield=True):
                    await self._send({"jsonrpc": "2.0", "id": msg_id, "error": closed})
            raise

    def wire(self, msg_id: Any, version: str, answer: ToolAnswer) -> bytes:
        """The answer's line: exactly ``orjson.dumps`` of the :meth:`sdk_result` message.

        The output is rendered to JSON once, for the structured content and (as a string)
        for its text, into the era's frames; an output orjson would render otherwise than
        the SDK's dump (see ``_PLAIN_JSON``) is shaped by the SDK.
        """
        if version not in self._frames:
            try:
                self._frames[version] = _Frames(lambda r: self.sdk_result(version, r))
            except ValueError:  # an SDK that shapes results otherwise: it shapes them all
                log.warning("mcp.stdio_frames_unavailable", version=version)
                self._frames[version] = None
        frames = self._frames[version]
        if frames is not None:
            try:
                return frames.fill(msg_id, answer)
            except TypeError:
                pass
        message = {"jsonrpc": "2.0", "id": msg_id}
        message["result"] = self.sdk_result(version, answer.result())
        return orjson.dumps(message) + b"\n"

    def sdk_result(self, version: str, result: types.CallToolResult) -> dict[str, Any]:
        """The SDK's wire form of a result: its dump, the era's surface, the 2026 fields."""
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        dumped = sdk_methods.serialize_server_result("tools/call", version, dumped)
        if version in MODERN_PROTOCOL_VERSIONS:
            dumped.setdefault("resultType", "complete")
            if dumped.get("_meta") is None:
                dumped["_meta"] = {types.SERVER_INFO_META_KEY: self._server.server_info_stamp}
        return dumped

    def _error(self, version: str, exc: Exception) -> dict[str, Any]:
        if version in MODERN_PROTOCOL_VERSIONS:
            error = modern_error_data(exc)
        else:
            mapped = handler_exception_to_error_data(exc)
            if mapped is None:
                log.exception("mcp.stdio_call_crashed")
            error = mapped or types.ErrorData(code=0, message=str(exc))
        dumped: dict[str, Any] = error.model_dump(by_alias=True, mode="json", exclude_none=True)
        return dumped

    async def _send(self, message: dict[str, Any]) -> None:
        await self._write(orjson.dumps(message) + b"\n", message.get("id"))

    async def _write(self, line: bytes, msg_id: Any) -> None:
        try:
            await self._writer.answer(line, msg_id)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("mcp.stdio_answer_dropped", id=msg_id)


def plain_call(params: Any) -> tuple[str, dict[str, Any] | None] | None:
    """The name and arguments of params that every 2025 surface and the SDK's params model
    accept as they are (a string name; arguments an object, null or absent; nothing else);
    None: let the SDK's models decide."""
    if type(params) is not dict or not params.keys() <= _PLAIN_KEYS:
        return None
    name = params.get("name")
    arguments = params.get("arguments")
    if type(name) is not str or (arguments is not None and type(arguments) is not dict):
        return None
    return name, arguments


_PLAIN_KEYS = frozenset({"name", "arguments"})
#: At most this many envelopes remembered (one client sends one, bar its request ids).
_ENVELOPES_KEPT = 16


def _envelope_key(params: Any) -> bytes | None:
    """What the SDK's 2026 checks of ``tools/call`` params depend on, as bytes: everything
    but ``arguments``, when that is an object or null and the name a string (None else)."""
    if type(params) is not dict or type(params.get("name")) is not str:
        return None
    arguments = params.get("arguments")
    if arguments is not None and type(arguments) is not dict:
        return None
    rest = {k: v for k, v in params.items() if k != "arguments"}
    try:
        return orjson.dumps(rest)
    except TypeError:  # nothing a JSON parse yields, but then not remembered
        return None


def lean_calls(server: Server[Any], writer: _Writer) -> LeanCalls | None:
    """The lean path of a qsysd server with one fixed caller (stdio); None for any other."""
    qsys = getattr(server, "qsys", None)
    principal = qsys.fixed_principal if isinstance(qsys, QsysMcp) else None
    if qsys is None or principal is None:
        return None
    return LeanCalls(server, qsys, principal, writer)
