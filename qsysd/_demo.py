"""``qsysd demo``: the daemon against an in-process emulated Core with the demo venue.

At a terminal it shows a person what is running (the design's rooms and other components),
what to try next, and then one line per value change, whoever made it. With ``--stdio`` it
is an MCP server and says nothing beyond its logs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
import time
from typing import TextIO

import trio

from qsysd.access import TokenStore
from qsysd.config import (
    AuthConfig,
    Config,
    CoreConfig,
    HttpConfig,
    StateConfig,
    state_dir_problem,
)
from qsysd.daemon import Daemon
from qsysd.emulator import Design, demo_design, serve_emulator
from qsysd.errors import LookupFailed, StartupError
from qsysd.logs import get_logger
from qsysd.state import StateStore

__all__ = ["DEMO_TOKEN_NAME", "banner_lines", "demo_token", "print_changes", "qsysd_command",
           "run_demo"]  # fmt: skip

log = get_logger("qsysd.demo")

#: Component types that are a room (a zone's level and mute), listed first in the banner.
_ROOM_TYPES = frozenset({"gain"})
#: The name of the operator token each demo run makes afresh (the audit's principal).
DEMO_TOKEN_NAME = "demo-operator"


def demo_token(config: Config) -> str:
    """A fresh operator token in the demo's tokens file (a previous run's one is revoked)."""
    problem = state_dir_problem(config.state.dir)  # the tokens file lives there
    if problem is not None:
        raise StartupError(problem)
    store = TokenStore(config.tokens_path())
    store.load()
    with contextlib.suppress(LookupFailed):
        store.revoke(DEMO_TOKEN_NAME)
    return store.create(DEMO_TOKEN_NAME, "operator")


def qsysd_command() -> str:
    """How to run this very qsysd from a shell: its script's full path, else ``python -m``."""
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) == "qsysd" and os.path.isfile(script):
        return shlex.quote(os.path.abspath(script))
    return f"{shlex.quote(sys.executable)} -m qsysd"


def _qrc_set_line(port: int, component: str, control: str, value: float) -> str:
    """A stdlib-only QRC client line that sets one control, as a touch panel would.

    Only double quotes inside, so the shell's single quotes hold it without escapes; it waits
    for the reply (which has an id; the EngineStatus push on connect has none).
    """
    code = (
        f'import json, socket; s = socket.create_connection(("127.0.0.1", {port}), timeout=5); '
        's.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "Component.Set", '
        f'"params": {{"Name": "{component}", "Controls": [{{"Name": "{control}", '
        f'"Value": {value}}}]}}}}).encode() + bytes(1)); '
        'next(d for d in iter(lambda: s.recv(65536), b"") if b"\\x22id\\x22" in d)'
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def banner_lines(
    design: Design, port: int, http: str | None = None, token: str | None = None
) -> list[str]:
    """What the demo prints at a terminal before the live changes; ``http`` is the base URL.

    ``token`` is the operator API token the HTTP lines authenticate with.
    """
    qsysd = qsysd_command()
    rooms = [c.name for c in design.components if c.type in _ROOM_TYPES]
    others = [f"{c.name} ({c.type})" for c in design.components if c.type not in _ROOM_TYPES]
    lines = [
        f"qsysd demo: the daemon is connected to an emulated {design.platform} running "
        f"{design.name!r} (QRC on 127.0.0.1:{port}).",
        f"  rooms: {', '.join(rooms)}",
        f"  other components: {', '.join(others)}",
    ]
    if design.named_controls:
        named = ", ".join(c.name for c in design.named_controls)
        lines.append(f"  named controls: {named}")
    for bank in design.snapshot_banks:
        lines.append(f"  snapshot bank: {bank.name} ({bank.count} snapshots)")
    if http is not None:
        lines += [
            f"  MCP (Streamable HTTP): {http}/mcp",
            f"  REST:                  {http}/api/v1/tools",
            f"  OpenAPI:               {http}/api/v1/openapi.json",
            f"  live events (SSE):     {http}/api/v1/events",
        ]
        if token is not None:
            lines.append(
                f"  operator token:        {token}  (HTTP needs it: "
                "'Authorization: Bearer <token>'; made afresh at each start)"
            )
    bearer = shlex.quote(f"Authorization: Bearer {token}") if token else None
    lines += [
        "Try next:",
        "  list the tools with the MCP Inspector (Node 22+; it starts its own demo):",
        f"    npx @modelcontextprotocol/inspector --cli {qsysd} demo --stdio --method tools/list",
        "  use it from an MCP client (Claude Desktop, an IDE): command "
        f"{qsysd}, arguments demo --stdio",
        *(
            [
                "  read a control over REST:",
                f"    curl -s {http}/api/v1/tools/qsys_get -H {bearer} "
                """-H 'content-type: application/json' -d '{"controls": ["Lobby_BGM.gain"]}'""",
                "  call a tool from the shell:",
                f"    QSYSD_TOKEN={token} {qsysd} call qsys_summary --url {http}",
                "  connect the MCP Inspector's web page (npx @modelcontextprotocol/inspector) to "
                f"{http}/mcp (Streamable HTTP), with the token as its bearer token",
            ]
            if http is not None and token is not None
            else []
        ),
        "  change a level at the emulated Core, as a touch panel would (watch the line below):",
        f"    {_qrc_set_line(port, rooms[0] if rooms else 'Lobby_BGM', 'gain', -30)}",
        "Value changes, by any client, appear below. Ctrl-C stops.",
    ]
    return lines


async def print_changes(
    store: StateStore, out: TextIO, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Write one line per value change in ``store`` until cancelled."""
    async with store.watch() as watcher:
        task_status.started()
        async for batch in watcher:
            stamp = time.strftime("%H:%M:%S")
            for value in batch:
                out.write(f"{stamp}  {value.ref.core}: {value.ref} = {value.string}\n")
            out.flush()


async def _show(daemon: Daemon, design: Design, port: int, token: str, out: TextIO) -> None:
    await daemon.wait_ready()  # after discovery: only changes from now on are news
    http = daemon.http.urls[0].rstrip("/") if daemon.http and daemon.http.urls else None
    out.write("\n".join(banner_lines(design, port, http, token)) + "\n")
    out.flush()
    await print_changes(daemon.store, out)


async def run_demo(args: argparse.Namespace) -> None:
    design = demo_design()
    with tempfile.TemporaryDirectory(prefix="qsysd-demo-") as tmp:
        async with serve_emulator(design) as emulator:
            log.info("demo.emulator_listening", address=f"127.0.0.1:{emulator.tcp_port}")
            config = Config(
                cores=[
                    CoreConfig(
                        name="demo",
                        host="127.0.0.1",
                        port=emulator.tcp_port,
                        named_controls=[c.name for c in design.named_controls],
                    )
                ],
                state=StateConfig(dir=args.state_dir or tmp),
                http=HttpConfig(enabled=not args.stdio, listen=args.listen),
                # HTTP authenticates as everywhere else; stdio is the trusted child as always.
                auth=AuthConfig(mode="token"),
            )
            daemon = Daemon(config)
            if args.stdio:
                await daemon.run(stdio=True)
                return
            token = await trio.to_thread.run_sync(demo_token, config)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_show, daemon, design, emulator.tcp_port, token, sys.stderr)
                await daemon.run(stdio=False)
                nursery.cancel_scope.cancel()
