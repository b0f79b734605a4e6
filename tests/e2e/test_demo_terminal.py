"""`qsysd demo` at a terminal: what is running, what to try, and a line per value change."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

WAIT = 30.0


class TextLines:
    """A subprocess stream read line by line, as far as a test needs."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.seen: list[str] = []

    async def until(self, text: str) -> list[str]:
        """The lines up to and including the first that contains ``text``."""
        start = len(self.seen)
        while True:
            *lines, self.buffer = self.buffer.split(b"\n")
            for index, line in enumerate(lines):
                self.seen.append(line.decode())
                if text in self.seen[-1]:
                    self.buffer = b"\n".join([*lines[index + 1 :], self.buffer])
                    return self.seen[start:]
            chunk = await self.stream.receive_some(65536)
            assert chunk, f"stream closed before {text!r}: {self.seen}"
            self.buffer += chunk


async def run_shell(line: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        line, shell=True, check=False, capture_stdout=True, capture_stderr=True
    )


async def test_demo_shows_the_design_what_to_try_and_each_change(tmp_path: Path) -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "qsysd", "demo", "--state-dir", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
    )
    assert process.stderr is not None and process.stdout is not None
    stderr = TextLines(process.stderr)
    try:
        with trio.fail_after(WAIT):
            banner = await stderr.until("Ctrl-C stops.")
        text = "\n".join(banner)
        assert "'Harbour Hotel'" in text
        assert "  rooms: Lobby_BGM, Restaurant, Bar, Terrace, Boardroom, Ballroom" in banner
        assert "Ballroom_Mics (mixer)" in text and "snapshot bank: Scenes" in text
        assert "npx @modelcontextprotocol/inspector --cli " in text
        # HTTP authenticates: the printed token works, as printed, and nothing works without.
        [token] = [x.split()[2] for x in banner if "operator token:" in x]
        assert token.startswith("qsysd_")
        for what in ("read a control over REST", "call a tool from the shell"):
            line = banner[banner.index(next(x for x in banner if what in x)) + 1].strip()
            assert token in line
            with trio.fail_after(WAIT):
                ran = await run_shell(line)
            assert ran.returncode == 0, ran.stderr
            assert b"Lobby_BGM" in ran.stdout or b"Harbour Hotel" in ran.stdout, ran.stdout
            without = line.replace(token, "qsysd_not-the-token")
            with trio.fail_after(WAIT):
                refused = await run_shell(without)
            assert b"authentication-failed" in refused.stdout + refused.stderr
        # The banner's own QRC line, run as printed, is a change by another client.
        qrc_line = banner[banner.index(next(x for x in banner if "touch panel" in x)) + 1]
        with trio.fail_after(WAIT):
            done = await trio.run_process(qrc_line.strip(), shell=True, check=False)
        assert done.returncode == 0
        with trio.fail_after(WAIT):
            [change] = (await stderr.until("Lobby_BGM.gain"))[-1:]
        assert change.endswith("  demo: Lobby_BGM.gain = -30.0dB")
        assert "Traceback" not in "\n".join(stderr.seen)
    finally:
        process.send_signal(signal.SIGINT)
        with trio.fail_after(WAIT):
            assert await process.wait() == 0
    assert await process.stdout.receive_some(1) == b""  # stdout stays the MCP stream's


async def test_demo_state_folder_that_cannot_be_made_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("in the way")
    with trio.fail_after(WAIT):
        result = await trio.run_process(
            [sys.executable, "-m", "qsysd", "demo", "--state-dir", str(tmp_path / "file" / "x")],
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert lines[-1].startswith("qsysd demo: state.dir: the state folder"), lines
    assert "Traceback" not in result.stderr.decode()
