"""The qsysd command as a subprocess: version, config check, exit codes, secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from qsysd import __version__


def qsysd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qsysd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
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
