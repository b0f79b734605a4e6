"""The REST door (Quart-Trio): tools, resource-style reads, events, health, readiness, metrics,
and the operator status page.

Like every door it only turns HTTP into (principal, tool, arguments) and the answer back into
HTTP; the call path does the rest. Resource-style reads are the read tools under other URLs,
so they are authorized, validated and counted like any call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs
import structlog
import trio
from quart import Quart, Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, NotFound

from qsysd import __version__
from qsysd.access import CallPath, Principal, TokenStore
from qsysd.core import CoreLink
from qsysd.errors import ErrorReport, RateLimited, describe
from qsysd.server._asgi import PRINCIPAL_KEY, problem_body
from qsysd.server._common import to_json
from qsysd.server._events import EventFilter, EventHub
from qsysd.server._metrics import CONTENT_TYPE
from qsysd.server._openapi import openapi_document
from qsysd.server._page import load_assets, status_document
from qsysd.state import StateStore

__all__ = ["RestApp", "build_rest_app"]

log = structlog.get_logger("qsysd.http")

_MAX_PAGE = 500


@attrs.define
class RestApp:
    """The Quart app and what it counts."""

    app: Quart
    streams: int = 0


def _principal() -> Principal:
    principal = request.scope.get(PRINCIPAL_KEY)
    assert isinstance(principal, Principal), "the gateway sets the principal"
    return principal


def _request_id() -> str | None:
    value = request.scope.get("qsysd.request_id")
    return str(value) if value is not None else None


def _json_response(data: Any, status: int = 200) -> Response:
    return Response(to_json(data), status=status, content_type="application/json")


def _problem(
    status: int, slug: str, title: str, detail: str, *, retryable: bool = False, **extra: Any
) -> Response:
    body = problem_body(
        status, slug, title, detail, retryable=retryable, request_id=_request_id(), **extra
    )
    headers = {"Retry-After": "5"} if status == 503 else {}
    return Response(body, status=status, content_type="application/problem+json", headers=headers)


def _report_response(report: ErrorReport, **extra: Any) -> Response:
    slug = report.type.rpartition(":")[2]
    return _problem(
        report.status, slug, report.title, report.detail, retryable=report.retryable, **extra
    )


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadQuery(f"query parameter {name!r} must be an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise _BadQuery(f"query parameter {name!r} must be {low} to {high}, got {value}")
    return value


class _BadQuery(Exception):
    pass


def build_rest_app(
    calls: CallPath,
    *,
    links: Mapping[str, CoreLink],
    store: StateStore,
    events: EventHub,
    metrics: Callable[[], bytes],
    max_event_streams: int = 32,
    max_body_bytes: int = 1_048_576,
    read_timeout: float = 30.0,
    stopping: trio.Event | None = None,
    tokens: TokenStore | None = None,
) -> RestApp:
    """The Quart-Trio app of the REST door, health, readiness and metrics."""
    app = QuartTrio("qsysd", static_folder=None)
    app.config.update(
        MAX_CONTENT_LENGTH=max_body_bytes,
        BODY_TIMEOUT=read_timeout,
        RESPONSE_TIMEOUT=None,  # event streams stay open for hours
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    rest = RestApp(app)
    stop = stopping if stopping is not None else trio.Event()

    async def call(name: str, arguments: dict[str, Any] | None) -> Response | dict[str, Any]:
        try:
            return await calls.call_tool(_principal(), name, arguments, request_id=_request_id())
        except Exception as exc:
            response = _report_response(describe(exc, tool=name), tool=name)
            if isinstance(exc, RateLimited):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        slugs = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large",
                 408: "request-timeout"}  # fmt: skip
        detail = {
            404: f"no route {request.path!r}; GET /api/v1/openapi.json describes every route",
            405: f"{request.method} is not allowed on {request.path!r}",
        }.get(status, exc.description or exc.name)
        response = _problem(status, slugs.get(status, "http-error"), exc.name, detail)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(_BadQuery)
    async def bad_query(exc: _BadQuery) -> Response:
        return _problem(400, "bad-query", "Invalid query parameter", str(exc))

    # liveness, readiness, metrics ---------------------------------------------------------

    @app.get("/health")
    async def health() -> Response:
        return _json_response({"status": "ok", "version": __version__})

    @app.get("/ready")
    async def ready() -> Response:
        cores = []
        for name, link in links.items():
            status = link.status()
            synced = link.connected and not store.is_stale(name)
            cores.append(
                {
                    "core": name,
                    "connected": link.connected,
                    "synced": synced,
                    "breaker": status.breaker,
                    "last_error": status.last_error,
                }
            )
        is_ready = not stop.is_set() and all(c["synced"] for c in cores)
        return _json_response(
            {"ready": is_ready, "stopping": stop.is_set(), "cores": cores},
            status=200 if is_ready else 503,
        )

    @app.get("/metrics")
    async def metrics_route() -> Response:
        return Response(metrics(), content_type=CONTENT_TYPE)

    # the operator status page: its shell, and the one read its script polls ---------------

    assets = load_assets()

    @app.get("/")
    @app.get("/static/<name>")
    async def page(name: str | None = None) -> Response:
        asset = assets.get(request.path)
        if asset is None:
            raise NotFound
        return Response(asset.body, content_type=asset.content_type)

    @app.get("/api/v1/status")
    async def status_page_data() -> Response:
        count = _int_arg("writes", 20, 0, 100)
        result = await call("qsys_status", {})
        if isinstance(result, Response):
            return result
        writes: dict[str, Any] = {"entries": [], "next_offset": None, "note": None}
        if count:
            # The writes with their principals are qsys_history's (any reader's), not
            # qsys_audit's: reading the audit is itself audited, so a page polling it would
            # fill the journal with its own reads.
            try:
                writes = await calls.call_tool(
                    _principal(), "qsys_history", {"kind": "audit", "limit": count},
                    request_id=_request_id(),
                )  # fmt: skip
            except Exception as exc:
                writes = {**writes, "error": describe(exc, tool="qsys_history").detail}
        statistics = {name: link.statistics() for name, link in links.items()}
        document = status_document(
            _principal(), result["cores"], statistics, writes, now=calls.api.now()
        )
        return _json_response(document)

    # the catalogue ------------------------------------------------------------------------

    @app.get("/api/v1/openapi.json")
    async def openapi() -> Response:
        return _json_response(openapi_document(calls.tools(_principal())))

    @app.get("/api/v1/tools")
    async def list_tools() -> Response:
        return _json_response(
            {
                "tools": [
                    {
                        "name": t.name,
                        "title": t.title or t.name,
                        "description": t.description,
                        "permission": t.permission,
                        "annotations": t.annotations(),
                        "input_schema": t.input_schema,
                        "output_schema": t.output_schema,
                    }
                    for t in calls.tools(_principal())
                ]
            }
        )

    @app.post("/api/v1/tools/<name>")
    async def call_tool(name: str) -> Response:
        raw = await request.get_data(as_text=False)
        arguments: Any = {}
        if raw.strip():
            try:
                arguments = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                return _problem(
                    400, "invalid-json", "The body is not JSON",
                    f"the request body must be a JSON object of the tool's arguments: {exc}"[:300],
                )  # fmt: skip
        if not isinstance(arguments, dict):
            return _problem(
                422, "tool-input-error", "A tool's arguments are invalid",
                f"the body must be a JSON object of {name}'s arguments, got "
                f"{type(arguments).__name__}",
            )  # fmt: skip
        result = await call(name, arguments)
        return result if isinstance(result, Response) else _json_response(result)

    # resource-style reads (the read tools under other URLs) --------------------------------

    @app.get("/api/v1/cores")
    async def cores() -> Response:
        offset = _int_arg("offset", 0, 0, 1_000_000)
        limit = _int_arg("limit", 50, 1, _MAX_PAGE)
        result = await call("qsys_status", {})
        if isinstance(result, Response):
            return result
        found = result["cores"]
        page = found[offset : offset + limit]
        end = offset + len(page)
        return _json_response(
            {
                "total": len(found),
                "offset": offset,
                "next_offset": end if end < len(found) else None,
                "cores": page,
            }
        )

    @app.get("/api/v1/cores/<core>")
    async def core(core: str) -> Response:
        result = await call("qsys_status", {"core": core})
        if isinstance(result, Response):
            return result
        return _json_response(result["cores"][0])

    @app.get("/api/v1/cores/<core>/components")
    async def components(core: str) -> Response:
        arguments: dict[str, Any] = {
            "core": core,
            "offset": _int_arg("offset", 0, 0, 1_000_000),
            "limit": _int_arg("limit", 50, 1, _MAX_PAGE),
        }
        for key in ("filter", "type"):
            if key in request.args:
                arguments[key] = request.args[key]
        result = await call("qsys_list_components", arguments)
        return result if isinstance(result, Response) else _json_response(result)

    @app.get("/api/v1/cores/<core>/components/<component>")
    async def component(core: str, component: str) -> Response:
        result = await call("qsys_list_controls", {"core": core, "component": component})
        if isinstance(result, Response):
            return result
        return _json_response(
            {
                "core": result["core"],
                "name": result["component"],
                "type": result["type"],
                "controls": len(result["controls"]),
            }
        )

    @app.get("/api/v1/cores/<core>/components/<component>/controls")
    async def controls(core: str, component: str) -> Response:
        offset = _int_arg("offset", 0, 0, 1_000_000)
        limit = _int_arg("limit", 100, 1, _MAX_PAGE)
        arguments: dict[str, Any] = {"core": core, "component": component}
        if "filter" in request.args:
            arguments["filter"] = request.args["filter"]
        result = await call("qsys_list_controls", arguments)
        if isinstance(result, Response):
            return result
        found = result["controls"]
        page = found[offset : offset + limit]
        end = offset + len(page)
        return _json_response(
            {
                "core": result["core"],
                "component": result["component"],
                "type": result["type"],
                "total": len(found),
                "offset": offset,
                "next_offset": end if end < len(found) else None,
                "controls": page,
            }
        )

    # token administration (admin only) ----------------------------------------------------

    async def audit_admin(
        action: str,
        arguments: dict[str, Any],
        outcome: str,
        answer: Any = None,
        error: str | None = None,
    ) -> None:
        """Token administration is audited like a tool call (never with the token)."""
        await calls.audit(_principal(), outcome, request_id=_request_id(),
                          tool=f"admin:tokens.{action}", arguments=arguments, answer=answer,
                          error=error)  # fmt: skip

    async def admin_refusal(action: str, arguments: dict[str, Any]) -> Response | None:
        principal = _principal()
        if tokens is None:
            return _problem(
                404, "not-found", "Not Found", "this server has no tokens file (auth.tokens_file)"
            )
        if not principal.may("admin"):
            log.info("access.refused", principal=principal.name, role=principal.role,
                     door=principal.door, client=principal.address, path=request.path)  # fmt: skip
            await audit_admin(action, arguments, "denied", error="needs the admin permission")
            return _problem(
                403, "permission-denied", "The caller's role lacks the permission",
                f"{principal.name!r} (role {principal.role!r}) may not administer tokens; "
                "that needs the admin permission",
            )  # fmt: skip
        return None

    @app.get("/api/v1/admin/tokens")
    async def list_tokens() -> Response:
        refused = await admin_refusal("list", {})
        if refused is not None or tokens is None:
            return refused or _problem(404, "not-found", "Not Found", "no tokens file")
        return _json_response({"tokens": [r.public() for r in tokens.records()]})

    @app.post("/api/v1/admin/tokens")
    async def create_token() -> Response:
        refused = await admin_refusal("create", {})
        if refused is not None or tokens is None:
            return refused or _problem(404, "not-found", "Not Found", "no tokens file")
        try:
            body = json.loads(await request.get_data(as_text=False) or b"{}")
        except (ValueError, RecursionError):
            body = None
        name, role = (body.get("name"), body.get("role")) if isinstance(body, dict) else (0, 0)
        expires = body.get("expires_days") if isinstance(body, dict) else None
        if (
            not isinstance(name, str)
            or not isinstance(role, str)
            or not (expires is None or (isinstance(expires, int | float)
                                        and not isinstance(expires, bool)))
        ):  # fmt: skip
            return _problem(
                422, "tool-input-error", "A tool's arguments are invalid",
                'the body must be {"name": str, "role": str, "expires_days": number (optional)}',
            )  # fmt: skip
        principal = _principal()
        try:
            token = await trio.to_thread.run_sync(
                lambda: tokens.create(name, role, expires_days=expires)
            )
        except Exception as exc:
            report = describe(exc)
            await audit_admin("create", {"name": name, "role": role, "expires_days": expires},
                              "rejected" if report.status < 500 else "failed",
                              error=str(exc))  # fmt: skip
            return _report_response(report)
        log.info("access.token_created", by=principal.name, role=principal.role,
                 door=principal.door, client=principal.address, name=name,
                 token_role=role)  # fmt: skip
        record = next(r for r in tokens.records() if r.name == name)
        await audit_admin("create", {"name": name, "role": role, "expires_days": expires}, "ok",
                          answer=record.public())  # fmt: skip
        return _json_response({**record.public(), "token": token}, status=201)

    @app.delete("/api/v1/admin/tokens/<name>")
    async def revoke_token(name: str) -> Response:
        refused = await admin_refusal("revoke", {"name": name})
        if refused is not None or tokens is None:
            return refused or _problem(404, "not-found", "Not Found", "no tokens file")
        principal = _principal()
        try:
            record = await trio.to_thread.run_sync(tokens.revoke, name)
        except Exception as exc:
            report = describe(exc)
            await audit_admin("revoke", {"name": name},
                              "rejected" if report.status < 500 else "failed",
                              error=str(exc))  # fmt: skip
            return _report_response(report)
        await audit_admin("revoke", {"name": name}, "ok", answer={"revoked": record.public()})
        log.info("access.token_revoked", by=principal.name, role=principal.role,
                 door=principal.door, client=principal.address, name=name)  # fmt: skip
        return _json_response({"revoked": record.public()})

    # live events ---------------------------------------------------------------------------

    @app.get("/api/v1/events")
    async def event_stream() -> Response:
        principal = _principal()
        if not principal.may("read"):
            return _problem(
                403, "permission-denied", "The caller's role lacks the permission",
                f"{principal.name!r} (role {principal.role!r}) may not read events",
            )  # fmt: skip
        if rest.streams >= max_event_streams:
            return _problem(
                503, "server-busy", "Too many event streams",
                f"{max_event_streams} event streams are open (http.max_event_streams)",
                retryable=True,
            )  # fmt: skip
        kinds_text = request.args.get("kinds", "value,status")
        kinds = frozenset(k.strip() for k in kinds_text.split(",") if k.strip())
        if not kinds or not kinds <= {"value", "status"}:
            raise _BadQuery(f"kinds must name value and/or status, got {kinds_text[:40]!r}")
        wanted = EventFilter(
            core=request.args.get("core", "*"),
            component=request.args.get("component", "*"),
            control=request.args.get("control", "*"),
            kinds=kinds,
        )
        last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        after: int | None = None
        if last is not None:
            if not last.strip().isdigit():
                raise _BadQuery(
                    f"Last-Event-ID must be an event id this server sent: {last[:40]!r}"
                )
            after = int(last)

        chunks = events.stream(after, wanted)  # starts here, before the headers go out

        async def body() -> AsyncIterator[bytes]:
            rest.streams += 1
            try:
                yield b"retry: 3000\n\n"
                async for chunk in chunks:
                    if stop.is_set():
                        break
                    yield chunk
            finally:
                rest.streams -= 1

        response = Response(body(), content_type="text/event-stream")
        response.timeout = None
        response.headers["X-Accel-Buffering"] = "no"
        return response

    return rest
