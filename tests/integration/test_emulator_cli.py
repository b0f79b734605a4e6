"""``qsysd emulate`` options, run in-process: ports, redundancy, faults, clean stop on SIGINT."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import trio

from qsysd.emulator import (
    EmulatorServer,
    add_cli_arguments,
    design_to_dict,
    generate_design,
    run_emulator_cli,
)

WAIT = 5.0
Client = Callable[..., AbstractAsyncContextManager[Any]]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    return parser.parse_args(["--listen", "127.0.0.1:0", "--ws-listen", "off", *argv])


def test_defaults_match_a_core() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    ns = parser.parse_args([])
    assert ns.emu_listen == ("127.0.0.1", 1710)
    assert ns.emu_ws_listen == ("127.0.0.1", 8080)
    assert ns.emu_idle_timeout == 60.0


def test_bad_address_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--listen", "localhost:http")
    assert "expected HOST:PORT" in capsys.readouterr().err


async def test_cli_serves_a_design_file_with_access_control(client: Client, tmp_path: Path) -> None:
    import json

    path = tmp_path / "d.json"
    path.write_text(json.dumps(design_to_dict(generate_design(5, seed=1))))
    ns = parse("--design", str(path), "--password", "9", "--design-code", "Code12345678")
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            [server] = await nursery.start(run_emulator_cli, ns)
            async with client(server) as c:
                status = await c.notification("EngineStatus")
                assert status.params["DesignCode"] == "Code12345678"
                assert (await c.error("Component.GetComponents", {})).code == 10
            nursery.cancel_scope.cancel()


async def test_cli_redundant_pair_fails_over_and_stops_on_sigint(client: Client) -> None:
    ns = parse("--redundant", "--failover-after", "0.05", "--fault-refuse-logon")
    with trio.fail_after(WAIT):
        servers: list[EmulatorServer] = []
        async with trio.open_nursery() as nursery:
            servers = await nursery.start(run_emulator_cli, ns)
            primary, backup = servers
            assert primary.tcp_port != backup.tcp_port
            async with client(primary) as c:
                assert (await c.notification("EngineStatus")).params["State"] == "Active"
                assert (await c.notification("EngineStatus")).params["State"] == "Standby"
                assert (await c.error("Logon", {"User": "", "Password": ""})).code == 10
            os.kill(os.getpid(), signal.SIGINT)  # caught by the emulator's signal receiver
    assert backup.state == "Active"


@pytest.mark.parametrize(
    ("command", "imported"),
    [("serve", False), ("config", False), ("emulate", True), ("design", True)],
)
def test_the_emulator_is_imported_only_by_the_commands_that_run_it(
    command: str, imported: bool
) -> None:
    # `serve` pays for no emulator it does not run (about 50 ms of CPU at each start).
    probe = (
        "import sys\nfrom qsysd.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "print('qsysd.emulator' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr.strip().splitlines()[-1] == str(imported)
