"""Access control on the HTTP doors: tokens, roles, 401 challenges, token administration.

Real clients over loopback: httpx for REST, the MCP SDK's Streamable HTTP client for /mcp.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import httpx2
import pytest
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from test_http_front import WAIT, http_stack, problem
from test_state_redis import free_port, redis_server, redis_url  # noqa: F401 (fixtures)

from qsysd.access import Authenticator, RateLimits, Roles, TokenStore
from qsysd.emulator import EmulatorServer
from qsysd.plugins import Registry

SET = {"changes": [{"control": "Bar.gain", "value": -7}]}


def token_auth(tmp_path: Path) -> tuple[Authenticator, TokenStore]:
    roles = Roles({"panel": ["read", "write"]})
    tokens = TokenStore(tmp_path / "tokens.json", roles=roles.__contains__)
    tokens.load()
    return Authenticator("token", tokens=tokens, roles=roles), tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_without_a_token_only_health_and_the_metadata_answer(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, _ = token_auth(tmp_path)
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            assert (await s.client.get("/health")).status_code == 200
            for method, path in [("GET", "/api/v1/tools"), ("POST", "/api/v1/tools/qsys_set"),
                                 ("GET", "/metrics"), ("GET", "/ready"),
                                 ("GET", "/api/v1/events"), ("GET", "/api/v1/admin/tokens"),
                                 ("POST", "/mcp")]:  # fmt: skip
                r = await s.client.request(method, path, json={} if method == "POST" else None)
                doc = problem(r, 401, "authentication-failed")
                assert "Bearer <token>" in doc["detail"] and doc["request_id"]
                assert r.headers["www-authenticate"] == (
                    f'Bearer resource_metadata="{s.base}/.well-known/oauth-protected-resource/mcp"'
                )
            r = await s.client.post("/mcp", json={}, headers=bearer("qsysd_wrong"))
            problem(r, 401, "authentication-failed")
            challenge = r.headers["www-authenticate"]
            assert 'error="invalid_token"' in challenge and "qsysd_wrong" not in challenge
            metadata = await s.client.get("/.well-known/oauth-protected-resource/mcp")
            assert metadata.status_code == 200
            assert metadata.json()["resource"] == f"{s.base}/mcp"
            assert metadata.json()["bearer_methods_supported"] == ["header"]
            assert emulator.get_value("Bar", "gain") != -7


async def test_a_viewer_reads_but_cannot_write_an_operator_writes(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    viewer = tokens.create("wall-panel", "viewer")
    operator = tokens.create("automation", "operator")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            listed = (await s.client.get("/api/v1/tools", headers=bearer(viewer))).json()["tools"]
            names = {t["name"] for t in listed}
            assert "qsys_get" in names and "qsys_set" not in names
            assert {t["permission"] for t in listed} == {"read"}
            r = await s.client.post("/api/v1/tools/qsys_set", json=SET, headers=bearer(viewer))
            doc = problem(r, 403, "permission-denied")
            assert "write" in doc["detail"]
            r = await s.client.post("/api/v1/tools/qsys_get", json={"controls": ["Bar.gain"]},
                                    headers=bearer(viewer))  # fmt: skip
            assert r.status_code == 200, r.text
            r = await s.client.post("/api/v1/tools/qsys_set", json=SET, headers=bearer(operator))
            assert r.status_code == 200, r.text
            assert emulator.get_value("Bar", "gain") == -7
            listed = (await s.client.get("/api/v1/tools", headers=bearer(operator))).json()
            names = {t["name"] for t in listed["tools"]}
            assert "qsys_set" in names and "qsys_snapshot_save" not in names  # admin only
            r = await s.client.get("/api/v1/admin/tokens", headers=bearer(operator))
            problem(r, 403, "permission-denied")


async def test_mcp_clients_see_only_their_tools_and_a_clear_refusal(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    viewer = tokens.create("agent", "viewer")
    with trio.fail_after(WAIT):
        async with (
            http_stack(emulator, authenticator=auth) as s,
            httpx2.AsyncClient(headers=bearer(viewer), timeout=WAIT) as http,
            Client(streamable_http_client(f"{s.base}/mcp", http_client=http)) as client,
        ):
            names = {t.name for t in (await client.list_tools()).tools}
            read_only = {t.name for t in Registry(entry_points=False).tools()
                         if t.permission == "read"}  # fmt: skip
            assert names == read_only
            result = await client.call_tool("qsys_set", SET)
            assert result.is_error
            text = " ".join(getattr(c, "text", "") for c in result.content)
            assert "agent" in text and "write" in text, text
            assert emulator.get_value("Bar", "gain") != -7


async def test_revoking_a_token_stops_it_at_once(emulator: EmulatorServer, tmp_path: Path) -> None:
    auth, tokens = token_auth(tmp_path)
    operator = tokens.create("automation", "operator")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            assert (await s.client.get("/api/v1/tools", headers=bearer(operator))).is_success
            # `qsysd token revoke` in another process: a new file renamed over the old one.
            TokenStore(tokens.path).revoke("automation")
            r = await s.client.get("/api/v1/tools", headers=bearer(operator))
            problem(r, 401, "authentication-failed")


async def test_an_admin_creates_lists_and_revokes_tokens_over_http(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    admin = tokens.create("root", "admin")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            h = bearer(admin)
            r = await s.client.post(
                "/api/v1/admin/tokens",
                headers=h,
                json={"name": "panel", "role": "panel", "expires_days": 30},
            )
            assert r.status_code == 201, r.text
            created = r.json()
            assert created["token"].startswith("qsysd_") and created["role"] == "panel"
            assert created["expires"] is not None
            listed = (await s.client.get("/api/v1/admin/tokens", headers=h)).json()["tokens"]
            assert {t["name"] for t in listed} == {"root", "panel"}
            assert all("sha256" not in t and "token" not in t for t in listed)
            r = await s.client.post("/api/v1/tools/qsys_set", json=SET,
                                    headers=bearer(created["token"]))  # fmt: skip
            assert r.status_code == 200, r.text
            for body in ({"name": "panel", "role": "viewer"}, {"name": "x", "role": "god"},
                         {"name": 3}, [1]):  # fmt: skip
                r = await s.client.post("/api/v1/admin/tokens", headers=h, json=body)
                problem(r, 422, "tool-input-error")
            r = await s.client.delete("/api/v1/admin/tokens/panel", headers=h)
            assert r.status_code == 200 and r.json()["revoked"]["name"] == "panel"
            r = await s.client.delete("/api/v1/admin/tokens/panel", headers=h)
            problem(r, 404, "lookup-failed")
            r = await s.client.get("/api/v1/tools", headers=bearer(created["token"]))
            problem(r, 401, "authentication-failed")


async def test_a_read_only_tokens_file_gets_a_conflict_that_says_what_to_do(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    admin = tokens.create("root", "admin")
    before = tokens.path.read_bytes()
    # Root ignores file modes, so the lock file's place is taken by a directory instead.
    (tmp_path / "tokens.json.lock").unlink()
    (tmp_path / "tokens.json.lock").mkdir()
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            h = bearer(admin)
            r = await s.client.post("/api/v1/admin/tokens", headers=h,
                                    json={"name": "panel", "role": "panel"})  # fmt: skip
            doc = problem(r, 409, "file-not-writable")
            assert str(tokens.path) in doc["detail"] and "restart" in doc["detail"]
            r = await s.client.delete("/api/v1/admin/tokens/root", headers=h)
            problem(r, 409, "file-not-writable")
            assert (await s.client.get("/api/v1/tools", headers=h)).is_success
    assert tokens.path.read_bytes() == before


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "qsysd_abc"])
async def test_malformed_authorization_is_refused(
    emulator: EmulatorServer, tmp_path: Path, header: str
) -> None:
    auth, _ = token_auth(tmp_path)
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            r = await s.client.get("/api/v1/tools", headers={"Authorization": header})
            problem(r, 401, "authentication-failed")
            assert 'error="invalid_request"' in r.headers["www-authenticate"]


async def test_a_write_burst_gets_429_with_retry_after_and_others_are_unaffected(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    busy = tokens.create("busy", "operator")
    calm = tokens.create("calm", "operator")
    limits = RateLimits(read="100/minute", write="3/minute", address_write="4/minute")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth, limits=limits) as s:
            for value in (-9, -8, -6):
                set_value = {"changes": [{"control": "Bar.gain", "value": value}]}
                r = await s.client.post("/api/v1/tools/qsys_set", json=set_value,
                                        headers=bearer(busy))  # fmt: skip
                assert r.status_code == 200, r.text
            r = await s.client.post("/api/v1/tools/qsys_set", json=SET, headers=bearer(busy))
            doc = problem(r, 429, "rate-limited")
            assert doc["retryable"] and "3 per 1 minute per principal for write" in doc["detail"]
            assert 1 <= int(r.headers["retry-after"]) <= 60
            assert emulator.get_value("Bar", "gain") == -6
            # The other principal has its own writes, and reads have their own budget.
            calm_set = {"changes": [{"control": "Bar.gain", "value": -5}]}
            r = await s.client.post("/api/v1/tools/qsys_set", json=calm_set, headers=bearer(calm))
            assert r.status_code == 200, r.text
            r = await s.client.post("/api/v1/tools/qsys_get", json={"controls": ["Bar.gain"]},
                                    headers=bearer(busy))  # fmt: skip
            assert r.status_code == 200, r.text
            metrics = (await s.client.get("/metrics", headers=bearer(calm))).text
            assert 'qsysd_rate_limited_total{budget="write",key="principal"} 1.0' in metrics
            assert 'outcome="limited"' in metrics
            # Both come from one address: its own budget (4 writes) is spent now.
            r = await s.client.post("/api/v1/tools/qsys_set", json=calm_set, headers=bearer(calm))
            doc = problem(r, 429, "rate-limited")
            assert "4 per 1 minute per address" in doc["detail"]


async def test_guessing_tokens_is_stopped_per_address(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    good = tokens.create("svc", "viewer")
    limits = RateLimits(failed_authentication="2/minute")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth, limits=limits) as s:
            assert (await s.client.get("/api/v1/tools")).status_code == 401  # no guess
            for guess in ("qsysd_a", "qsysd_b"):
                r = await s.client.get("/api/v1/tools", headers=bearer(guess))
                problem(r, 401, "authentication-failed")
            r = await s.client.get("/api/v1/tools", headers=bearer("qsysd_c"))
            doc = problem(r, 429, "rate-limited")
            assert "failed-authentication" in doc["detail"] and r.headers["retry-after"]
            # Locked out: from this address not even a valid token is looked at for a while.
            r = await s.client.get("/api/v1/tools", headers=bearer(good))
            problem(r, 429, "rate-limited")
            assert s.http.calls.limits.statistics() == {("failed-authentication", "address"): 2}


async def test_mcp_says_clearly_when_a_rate_limit_is_reached(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    agent = tokens.create("agent", "viewer")
    with trio.fail_after(WAIT):
        async with (
            http_stack(emulator, authenticator=auth, limits=RateLimits(read="1/minute")) as s,
            httpx2.AsyncClient(headers=bearer(agent), timeout=WAIT) as http,
            Client(streamable_http_client(f"{s.base}/mcp", http_client=http)) as client,
        ):
            first = await client.call_tool("qsys_get", {"controls": ["Bar.gain"]})
            assert not first.is_error
            second = await client.call_tool("qsys_get", {"controls": ["Bar.gain"]})
            assert second.is_error
            text = " ".join(getattr(c, "text", "") for c in second.content)
            assert "rate limit of 1 per 1 minute per principal for read calls" in text, text
            assert "retry in" in text


async def test_hsts_only_over_tls_and_no_cors_grant(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = await trio.run_process(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        capture_stdout=True, capture_stderr=True, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.fail(f"openssl could not make a test certificate: {made.stderr[-300:]!r}")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, tls_cert=str(cert), tls_key=str(key)) as s:
            assert s.base.startswith("https://")
            async with httpx.AsyncClient(base_url=s.base, verify=False, timeout=WAIT) as tls:
                r = await tls.get("/health", headers={"Origin": "http://127.0.0.1:9"})
            assert r.status_code == 200
            assert r.headers["strict-transport-security"] == "max-age=31536000"
            assert "access-control-allow-origin" not in r.headers
        async with http_stack(emulator) as plain:
            r = await plain.client.get("/health")
            assert "strict-transport-security" not in r.headers
            r = await plain.client.get("/health", headers={"Origin": "https://evil.example"})
            problem(r, 403, "origin-not-allowed")


@pytest.fixture
def shared_redis(redis_url: str) -> str:  # noqa: F811 (the fixture, by name)
    """A real redis-server (skipped locally without one, a failure in CI)."""
    return redis_url


async def test_a_redis_backed_budget_is_shared_by_two_instances(
    emulator: EmulatorServer, tmp_path: Path, shared_redis: str
) -> None:
    auth, tokens = token_auth(tmp_path)
    operator = tokens.create("automation", "operator")

    def limits() -> RateLimits:
        return RateLimits(write="2/minute", storage=shared_redis)

    with trio.fail_after(WAIT):
        async with (
            http_stack(emulator, authenticator=auth, limits=limits()) as one,
            http_stack(emulator, authenticator=auth, limits=limits()) as two,
        ):
            for value, stack in ((-9, one), (-8, two)):
                body = {"changes": [{"control": "Bar.gain", "value": value}]}
                r = await stack.client.post("/api/v1/tools/qsys_set", json=body,
                                            headers=bearer(operator))  # fmt: skip
                assert r.status_code == 200, r.text
            for stack in (one, two):
                r = await stack.client.post("/api/v1/tools/qsys_set", json=SET,
                                            headers=bearer(operator))  # fmt: skip
                problem(r, 429, "rate-limited")
            assert emulator.get_value("Bar", "gain") == -8


async def test_an_unreachable_redis_lets_calls_through_and_says_so(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    operator = tokens.create("automation", "operator")
    limits = RateLimits(write="1/minute", storage=f"redis://127.0.0.1:{free_port()}")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth, limits=limits) as s:
            for _ in range(2):
                r = await s.client.post("/api/v1/tools/qsys_set", json=SET,
                                        headers=bearer(operator))  # fmt: skip
                assert r.status_code == 200, r.text
            assert limits.storage_errors >= 2
