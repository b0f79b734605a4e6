"""``qsysd emulate``: the emulator's command-line options and entry point."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Callable
from functools import partial

import structlog
import trio

from qsysd.emulator._design import Design, DesignError, load_design
from qsysd.emulator._generate import demo_design, generate_design
from qsysd.emulator._pair import serve_redundant_pair
from qsysd.emulator._server import QRWC_PATH, EmulatorServer, serve_emulator
from qsysd.emulator._standby import serve_standby
from qsysd.errors import ConfigError, CoreError

__all__ = ["add_cli_arguments", "main_from_args", "parse_address", "run_emulator_cli"]

_log = structlog.get_logger(__name__)
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, or ``PORT``) as (host, port); host defaults to 127.0.0.1."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {text!r}")
    return (host.strip("[]") or "127.0.0.1", number)


def _ws_address(text: str) -> tuple[str, int] | None:
    return None if text.lower() in ("off", "none", "") else parse_address(text)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``qsysd emulate`` options to ``parser`` (dests prefixed ``emu_``)."""
    add = parser.add_argument
    add(
        "--listen",
        dest="emu_listen",
        type=parse_address,
        default=("127.0.0.1", 1710),
        metavar="HOST:PORT",
        help="QRC (TCP) address (default 127.0.0.1:1710; port 0 = any)",
    )
    add(
        "--ws-listen",
        dest="emu_ws_listen",
        type=_ws_address,
        default=("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="QRWC WebSocket address, or 'off' (default 127.0.0.1:8080)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--design",
        dest="emu_design",
        metavar="FILE",
        help="JSON design file (default: the built-in demo venue)",
    )
    source.add_argument(
        "--generate",
        dest="emu_generate",
        type=int,
        metavar="N",
        help="serve a generated design of N components (about 20 controls each)",
    )
    add("--seed", dest="emu_seed", type=int, default=0, help="seed for --generate (default 0)")
    add(
        "--design-code",
        dest="emu_design_code",
        metavar="CODE",
        help="DesignCode to report (default: random, as after a deploy)",
    )
    add(
        "--password",
        dest="emu_password",
        metavar="PIN",
        help="turn access control on: Logon needs this PIN (any user unless --user)",
    )
    add("--user", dest="emu_user", metavar="NAME", help="the one user name Logon accepts")
    add(
        "--idle-timeout",
        dest="emu_idle_timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="close clients that sent nothing for S seconds (default 60)",
    )
    pair = parser.add_mutually_exclusive_group()
    pair.add_argument(
        "--redundant",
        dest="emu_redundant",
        action="store_true",
        help="serve a redundant pair: Active on --listen, Standby on --standby-listen",
    )
    pair.add_argument(
        "--standby-of",
        dest="emu_standby_of",
        type=parse_address,
        metavar="HOST:PORT",
        help="serve the Standby Core of the Active emulator at HOST:PORT (QRC); take over "
        "when it goes away",
    )
    add(
        "--takeover-after",
        dest="emu_takeover_after",
        type=float,
        default=3.0,
        metavar="S",
        help="with --standby-of: become Active when the Active Core is gone this long (default 3)",
    )
    add(
        "--standby-listen",
        dest="emu_standby_listen",
        type=parse_address,
        metavar="HOST:PORT",
        help="Standby QRC address (default: --listen port + 1)",
    )
    add(
        "--standby-ws-listen",
        dest="emu_standby_ws_listen",
        type=_ws_address,
        metavar="HOST:PORT",
        help="Standby QRWC address (default: --ws-listen port + 1)",
    )
    add(
        "--failover-after",
        dest="emu_failover_after",
        type=float,
        metavar="S",
        help="with --redundant: swap Active and Standby after S seconds",
    )
    faults = parser.add_argument_group("fault injection")
    fadd = faults.add_argument
    fadd(
        "--fault-delay",
        dest="emu_fault_delay",
        type=float,
        default=0.0,
        metavar="S",
        help="answer every request S seconds late",
    )
    fadd(
        "--fault-stall-after",
        dest="emu_fault_stall_after",
        type=float,
        metavar="S",
        help="after S seconds stop answering and pushing (sockets stay open)",
    )
    fadd(
        "--fault-drop-every",
        dest="emu_fault_drop_every",
        type=float,
        metavar="S",
        help="drop every connection every S seconds",
    )
    fadd(
        "--fault-garbage-every",
        dest="emu_fault_garbage_every",
        type=float,
        metavar="S",
        help="send an invalid frame to every client every S seconds",
    )
    fadd(
        "--fault-half-frame-every",
        dest="emu_fault_half_frame_every",
        type=float,
        metavar="S",
        help="send half a frame (no terminator) to every client every S seconds",
    )
    fadd(
        "--fault-restart-every",
        dest="emu_fault_restart_every",
        type=float,
        metavar="S",
        help="redeploy with a new DesignCode every S seconds (drops every connection)",
    )
    fadd(
        "--fault-split-frames",
        dest="emu_fault_split_frames",
        action="store_true",
        help="send every TCP frame in two writes",
    )
    fadd(
        "--fault-refuse-logon",
        dest="emu_fault_refuse_logon",
        action="store_true",
        help="answer every Logon with error 10",
    )
    add(
        "--log-level",
        dest="emu_log_level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default info)",
    )


def _design(ns: argparse.Namespace) -> Design:
    if ns.emu_design:
        return load_design(ns.emu_design)
    if ns.emu_generate is not None:
        if ns.emu_generate < 1:
            raise DesignError([f"--generate: needs at least 1 component, got {ns.emu_generate}"])
        return generate_design(ns.emu_generate, seed=ns.emu_seed)
    return demo_design()


def _next_port(address: tuple[str, int]) -> tuple[str, int]:
    host, port = address
    return (host, port + 1 if port else 0)


async def _every(seconds: float, action: Callable[[], object], *, once: bool = False) -> None:
    while True:
        await trio.sleep(seconds)
        action()
        if once:
            return


def _apply_faults(ns: argparse.Namespace, server: EmulatorServer) -> None:
    server.set_reply_delay(ns.emu_fault_delay)
    server.split_frames(ns.emu_fault_split_frames)
    server.refuse_logon(ns.emu_fault_refuse_logon)


def _scheduled_faults(
    ns: argparse.Namespace, servers: list[EmulatorServer], restart: Callable[[], object]
) -> list[tuple[float, Callable[[], object], bool]]:
    """(seconds, action, once) for each timed fault flag given."""

    def each(method: str) -> Callable[[], None]:
        def act() -> None:
            for server in servers:
                getattr(server, method)()

        return act

    schedule: list[tuple[float | None, Callable[[], object], bool]] = [
        (ns.emu_fault_stall_after, each("stall"), True),
        (ns.emu_fault_drop_every, each("drop_connections"), False),
        (ns.emu_fault_garbage_every, each("send_garbage"), False),
        (ns.emu_fault_half_frame_every, each("send_half_frame"), False),
        (ns.emu_fault_restart_every, restart, False),
    ]
    return [(s, a, once) for s, a, once in schedule if s is not None and s > 0]


async def run_emulator_cli(
    ns: argparse.Namespace,
    design: Design | None = None,
    *,
    task_status: trio.TaskStatus[list[EmulatorServer]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve as ``ns`` (from :func:`add_cli_arguments`) says until SIGINT or SIGTERM.

    Reports the started servers (Active first) through ``task_status``.
    """
    design = design or _design(ns)
    host, port = ns.emu_listen
    ws = ns.emu_ws_listen
    async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as stack:
        servers: list[EmulatorServer]
        restart: Callable[[], object]
        if ns.emu_redundant:
            standby = ns.emu_standby_listen or _next_port(ns.emu_listen)
            standby_ws = ns.emu_standby_ws_listen or (None if ws is None else _next_port(ws))
            pair = await stack.enter_async_context(
                serve_redundant_pair(
                    design,
                    host=host,
                    ports=(port, standby[1]),
                    ws_ports=None if ws is None or standby_ws is None else (ws[1], standby_ws[1]),
                    password=ns.emu_password,
                    user=ns.emu_user,
                    idle_timeout=ns.emu_idle_timeout,
                    design_code=ns.emu_design_code,
                )
            )
            servers, restart = list(pair.servers), pair.restart
            if ns.emu_failover_after:
                nursery.start_soon(partial(_every, ns.emu_failover_after, pair.failover, once=True))
        elif ns.emu_standby_of:
            watch = await stack.enter_async_context(
                serve_standby(
                    design,
                    active=ns.emu_standby_of,
                    host=host,
                    port=port,
                    ws_port=None if ws is None else ws[1],
                    password=ns.emu_password,
                    user=ns.emu_user,
                    idle_timeout=ns.emu_idle_timeout,
                    takeover_after=ns.emu_takeover_after,
                )
            )
            servers, restart = [watch.server], watch.server.restart
        else:
            server = await stack.enter_async_context(
                serve_emulator(
                    design,
                    host=host,
                    port=port,
                    ws_port=None if ws is None else ws[1],
                    password=ns.emu_password,
                    user=ns.emu_user,
                    idle_timeout=ns.emu_idle_timeout,
                    design_code=ns.emu_design_code,
                )
            )
            servers, restart = [server], server.restart
        for s in servers:
            _apply_faults(ns, s)
            _log.info(
                "emulator.ready",
                state=s.state,
                qrc=f"{s.host}:{s.tcp_port}",
                qrwc=None if s.ws_port is None else f"ws://{s.host}:{s.ws_port}{QRWC_PATH}",
                design_code=s.design_code,
                access_control=ns.emu_password is not None,
            )
        for seconds, action, once in _scheduled_faults(ns, servers, restart):
            nursery.start_soon(partial(_every, seconds, action, once=once))
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started(servers)
            async for signum in signals:
                _log.info("emulator.stopping", signal=signal.Signals(signum).name)
                break
        nursery.cancel_scope.cancel()


def main_from_args(ns: argparse.Namespace) -> int:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM; the exit code."""
    from qsysd.logs import configure_logging

    configure_logging(ns.emu_log_level, secrets=[ns.emu_password] if ns.emu_password else [])
    try:
        design = _design(ns)
    except ConfigError as exc:
        _log.error("emulator.bad_design", problems=exc.problems)
        return EXIT_USAGE
    failed = False
    try:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(run_emulator_cli, ns, design)
    except* CoreError as group:
        # --standby-of: the Active Core did not answer StatusGet at start-up.
        _log.error("emulator.active_unreachable", error=str(group.exceptions[0]))
        failed = True
    return EXIT_FAILURE if failed else EXIT_OK
