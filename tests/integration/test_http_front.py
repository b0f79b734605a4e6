"""The HTTP front end in-process over the emulator: REST, events, health, metrics, MCP at /mcp.

Driven by real clients over loopback: httpx for REST and SSE, the MCP SDK's Streamable HTTP
client for /mcp, raw sockets for slow requests.
"""

from __future__ import annotations

import json
import ssl
import warnings
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import attrs
import httpx
import jsonschema
import pytest
import trio
from _stacks import NAMED, core_config, running_link
from mcp import Client, types
from mcp.shared.exceptions import MCPDeprecationWarning
from openapi_spec_validator import validate as validate_openapi
from prometheus_client.parser import text_string_to_metric_families

from qsysd.access import Authenticator, CallPath, RateLimits
from qsysd.api import QsysApi
from qsysd.config import HttpConfig, PolicyConfig
from qsysd.emulator import EmulatorServer
from qsysd.plugins import Registry
from qsysd.policy import Policy
from qsysd.server import HttpFrontEnd
from qsysd.state import Journal, StateStore

WAIT = 15.0
#: Arguments for the demo design where a tool's documented example names other components.
DEMO_ARGUMENTS: dict[str, dict[str, Any]] = {
    "qsys_mixer_set": {
        "mixer": "Ballroom_Mics", "target": "crosspoint", "inputs": "1", "outputs": "1", "gain": -6
    },
}  # fmt: skip


@attrs.frozen
class Stack:
    base: str
    http: HttpFrontEnd
    emulator: EmulatorServer
    client: httpx.AsyncClient


@asynccontextmanager
async def http_stack(
    emu: EmulatorServer,
    policy: PolicyConfig | None = None,
    authenticator: Authenticator | None = None,
    limits: RateLimits | None = None,
    journal: Journal | None = None,
    registry: Registry | None = None,
    **http: Any,
) -> AsyncIterator[Stack]:
    store = StateStore()
    async with running_link(core_config(emu), store, named_controls=NAMED) as link:
        await link.wait_connected()
        api = QsysApi({"main": link}, store, Policy(policy or PolicyConfig()), journal)
        registry = registry or Registry(entry_points=False)
        front = HttpFrontEnd(
            HttpConfig(enabled=True, listen="127.0.0.1:0", **http),
            CallPath(api, registry, limits=limits),
            links={"main": link},
            store=store,
            registry=registry,
            authenticator=authenticator or Authenticator(),
            journal=journal,
        )
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(front.run)
            base = urls[0].rstrip("/")
            async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
                yield Stack(base, front, emu, client)
            front.stop()


def problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    doc = response.json()
    assert doc["type"] == f"urn:qsysd:problem:{kind}", doc
    assert doc["status"] == status and doc["detail"] and isinstance(doc["retryable"], bool)
    return dict(doc)


