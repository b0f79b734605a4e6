"""README.md's two commands, extracted from it and run as written in a fresh copy and venv.

A newcomer runs them literally; this test does the same, so they cannot drift again. It
copies the tree (the commands create ``.venv`` in the working folder: never the developer's),
then runs the "Try it" command, stopping ``qsysd demo`` once it shows its banner, and the
"Run the tests" command with pytest limited to ``--co -q``: collecting every test module
imports everything the tests import, which is what ``pip install -e ".[test]"`` must provide
(the whole suite already runs in the outer pytest). pip's cache is reused, so it takes
about a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import trio

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
WAIT = 300.0
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".ci-venv", ".ci-node", "__pycache__", "*.egg-info", ".*_cache", "build"
)


def readme_command(heading: str) -> list[str]:
    """The ``&&``-separated parts of the one ``sh`` block under ``## heading``."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)
    return [part.strip() for part in " ".join(block.split("\\\n")).split("&&")]


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        ["sh", "-e", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def test_readme_commands_extract_as_a_newcomer_reads_them() -> None:
    assert readme_command("Try it (no hardware needed)")[-1] == "qsysd demo"
    install = readme_command("Run the tests")
    assert install[-2:] == ['pip install -e ".[test]"', "python -m pytest"]


async def test_readme_commands_work_in_a_fresh_venv(tmp_path: Path) -> None:
    copy = tmp_path / "qsysd"
    shutil.copytree(ROOT, copy, ignore=_NOT_COPIED)

    *install, demo = readme_command("Try it (no hardware needed)")
    setup = await trio.to_thread.run_sync(shell, " && ".join(install), copy)
    assert setup.returncode == 0, setup.stderr[-3000:]
    assert demo == "qsysd demo"
    process = await trio.lowlevel.open_process(
        [str(copy / ".venv" / "bin" / "qsysd"), "demo"],
        cwd=copy,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    seen = b""
    try:
        with trio.fail_after(60):
            while b"Ctrl-C stops." not in seen:
                chunk = await process.stderr.receive_some(65536)
                assert chunk, seen.decode()
                seen += chunk
    finally:
        process.send_signal(signal.SIGINT)
        with trio.fail_after(60):
            assert await process.wait() == 0, seen.decode()

    *install, pytest_command = readme_command("Run the tests")
    assert pytest_command == "python -m pytest"
    tests = await trio.to_thread.run_sync(
        shell, " && ".join([*install, f"{pytest_command} --co -q -p no:cacheprovider"]), copy
    )
    assert tests.returncode == 0, (tests.stdout + tests.stderr)[-3000:]
    assert re.search(r"^\d+ tests collected", tests.stdout, flags=re.M), tests.stdout[-2000:]
