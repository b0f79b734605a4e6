"""The operator status page over real HTTP: its open shell, its policy, and the data behind a token.

The page's behaviour in a browser is tests/e2e/test_status_page_browser.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import trio
from test_http_access import SET, bearer
from test_http_front import WAIT, http_stack, problem

from qsysd.access import Authenticator, Roles, TokenStore
from qsysd.emulator import EmulatorServer
from qsysd.server._asgi import SECURITY_HEADERS
from qsysd.server._page import PAGE_CSP, PAGE_PATHS

DEFAULT_CSP = dict(SECURITY_HEADERS)[b"content-security-policy"].decode()


def token_auth(tmp_path: Path) -> tuple[Authenticator, TokenStore]:
    roles = Roles({"writer-only": ["write"]})
    tokens = TokenStore(tmp_path / "tokens.json", roles=roles.__contains__)
    tokens.load()
    return Authenticator("token", tokens=tokens, roles=roles), tokens


def validate(document: Any, openapi: dict[str, Any], schema: str) -> None:
    """``document`` against a schema of the OpenAPI document (its $refs resolved there)."""
    jsonschema.validate(
        document, {"$ref": f"#/components/schemas/{schema}", "components": openapi["components"]}
    )


async def test_the_shell_is_open_its_data_is_not(emulator: EmulatorServer, tmp_path: Path) -> None:
    auth, tokens = token_auth(tmp_path)
    viewer = tokens.create("wall-panel", "viewer")
    writer = tokens.create("pusher", "writer-only")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            page = await s.client.get("/")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert page.headers["content-security-policy"] == PAGE_CSP
            assert page.headers["cache-control"] == "no-store"
            assert '<script src="/static/status.js" defer></script>' in page.text
            for path in PAGE_PATHS[1:]:
                r = await s.client.get(path)
                assert r.status_code == 200, path
                # A script or style is no document: it keeps the policy of every other answer.
                assert r.headers["content-security-policy"] == DEFAULT_CSP, path
            assert (await s.client.head("/")).status_code == 200
            # Only the page's own files are open; anything else under /static is a route.
            problem(await s.client.get("/static/other.js"), 401, "authentication-failed")
            problem(await s.client.get("/static/other.js", headers=bearer(viewer)), 404,
                    "not-found")  # fmt: skip
            r = await s.client.get("/api/v1/status")
            problem(r, 401, "authentication-failed")
            assert r.headers["content-security-policy"] == DEFAULT_CSP
            r = await s.client.get("/api/v1/status", headers=bearer(viewer))
            assert r.status_code == 200, r.text
            assert r.json()["principal"] == {
                "name": "wall-panel", "role": "viewer", "permissions": ["read"]
            }  # fmt: skip
            # A role that may not read sees no status: the same refusal as qsys_status's.
            doc = problem(await s.client.get("/api/v1/status", headers=bearer(writer)), 403,
                          "permission-denied")  # fmt: skip
            assert "read" in doc["detail"]
            problem(await s.client.post("/", headers=bearer(viewer)), 405, "method-not-allowed")


async def test_status_shows_the_core_and_the_latest_writes_with_their_principals(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    viewer = tokens.create("wall-panel", "viewer")
    operator = tokens.create("automation", "operator")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            r = await s.client.post("/api/v1/tools/qsys_set", json=SET, headers=bearer(operator))
            assert r.status_code == 200, r.text
            second = {"changes": [{"control": "Bar.mute", "value": True}]}
            r = await s.client.post("/api/v1/tools/qsys_set", json=second,
                                    headers=bearer(operator))  # fmt: skip
            assert r.status_code == 200, r.text
            r = await s.client.get("/api/v1/status", headers=bearer(viewer))
            assert r.status_code == 200, r.text
            status = r.json()
            (core,) = status["cores"]
            assert core["name"] == "main" and core["connected"] and core["breaker"] == "closed"
            assert core["design_name"] and core["last_error"] is None and core["since"]
            assert core["link"]["retry_every_s"] is None and core["link"]["reconnects"] == 0
            entries = status["writes"]["entries"]
            assert [(e["principal"], e["control"], e["outcome"]) for e in entries] == [
                ("automation", "Bar.mute", "ok"), ("automation", "Bar.gain", "ok")
            ]  # fmt: skip
            assert entries[1]["after"] == "-7.0dB"
            openapi = (await s.client.get("/api/v1/openapi.json", headers=bearer(viewer))).json()
            assert openapi["paths"]["/api/v1/status"]["get"]["operationId"] == "getStatus"
            validate(status, openapi, "Status")

            one = (await s.client.get("/api/v1/status?writes=1", headers=bearer(viewer))).json()
            assert [e["control"] for e in one["writes"]["entries"]] == ["Bar.mute"]
            none = (await s.client.get("/api/v1/status?writes=0", headers=bearer(viewer))).json()
            assert none["writes"]["entries"] == [] and none["cores"]
            for bad in ("101", "-1", "many"):
                r = await s.client.get(f"/api/v1/status?writes={bad}", headers=bearer(viewer))
                assert "writes" in problem(r, 400, "bad-query")["detail"]


async def test_a_core_that_stopped_answering_shows_why(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with http_stack(emulator) as s:
            link = s.http.links["main"]
            emulator.stall()
            await link.wait_disconnected()  # the keepalive found it
            r = await s.client.get("/api/v1/status")
            assert r.status_code == 200, r.text
            (core,) = r.json()["cores"]
            assert not core["connected"]
            assert "keepalive got no answer" in core["last_error"]
            assert core["link"]["breaker_openings"] == 0
            emulator.stall(False)
            emulator.drop_connections()
            await link.wait_connected()
            (core,) = (await s.client.get("/api/v1/status")).json()["cores"]
            assert core["connected"] and core["link"]["reconnects"] == 1
