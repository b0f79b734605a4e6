"""``qsysd call``: one tool call on a running daemon through its REST door."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["EXIT_CONNECTION", "EXIT_TOOL_ERROR", "add_call_arguments", "run_call"]

EXIT_TOOL_ERROR = 1  # the daemon answered: the tool failed or refused
EXIT_USAGE = 2
EXIT_CONNECTION = 3  # the daemon could not be reached, or did not answer as qsysd does
DEFAULT_URL = "http://127.0.0.1:8765"


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tool", help="the tool's name, e.g. qsys_get (`qsysd plugins` lists them)")
    parser.add_argument(
        "arguments",
        nargs="*",
        metavar="KEY=VALUE",
        help='one argument each; a VALUE that is JSON (-12, true, ["a"]) is taken as JSON, '
        "anything else as a string",
    )
    parser.add_argument(
        "--json", dest="json_arguments", metavar="ARGS", help="all arguments as one JSON object"
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("QSYSD_URL", DEFAULT_URL),
        help=f"the daemon's HTTP address, or unix:/path (default: $QSYSD_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="a file holding an API token (default: $QSYSD_TOKEN, if set)",
    )
    parser.add_argument(
        "--format",
        choices=("auto", "text", "json"),
        default="auto",
        help="text on a terminal, JSON when piped (auto, the default)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")


def _parse_arguments(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.json_arguments is not None:
        try:
            loaded = json.loads(args.json_arguments)
        except ValueError as exc:
            raise _Usage(f"--json: not JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise _Usage("--json: give a JSON object of the tool's arguments")
        out.update(loaded)
    for item in args.arguments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise _Usage(f"{item!r}: arguments are KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


class _Usage(Exception):
    pass


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        try:
            return Path(args.token_file).read_text().strip() or None
        except OSError as exc:
            raise _Usage(
                f"--token-file: cannot read {args.token_file!r} ({exc.strerror})"
            ) from None
    return os.environ.get("QSYSD_TOKEN") or None


def _render_text(data: Any, indent: int = 0) -> list[str]:
    """A readable rendering of JSON data: keys and values, lists as items."""
    pad = "  " * indent
    if isinstance(data, dict):
        lines = []
        for key, value in data.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:")
                lines += _render_text(value, indent + 1)
            else:
                lines.append(f"{pad}{key}: {json.dumps(value, ensure_ascii=False)}")
        return lines
    if isinstance(data, list):
        lines = []
        for item in data:
            sub = _render_text(item, indent + 1)
            if sub:
                sub[0] = f"{pad}- {sub[0].lstrip()}"
            lines += sub
        return lines
    return [f"{pad}{json.dumps(data, ensure_ascii=False)}"]


def run_call(args: argparse.Namespace) -> int:
    import httpx  # only this command needs an HTTP client

    try:
        arguments = _parse_arguments(args)
        token = _token(args)
    except _Usage as exc:
        print(f"qsysd call: {exc}", file=sys.stderr)
        return EXIT_USAGE
    url: str = args.url.rstrip("/")
    transport = None
    if url.startswith("unix:"):
        transport = httpx.HTTPTransport(uds=url[len("unix:") :])
        url = "http://localhost"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    as_json = args.format == "json" or (args.format == "auto" and not sys.stdout.isatty())
    try:
        with httpx.Client(transport=transport, timeout=args.timeout) as client:
            response = client.post(
                f"{url}/api/v1/tools/{args.tool}", json=arguments, headers=headers
            )
    except httpx.HTTPError as exc:
        print(f"qsysd call: cannot reach qsysd at {args.url} ({exc})", file=sys.stderr)
        return EXIT_CONNECTION
    try:
        body = response.json()
    except ValueError:
        print(
            f"qsysd call: {args.url} answered HTTP {response.status_code} without JSON; "
            "is it a qsysd HTTP front end?",
            file=sys.stderr,
        )
        return EXIT_CONNECTION
    if response.is_success:
        if as_json:
            json.dump(body, sys.stdout, ensure_ascii=False)
            sys.stdout.write("\n")
        else:
            sys.stdout.write("\n".join(_render_text(body)) + "\n")
        return 0
    if not (isinstance(body, dict) and "detail" in body):
        print(f"qsysd call: HTTP {response.status_code}: {body!r}"[:500], file=sys.stderr)
        return EXIT_CONNECTION
    if as_json:
        json.dump(body, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    kind = str(body.get("type", "")).rpartition(":")[2]
    retry = " (a retry may succeed)" if body.get("retryable") else ""
    print(f"qsysd call: {body['detail']} [{kind}, HTTP {response.status_code}]{retry}",
          file=sys.stderr)  # fmt: skip
    return EXIT_TOOL_ERROR
