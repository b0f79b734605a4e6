"""The daemon: the top nursery that owns start-up order and graceful stop.

```
Daemon.run
├── signals           SIGTERM/SIGINT: graceful stop
└── Daemon.running
    ├── CoreLink × N  one supervisor per configured Core
    ├── snapshots     the state picture saved on an interval and once more at stop
    ├── watchdog      systemd WATCHDOG=1 pings, when systemd asked for them
    └── front end     MCP over stdio (until stdin closes), or wait for a stop
```
Stop is an event that flows down: the front end returns, links stop, the last snapshot is
written, the journal is flushed; cancellation is the last resort, after a grace period.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import attrs
import trio

from qsysd import __version__
from qsysd._systemd import notify, watchdog_interval
from qsysd.access import Authenticator, CallPath, Principal, RateLimits
from qsysd.api import QsysApi
from qsysd.config import Config, CoreConfig, HttpConfig, StateConfig, load_config
from qsysd.core import CoreLink
from qsysd.errors import ConfigError
from qsysd.logs import configure_logging, get_logger
from qsysd.plugins import Registry
from qsysd.policy import Policy
from qsysd.server import HttpFrontEnd, build_mcp_server, serve_stdio
from qsysd.state import FileStateBackend, Journal, SnapshotTask, StateBackend, StateStore

__all__ = ["Daemon", "main_from_args"]

log = get_logger(__name__)

STOP_GRACE_SECONDS = 10.0
#: How long start-up waits for the Cores before serving anyway (tools then say "unreachable").
CONNECT_WAIT_SECONDS = 10.0
SNAPSHOT_FILE = "snapshot.json"
JOURNAL_FILE = "journal.sqlite3"


def _state_backend(config: StateConfig) -> StateBackend:
    if config.backend == "redis":
        from qsysd.state import RedisStateBackend

        assert config.redis_url is not None  # the configuration check requires it
        return RedisStateBackend(config.redis_url.reveal())
    return FileStateBackend(Path(config.dir) / SNAPSHOT_FILE)


@attrs.define
class Daemon:
    """One qsysd process: the state store, a CoreLink per Core, the tools and a front end."""

    config: Config
    store: StateStore = attrs.field(factory=StateStore)
    links: dict[str, CoreLink] = attrs.field(factory=dict)
    connect_wait: float = CONNECT_WAIT_SECONDS
    journal: Journal | None = None
    snapshots: SnapshotTask | None = None
    http: HttpFrontEnd | None = None
    authenticator: Authenticator | None = None
    _stop_requested: trio.Event = attrs.field(factory=trio.Event)

    def stop(self) -> None:
        """Ask for a graceful stop."""
        self._stop_requested.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[QsysApi]:
        """Start everything but the front end; stop it all, gracefully, on exit."""
        config = self.config
        await trio.Path(config.state.dir).mkdir(parents=True, exist_ok=True)
        backend = _state_backend(config.state)
        snapshot = await backend.load()
        if snapshot is not None:
            self.store.restore(snapshot)
            log.info("state.restored", controls=self.store.statistics().controls)
        snapshots = SnapshotTask(self.store, backend, config.state.snapshot_interval)
        self.snapshots = snapshots
        async with AsyncExitStack() as stack:
            journal = None
            if config.state.journal:
                journal = await stack.enter_async_context(
                    Journal.open(
                        str(Path(config.state.dir) / JOURNAL_FILE),
                        retention_days=config.state.journal_retention_days,
                        max_rows=config.state.journal_max_rows,
                    )
                )
                stack.callback(journal.follow(self.store))
                self.journal = journal
            nursery = await stack.enter_async_context(trio.open_nursery())
            for core in config.cores:
                link = CoreLink(core, self.store, named_controls=core.named_controls)
                self.links[core.name] = link
                await nursery.start(link.run)
            await nursery.start(snapshots.run)
            watchdog = trio.CancelScope()
            interval = watchdog_interval()
            if interval is not None:
                nursery.start_soon(_watchdog, interval, watchdog)
            api = QsysApi(self.links, self.store, Policy(config.policy), journal)
            try:
                yield api
            finally:
                notify("STOPPING=1")
                log.info("daemon.stopping")
                for link in self.links.values():
                    link.stop()
                snapshots.stop()
                watchdog.cancel()  # the only task that never ends by itself
                # The others end on their own; whatever is left is cancelled after a grace.
                nursery.cancel_scope.deadline = trio.current_time() + STOP_GRACE_SECONDS

    async def wait_cores(self) -> None:
        """Wait until every Core is connected, or ``connect_wait`` passes (logged, not fatal)."""
        with trio.move_on_after(self.connect_wait):
            for link in self.links.values():
                await link.wait_connected()
            return
        waiting = [name for name, link in self.links.items() if not link.connected]
        log.warning("daemon.cores_not_ready", cores=waiting, waited_s=self.connect_wait)

    async def run(
        self, *, stdio: bool, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until stdin closes (stdio) or a signal asks for a stop."""
        registry = Registry(plugin_dirs=self.config.plugins.dirs)
        authenticator = Authenticator.from_config(self.config)  # a bad tokens file: ConfigError
        self.authenticator = authenticator
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_signals)
            async with self.running() as api, trio.open_nursery() as doors:
                calls = CallPath(api, registry, limits=RateLimits.from_config(self.config.auth))
                if self.config.http.enabled:
                    self.http = HttpFrontEnd(
                        self.config.http,
                        calls,
                        links=self.links,
                        store=self.store,
                        registry=registry,
                        authenticator=authenticator,
                        journal=self.journal,
                        snapshots=self.snapshots,
                    )
                    await doors.start(self.http.run)
                await self.wait_cores()
                notify("READY=1")
                log.info(
                    "daemon.ready",
                    version=__version__,
                    cores=list(self.links),
                    tools=len(registry.tools()),
                    stdio=stdio,
                    http=self.http.urls if self.http else None,
                )
                task_status.started()
                if stdio:
                    server = build_mcp_server(calls, principal=stdio_principal(self.config))
                    async with trio.open_nursery() as front:
                        front.start_soon(_cancel_when, self._stop_requested, front.cancel_scope)
                        await serve_stdio(server)
                        log.info("daemon.stdin_closed")
                        front.cancel_scope.cancel()
                else:
                    await self._stop_requested.wait()
                if self.http is not None:
                    # In-flight HTTP calls finish (within stop_grace) before the links stop.
                    self.http.stop()
            nursery.cancel_scope.cancel()
        log.info("daemon.stopped")

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                log.info("daemon.signal", signal=signal.Signals(signum).name)
                if signum == signal.SIGHUP:
                    self.reload()
                else:
                    self.stop()

    def reload(self) -> None:
        """SIGHUP: re-read the tokens file (an invalid one is logged; no token works then)."""
        tokens = self.authenticator.tokens if self.authenticator else None
        if tokens is not None:
            tokens.reload_if_changed(force=True)
            log.info("daemon.reloaded", tokens=len(tokens.records()))