async def test_rest_call_answers_the_tools_output_with_the_cores_string(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with http_stack(emulator) as s:
            listed = (await s.client.get("/api/v1/tools")).json()["tools"]
            assert {"qsys_get", "qsys_set", "qsys_status"} <= {t["name"] for t in listed}
            r = await s.client.post(
                "/api/v1/tools/qsys_set", json={"changes": [{"control": "Bar.gain", "value": -7}]}
            )
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["string"] == "-7.0dB"
            assert emulator.get_value("Bar", "gain") == -7
            r = await s.client.post("/api/v1/tools/qsys_get", json={"controls": ["Bar.gain"]})
            assert r.json()["values"][0]["value"] == -7


async def test_every_tool_answers_over_rest_as_the_openapi_document_says(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT * 2):
        # The examples make large steps; the step limit has tests of its own.
        async with http_stack(emulator, PolicyConfig(max_gain_step_db=None)) as s:
            doc = (await s.client.get("/api/v1/openapi.json")).json()
            validate_openapi(doc)  # a valid OpenAPI 3.1 document
            tools = (await s.client.get("/api/v1/tools")).json()["tools"]
            for tool in Registry(entry_points=False).tools():
                assert any(t["name"] == tool.name for t in tools)
                path = f"/api/v1/tools/{tool.name}"
                operation = doc["paths"][path]["post"]
                arguments = DEMO_ARGUMENTS.get(tool.name) or (
                    tool.examples[0] if tool.examples else {}
                )
                r = await s.client.post(path, json=arguments)
                assert r.status_code == 200, (tool.name, r.text)
                schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
                jsonschema.validate(r.json(), schema)
            bad = await s.client.post("/api/v1/tools/qsys_get", json={"controls": []})
            schema = doc["paths"]["/api/v1/tools/qsys_get"]["post"]["responses"]["422"]
            ref = schema["content"]["application/problem+json"]["schema"]["$ref"]
            jsonschema.validate(bad.json(), doc["components"]["schemas"][ref.rpartition("/")[2]])


async def test_resource_reads_page_and_match_their_schemas(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with http_stack(emulator) as s:
            doc = (await s.client.get("/api/v1/openapi.json")).json()
            schemas = doc["components"]["schemas"]

            async def read(path: str, schema: str, **params: Any) -> Any:
                r = await s.client.get(path, params=params)
                assert r.status_code == 200, r.text
                jsonschema.validate(r.json(), schemas[schema])
                return r.json()

            cores = await read("/api/v1/cores", "CorePage")
            assert [c["name"] for c in cores["cores"]] == ["main"]
            assert (await read("/api/v1/cores/main", "Core"))["connected"] is True
            first = await read("/api/v1/cores/main/components", "ComponentPage", limit=2)
            assert len(first["components"]) == 2 and first["next_offset"] == 2
            second = await read("/api/v1/cores/main/components", "ComponentPage", limit=2, offset=2)
            assert second["components"][0] != first["components"][0]
            one = await read("/api/v1/cores/main/components/Bar", "Component")
            assert one["name"] == "Bar" and one["controls"] >= 2
            page = await read("/api/v1/cores/main/components/Bar/controls", "ControlPage", limit=1)
            assert page["total"] == one["controls"] and len(page["controls"]) == 1
            problem(await s.client.get("/api/v1/cores/nope"), 404, "lookup-failed")
            problem(await s.client.get("/api/v1/cores/main/components/Nope"), 404, "lookup-failed")
            problem(await s.client.get("/api/v1/cores", params={"limit": "x"}), 400, "bad-query")
            # the document states the ranges the routes enforce, and their 400 answer
            listing = doc["paths"]["/api/v1/cores"]["get"]
            (offset,) = [p for p in listing["parameters"] if p["name"] == "offset"]
            too_far = {"offset": offset["schema"]["maximum"] + 1}
            problem(await s.client.get("/api/v1/cores", params=too_far), 400, "bad-query")
            assert "400" in listing["responses"]


async def test_bad_requests_get_problem_documents_and_the_server_keeps_serving(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with http_stack(emulator, max_body_bytes=1000) as s:
            c = s.client
            unknown = problem(await c.post("/api/v1/tools/qsys_gte", json={}), 404, "lookup-failed")
            assert "qsys_get" in unknown["detail"]  # the closest name
            problem(await c.post("/api/v1/tools/qsys_get", content=b"{nope"), 400, "invalid-json")
            problem(await c.post("/api/v1/tools/qsys_get", json=[1]), 422, "tool-input-error")
            deep = b"[" * 490 + b"]" * 490
            problem(await c.post("/api/v1/tools/qsys_get", content=deep), 422, "tool-input-error")
            surrogate = b'{"controls": ["\\ud800"]}'
            lone = await c.post("/api/v1/tools/qsys_get", content=surrogate)
            assert lone.status_code in (200, 422), lone.text  # an answer, never a 500
            invalid = problem(
                await c.post("/api/v1/tools/qsys_get", json={"controls": "Bar.gain"}),
                422,
                "tool-input-error",
            )
            assert "inputSchema of qsys_get" in invalid["detail"]
            refused = problem(
                await c.post(
                    "/api/v1/tools/qsys_set",
                    json={"changes": [{"control": "Bar.gain", "value": 10}]},
                ),
                409,
                "write-failed",
            )
            assert "max_gain" in refused["detail"]
            problem(await c.get("/nowhere"), 404, "not-found")
            wrong = problem(await c.get("/api/v1/tools/qsys_get"), 405, "method-not-allowed")
            assert wrong["detail"].startswith("GET is not allowed")
            problem(await c.post("/api/v1/tools/qsys_get", content=b"x" * 2000), 413,
                    "body-too-large")  # fmt: skip
            no_host = await c.get("/health", headers={"Host": "evil.example"})
            problem(no_host, 421, "host-not-allowed")
            problem(
                await c.get("/health", headers={"Origin": "http://evil.example"}),
                403,
                "origin-not-allowed",
            )
            ok = await c.get("/health", headers={"X-Request-Id": "panel-42"})
            assert ok.status_code == 200 and ok.headers["x-request-id"] == "panel-42"
            assert "server" not in ok.headers
            assert ok.headers["x-content-type-options"] == "nosniff"
            generated = await c.get("/health", headers={"X-Request-Id": "bad id; <script>"})
            assert generated.headers["x-request-id"] != "bad id"
            assert len(generated.headers["x-request-id"]) == 16


async def test_a_slow_body_gets_408_and_slow_headers_are_dropped(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with http_stack(emulator, read_timeout=0.3, keep_alive_timeout=0.3) as s:
            port = int(s.base.rpartition(":")[2])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(
                    b"POST /api/v1/tools/qsys_get HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                )
                answer = b""
                while b"\r\n\r\n" not in answer:
                    chunk = await stream.receive_some(4096)
                    assert chunk
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 408"), answer
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET /health HTTP/1.1\r\nHo")  # and nothing more
                assert await stream.receive_some(4096) == b""  # closed by the server
            assert (await s.client.get("/health")).status_code == 200


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parsed SSE messages (``id``, ``event``, ``data``) of a streaming response."""
    message: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "event" in message:
                yield message
            message = {}
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(": ")
            message[key] = json.loads(value) if key == "data" else value


@asynccontextmanager
async def sse(
    client: httpx.AsyncClient, params: dict[str, str] | None = None, last: str | None = None
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    headers = {"Last-Event-ID": last} if last is not None else {}
    async with client.stream("GET", "/api/v1/events", params=params, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        async with aclosing(sse_events(r)) as events:
            yield events


async def test_events_stream_changes_with_filters_and_resume(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with http_stack(emulator) as s:
            params = {"component": "Bar", "control": "gain", "kinds": "value"}
            async with sse(s.client, params) as events:
                emulator.set_value("Lobby_BGM", "gain", -30)  # filtered out
                emulator.set_value("Bar", "gain", -21)
                first = await anext(events)
                assert first["event"] == "value"
                assert first["data"]["component"] == "Bar" and first["data"]["value"] == -21
                emulator.set_value("Bar", "gain", -22)
                second = await anext(events)
                assert second["data"]["value"] == -22
            emulator.set_value("Bar", "gain", -23)  # while the panel is away
            # The hub publishes off the Core's next push; nothing to wait on from outside.
            while s.http.events is not None and s.http.events.last_id <= int(second["id"]):  # noqa: ASYNC110
                await trio.sleep(0.02)
            async with sse(s.client, params, last=first["id"]) as events:
                assert (await anext(events))["data"]["value"] == -22
                assert (await anext(events))["data"]["value"] == -23
            async with sse(s.client, last="999999") as events:
                assert (await anext(events))["event"] == "reset"
            bad = await s.client.get("/api/v1/events", params={"kinds": "gossip"})
            problem(bad, 400, "bad-query")


async def test_events_tell_a_client_when_its_history_is_gone(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with http_stack(emulator, event_history=2) as s:
            params = {"component": "Bar", "control": "gain"}
            async with sse(s.client, params) as events:
                emulator.set_value("Bar", "gain", -15)  # the demo design starts at -10
                first = await anext(events)
                for value in (-16, -17, -18):
                    emulator.set_value("Bar", "gain", value)
                    assert (await anext(events))["data"]["value"] == value
            async with sse(s.client, params, last=first["id"]) as events:
                reset = await anext(events)
                assert reset["event"] == "reset" and "no longer held" in reset["data"]["reason"]
                # Then what the history still holds (the last two), then live events.
                assert (await anext(events))["data"]["value"] == -17
                assert (await anext(events))["data"]["value"] == -18
                emulator.set_value("Bar", "gain", -19)
                assert (await anext(events))["data"]["value"] == -19


async def test_ready_follows_the_core_and_metrics_count_calls(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with http_stack(emulator) as s:
            ready = await s.client.get("/ready")
            assert ready.status_code == 200 and ready.json()["cores"][0]["synced"] is True
            await s.client.post("/api/v1/tools/qsys_status", json={})
            await s.client.post("/api/v1/tools/qsys_nope", json={})
            metrics = await s.client.get("/metrics")
            families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
            calls = {
                (m.labels["door"], m.labels["tool"], m.labels["outcome"]): m.value
                for m in families["qsysd_requests"].samples
                if m.name == "qsysd_requests_total"
            }
            assert calls[("rest", "qsys_status", "ok")] == 1
            assert calls[("rest", "(unknown)", "rejected")] == 1
            assert "qsysd_core_connected" in families and "qsysd_state_controls" in families
            await s.client.get("/health", headers={"Host": "evil.example"})
            again_text = (await s.client.get("/metrics")).text
            assert 'qsysd_http_refused_total{status="421"} 1.0' in again_text
            assert "qsysd_process_resident_memory_bytes" in families or (
                "qsysd_process_resident_memory" in families
            )
            emulator.stall()  # frozen: the keepalive finds out
            # Polling /ready is what a load balancer does: the behaviour under test.
            while (await s.client.get("/ready")).status_code != 503:  # noqa: ASYNC110
                await trio.sleep(0.05)
            emulator.stall(False)
            while (await s.client.get("/ready")).status_code != 200:  # noqa: ASYNC110
                await trio.sleep(0.05)
            await s.client.post("/api/v1/tools/qsys_status", json={})
            again = await s.client.get("/metrics")
            assert 'qsysd_requests_total{door="rest",outcome="ok",tool="qsys_status"} 2.0' in (
                again.text
            )


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_mcp_over_http_serves_the_same_catalogue_in_both_eras(
    emulator: EmulatorServer, mode: str
) -> None:
    with trio.fail_after(WAIT):
        async with http_stack(emulator) as s, Client(f"{s.base}/mcp", mode=mode) as client:
            assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {t.name for t in Registry(entry_points=False).tools()}
            result = await client.call_tool(
                "qsys_set", {"changes": [{"control": "Bar.gain", "value": -9}]}
            )
            assert not result.is_error and result.structured_content is not None
            assert result.structured_content["results"][0]["string"] == "-9.0dB"
            failed = await client.call_tool("qsys_get", {"controls": ["Bar.gian"]})
            got = failed.structured_content
            assert got is not None and "did you mean: gain" in got["values"][0]["error"]
            prompts = await client.list_prompts()
            assert prompts.prompts
            resources = await client.list_resources()
            assert any(r.uri == "qsys://cores" for r in resources.resources)


async def test_mcp_resource_subscriptions_over_http_are_notified_in_both_eras(
    emulator: EmulatorServer,
) -> None:
    uri = "qsys://core/main/component/Bar/controls"
    updated = trio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification) and message.params.uri == uri:
            updated.set()

    with trio.fail_after(WAIT):
        async with http_stack(emulator) as s:
            async with Client(f"{s.base}/mcp", mode="legacy", message_handler=on_message) as c:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await c.subscribe_resource(uri)
                emulator.set_value("Bar", "gain", -33)
                await updated.wait()
            async with (
                Client(f"{s.base}/mcp") as client,
                client.listen(resource_subscriptions=[uri]) as subscription,
            ):
                emulator.set_value("Bar", "gain", -34)
                async for event in subscription:
                    if getattr(event, "uri", None) == uri:
                        break


async def test_busy_server_answers_503_and_tls_serves_https(
    emulator: EmulatorServer, tmp_path: Any
) -> None:
    cert, key = self_signed(tmp_path)
    with trio.fail_after(WAIT):
        async with http_stack(emulator, max_concurrent_requests=1) as s:
            async with sse(s.client):  # an open stream holds the one slot
                busy = problem(await s.client.get("/health"), 503, "server-busy")
                assert busy["retryable"] is True
            assert (await s.client.get("/health")).status_code == 200
        async with http_stack(emulator, tls_cert=str(cert), tls_key=str(key)) as s:
            assert s.base.startswith("https://")
            trusted = ssl.create_default_context(cafile=str(cert))
            async with httpx.AsyncClient(verify=trusted, timeout=WAIT) as client:
                r = await client.get(f"{s.base.replace('127.0.0.1', 'localhost')}/health")
                assert r.status_code == 200 and r.json()["status"] == "ok"


def self_signed(folder: Any) -> tuple[Any, Any]:
    """A certificate for localhost and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
