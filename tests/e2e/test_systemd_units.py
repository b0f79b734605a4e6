"""systemd/: the units pass `systemd-analyze verify`, name a real qsysd command, config keys
and credentials that qsysd reads, and the daemon runs under their MemoryDenyWriteExecute."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from _services import require_service
from test_access_serve import token_cli
from test_http_serve import WAIT, write_config
from test_serve_lifecycle import serve

from qsysd.access import Authenticator
from qsysd.cli import build_parser
from qsysd.config import config_warnings, load_config, parse_listen_address
from qsysd.daemon import CLOSE_MARGIN_SECONDS
from qsysd.emulator import demo_design, serve_emulator

UNITS = Path(__file__).parents[2] / "systemd"
SERVICE = UNITS / "qsysd.service"
SOCKET = UNITS / "qsysd.socket"
EXAMPLE = UNITS / "qsysd.toml"
QSYSD_BIN = Path(sys.executable).with_name("qsysd")  # the console script of this environment


def directives(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value, in order (a unit may repeat a key)."""
    found: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            found.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        found[section].setdefault(key, []).append(value)
    return found


def one(path: Path, section: str, key: str) -> str:
    values = directives(path)[section][key]
    assert len(values) == 1, f"{key}= is set {len(values)} times"
    return values[0]


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|min)?", text)
    assert match, f"not a simple time span: {text!r}"
    return float(match[1]) * (60 if match[2] == "min" else 1)


def verify(*units: Path) -> subprocess.CompletedProcess[str]:
    analyze = require_service("systemd-analyze", how="apt-get install systemd")
    return subprocess.run(
        [analyze, "verify", *map(str, units)],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip


def installed_copies(tmp_path: Path) -> tuple[Path, Path]:
    """The units as installed here: ExecStart= names this environment's qsysd, nothing else
    changes (verify checks that the program exists)."""
    assert QSYSD_BIN.is_file(), f"{QSYSD_BIN} is missing: pip install -e ."
    text = SERVICE.read_text()
    program = shlex.split(one(SERVICE, "Service", "ExecStart"))[0]
    assert text.count(program) == 1
    service = tmp_path / "qsysd.service"
    service.write_text(text.replace(program, str(QSYSD_BIN)))
    socket_unit = tmp_path / "qsysd.socket"
    socket_unit.write_text(SOCKET.read_text())
    return service, socket_unit


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    done = verify(*installed_copies(tmp_path))
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done
    # The check can fail: a misspelt hardening key is reported.
    service = tmp_path / "qsysd.service"
    service.write_text(service.read_text().replace("ProtectClock=", "ProtectClok="))
    typo = verify(service, tmp_path / "qsysd.socket")
    assert "Unknown key 'ProtectClok'" in typo.stdout + typo.stderr


def test_the_service_is_hardened_as_documented(tmp_path: Path) -> None:
    service = directives(SERVICE)["Service"]
    expected = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure",
        "DynamicUser": "yes", "StateDirectory": "qsysd", "UMask": "0077",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallArchitectures": "native", "MemoryDenyWriteExecute": "yes",
        "LockPersonality": "yes", "RestrictRealtime": "yes", "RestrictNamespaces": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes",
        "ProtectHostname": "yes",
    }  # fmt: skip
    for key, value in expected.items():
        assert service.get(key) == [value], key
    assert "@system-service" in service["SystemCallFilter"]
    analyze = require_service("systemd-analyze", how="apt-get install systemd")
    helped = subprocess.run([analyze, "--help"], capture_output=True, text=True, check=False)
    require_service(
        "systemd-analyze security --offline",
        how="systemd 250 or later (Debian 12, Ubuntu 24.04)",
        found=analyze if "--offline" in helped.stdout else None,
    )
    service_copy, _ = installed_copies(tmp_path)
    done = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(service_copy)],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip
    exposure = re.search(r"Overall exposure level for qsysd\.service: (\d+\.\d+)", done.stdout)
    assert exposure, done.stdout + done.stderr
    assert float(exposure[1]) < 2.0  # systemd's "OK" band; a weakened unit rises above it


