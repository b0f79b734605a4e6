"""The daemon: the top nursery that owns start-up order and graceful stop.

```
Daemon.run
├── signals           SIGTERM/SIGINT: graceful stop (a second one: exit at once);
│                     SIGHUP: reload tokens, policy and logging
├── watchdog          systemd WATCHDOG=1 pings from the trio loop, until the very end
└── Daemon.running
    ├── CoreLink × N  one supervisor per configured Core
    ├── core status   systemd STATUS= on each Core's connect, loss and failover
    ├── snapshots     the state picture saved on an interval and once more at stop
    ├── plugins       start-up tasks and observer queues (cancelled first at stop)
    └── front ends    MCP over stdio (until stdin closes) and HTTP, or wait for a stop
```
Stop is an event that flows down: every door stops taking work at once, calls in flight get
``daemon.stop_grace`` seconds to finish, then links stop, the last snapshot is written and
the journal is flushed; cancellation is the last resort, after the grace period.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from qsysd import __version__
from qsysd._systemd import (
    CoreStatusLine,
    check_activation,
    claim_listen_fds,
    notify,
    watchdog_interval,
)
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
    from qsysd._early import EarlyStart
    from qsysd.server import HttpFrontEnd

__all__ = ["Daemon", "main_from_args", "startup_failure"]

log = get_logger(__name__)

#: After the grace, how long the doors may take to close their connections before a cancel.
CLOSE_MARGIN_SECONDS = 2.0
SNAPSHOT_FILE = "snapshot.json"
JOURNAL_FILE = "journal.sqlite3"
#: Sections SIGHUP applies; a change anywhere else is logged as needing a restart.
RELOADED_SECTIONS = ("policy", "logging", "daemon")


def _state_backend(config: StateConfig) -> StateBackend:
    if config.backend == "redis":
        from qsysd.state import RedisStateBackend

        assert config.redis_url is not None  # the configuration check requires it
        return RedisStateBackend(config.redis_url.reveal())
    return FileStateBackend(Path(config.dir) / SNAPSHOT_FILE)


@attrs.define
class Daemon:
    """One qsysd process: the state store, a CoreLink per Core, the tools and a front end.

    ``config_source`` re-reads the configuration on SIGHUP (``qsysd serve`` passes the config
    file's loader); without it SIGHUP re-reads only the tokens file.
    """

    config: Config
    store: StateStore = attrs.field(factory=StateStore)
    links: dict[str, CoreLink] = attrs.field(factory=dict)
    connect_wait: float = attrs.field(
        default=attrs.Factory(lambda self: self.config.daemon.ready_timeout, takes_self=True)
    )
    config_source: Callable[[], Config] | None = None
    journal: Journal | None = None
    snapshots: SnapshotTask | None = None
    http: HttpFrontEnd | None = None
    authenticator: Authenticator | None = None
    policy: Policy | None = None
    #: ``qsysd serve --stdio``'s early door and answer cache (``qsysd._early``), if any.
    early: EarlyStart | None = None
    _stop_requested: trio.Event = attrs.field(factory=trio.Event)
    _ready: trio.Event = attrs.field(factory=trio.Event)

    async def wait_ready(self) -> None:
        """Wait until start-up is over: Cores connected (or given up on), tools served."""
        await self._ready.wait()

    def stop(self) -> None:
        """Ask for a graceful stop: the doors stop taking work, calls in flight finish."""
        if not self._stop_requested.is_set():
            notify("STOPPING=1\nSTATUS=stopping: finishing the calls in flight")
            log.info("daemon.stopping", grace_s=self.config.daemon.stop_grace)
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
            reporting = trio.CancelScope()
            nursery.start_soon(_cancellable, reporting, CoreStatusLine(self.links).follow)
            self.policy = Policy(config.policy)
            api = QsysApi(self.links, self.store, self.policy, journal)
            try:
                yield api
            finally:
                self.stop()  # no-op after a signal; stdin closing or an error stops here
                notify("STATUS=stopping: closing the Core connections, saving the snapshot")
                reporting.cancel()  # the only task that never ends by itself
                for link in self.links.values():
                    link.stop()
                snapshots.stop()
                # The others end on their own; whatever is left is cancelled after a grace.
                grace = self.config.daemon.stop_grace
                nursery.cancel_scope.deadline = trio.current_time() + grace

    async def wait_cores(self) -> list[str]:
        """Wait until every Core is connected, or ``connect_wait`` passes; the Cores missing."""
        with trio.move_on_after(self.connect_wait):
            for link in self.links.values():
                await link.wait_connected()
            return []
        waiting = [name for name, link in self.links.items() if not link.connected]
        log.warning("daemon.cores_not_ready", cores=waiting, waited_s=self.connect_wait)
        return waiting

    async def run(self, *, stdio: bool) -> None:
        """Run until stdin closes (stdio) or a signal asks for a stop.

        The doors open before the Cores are synced: over stdio ``initialize`` and
        ``tools/list`` are answered at once, and a tool call (or resource read) waits until the
        Cores are synced, at most ``connect_wait`` seconds after start; HTTP's ``/ready``
        answers 503 until then.
        """
        config = self.config
        plugins = config.plugins
        registry = Registry(plugin_dirs=plugins.dirs, config=plugins.config)
        authenticator = Authenticator.from_config(config)  # a bad tokens file: ConfigError
        self.authenticator = authenticator
        check_activation(config.http, claim_listen_fds())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_signals)
            interval = watchdog_interval()
            if interval is not None:  # pings until everything else has stopped
                nursery.start_soon(_watchdog, interval)
            async with (
                self.running() as api,
                running_plugins(registry, api),
                trio.open_nursery() as doors,
            ):
                calls = CallPath(api, registry, limits=RateLimits.from_config(config.auth))
                synced = trio.Event()
                doors.start_soon(self._drain_on_stop, doors.cancel_scope, synced)
                if config.http.enabled:
                    from qsysd.server import HttpFrontEnd  # Quart and Hypercorn, only when on

                    # No door's grace outlasts the daemon's.
                    grace = min(config.http.stop_grace, config.daemon.stop_grace)
                    self.http = HttpFrontEnd(
                        attrs.evolve(config.http, stop_grace=grace),
                        calls,
                        links=self.links,
                        store=self.store,
                        registry=registry,
                        authenticator=authenticator,
                        journal=self.journal,
                        snapshots=self.snapshots,
                    )
                    await doors.start(self.http.run)
                async with trio.open_nursery() as front:
                    front.start_soon(self._announce_ready, registry, stdio, synced)
                    if stdio:
                        server = build_mcp_server(calls, principal=stdio_principal(config))
                        await serve_stdio(
                            server, hold=synced, stopping=self._stop_requested, early=self.early
                        )
                        if not self._stop_requested.is_set():
                            log.info("daemon.stdin_closed")
                    else:
                        # A signal during the wait for the Cores stops the daemon at once.
                        await self._stop_requested.wait()
                    front.cancel_scope.cancel()
                self.stop()  # stdin closed: the other doors stop as well
            nursery.cancel_scope.cancel()
        log.info("daemon.stopped")

    async def _drain_on_stop(self, doors: trio.CancelScope, synced: trio.Event) -> None:
        """At a stop, every door stops taking work; calls in flight get ``stop_grace``."""
        await self._stop_requested.wait()
        # Calls held for the Cores' sync are answered now (the Core's error, if it is away).
        synced.set()
        if self.http is not None:
            self.http.stop()
        grace = self.config.daemon.stop_grace
        doors.deadline = trio.current_time() + grace + CLOSE_MARGIN_SECONDS

    async def _announce_ready(self, registry: Registry, stdio: bool, synced: trio.Event) -> None:
        missing = await self.wait_cores()
        synced.set()
        notify(f"READY=1\nSTATUS={CoreStatusLine(self.links).ready(missing)}")
        self._ready.set()
        log.info(
            "daemon.ready",
            version=__version__,
            cores=list(self.links),
            missing=missing,
            tools=len(registry.tools()),
            stdio=stdio,
            http=self.http.urls if self.http else None,
        )

    async def _watch_signals(self) -> None:
        stops = 0
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    log.info("daemon.signal", signal=name)
                    try:
                        await self.reload()
                    except Exception as exc:  # a reload never takes the daemon down
                        log.error(
                            "daemon.reload_failed",
                            problems=[f"{type(exc).__name__}: {exc}"],
                            exc_info=exc,
                            hint="what was applied before the failure stays; fix it and send "
                            "SIGHUP again",
                        )
                    continue
                stops += 1
                if stops == 1:
                    log.info("daemon.signal", signal=name)
                    self.stop()
                    continue
                # A second stop signal: whoever sent it does not want to wait for the grace.
                code = 128 + signum
                log.error(
                    "daemon.stop_forced",
                    signal=name,
                    exit_code=code,
                    hint="calls in flight were cut off; the last snapshot was not saved",
                )
                sys.stderr.flush()
                os._exit(code)

    async def reload(self) -> None:
        """SIGHUP: re-read the configuration (policy, logging, stop grace), tokens and JWT keys.

        An invalid configuration is logged and the running one kept. The tokens and keys files
        are re-read even then (an invalid one is logged; none of its tokens works until fixed).
        """
        changes: dict[str, object] = {}
        if self.config_source is not None:
            try:
                new = await trio.to_thread.run_sync(self.config_source)
            except ConfigError as exc:
                log.error(
                    "daemon.reload_failed",
                    problems=exc.problems,
                    hint="the running configuration is kept; fix it and send SIGHUP again",
                )
            else:
                changes = self._apply(new)
        if self.authenticator is not None:  # the tokens file and the JWT keys file
            await trio.to_thread.run_sync(self.authenticator.reload)
            if self.authenticator.tokens is not None:
                changes["tokens"] = len(self.authenticator.tokens.records())
        log.info("daemon.reloaded", **changes)

    def _apply(self, new: Config) -> dict[str, object]:
        """Take ``new``'s reloadable sections; the changes, for the log."""
        old = self.config
        restart = [
            field.name
            for field in attrs.fields(Config)
            if field.name not in RELOADED_SECTIONS
            and getattr(old, field.name) != getattr(new, field.name)
        ]
        if restart:
            log.warning(
                "daemon.reload_needs_restart",
                sections=restart,
                hint="these sections changed but apply only at start: restart qsysd",
            )
        self.config = attrs.evolve(old, policy=new.policy, logging=new.logging, daemon=new.daemon)
        if self.policy is not None:
            self.policy.config = new.policy
        if new.logging != old.logging:
            configure_logging(
                new.logging.level, new.logging.format, secrets=[*old.secrets(), *new.secrets()]
            )
        return {
            "policy_changed": new.policy != old.policy,
            "log_level": new.logging.level,
            "restart_needed": restart,
        }


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


async def _cancellable(scope: trio.CancelScope, run: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await run()


async def _watchdog(interval: float) -> None:
    # From the trio loop itself: a loop that is stuck stops the pings, and systemd restarts it.
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


def _early_start(config: Config) -> EarlyStart | None:
    """The early door ``qsysd.cli`` opened, its cache dropped if the configuration says so."""
    from qsysd._early import take_early_start

    early = take_early_start()
    if early is not None and early.cache is not None:
        wanted = config.daemon.stdio_cache and uses_state_dir(config.state)
        if not wanted or early.cache.path.parent != Path(config.state.dir):
            early.cache = None  # the door (if it runs) is still taken over: it read stdin
    return early


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
        daemon = Daemon(config, config_source=functools.partial(load_config, args.config))
        if args.stdio:
            daemon.early = _early_start(config)
        trio.run(functools.partial(daemon.run, stdio=args.stdio))
        return 0
    except BaseException as exc:
        message = startup_failure(exc, secrets)
        if message is None:
            raise
        print(f"qsysd {args.command}: {message}", file=sys.stderr)
        return 2
