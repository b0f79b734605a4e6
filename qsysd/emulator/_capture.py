"""``qsysd design capture``: a live Core's design recorded as an emulator design file.

Components (type, properties), their controls (type, direction, range, choices, the display
format that reproduces the Core's strings) and current values, plus the named controls given
with ``--named`` (QRC cannot list them). Snapshot banks are recorded as components: QRC
cannot read what a snapshot stores.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from qsysd.emulator._design import (
    ComponentSpec,
    ControlSpec,
    Design,
    design_to_dict,
    validate_design,
)
from qsysd.emulator._values import format_string, resolve_format
from qsysd.errors import ConfigError, QsysdError
from qsysd.state import ControlInfo, ControlValue

__all__ = ["add_capture_arguments", "capture_design", "capture_from_args"]

_TYPES = frozenset(
    {"Float", "Integer", "Boolean", "Text", "Trigger", "State Trigger", "Time", "Status"}
)
_NUMERIC = frozenset({"Float", "Integer", "Time"})
_FORMATS = (
    "dB", "Hz", "ms", "s", "%", "celsius", "number", "integer",
    "mute", "bypass", "invert", "boolean", "status", "trigger",
)  # fmt: skip


def _control_spec(info: ControlInfo, value: ControlValue | None) -> ControlSpec:
    kind = info.type if info.type in _TYPES else ("Float" if info.value_min is not None else "Text")
    raw = value.value if value is not None else None
    initial: Any = None
    if kind in _NUMERIC and isinstance(raw, int | float) and math.isfinite(raw):
        initial = raw
    elif kind == "Boolean" and raw is not None:
        initial = bool(raw)
    elif kind == "Text" and raw is not None:
        initial = str(raw)
    elif kind == "Status" and isinstance(raw, int | float):
        initial = raw
    low, high = info.value_min, info.value_max
    if kind in _NUMERIC:
        number = initial if isinstance(initial, int | float) else 0.0
        low = number if low is None else min(low, number)
        high = max(number, low + 1) if high is None else max(high, number)
    choices = None
    if value is not None and isinstance(value.metadata.get("Choices"), list):
        choices = tuple(str(c) for c in value.metadata["Choices"])
    spec = ControlSpec(
        name=info.ref.name,
        type=kind,
        min=low if kind in _NUMERIC else None,
        max=high if kind in _NUMERIC else None,
        value=initial,
        direction=info.direction or "Read/Write",
        choices=choices if kind == "Text" else None,
    )
    return _with_format(spec, value.string if value is not None else None)


def _with_format(spec: ControlSpec, string: str | None) -> ControlSpec:
    """The spec with the display format that gives the Core's string for its value."""
    if spec.type == "Text":
        return spec
    value = spec.value
    if string is None or value is None or isinstance(value, str):
        return spec
    number = float(value)
    default = resolve_format(spec)
    for fmt in (default, *_FORMATS):
        if format_string(fmt, number, spec) == string:
            return spec if fmt == default else _evolve(spec, fmt)
    return spec


def _evolve(spec: ControlSpec, fmt: str) -> ControlSpec:
    import attrs

    return attrs.evolve(spec, format=fmt)


async def capture_design(
    host: str,
    port: int = 1710,
    *,
    user: str | None = None,
    password: str | None = None,
    named_controls: Sequence[str] = (),
    timeout: float = 10.0,  # noqa: ASYNC109 -- per request, as the link's
) -> Design:
    """Connect to the Core at ``host:port``, read its whole design, return it as a Design."""
    from qsysd.core import discover, engine_status_from_wire
    from qsysd.qrc import open_qrc_connection, open_transport

    async with (
        open_transport(host, port, connect_timeout=timeout) as transport,
        open_qrc_connection(
            transport, name=f"{host}:{port}", request_timeout=timeout, keepalive_interval=None
        ) as connection,
    ):
        if user is not None:
            await connection.logon(user, password or "")
        status = engine_status_from_wire(await connection.request("StatusGet", {}))
        found = await discover(
            connection.request,
            "capture",
            design_code=status.design_code,
            named_controls=named_controls,
        )
    values = {v.ref: v for v in found.values}
    by_component: dict[str | None, list[ControlSpec]] = {}
    for info in found.controls:
        spec = _control_spec(info, values.get(info.ref))
        by_component.setdefault(info.ref.component, []).append(spec)
    components = tuple(
        ComponentSpec(
            name=c.name,
            type=c.type,
            properties=dict(c.properties),
            controls=tuple(sorted(by_component.get(c.name, []), key=lambda s: s.name)),
        )
        for c in found.components
    )
    named = tuple(sorted(by_component.get(None, []), key=lambda s: s.name))
    return Design(
        name=status.design_name or "captured",
        platform=status.platform or "Core 110f",
        design_code=status.design_code or None,
        components=components,
        named_controls=named,
    )


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--core", required=True, metavar="HOST[:PORT]", help="the Core (QRC)")
    parser.add_argument("--user", help="log on as this user (when access control is on)")
    parser.add_argument("--password-file", metavar="FILE", help="the user's password, in a file")
    parser.add_argument(
        "--named",
        action="append",
        default=[],
        metavar="NAME",
        help="a named control to record too (QRC cannot list them); repeat for more",
    )
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="design file")


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 1710
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError([f"--core {text!r}: the port must be a number from 1 to 65535"])
    return host, int(port)


def capture_from_args(args: argparse.Namespace) -> int:
    """``qsysd design capture``: exit 0 with the file written, 1 with a clear error."""
    host, port = _address(args.core)
    password = None
    if args.password_file is not None:
        try:
            password = Path(args.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([f"--password-file: cannot read it ({exc.strerror})"]) from None
    if password is not None and args.user is None:
        raise ConfigError(["--password-file needs --user"])
    try:
        design = trio.run(
            functools.partial(
                capture_design,
                host,
                port,
                user=args.user,
                password=password,
                named_controls=args.named,
            )
        )
    except QsysdError as exc:
        print(f"qsysd: capturing {host}:{port} failed: {exc}", file=sys.stderr)
        return 1
    problems = validate_design(design)
    data = design_to_dict(design)
    Path(args.output).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    count = sum(len(c.controls) for c in design.components) + len(design.named_controls)
    print(
        f"captured {design.name!r}: {len(design.components)} components, {count} controls "
        f"-> {args.output}",
        file=sys.stderr,
    )
    for problem in problems:
        print(f"warning: the emulator will refuse this: {problem}", file=sys.stderr)
    return 1 if problems else 0