def test_exec_start_and_exec_reload_are_real_qsysd_commands() -> None:
    argv = shlex.split(one(SERVICE, "Service", "ExecStart"))
    assert Path(argv[0]).name == "qsysd"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve" and not args.stdio
    assert args.config == "/etc/qsysd/qsysd.toml"
    assert one(SERVICE, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(SERVICE, "Unit", "Requires") == "qsysd.socket"


def test_the_example_config_loads_with_the_credentials_the_unit_passes(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    loaded = dict(v.split(":", 1) for v in directives(SERVICE)["Service"]["LoadCredential"])
    pin = "4711"
    for name in loaded:
        text = '{"version": 1, "tokens": []}' if name == "tokens.json" else pin
        (credentials / name).write_text(text + "\n")
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "STATE_DIRECTORY": str(tmp_path / "state")}
    for assignment in directives(SERVICE)["Service"]["Environment"]:
        key, _, value = assignment.partition("=")
        env[key] = value.replace("%d", str(credentials))
    config = load_config(EXAMPLE, env=env)  # raises ConfigError with every problem
    assert config_warnings(config) == []  # each Core with a username found its PIN
    # Every credential the unit passes is one qsysd reads, and the other way round.
    wanted = {f"core-{core.name}-password" for core in config.cores if core.username}
    assert set(loaded) == wanted | {"tokens.json"}
    assert all(core.password and core.password.reveal() == pin for core in config.cores)
    assert config.tokens_path() == str(credentials / "tokens.json")
    assert Authenticator.from_config(config).tokens is not None  # the tokens file is read
    # `qsysd token create --config` writes the file that systemd loads.
    file_only = load_config(EXAMPLE, env={"STATE_DIRECTORY": str(tmp_path / "state")})
    assert file_only.auth.tokens_file == loaded["tokens.json"]
    assert config.state.dir == str(tmp_path / "state")
    # The socket unit's one ListenStream= is the fd:// the config serves HTTP on.
    streams = directives(SOCKET)["Socket"]["ListenStream"]
    fds = [parse_listen_address(a) for a in config.http.listen_addresses()]
    assert config.http.enabled and [a.fd for a in fds] == [3 + i for i in range(len(streams))]
    # The stop and the start fit systemd's timeouts.
    stop = seconds(one(SERVICE, "Service", "TimeoutStopSec"))
    assert stop > 2 * config.daemon.stop_grace + CLOSE_MARGIN_SECONDS
    assert seconds(one(SERVICE, "Service", "TimeoutStartSec")) > config.daemon.ready_timeout
    assert seconds(one(SERVICE, "Service", "WatchdogSec")) >= 2


def test_the_docs_show_the_units_as_shipped() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "systemd.md").read_text()
    for unit in (SERVICE, SOCKET):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(unit.read_text())  # well-formed INI
        assert f"systemd/{unit.name}" in guide
    for name in dict(v.split(":", 1) for v in directives(SERVICE)["Service"]["LoadCredential"]):
        assert name in guide


PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1


def _mdwe_available() -> bool:
    """Whether the kernel refuses W+X memory on request (Linux >= 6.3, what systemd uses)."""
    probe = subprocess.run(
        [sys.executable, "-c",
         "import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)"],
        timeout=WAIT, check=False,
    )  # fmt: skip
    return probe.returncode == 0


MDWE_WRAPPER = [
    sys.executable,
    "-c",
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None)\n"
    f"assert libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0\n"
    f"assert libc.prctl({PR_GET_MDWE}, 0, 0, 0, 0) == {PR_MDWE_REFUSE_EXEC_GAIN}\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n",
]


async def test_serve_works_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """The kernel's MDWE (systemd's MemoryDenyWriteExecute=yes) over a whole call path."""
    if not _mdwe_available():
        pytest.skip("the kernel has no PR_SET_MDWE (Linux >= 6.3)")
    with trio.fail_after(WAIT):
        async with serve_emulator(demo_design()) as emulator:
            config = write_config(tmp_path, emulator, auth='mode = "token"\n')
            made = token_cli(config, "create", "--name", "ops", "--role", "operator")
            assert made.returncode == 0, made.stderr
            auth = {"Authorization": f"Bearer {made.stdout.strip()}"}
            async with serve(config, stdio=True, wrapper=MDWE_WRAPPER) as (process, logs):
                base = str((await logs.wait_for("http.listening"))["urls"][0]).rstrip("/")
                await logs.wait_for("daemon.ready")
                async with httpx.AsyncClient(base_url=base, timeout=WAIT, headers=auth) as client:
                    changes = {"changes": [{"control": "Bar.gain", "value": -9, "ramp": 0.2}]}
                    written = await client.post("/api/v1/tools/qsys_set", json=changes)
                    assert written.status_code == 200, written.text
                    read = await client.post(
                        "/api/v1/tools/qsys_get", json={"controls": ["Bar.gain"]}
                    )
                    assert read.status_code == 200, read.text
                    assert (await client.get("/metrics")).status_code == 200
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
    assert emulator.get_value("Bar", "gain") == -9
    assert json.loads((tmp_path / "state" / "snapshot.json").read_text())
