"""`qsysd design capture` as a command: log-on with a password file, clear failures."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from qsysd.emulator import demo_design, load_design
from qsysd.testing import running_emulator

WAIT = 20.0


async def test_capture_command_logs_on_and_writes_a_design_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-pin\n")
    out = tmp_path / "site.json"
    with trio.fail_after(WAIT):
        async with running_emulator(None, user="admin", password="s3cret-pin") as emulator:
            address = f"127.0.0.1:{emulator.tcp_port}"
            command = [sys.executable, "-m", "qsysd", "design", "capture", "--core", address]
            done = await trio.run_process(
                [*command, "--user", "admin", "--password-file", str(secret), "-o", str(out)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr.decode()
            assert done.stdout == b""
            assert "s3cret" not in done.stderr.decode()
            assert load_design(out).name == demo_design().name
            wrong = tmp_path / "wrong"
            wrong.write_text("nope")
            refused = await trio.run_process(
                [*command, "--user", "admin", "--password-file", str(wrong), "-o", str(out)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    message = refused.stderr.decode()
    assert refused.returncode == 1 and "Traceback" not in message
    assert f"capturing {address} failed" in message and "nope" not in message


async def test_capture_of_an_unreachable_core_says_so(tmp_path: Path) -> None:
    with trio.fail_after(WAIT):
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.close()  # nothing listens there now
        done = await trio.run_process(
            [sys.executable, "-m", "qsysd", "design", "capture", "--core", f"127.0.0.1:{port}",
             "-o", str(tmp_path / "x.json")],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert "failed" in done.stderr.decode() and "Traceback" not in done.stderr.decode()
    assert not (tmp_path / "x.json").exists()
