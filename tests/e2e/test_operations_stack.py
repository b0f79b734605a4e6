"""What the deployment files promise, held against `qsysd serve` on the emulator.

The alert rules, the dashboard and the metric reference name metrics; the probes, the health
check and Prometheus name routes; scripts/smoke checks a deployment's critical path. Here a
real daemon with token authentication answers for all of them.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import httpx
import pytest
import trio
from _contrib import (
    REAL_ROUTES,
    ROOT,
    documented_metrics,
    exported_families,
    exported_names,
    referenced_metrics,
)
from _services import require_service
from test_access_serve import token_cli
from test_http_serve import WAIT, LogTail, http_daemon, write_config

from qsysd.emulator import EmulatorServer, demo_design, serve_emulator

SMOKE = ROOT / "scripts" / "smoke"
#: Families that appear only once something happened (a snapshot saved, a push received).
EVENTUAL = ("qsysd_snapshot_age_seconds", 'qsysd_core_last_push_age_seconds{core="venue"}')


@attrs.frozen
class Deployed:
    emulator: EmulatorServer
    process: trio.Process
    logs: LogTail
    base: str
    token: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@asynccontextmanager
async def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployed]:
    """A daemon configured as in production: token authentication, a viewer token for scrapes."""
    # Snapshots often, so the snapshot metrics exist within the test.
    monkeypatch.setenv("QSYSD_STATE__SNAPSHOT_INTERVAL", "0.2")
    async with serve_emulator(demo_design()) as emulator:
        # With a Logon (the emulator accepts any), refuse_logon() keeps the Core away.
        logon = 'username = "ops"\npassword = "1234"\n'
        config = write_config(tmp_path, emulator, auth='mode = "token"\n', core=logon)
        made = token_cli(config, "create", "--name", "prometheus", "--role", "viewer")
        assert made.returncode == 0, made.stderr
        async with http_daemon(config) as (process, logs, base):
            yield Deployed(emulator, process, logs, base, made.stdout.strip())


async def scrape(d: Deployed) -> str:
    """/metrics once every eventual family is there (a snapshot saved, a push received)."""
    async with httpx.AsyncClient(timeout=WAIT) as client:
        while True:
            r = await client.get(f"{d.base}/metrics", headers=d.auth())
            assert r.status_code == 200, r.text
            if all(name in r.text for name in EVENTUAL):
                return r.text
            await trio.sleep(0.05)


async def smoke(*args: str) -> tuple[int, str, str]:
    done = await trio.run_process(
        [sys.executable, str(SMOKE), *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "QSYSD_TOKEN"},
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_every_metric_and_route_the_deployment_files_name_is_real(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alerts, dashboard and metric reference against /metrics; probes against the routes."""
    with trio.fail_after(WAIT):
        async with deployed(tmp_path, monkeypatch) as d, httpx.AsyncClient(timeout=WAIT) as c:
            r = await c.post(
                f"{d.base}/api/v1/tools/qsys_get", json={"controls": ["MainGain"]}, headers=d.auth()
            )
            assert r.status_code == 200, r.text
            # What the image's HEALTHCHECK and the liveness probe send: no token.
            health = await c.get(f"{d.base}/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            for path in sorted(REAL_ROUTES - {"/health"}):
                assert (await c.get(f"{d.base}{path}")).status_code == 401, path
                assert (await c.get(f"{d.base}{path}", headers=d.auth())).status_code == 200
            text = await scrape(d)
    exported = exported_names(text)
    for where, names in referenced_metrics().items():
        assert names, where
        assert names <= exported, f"{where} reads metrics qsysd does not export: {names - exported}"
    families = {f for f in exported_families(text) if f.startswith("qsysd_")}
    documented = documented_metrics()
    assert families - documented == set(), "exported but not in docs/operations.md"
    assert documented - families == set(), "in docs/operations.md but not exported"
    promtool = require_service("promtool", how="apt-get install prometheus")
    with trio.fail_after(WAIT):
        checked = await trio.run_process(
            [promtool, "check", "metrics"], stdin=text.encode(), capture_stdout=True,
            capture_stderr=True, check=False,
        )  # fmt: skip
    # promtool lints names and help texts (exit 3 for lint findings); malformed text is 1.
    assert checked.returncode in (0, 3), checked.stdout + checked.stderr
    assert b"error while linting" not in checked.stdout + checked.stderr


async def test_ready_and_synced_gauges_follow_the_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(WAIT):
        async with deployed(tmp_path, monkeypatch) as d:
            text = await scrape(d)
            assert "qsysd_ready 1.0" in text
            assert 'qsysd_core_synced{core="venue"} 1.0' in text
            d.emulator.refuse_logon()
            d.emulator.drop_connections()
            async with httpx.AsyncClient(timeout=WAIT) as client:
                while "qsysd_ready 0.0" not in text:
                    await trio.sleep(0.05)
                    text = (await client.get(f"{d.base}/metrics", headers=d.auth())).text
                assert 'qsysd_core_synced{core="venue"} 0.0' in text
                ready = await client.get(f"{d.base}/ready", headers=d.auth())
                assert ready.status_code == 503  # the gauge and /ready agree


async def test_smoke_passes_on_a_ready_daemon_and_fails_clearly_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(WAIT * 2):
        async with deployed(tmp_path, monkeypatch) as d:
            code, out, err = await smoke(d.base, d.token)
            assert code == 0, out + err
            assert "ok   health" in out and "ok   ready" in out and "venue" in out
            token_file = tmp_path / "token"
            token_file.write_text(d.token + "\n")
            code, out, err = await smoke(d.base + "/", f"@{token_file}")
            assert code == 0, out + err

            code, out, err = await smoke(d.base, "qsysd_not-a-token")
            assert code == 1
            assert "FAIL GET /ready: the token was refused (401" in err

            d.emulator.refuse_logon()
            d.emulator.drop_connections()
            while True:  # until the daemon noticed that the Core is gone
                code, out, err = await smoke(d.base, d.token)
                if code != 0:
                    break
                await trio.sleep(0.05)
            assert code == 1 and "not ready (not synced: venue (connected=" in err

            d.process.send_signal(signal.SIGTERM)
            assert await d.process.wait() == 0
            code, out, err = await smoke(d.base, d.token)
            assert code == 1 and f"FAIL cannot reach {d.base}/health" in err


async def test_smoke_fails_when_the_api_answers_without_a_token(tmp_path: Path) -> None:
    with trio.fail_after(WAIT):
        async with serve_emulator(demo_design()) as emulator:
            config = write_config(tmp_path, emulator)  # auth.mode "none" on loopback
            async with http_daemon(config) as (_process, _logs, base):
                code, _out, err = await smoke(base, "qsysd_any")
    assert code == 1 and "expected 401, got 200; is authentication off" in err


async def test_smoke_refuses_bad_usage(tmp_path: Path) -> None:
    assert os.access(SMOKE, os.X_OK), "scripts/smoke runs as a command"
    with trio.fail_after(WAIT):
        assert (await smoke())[0] == 2
        code, _out, err = await smoke("ftp://example", "t")
        assert code == 2 and "URL must be http:// or https://" in err
        code, _out, err = await smoke("http://127.0.0.1:9", f"@{tmp_path / 'missing'}")
        assert code == 1 and "cannot read the token file" in err
        code, _out, err = await smoke("http://127.0.0.1:9")
        assert code == 1 and "no token: give TOKEN, @TOKEN_FILE or set QSYSD_TOKEN" in err
