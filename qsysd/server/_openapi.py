"""The OpenAPI 3.1 document of the REST door, generated from the tool declarations."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from qsysd import __version__
from qsysd.plugins import Tool

__all__ = ["PROBLEM_SCHEMA", "openapi_document", "plain_schema", "resource_schemas"]

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document; `type` is stable per error class.",
    "properties": {
        "type": {"type": "string", "description": "urn:qsysd:problem:<kind>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What happened and what to do."},
        "retryable": {"type": "boolean", "description": "Whether the same call may succeed later."},
        "request_id": {"type": "string"},
        "tool": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail", "retryable"],
}

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_PAGING = {
    "total": {"type": "integer", "description": "How many items match in all."},
    "offset": {"type": "integer", "description": "The offset of this page."},
    "next_offset": {
        "type": ["integer", "null"],
        "description": "Pass as offset for the next page; null on the last page.",
    },
}


def plain_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool schema as an OpenAPI 3.1 schema object (without its ``$schema`` marker)."""
    out = copy.deepcopy(schema)
    out.pop("$schema", None)
    return out


def _array_items(schema: dict[str, Any], key: str) -> dict[str, Any]:
    return plain_schema(schema["properties"][key]["items"])


def resource_schemas(tools: dict[str, Tool]) -> dict[str, dict[str, Any]]:
    """Schemas of the resource-style reads, built from the read tools' output schemas."""
    out: dict[str, dict[str, Any]] = {}
    if "qsys_status" in tools:
        core = _array_items(tools["qsys_status"].output_schema, "cores")
        out["Core"] = core
        out["CorePage"] = {
            "type": "object",
            "properties": {**_PAGING, "cores": {"type": "array", "items": core}},
            "required": [*_PAGING, "cores"],
        }
    if "qsys_status" in tools and "qsys_history" in tools:
        out["Status"] = _status_schema(
            out["Core"], plain_schema(tools["qsys_history"].output_schema)
        )
    if "qsys_list_components" in tools:
        out["ComponentPage"] = plain_schema(tools["qsys_list_components"].output_schema)
    if "qsys_list_controls" in tools:
        listing = tools["qsys_list_controls"].output_schema
        control = _array_items(listing, "controls")
        props = listing["properties"]
        out["Component"] = {
            "type": "object",
            "properties": {
                "core": plain_schema(props["core"]),
                "name": {"type": "string", "description": "The component's name."},
                "type": plain_schema(props["type"]),
                "controls": {"type": "integer", "description": "How many controls it has."},
            },
            "required": ["core", "name", "type", "controls"],
        }
        out["ControlPage"] = {
            "type": "object",
            "properties": {
                "core": plain_schema(props["core"]),
                "component": plain_schema(props["component"]),
                "type": plain_schema(props["type"]),
                **_PAGING,
                "controls": {"type": "array", "items": control},
            },
            "required": ["core", "component", "type", *_PAGING, "controls"],
        }
    return out


def _status_schema(core: dict[str, Any], history: dict[str, Any]) -> dict[str, Any]:
    """GET /api/v1/status: the caller, each Core with its recovery, the latest writes."""
    number = {"type": ["number", "null"]}
    link = {
        "type": ["object", "null"],
        "description": "How the link has fared and when it tries again.",
        "properties": {
            "reconnects": {"type": "integer", "description": "Sessions after the first."},
            "connect_failures": {"type": "integer", "description": "Failed connects."},
            "breaker_openings": {"type": "integer", "description": "Times the breaker opened."},
            "breaker_retry_in_s": {
                "type": "number",
                "description": "Seconds until the open breaker lets a probe through.",
            },
            "retry_every_s": {**number, "description": "While down: the reconnect interval."},
            "last_push_age_s": {**number, "description": "Seconds since the last AutoPoll."},
            "design_mismatch": {"type": "boolean"},
        },
    }
    core_with_link = copy.deepcopy(core)
    core_with_link["properties"]["link"] = link
    writes = copy.deepcopy(history)
    writes["properties"]["error"] = {
        "type": "string",
        "description": "Why the writes could not be read (the rest of the answer stands).",
    }
    writes["required"] = ["entries"]
    return {
        "type": "object",
        "properties": {
            "version": {"type": "string"},
            "time": {"type": "string", "description": "The server's time, ISO 8601 UTC."},
            "principal": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "role": {"type": "string"},
                    "permissions": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["name", "role", "permissions"],
            },
            "cores": {"type": "array", "items": core_with_link},
            "writes": writes,
        },
        "required": ["version", "time", "principal", "cores", "writes"],
    }


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {
            "description": _STATUS_TEXT[s],
            "content": {"application/problem+json": {"schema": _PROBLEM_REF}},
        }
        for s in statuses
    }


_STATUS_TEXT = {
    400: "The body is not JSON",
    403: "Refused: the role lacks the permission, or the safety policy refused the write",
    404: "Unknown tool, Core, component or control",
    409: "No control of the write was written",
    413: "The body is too large",
    422: "The arguments do not match the tool's input schema",
    429: "Too many requests",
    500: "Internal error (a bug)",
    502: "The Core answered with an error, or its connection failed",
    503: "The Core is not connected, or qsysd is busy",
    504: "The Core did not answer in time",
}

