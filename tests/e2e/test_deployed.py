"""The end-to-end checks against a deployed instance, read-only.

Set ``QSYSD_E2E_URL`` (e.g. https://qsysd.example.com) and ``QSYSD_E2E_TOKEN`` (a viewer
token; a file path prefixed with ``@`` works too) to run them; without both they are skipped,
saying so. Nothing here writes to the site: reads, metrics and the smoke script only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
import trio
from _contrib import ROOT, exported_names, referenced_metrics

URL = os.environ.get("QSYSD_E2E_URL", "").rstrip("/")
_TOKEN = os.environ.get("QSYSD_E2E_TOKEN", "")
WAIT = 30.0

pytestmark = pytest.mark.skipif(
    not (URL and _TOKEN),
    reason="no deployed instance: set QSYSD_E2E_URL and QSYSD_E2E_TOKEN (a viewer token) "
    "to run these read-only checks against one",
)


def token() -> str:
    return Path(_TOKEN[1:]).read_text().strip() if _TOKEN.startswith("@") else _TOKEN


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=URL, timeout=WAIT, headers={"Authorization": f"Bearer {token()}"}
    )


async def test_the_smoke_script_passes() -> None:
    with trio.fail_after(WAIT * 2):
        done = await trio.run_process(
            [sys.executable, str(ROOT / "scripts" / "smoke"), URL],
            capture_stdout=True, capture_stderr=True, check=False,
            env={**os.environ, "QSYSD_TOKEN": token()},  # not on the command line
        )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


async def test_health_is_open_and_everything_else_needs_the_token() -> None:
    with trio.fail_after(WAIT):
        async with httpx.AsyncClient(base_url=URL, timeout=WAIT) as anonymous:
            assert (await anonymous.get("/health")).status_code == 200
            for path in ("/ready", "/metrics", "/api/v1/tools"):
                r = await anonymous.get(path)
                assert r.status_code == 401, f"{path} answered {r.status_code} without a token"
                assert r.headers["www-authenticate"].startswith("Bearer ")


async def test_every_metric_the_alerts_and_dashboard_read_is_exported() -> None:
    with trio.fail_after(WAIT):
        async with client() as c:
            r = await c.get("/metrics")
    assert r.status_code == 200, r.text[:300]
    exported = exported_names(r.text)
    for where, names in referenced_metrics().items():
        # Families that exist only after an event (a first snapshot) may be absent at first.
        missing = names - exported - {"qsysd_snapshot_age_seconds"}
        assert not missing, f"{where} reads metrics the deployment does not export: {missing}"


async def test_each_core_answers_a_read_through_rest_and_the_tool() -> None:
    with trio.fail_after(WAIT):
        async with client() as c:
            listed = await c.get("/api/v1/cores")
            assert listed.status_code == 200, listed.text[:300]
            cores = listed.json()["cores"]
            assert cores, "the deployment has no Core configured"
            for core in cores:
                status = await c.post("/api/v1/tools/qsys_status", json={"core": core["name"]})
                assert status.status_code == 200, status.text[:300]
                assert status.json()["cores"][0]["connected"] is True, core["name"]
                page = await c.get(f"/api/v1/cores/{core['name']}/components", params={"limit": 5})
                assert page.status_code == 200 and page.json()["components"], core["name"]
