"""Shapes and helpers shared by the built-in tools."""

from __future__ import annotations

import datetime
import math
from typing import Any

import attrs

from qsysd.api import ControlResult
from qsysd.errors import ToolInputError
from qsysd.plugins import doc
from qsysd.state import ControlReading, ControlRow, CoreStatus, Scalar

CORE_FIELD_DOC = "The configured name of the Core to use. Omit it when only one Core is configured."


CORE_DOC = doc(CORE_FIELD_DOC, maxLength=100)
#: The longest control name, component name, filter or channel string a tool accepts.
NAME_MAX = 300

# isinstance() with a tuple: an ``A | B`` union is built anew at every call (4x slower)
_SCALAR = (bool, int, float, str)
#: Values json_scalar returns as they are, by exact type (a float may be NaN or infinite)
_PLAIN_JSON = frozenset({str, int, bool, type(None)})


def parse_time(text: str | None, field: str) -> float | None:
    """An ISO 8601 time (``2026-11-26T08:00:00Z``; no zone means UTC) as UNIX time."""
    if text is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ToolInputError(
            f"{field}: {text!r} is not an ISO 8601 time such as '2026-11-26T08:00:00Z'"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def iso(timestamp: float | None) -> str | None:
    """A UNIX time as ISO 8601 in UTC (``2026-03-01T12:03:41Z``)."""
    if timestamp is None or not math.isfinite(timestamp) or timestamp <= 0:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def json_scalar(value: Any) -> Scalar:
    """A control value as JSON allows it (no NaN or infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, _SCALAR):
        return value
    return str(value)


@attrs.frozen
class CoreOut:
    """A Core's connection and engine status."""

    name: str = attrs.field(metadata=doc("The Core's configured name."))
    connected: bool = attrs.field(
        metadata=doc("True while qsysd holds a working connection to the Core.")
    )
    state: str = attrs.field(metadata=doc("Engine state: Active, Standby, Idle or Unknown."))
    platform: str = attrs.field(metadata=doc("Core model, e.g. 'Core 110f' or 'Emulator'."))
    design_name: str = attrs.field(metadata=doc("The running design's name."))
    design_code: str = attrs.field(metadata=doc("Changes on every deploy of the design."))
    status: str = attrs.field(metadata=doc("The Core's status string, e.g. 'OK', 'Fault'."))
    status_code: int = attrs.field(metadata=doc("0 OK, 1 Compromised, 2 Fault, 4 Missing, ..."))
    redundant: bool = attrs.field(metadata=doc("True for a redundant pair."))
    emulator: bool = attrs.field(
        metadata=doc("True for Designer's Emulate mode or the qsysd emulator.")
    )
    active_host: str | None = attrs.field(
        metadata=doc("The host qsysd sends commands to (redundant pairs).")
    )
    since: str | None = attrs.field(
        metadata=doc("ISO 8601 UTC time of the last connect or disconnect.")
    )
    last_error: str | None = attrs.field(
        metadata=doc("Why the last connection attempt failed, if it did.")
    )
    breaker: str = attrs.field(
        metadata=doc("Circuit breaker: closed (normal), open (failing fast), half-open.")
    )


def core_out(status: CoreStatus) -> CoreOut:
    return CoreOut(
        name=status.core,
        connected=status.connected,
        state=status.state,
        platform=status.platform,
        design_name=status.design_name,
        design_code=status.design_code,
        status=status.status_string,
        status_code=status.status_code,
        redundant=status.is_redundant,
        emulator=status.is_emulator,
        active_host=status.active_host,
        since=iso(status.since),
        last_error=status.last_error,
        breaker=status.breaker,
    )


# Built per control of every listing: attrs.define, as a frozen class's __init__ (one
# object.__setattr__ per field) costs about three times as much. Nothing mutates it.
@attrs.define
class ControlOut:
    """One control with its current value."""

    name: str = attrs.field(
        metadata=doc("The control's name within its component (e.g. 'gain', 'input.1.mute').")
    )
    type: str = attrs.field(metadata=doc("Float, Boolean, Integer, Text, Trigger, ..."))
    direction: str = attrs.field(metadata=doc("Read/Write, Read Only or Write Only."))
    value: Scalar = attrs.field(
        metadata=doc("The current value (numbers in the control's unit; booleans 0/1).")
    )
    string: str | None = attrs.field(
        metadata=doc("The Core's string for the value, e.g. '-12.0dB', 'muted'.")
    )
    position: float | None = attrs.field(metadata=doc("The value's position in its range, 0..1."))
    min: float | None = attrs.field(metadata=doc("The smallest value the control accepts."))
    max: float | None = attrs.field(metadata=doc("The largest value the control accepts."))
    age_s: float = attrs.field(metadata=doc("Seconds since the Core last confirmed this value."))
    stale: bool = attrs.field(
        metadata=doc("True while the Core is unreachable: the value may be out of date.")
    )


def controls_json(rows: list[ControlRow]) -> list[dict[str, Any]]:
    """``control_out`` of each store row as its JSON object, without the object (a listing's
    controls: half the cost of the objects, then their conversion). One comprehension, and a
    value of an exactly plain JSON type taken as is: json_scalar is for the rest."""
    plain = _PLAIN_JSON
    return [
        {
            "name": info.ref.name,
            "type": info.type,
            "direction": info.direction,
            "value": (
                None if string is None else value if type(value) in plain else json_scalar(value)
            ),
            "string": string,
            "position": None if string is None else position,
            "min": info.value_min,
            "max": info.value_max,
            "age_s": round(age, 3),
            "stale": stale,
        }
        for info, value, string, position, age, stale in rows
    ]


def control_out(reading: ControlReading) -> ControlOut:
    """A control as qsys_list_controls and the MCP controls resources show it."""
    v = reading.value
    return ControlOut(
        name=reading.info.ref.name,
        type=reading.info.type,
        direction=reading.info.direction,
        value=json_scalar(v.value) if v else None,
        string=v.string if v else None,
        position=v.position if v else None,
        min=reading.info.value_min,
        max=reading.info.value_max,
        age_s=round(reading.age, 3),
        stale=reading.stale,
    )


@attrs.frozen
class ControlResultOut:
    """What happened to one control in a write."""

    control: str = attrs.field(
        metadata=doc("The control, as 'Component.control' or a named control.")
    )
    ok: bool = attrs.field(
        metadata=doc("True when the Core acknowledged the write (or, in a dry run, would).")
    )
    before: str | None = attrs.field(
        metadata=doc("The control's string before the write, as the Core showed it.")
    )
    value: Scalar = attrs.field(metadata=doc("The value the Core reported after the write."))
    string: str | None = attrs.field(
        metadata=doc("The Core's own string after the write, e.g. '-12.0dB'.")
    )
    position: float | None = attrs.field(
        metadata=doc("The control's position (0..1) after the write.")
    )
    error: str | None = attrs.field(metadata=doc("Why this control was not written; null when ok."))
    rule: str | None = attrs.field(
        metadata=doc("The safety policy rule that refused it, if one did.")
    )
    retryable: bool = attrs.field(
        metadata=doc("True when the same write may succeed if retried later.")
    )
    ramp_s: float | None = attrs.field(
        default=None,
        metadata=doc(
            "The ramp time, when one was requested: value and string above are then the ramp's "
            "start as the Core acknowledged it; the control reaches target after ramp_s seconds."
        ),
    )
    target: Scalar = attrs.field(
        default=None, metadata=doc("The value a ramp is heading for (null without a ramp).")
    )


def result_out(result: ControlResult) -> ControlResultOut:
    return ControlResultOut(
        control=result.control,
        ok=result.ok,
        before=result.before,
        value=json_scalar(result.value),
        string=result.string,
        position=result.position,
        error=result.error,
        rule=result.rule,
        retryable=result.retryable,
        ramp_s=result.ramp,
        target=json_scalar(result.target),
    )