_TOOL_ERRORS = (400, 403, 404, 409, 413, 422, 500, 502, 503, 504)
_READ_ERRORS = (400, 404, 500, 503)  # 400: a query parameter out of its range


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


_OFFSET = _param(
    "offset", "query", {"type": "integer", "minimum": 0, "maximum": 1_000_000}, "Items to skip."
)
_LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size.")
_FILTER = _param(
    "filter", "query", {"type": "string"}, "Name contains this text, or matches this glob."
)
_CORE = _param("core", "path", {"type": "string"}, "The Core's configured name.")
_COMPONENT = _param("component", "path", {"type": "string"}, "The component's exact name.")


def openapi_document(tools: Sequence[Tool]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``tools`` (the ones the caller may use)."""
    by_name = {t.name: t for t in tools}
    schemas = {"Problem": PROBLEM_SCHEMA, **resource_schemas(by_name)}
    tool_summary = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "permission": {"type": "string"},
            "annotations": {"type": "object"},
            "input_schema": {"type": "object"},
            "output_schema": {"type": "object"},
        },
        "required": ["name", "description", "permission", "input_schema", "output_schema"],
    }
    schemas["ToolList"] = {
        "type": "object",
        "properties": {"tools": {"type": "array", "items": tool_summary}},
        "required": ["tools"],
    }
    paths: dict[str, Any] = {
        "/api/v1/tools": {
            "get": {
                "operationId": "listTools",
                "summary": "The tools the caller may call",
                "responses": {"200": _json({"$ref": "#/components/schemas/ToolList"}, "Tools")},
            }
        }
    }
    for tool in tools:
        input_schema = plain_schema(tool.input_schema)
        required = bool(input_schema.get("required"))
        paths[f"/api/v1/tools/{tool.name}"] = {
            "post": {
                "operationId": f"call_{tool.name}",
                "summary": tool.title or tool.name,
                "description": tool.description,
                "tags": ["tools"],
                "x-qsysd-permission": tool.permission,
                "requestBody": {
                    "required": required,
                    "content": {"application/json": {"schema": input_schema}},
                },
                "responses": {
                    "200": _json(plain_schema(tool.output_schema), "The tool's output"),
                    **_problems(*_TOOL_ERRORS),
                },
            }
        }

    def read(op: str, summary: str, schema: str, params: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "get": {
                "operationId": op,
                "summary": summary,
                "tags": ["resources"],
                "parameters": params,
                "responses": {
                    "200": _json({"$ref": f"#/components/schemas/{schema}"}, summary),
                    **_problems(*_READ_ERRORS),
                },
            }
        }

    if "Core" in schemas:
        paths["/api/v1/cores"] = read("listCores", "Every Core", "CorePage", [_OFFSET, _LIMIT])
        paths["/api/v1/cores/{core}"] = read("getCore", "One Core's status", "Core", [_CORE])
    if "Status" in schemas:
        writes = _param(
            "writes", "query", {"type": "integer", "minimum": 0, "maximum": 100},
            "How many recent writes to include (default 20).",
        )  # fmt: skip
        paths["/api/v1/status"] = read(
            "getStatus", "The status page's data: caller, Cores, recent writes", "Status", [writes]
        )
    if "ComponentPage" in schemas:
        type_param = _param("type", "query", {"type": "string"}, "Only this Q-SYS type.")
        paths["/api/v1/cores/{core}/components"] = read(
            "listComponents",
            "A page of a Core's components",
            "ComponentPage",
            [_CORE, _FILTER, type_param, _OFFSET, _LIMIT],
        )
    if "Component" in schemas:
        paths["/api/v1/cores/{core}/components/{component}"] = read(
            "getComponent", "One component", "Component", [_CORE, _COMPONENT]
        )
        paths["/api/v1/cores/{core}/components/{component}/controls"] = read(
            "listControls",
            "A page of a component's controls with their values",
            "ControlPage",
            [_CORE, _COMPONENT, _FILTER, _OFFSET, _LIMIT],
        )
    paths["/api/v1/events"] = {
        "get": {
            "operationId": "events",
            "summary": "Server-Sent Events of value and Core status changes",
            "tags": ["events"],
            "parameters": [
                _param("core", "query", {"type": "string"}, "Glob on the Core name."),
                _param("component", "query", {"type": "string"}, "Glob on the component."),
                _param("control", "query", {"type": "string"}, "Glob on the control name."),
                _param("kinds", "query", {"type": "string"}, "Comma-separated: value, status."),
                _param("Last-Event-ID", "header", {"type": "string"}, "Resume after this event."),
            ],
            "responses": {
                "200": {
                    "description": "An event stream (see docs/http-api.md)",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_problems(503),
            },
        }
    }
    paths["/api/v1/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "The OpenAPI document")},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qsysd",
            "version": __version__,
            "description": "Discover and control QSC Q-SYS systems. Every tool of the MCP "
            "catalogue is a POST route; errors are RFC 9457 problem documents.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
