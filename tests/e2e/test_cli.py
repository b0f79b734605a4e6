"""The qsysd command as a subprocess: version, config check, exit codes, secrets."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from qsysd import __version__

# The default state folder of these runs: never the real user's.
_STATE_HOME = tempfile.TemporaryDirectory(prefix="qsysd-e2e-state-")


def qsysd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qsysd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": _STATE_HOME.name, **(env or {})},
        check=False,
    )


def test_version() -> None:
    result = qsysd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"qsysd {__version__}"


def test_every_command_has_help() -> None:
    for command in (["serve"], ["emulate"], ["demo"], ["config", "check"], ["plugins"]):
        result = qsysd(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "usage: qsysd" in result.stdout


def test_config_check_prints_effective_config_with_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pin"
    secret.write_text("9876-secret-pin\n")
    config = tmp_path / "qsysd.toml"
    config.write_text(
        f'[[cores]]\nname = "main"\nhost = "192.0.2.1"\nusername = "u"\n'
        f'password_file = "{secret}"\n'
    )
    result = qsysd("config", "check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["cores"][0]["password"] == "***"
    assert effective["cores"][0]["port"] == 1710
    assert "9876-secret-pin" not in result.stdout + result.stderr


def test_config_check_of_example() -> None:
    example = Path(__file__).parents[2] / "examples" / "qsysd.toml"
    result = qsysd("config", "check", "--config", str(example))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cores"][0]["name"] == "main"


def test_broken_config_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[[cores]]\nname = "m"\nhost = "h"\nport = "x"\nextra = 1\n[http]\nlisten="?"'
    )
    result = qsysd("config", "check", "--config", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "cores[0].port: expected an integer" in result.stderr
    assert "cores[0]: unknown key(s): extra" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_from_environment_variable(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[logging]\nlevel = "debug"\n')
    result = qsysd("config", "check", env={"QSYSD_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["logging"]["level"] == "debug"


def test_serve_with_invalid_config_fails_fast_before_network(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[cores]]\nname = "m"\nhost = "h"\nport = 0\n')
    result = qsysd("serve", "--config", str(config))
    assert result.returncode == 2
    assert "cores[0].port: 0 is not a TCP port" in result.stderr


def test_plugins_lists_builtin_tools_as_json() -> None:
    result = qsysd("plugins", "--json", env={"QSYSD_LOAD_PLUGINS": ""})
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    tools = {tool for plugin in listed["plugins"] for tool in plugin["tools"]}
    assert {"qsys_status", "qsys_get", "qsys_set", "qsys_find_controls"} <= tools
    assert all(p["source"] == "builtin" for p in listed["plugins"])


def test_serve_without_cores_says_how_to_start_and_exits_2() -> None:
    result = qsysd("serve")
    assert result.returncode == 2
    assert "cores: no Core is configured" in result.stderr and "qsysd demo" in result.stderr


def write_core(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "qsysd.toml"
    # Port 9 (discard) on loopback: nothing answers, and start-up fails before any connect.
    config.write_text(f'[[cores]]\nname = "main"\nhost = "127.0.0.1"\nport = 9\n{extra}')
    return config


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # Besides JSON log records (stderr is not a terminal here), exactly one line.
    [line] = [x for x in result.stderr.strip().splitlines() if not x.startswith("{")]
    return line


def test_config_check_uses_the_per_user_state_folder_by_default(tmp_path: Path) -> None:
    result = qsysd("config", "check", env={"XDG_STATE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"]["dir"] == str(tmp_path / "qsysd")
    assert (tmp_path / "qsysd").is_dir()
    assert f"state folder {tmp_path / 'qsysd'}" in result.stderr


def test_config_check_refuses_a_state_folder_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    state = tmp_path / "file" / "state"
    result = qsysd("config", "check", env={"QSYSD_STATE__DIR": str(state)})
    assert result.returncode == 2
    assert f"state.dir: the state folder '{state}' cannot be created" in result.stderr
    assert result.stdout == ""


def test_serve_reports_an_unusable_state_folder_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    config = write_core(tmp_path, f'[state]\ndir = "{tmp_path / "file" / "state"}"\n')
    line = one_line(qsysd("serve", "--config", str(config)))
    assert line.startswith("qsysd serve: state.dir: the state folder ")
    assert "set state.dir" in line


def test_serve_with_redis_down_runs_and_says_so_without_its_password(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_core(tmp_path, f'[state]\ndir = "{tmp_path}"\nbackend = "redis"\n')
    url = f"redis://user:redis-s3cret@127.0.0.1:{port}/0"
    env = {"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": _STATE_HOME.name}
    env["QSYSD_STATE__REDIS_URL"] = url
    proc = subprocess.Popen(
        [sys.executable, "-m", "qsysd", "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    killer = threading.Timer(60, proc.kill)  # a bound on the blocking reads below
    killer.start()
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "state.snapshot_unavailable" in line:
                break  # start-up goes on (a signal stops it at once, even before "ready")
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        killer.cancel()
        proc.kill()
    text = "".join(lines) + rest
    assert proc.returncode == 0, text
    [down] = [json.loads(x) for x in lines if "state.snapshot_unavailable" in x]
    assert f"127.0.0.1:{port}" in down["error"] and "state.redis_url" in down["hint"]
    assert "redis-s3cret" not in text and "Traceback" not in text


def test_numeric_pin_is_accepted_and_never_printed(tmp_path: Path) -> None:
    config = write_core(tmp_path, 'username = "operator"\npassword = 4711\n')
    result = qsysd("config", "check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cores"][0]["password"] == "***"
    assert "4711" not in result.stdout + result.stderr
    wrong = write_core(tmp_path, 'username = "operator"\npassword = 4711.0\n')
    result = qsysd("config", "check", "--config", str(wrong))
    assert result.returncode == 2 and "cores[0].password: expected a string" in result.stderr
    assert "4711" not in result.stderr


def test_config_check_warns_about_a_username_without_a_pin(tmp_path: Path) -> None:
    result = qsysd("config", "check", "--config", str(write_core(tmp_path, 'username = "op"\n')))
    assert result.returncode == 0, result.stderr
    assert "qsysd: warning: cores[0].username: 'op' is set but no password (PIN)" in result.stderr


def test_plugins_loads_the_plugin_folders_of_the_configuration(tmp_path: Path) -> None:
    folder = tmp_path / "site-plugins"
    folder.mkdir()
    (folder / "site_tools.py").write_text('"""A site tool collection (none yet)."""\n')
    config = tmp_path / "qsysd.toml"
    config.write_text(f'[plugins]\ndirs = ["{folder}"]\n')
    for args, env in (
        (["--config", str(config)], {}),
        ([], {"QSYSD_CONFIG": str(config)}),
    ):
        result = qsysd("plugins", "--json", *args, env={"QSYSD_LOAD_PLUGINS": "", **env})
        assert result.returncode == 0, result.stderr
        sources = {p["name"]: p["source"] for p in json.loads(result.stdout)["plugins"]}
        assert sources.get("site_tools") == "folder"
