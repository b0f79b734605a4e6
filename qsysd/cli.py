"""The ``qsysd`` command line: serve, emulate, demo, config check, plugins."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from qsysd import __version__
from qsysd.config import Config, load_config, redacted
from qsysd.errors import ConfigError
from qsysd.logs import configure_logging

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # argparse's own code for bad usage; also used for an invalid configuration


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML configuration file (default: $QSYSD_CONFIG; none means defaults + environment)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qsysd",
        description="Discover and control QSC Q-SYS audio systems from AI agents (MCP) "
        "and integrators' software.",
    )
    parser.add_argument("--version", action="version", version=f"qsysd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the daemon for the configured Cores",
        description="Connect to the configured Q-SYS Cores and serve the MCP tools.",
    )
    _add_config_option(serve)
    serve.add_argument(
        "--stdio", action="store_true", help="serve MCP over stdin/stdout (for an MCP client)"
    )

    emulate = commands.add_parser(
        "emulate",
        help="run the built-in Q-SYS Core emulator",
        description="Run a faithful Q-SYS Core emulator (QRC over TCP, QRWC over WebSocket) in "
        "the foreground; Ctrl-C stops it.",
    )
    from qsysd.emulator import add_cli_arguments

    add_cli_arguments(emulate)

    demo = commands.add_parser(
        "demo",
        help="run the daemon against a built-in emulated Core with the demo design",
        description="Start the emulator with the demo venue design in-process and run the "
        "daemon against it: a working qsysd without any hardware.",
    )
    demo.add_argument(
        "--stdio", action="store_true", help="serve MCP over stdin/stdout (for an MCP client)"
    )
    demo.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where the demo keeps its snapshot and journal (default: a temporary folder)",
    )
    demo.add_argument(
        "--listen",
        metavar="ADDRESS",
        default="127.0.0.1:8750",
        help="where the demo serves HTTP (MCP at /mcp, REST at /api/v1; default: "
        "127.0.0.1:8750; loopback only)",
    )

    call = commands.add_parser(
        "call",
        help="call a tool on a running daemon (its REST door)",
        description="Call one tool on a running qsysd through its HTTP front end. Exit codes: "
        "0 done, 1 the tool failed or was refused, 2 bad usage, 3 qsysd not reachable.",
    )
    from qsysd._call import add_call_arguments

    add_call_arguments(call)

    token = commands.add_parser(
        "token",
        help="create, list and revoke API tokens",
        description="Administer the API tokens of the HTTP front end (auth.mode = 'token').",
    )
    from qsysd.access._cli import add_token_arguments

    add_token_arguments(token, _add_config_option)

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    check = config_commands.add_parser(
        "check",
        help="validate the configuration and print it, secrets redacted",
        description="Validate the configuration (file, environment, secret files) and print "
        "the effective configuration as JSON with every secret redacted. Exit code 2 when it "
        "is invalid.",
    )
    _add_config_option(check)

    plugins = commands.add_parser("plugins", help="list the loaded plugins and their tools")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _load(path: str | None) -> Config:
    return load_config(path)


def _config_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    json.dump(redacted(config), sys.stdout, indent=2)
    sys.stdout.write("\n")
    print(f"configuration is valid: {len(config.cores)} Core(s)", file=sys.stderr)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Until a command configures its own, logs go to stderr: stdout may be the MCP stream.
    configure_logging("warning", "auto")
    try:
        if args.command == "config":
            if args.config_command != "check":
                parser.parse_args(["config", "--help"])
            return _config_check(args)
        if args.command == "emulate":
            from qsysd.emulator import main_from_args

            return main_from_args(args)
        if args.command in ("serve", "demo"):
            from qsysd.daemon import main_from_args as daemon_main

            return daemon_main(args)
        if args.command == "call":
            from qsysd._call import run_call

            return run_call(args)
        if args.command == "token":
            if args.token_command is None:
                parser.parse_args(["token", "--help"])
            from qsysd.access._cli import run_token

            return run_token(args)
        if args.command == "plugins":
            from qsysd.plugins import print_plugins

            return print_plugins(as_json=args.json)
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"qsysd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
