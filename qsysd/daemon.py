"""The daemon: the top nursery that owns start-up order and graceful stop.

```
Daemon.run
├── signals           SIGTERM/SIGINT: graceful stop
└── Daemon.running
    ├── CoreLink × N  one supervisor per configured Core
    ├── snapshots     the state picture saved on an interval and once more at stop
    ├── watchdog      systemd WATCHDOG=1 pings, when systemd asked for them
    ├── plugins       start-up tasks and observer queues (cancelled first at stop)
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
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from qsysd import __version__
from qsysd._systemd import notify, watchdog_interval
from qsysd.access import Authenticator, CallPath, Principal, RateLimits
from qsysd.api import QsysApi
from qsysd.config import (
    Config,
    StateConfig,
    config_warnings,
    load_config,
    state_dir_problem,
    uses_state_dir,
)
from qsysd.core import CoreLink
from qsysd.errors import ConfigError, StartupError, describe_os_error
from qsysd.logs import configure_logging, get_logger
from qsysd.plugins import Registry, running_plugins
from qsysd.policy import Policy
from qsysd.server import build_mcp_server, serve_stdio
from qsysd.state import FileStateBackend, Journal, SnapshotTask, StateBackend, StateStore

if TYPE_CHECKING:
    from qsysd.server import HttpFrontEnd

__all__ = ["Daemon", "main_from_args", "startup_failure"]

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
    _ready: trio.Event = attrs.field(factory=trio.Event)

    async def wait_ready(self) -> None:
        """Wait until start-up is over: Cores connected (or given up on), tools served."""
        await self._ready.wait()

    def stop(self) -> None:
        """Ask for a graceful stop."""
        self._stop_requested.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[QsysApi]:
        """Start everything but the front end; stop it all, gracefully, on exit."""
        config = self.config
        if uses_state_dir(config.state):
            problem = await trio.to_thread.run_sync(state_dir_problem, config.state.dir)
            if problem is not None:
                raise StartupError(problem)
        backend = _state_backend(config.state)
        snapshots = SnapshotTask(self.store, backend, config.state.snapshot_interval)
        self.snapshots = snapshots
        # A Redis that cannot be reached is logged and retried; the Cores refill the store.
        with _starting(f"loading the last snapshot ({backend!r})"):
            await snapshots.restore()
        async with AsyncExitStack() as stack:
            journal = None
            if config.state.journal:
                path = Path(config.state.dir) / JOURNAL_FILE
                with _starting(f"opening the journal {str(path)!r}"):
                    journal = await stack.enter_async_context(
                        Journal.open(
                            str(path),
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

    async def run(self, *, stdio: bool) -> None:
        """Run until stdin closes (stdio) or a signal asks for a stop.

        The doors open before the Cores are synced: over stdio ``initialize`` and
        ``tools/list`` are answered at once, and a tool call (or resource read) waits until the
        Cores are synced, at most ``connect_wait`` seconds after start; HTTP's ``/ready``
        answers 503 until then.
        """
        plugins = self.config.plugins
        registry = Registry(plugin_dirs=plugins.dirs, config=plugins.config)
        authenticator = Authenticator.from_config(self.config)  # a bad tokens file: ConfigError
        self.authenticator = authenticator
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_signals)
            async with (
                self.running() as api,
                running_plugins(registry, api),
                trio.open_nursery() as doors,
            ):
                calls = CallPath(api, registry, limits=RateLimits.from_config(self.config.auth))
                if self.config.http.enabled:
                    from qsysd.server import HttpFrontEnd  # Quart and Hypercorn, only when on

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
                synced = trio.Event()
                if stdio:
                    server = build_mcp_server(calls, principal=stdio_principal(self.config))
                    async with trio.open_nursery() as front:
                        front.start_soon(self._announce_ready, registry, stdio, synced)
                        front.start_soon(_cancel_when, self._stop_requested, front.cancel_scope)
                        await serve_stdio(server, hold=synced)
                        log.info("daemon.stdin_closed")
                        front.cancel_scope.cancel()
                else:
                    # A signal during the wait for the Cores stops the daemon at once.
                    async with trio.open_nursery() as front:
                        front.start_soon(self._announce_ready, registry, stdio, synced)
                        await self._stop_requested.wait()
                        front.cancel_scope.cancel()
                if self.http is not None:
                    # In-flight HTTP calls finish (within stop_grace) before the links stop.
                    self.http.stop()
            nursery.cancel_scope.cancel()
        log.info("daemon.stopped")

    async def _announce_ready(self, registry: Registry, stdio: bool, synced: trio.Event) -> None:
        await self.wait_cores()
        synced.set()
        notify("READY=1")
        self._ready.set()
        log.info(
            "daemon.ready",
            version=__version__,
            cores=list(self.links),
            tools=len(registry.tools()),
            stdio=stdio,
            http=self.http.urls if self.http else None,
        )

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


@contextmanager
def _starting(step: str) -> Iterator[None]:
    """Turn the failure of one start-up step into a :class:`StartupError` naming the step."""
    try:
        yield
    except Exception as exc:
        log.debug("daemon.start_failed", step=step, exc_info=exc)  # the traceback, for debug
        raise StartupError(f"{step} failed: {_reason(exc)}") from exc


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _reason(exc: BaseException) -> str:
    """What went wrong, in words: the one mapping of OS and library errors at start-up."""
    leaves = _leaves(exc)
    if len(leaves) > 1:
        return "; ".join(dict.fromkeys(_reason(leaf) for leaf in leaves))
    exc = leaves[0]
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, trio.TooSlowError):
        return "no answer before the deadline"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def startup_failure(exc: BaseException, secrets: list[str] | tuple[str, ...] = ()) -> str | None:
    """The one line ``serve``/``demo`` print for a failure, or None for what is not one.

    A :class:`StartupError` anywhere in ``exc`` is the message; an ``OSError`` (a port in use,
    a folder that vanished) is mapped by :func:`_reason`. Anything else (a bug, Ctrl-C) is not
    a start-up failure and is left alone. Secrets are replaced by ``***``.
    """
    leaves = [leaf for leaf in _leaves(exc) if not isinstance(leaf, trio.Cancelled)]
    if not leaves or not all(isinstance(leaf, StartupError | OSError) for leaf in leaves):
        return None
    found = [leaf for leaf in leaves if isinstance(leaf, StartupError)]
    message = str(found[0]) if found else f"cannot run: {_reason(exc)}"
    for secret in secrets:
        message = message.replace(secret, "***")
    return " ".join(message.split())  # one line, whatever a library put in its message


def main_from_args(args: argparse.Namespace) -> int:
    """``qsysd serve`` and ``qsysd demo``: exit 0, or 2 with one line on stderr."""
    secrets: list[str] = []
    try:
        if args.command == "demo":
            from qsysd._demo import run_demo

            configure_logging("warning" if not args.stdio else "info", "auto")
            trio.run(run_demo, args)
            return 0
        config = load_config(args.config)
        secrets = config.secrets()
        configure_logging(config.logging.level, config.logging.format, secrets=secrets)
        if not config.cores:
            raise ConfigError(
                [
                    "cores: no Core is configured; add a [[cores]] table (see "
                    "examples/qsysd.toml), or try `qsysd demo`"
                ]
            )
        for warning in config_warnings(config):
            log.warning("config.warning", problem=warning)
        trio.run(functools.partial(Daemon(config).run, stdio=args.stdio))
        return 0
    except BaseException as exc:
        message = startup_failure(exc, secrets)
        if message is None:
            raise
        print(f"qsysd {args.command}: {message}", file=sys.stderr)
        return 2
