"""What a stdio daemon imports at start: not the SDK's client, not the HTTP stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK = """
import sys
from pathlib import Path
import qsysd.daemon
heavy = ("mcp.client", "mcp.server.mcpserver", "httpx", "cryptography", "quart", "hypercorn")
print(",".join(m for m in heavy if m in sys.modules))
from mcp import Client, ClientSession
from mcp.server import MCPServer
import mcp.types
from qsysd.server import HttpFrontEnd
print(Client.__name__, ClientSession.__name__, MCPServer.__name__, HttpFrontEnd.__name__)
"""


def test_the_daemon_defers_the_sdk_client_and_http_and_both_still_import() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, check=True
    )
    loaded, names = done.stdout.splitlines()
    assert loaded == ""  # none of them at start
    assert names == "Client ClientSession MCPServer HttpFrontEnd"  # each on first use


EARLY = """
import sys
from pathlib import Path
from qsysd.cli import main
from qsysd._early import open_early_door
open_early_door(["serve", "--stdio", "--config", sys.argv[1]])
heavy = ("trio", "mcp", "mcp_types", "pydantic", "structlog", "cattrs", "attrs", "orjson")
print(",".join(m for m in heavy if m in sys.modules))
"""


def test_the_early_stdio_door_imports_neither_the_sdk_nor_trio(tmp_path: Path) -> None:
    config = tmp_path / "qsysd.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n')
    done = subprocess.run(
        [sys.executable, "-c", EARLY, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == ""
