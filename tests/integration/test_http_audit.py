"""The audit of calls: every write and every refusal on the HTTP doors, read with qsys_audit.

Real clients over loopback against the daemon's HTTP stack and a real SQLite journal.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import httpx2
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from test_http_access import SET, bearer, token_auth
from test_http_front import WAIT, http_stack, problem

from qsysd.access import RateLimits
from qsysd.config import PolicyConfig
from qsysd.emulator import EmulatorServer
from qsysd.state import Journal

AUDIT = "/api/v1/tools/qsys_audit"


async def audit(client: httpx.AsyncClient, token: str, **query: Any) -> list[dict[str, Any]]:
    r = await client.post(AUDIT, json=query, headers=bearer(token))
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


async def test_writes_and_every_kind_of_refusal_are_audited_with_who_and_where(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    viewer = tokens.create("wall-panel", "viewer")
    operator = tokens.create("automation", "operator")
    admin = tokens.create("security", "admin")
    limits = RateLimits(write="3/minute")
    policy = PolicyConfig(protected=["Bar.mute"])
    with trio.fail_after(WAIT):
        async with (
            Journal.open(tmp_path / "journal.db") as journal,
            http_stack(emulator, policy, authenticator=auth, limits=limits, journal=journal) as s,
        ):
            post = s.client.post
            ok = await post("/api/v1/tools/qsys_set", json=SET, headers=bearer(operator))
            assert ok.status_code == 200, ok.text
            denied = await post("/api/v1/tools/qsys_set", json=SET, headers=bearer(viewer))
            problem(denied, 403, "permission-denied")
            unauthenticated = await post("/api/v1/tools/qsys_set", json=SET,
                                         headers=bearer("qsysd_not-a-token"))  # fmt: skip
            problem(unauthenticated, 401, "authentication-failed")
            mute = {"changes": [{"control": "Bar.mute", "value": 1}]}
            refused = await post("/api/v1/tools/qsys_set", json=mute, headers=bearer(operator))
            assert refused.status_code >= 400 and "protected" in refused.text, refused.text
            await post("/api/v1/tools/qsys_set", json=SET, headers=bearer(operator))
            limited = await post("/api/v1/tools/qsys_set", json=SET, headers=bearer(operator))
            problem(limited, 429, "rate-limited")

            created = await post("/api/v1/admin/tokens", json={"name": "new", "role": "viewer"},
                                 headers=bearer(admin))  # fmt: skip
            assert created.status_code == 201, created.text
            new_token = created.json()["token"]
            r = await s.client.delete("/api/v1/admin/tokens/new", headers=bearer(operator))
            problem(r, 403, "permission-denied")

            entries = await audit(s.client, admin, limit=50)
            [create] = [e for e in entries if e["tool"] == "admin:tokens.create"]
            assert create["principal"] == "security" and create["outcome"] == "ok"
            assert json.loads(create["arguments"])["name"] == "new"
            assert new_token not in json.dumps(entries)
            [revoke] = [e for e in entries if e["tool"] == "admin:tokens.revoke"]
            assert revoke["principal"] == "automation" and revoke["outcome"] == "denied"
            by_request = {e["request_id"]: e for e in entries}
            for response, principal, role, outcome in (
                (ok, "automation", "operator", "ok"),
                (denied, "wall-panel", "viewer", "denied"),
                (unauthenticated, None, None, "unauthenticated"),
                (refused, "automation", "operator", "refused"),
                (limited, "automation", "operator", "limited"),
            ):
                entry = by_request[response.headers["x-request-id"]]
                assert entry["principal"] == principal and entry["role"] == role, entry
                assert entry["outcome"] == outcome, entry
                assert entry["door"] == "rest" and entry["address"] == "127.0.0.1"
            assert json.loads(by_request[ok.headers["x-request-id"]]["arguments"]) == SET
            answer = json.loads(by_request[ok.headers["x-request-id"]]["answer"])
            assert answer["results"][0]["ok"] is True and answer["results"][0]["string"]
            assert "protected" in by_request[refused.headers["x-request-id"]]["error"]
            assert by_request[unauthenticated.headers["x-request-id"]]["tool"] is None
            assert by_request[denied.headers["x-request-id"]]["tool"] == "qsys_set"

    # The rows are in the file, and no token is in it.
    text = "\n".join(
        repr(row) for row in sqlite3.connect(tmp_path / "journal.db").execute("SELECT * FROM calls")
    )
    assert "automation" in text
    for token in (viewer, operator, admin, new_token):
        assert token not in text


async def test_qsys_audit_is_admin_only_and_filters_by_principal_outcome_and_pages(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    viewer = tokens.create("wall-panel", "viewer")
    operator = tokens.create("automation", "operator")
    admin = tokens.create("security", "admin")
    with trio.fail_after(WAIT):
        async with (
            Journal.open(tmp_path / "journal.db") as journal,
            http_stack(emulator, authenticator=auth, journal=journal) as s,
        ):
            for value in (-9, -8, -7):
                change = {"changes": [{"control": "Bar.gain", "value": value}]}
                r = await s.client.post("/api/v1/tools/qsys_set", json=change,
                                        headers=bearer(operator))  # fmt: skip
                assert r.status_code == 200, r.text
            for token in (viewer, operator):
                r = await s.client.post(AUDIT, json={}, headers=bearer(token))
                problem(r, 403, "permission-denied")
            listed = (await s.client.get("/api/v1/tools", headers=bearer(operator))).json()
            assert "qsys_audit" not in {t["name"] for t in listed["tools"]}

            mine = await audit(s.client, admin, principal="automation", outcome="ok")
            assert [json.loads(e["arguments"])["changes"][0]["value"] for e in mine] == [-7, -8, -9]
            denials = await audit(s.client, admin, outcome="denied")
            assert {(e["principal"], e["tool"]) for e in denials} == {
                ("wall-panel", "qsys_audit"),
                ("automation", "qsys_audit"),
            }
            assert await audit(s.client, admin, principal="nobody") == []
            assert await audit(s.client, admin, since="2999-01-01T00:00:00Z") == []
            page = {"principal": "automation", "outcome": "ok", "limit": 2}
            first = (await s.client.post(AUDIT, json=page, headers=bearer(admin))).json()
            assert len(first["entries"]) == 2 and first["next_offset"] == 2
            page["offset"] = 2
            second = (await s.client.post(AUDIT, json=page, headers=bearer(admin))).json()
            assert len(second["entries"]) == 1 and second["next_offset"] is None
            r = await s.client.post(AUDIT, json={"outcome": "maybe"}, headers=bearer(admin))
            problem(r, 422, "tool-input-error")


async def test_the_mcp_door_is_audited_as_mcp_and_an_old_journal_survives(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    # A version 1 journal (before the audit of calls) with one write in it.
    path = tmp_path / "journal.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE journal (id INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, "
        "core TEXT NOT NULL, component TEXT, control TEXT NOT NULL, before_value TEXT, "
        "before_string TEXT, after_value TEXT, after_string TEXT, principal TEXT, "
        "outcome TEXT, error TEXT);"
        "INSERT INTO journal (at, kind, core, component, control, principal, outcome) "
        "VALUES (1.0e9, 'write', 'main', 'Bar', 'gain', 'old-panel', 'ok');"
        "PRAGMA user_version=1;"
    )
    old.commit()
    old.close()
    auth, tokens = token_auth(tmp_path)
    viewer = tokens.create("agent", "viewer")
    admin = tokens.create("security", "admin")
    with trio.fail_after(WAIT):
        async with (
            Journal.open(path, retention_days=None) as journal,
            http_stack(emulator, authenticator=auth, journal=journal) as s,
        ):
            assert journal.persistent
            async with (
                httpx2.AsyncClient(headers=bearer(viewer), timeout=WAIT) as http,
                Client(streamable_http_client(f"{s.base}/mcp", http_client=http)) as client,
            ):
                refused = await client.call_tool("qsys_set", SET)
                assert refused.is_error
            [entry] = await audit(s.client, admin, principal="agent")
            assert entry["door"] == "mcp" and entry["outcome"] == "denied"
            assert entry["role"] == "viewer" and entry["address"] == "127.0.0.1"
            assert entry["request_id"] and entry["tool"] == "qsys_set"
            history = await s.client.post("/api/v1/tools/qsys_history",
                                          json={"principal": "old-panel"},
                                          headers=bearer(admin))  # fmt: skip
            assert [e["principal"] for e in history.json()["entries"]] == ["old-panel"]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (2,)


async def test_without_a_journal_the_latest_calls_are_kept_in_memory(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, tokens = token_auth(tmp_path)
    viewer = tokens.create("wall-panel", "viewer")
    admin = tokens.create("security", "admin")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            r = await s.client.post("/api/v1/tools/qsys_set", json=SET, headers=bearer(viewer))
            problem(r, 403, "permission-denied")
            answer = (await s.client.post(AUDIT, json={"outcome": "denied"},
                                          headers=bearer(admin))).json()  # fmt: skip
            [entry] = answer["entries"]
            assert entry["principal"] == "wall-panel" and entry["tool"] == "qsys_set"
            assert entry["request_id"] == r.headers["x-request-id"]
            assert "journal is disabled" in answer["note"]