def stdio_principal(config: Config) -> Principal:
    """Who stdio acts as: trusted as the child of the process that started qsysd."""
    from qsysd.access import Roles

    auth = config.auth
    roles = Roles(auth.roles)
    return Principal(
        auth.stdio_principal,
        door="stdio",
        role=auth.stdio_role,
        permissions=roles.permissions(auth.stdio_role),
    )


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _watchdog(interval: float, scope: trio.CancelScope) -> None:
    with scope:
        while True:
            notify("WATCHDOG=1")
            await trio.sleep(interval)


async def _run_demo(args: argparse.Namespace) -> None:
    from qsysd.emulator import demo_design, serve_emulator

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
            )
            daemon = Daemon(config)
            async with trio.open_nursery() as nursery:
                await nursery.start(functools.partial(daemon.run, stdio=args.stdio))
                if not args.stdio:  # a person at a terminal: say what is running and how to use it
                    sys.stderr.write(demo_banner(emulator.tcp_port, daemon))


def demo_banner(qrc_port: int, daemon: Daemon) -> str:
    """What ``qsysd demo`` tells a person at a terminal: what runs, and what to try."""
    lines = [
        f"qsysd demo: an emulated Core with the demo venue on 127.0.0.1:{qrc_port} (QRC); "
        "the daemon is connected to it.",
    ]
    if daemon.http is not None and daemon.http.urls:
        base = daemon.http.urls[0].rstrip("/")
        lines += [
            f"  MCP (Streamable HTTP): {base}/mcp",
            f"  REST:                  {base}/api/v1/tools",
            f"  OpenAPI:               {base}/api/v1/openapi.json",
            f"  live events (SSE):     {base}/api/v1/events",
            "Try:",
            f"  curl -s {base}/api/v1/tools/qsys_get -H 'content-type: application/json' "
            """-d '{"controls": ["Lobby_BGM.gain"]}'""",
            f"  qsysd call qsys_summary --url {base}",
            f"  npx @modelcontextprotocol/inspector --cli {base}/mcp --method tools/list",
        ]
    lines += ["Use `qsysd demo --stdio` as an MCP server in your MCP client. Ctrl-C stops.", ""]
    return "\n".join(lines)


def main_from_args(args: argparse.Namespace) -> int:
    """``qsysd serve`` and ``qsysd demo``."""
    if args.command == "demo":
        configure_logging("info", "auto")
        trio.run(_run_demo, args)
        return 0
    config = load_config(args.config)
    configure_logging(config.logging.level, config.logging.format, secrets=config.secrets())
    if not config.cores:
        raise ConfigError(
            [
                "cores: no Core is configured; add a [[cores]] table (see "
                "examples/qsysd.toml), or try `qsysd demo`"
            ]
        )
    trio.run(functools.partial(Daemon(config).run, stdio=args.stdio))
    return 0
