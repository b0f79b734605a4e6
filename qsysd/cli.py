"""The ``qsysd`` command line: serve, emulate, demo, config check, plugins."""

from __future__ import annotations

import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # not `typing` at run time: see qsysd/__init__.py

# Only the standard library at import: `serve --stdio` opens the early door (qsysd._early)
# before anything heavier is imported; each command imports what it needs.
if TYPE_CHECKING:
    import argparse

    from qsysd.config import Config

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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``command``, other commands' options may be left out
    (the emulator's need the emulator imported, which ``serve`` never uses)."""
    import argparse

    from qsysd import __version__

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
    if command in (None, "emulate"):
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
        description="Administer the HTTP front end's API tokens (auth.mode 'token', 'token+jwt').",
    )
    from qsysd.access._cli import add_token_arguments

    add_token_arguments(token, _add_config_option)

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    check = config_commands.add_parser(
        "check",
        help="validate the configuration and print it, secrets redacted",
        description="Validate the configuration (file, environment, secret files; the state "
        "folder is created if needed and must be writable) and print the effective "
        "configuration as JSON with every secret redacted; warnings go to stderr. Exit code 2 "
        "when it is invalid.",
    )
    _add_config_option(check)

    plugins = commands.add_parser(
        "plugins",
        help="list the loaded plugins and their tools",
        description="List the plugins serve would load (installed ones and [plugins] dirs), "
        "their hooks and tools, and any that failed to load (exit code 1).",
    )
    _add_config_option(plugins)
    plugins.add_argument("--json", action="store_true", help="print JSON instead of text")

    plugin = commands.add_parser("plugin", help="plugin authoring tools")
    plugin_commands = plugin.add_subparsers(dest="plugin_command", metavar="COMMAND")
    new = plugin_commands.add_parser(
        "new",
        help="scaffold an installable plugin package",
        description="Write ./NAME: a package with the qsysd entry point, an example tool, a "
        "passing test using qsysd's pytest fixtures, and a README.",
    )
    new.add_argument("name", metavar="NAME", help="the plugin's name, e.g. room-tools")
    new.add_argument("--dir", default=".", help="where to create it (default: here)")

    design = commands.add_parser("design", help="emulator design tools")
    design_commands = design.add_subparsers(dest="design_command", metavar="COMMAND")
    capture = design_commands.add_parser(
        "capture",
        help="record a live Core into an emulator design file",
        description="Record a Core's components, controls, ranges and current values into an "
        "emulator design file, to develop and test plugins offline against your own site.",
    )
    if command in (None, "design"):
        from qsysd.emulator import add_capture_arguments

        add_capture_arguments(capture)
    return parser


def _load(path: str | None) -> Config:
    from qsysd.config import load_config

    return load_config(path)


def _config_check(args: argparse.Namespace) -> int:
    import json

    from qsysd.config import config_warnings, redacted, state_dir_problem, uses_state_dir
    from qsysd.errors import ConfigError

    config = _load(args.config)
    if uses_state_dir(config.state):
        problem = state_dir_problem(config.state.dir)
        if problem is not None:
            raise ConfigError([problem])
    json.dump(redacted(config), sys.stdout, indent=2)
    sys.stdout.write("\n")
    for warning in config_warnings(config):
        print(f"qsysd: warning: {warning}", file=sys.stderr)
    print(
        f"configuration is valid: {len(config.cores)} Core(s); state folder {config.state.dir}",
        file=sys.stderr,
    )
    return EXIT_OK


def _plugins(args: argparse.Namespace) -> int:
    from qsysd.plugins import Registry, print_plugins

    config = _load(args.config)
    registry = Registry(plugin_dirs=config.plugins.dirs, config=config.plugins.config)
    return print_plugins(as_json=args.json, registry=registry)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the process's own command line (a caller's argv reads no stdin)
        from qsysd._early import open_early_door

        open_early_door(sys.argv[1:])  # does something only for `serve --stdio`
    from qsysd.errors import ConfigError, QsysdError
    from qsysd.logs import configure_logging

    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((w for w in words if not w.startswith("-")), None))
    args = parser.parse_args(words)
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
            return _plugins(args)
        if args.command == "plugin" and args.plugin_command == "new":
            from qsysd.plugins import new_plugin

            root = new_plugin(args.name, args.dir)
            print(f"created {root}: pip install -e {root} && pytest {root}", file=sys.stderr)
            return EXIT_OK
        if args.command == "design" and args.design_command == "capture":
            from qsysd.emulator import capture_from_args

            return capture_from_args(args)
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"qsysd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except QsysdError as exc:  # a clear message, never a traceback
        print(f"qsysd: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
