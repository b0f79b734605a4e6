"""`qsysd token` and `qsysd serve` with token authentication, as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import trio
from test_http_serve import QSYSD, WAIT, http_daemon, write_config

from qsysd.emulator import demo_design, serve_emulator

SET = {"changes": [{"control": "Bar.gain", "value": -12}]}


def token_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QSYSD, "token", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=WAIT, check=False,
        env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
    )  # fmt: skip


async def test_tokens_made_by_the_cli_authenticate_and_revoke_without_a_restart(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT * 2):
        async with serve_emulator(demo_design()) as emulator:
            config = write_config(tmp_path, emulator, auth="")  # the default: API tokens
            made = token_cli(config, "create", "--name", "automation", "--role", "operator")
            assert made.returncode == 0, made.stderr
            token = made.stdout.strip()
            assert token.startswith("qsysd_") and "shown only now" in made.stderr
            tokens_file = tmp_path / "state" / "tokens.json"
            assert token not in tokens_file.read_text()
            assert (tokens_file.stat().st_mode & 0o777) == 0o600
            listed = token_cli(config, "list", "--json")
            assert [t["name"] for t in json.loads(listed.stdout)] == ["automation"]
            assert token not in listed.stdout

            async with (
                http_daemon(config) as (process, logs, base),
                httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            ):
                assert (await client.get("/health")).status_code == 200
                r = await client.post("/api/v1/tools/qsys_set", json=SET)
                assert r.status_code == 401 and "www-authenticate" in r.headers
                auth = {"Authorization": f"Bearer {token}"}
                r = await client.post("/api/v1/tools/qsys_set", json=SET, headers=auth)
                assert r.status_code == 200, r.text
                assert emulator.get_value("Bar", "gain") == -12

                process.send_signal(signal.SIGHUP)  # reloads, does not stop
                reloaded = await logs.wait_for("daemon.reloaded")
                assert reloaded["tokens"] == 1 and process.returncode is None

                revoked = token_cli(config, "revoke", "automation")
                assert revoked.returncode == 0, revoked.stderr
                r = await client.get("/api/v1/tools", headers=auth)
                assert r.status_code == 401
                assert not [line for line in logs.records if token in json.dumps(line)]
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0


def test_token_cli_refuses_bad_input_clearly(tmp_path: Path) -> None:
    config = tmp_path / "qsysd.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n')
    bad_role = token_cli(config, "create", "--name", "x", "--role", "root")
    assert bad_role.returncode == 2
    assert "unknown role 'root'; known roles: admin, operator, viewer" in bad_role.stderr
    missing = token_cli(config, "revoke", "ghost")
    assert missing.returncode == 1 and "no token named 'ghost'" in missing.stderr
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "tokens.json").write_text("{")
    broken = token_cli(config, "list")
    assert broken.returncode == 2 and "is not JSON" in broken.stderr
    assert "Traceback" not in broken.stderr + missing.stderr + bad_role.stderr


def test_token_cli_on_a_read_only_tokens_file_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "qsysd.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n')
    assert token_cli(config, "create", "--name", "panel", "--role", "viewer").returncode == 0
    lock = tmp_path / "state" / "tokens.json.lock"
    lock.unlink()
    lock.mkdir()  # a read-only copy refuses the lock file; root ignores modes, a directory not
    for args in (("create", "--name", "svc", "--role", "operator"), ("revoke", "panel")):
        refused = token_cli(config, *args)
        assert refused.returncode == 1, refused.stderr
        assert "tokens.json cannot be changed here" in refused.stderr
        assert "restart" in refused.stderr and "Traceback" not in refused.stderr
    listed = token_cli(config, "list", "--json")
    assert [t["name"] for t in json.loads(listed.stdout)] == ["panel"]
