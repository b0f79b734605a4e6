"""QRC wire shapes -> state model values, in one place.

Tolerant by design: both reply shapes the reference lists as open questions, booleans as
0/1 or JSON booleans, numbers as ints or floats, and unknown extra members (kept as metadata
on values, ignored elsewhere). Items that are not objects or have no ``Name`` are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from qsysd.state import EMPTY_METADATA, ComponentInfo, ControlInfo, ControlRef, ControlValue

__all__ = [
    "EngineStatus",
    "component_from_wire",
    "components_from_reply",
    "control_value_from_wire",
    "controls_from_reply",
    "engine_status_from_wire",
    "normalize_value",
    "poll_from_wire",
    "values_from_reply",
]

Scalar = float | int | bool | str | None

# Members of a control object that are not display metadata.
_CORE_MEMBERS = frozenset(
    {
        "Name",
        "Component",
        "Value",
        "String",
        "Position",
        "Type",
        "Direction",
        "ValueMin",
        "ValueMax",
        "StringMin",
        "StringMax",
    }
)


@attrs.frozen
class EngineStatus:
    """A Core's engine status (StatusGet result or EngineStatus notification)."""

    platform: str = ""
    state: str = "Unknown"
    design_name: str = ""
    design_code: str = ""
    is_redundant: bool = False
    is_emulator: bool = False
    status_code: int = -1
    status_string: str = ""


def _str(obj: Mapping[str, Any], key: str, default: str = "") -> str:
    value = obj.get(key)
    if value is None:
        return default
    return value if isinstance(value, str) else str(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def engine_status_from_wire(obj: Any) -> EngineStatus:
    """The engine status in a StatusGet result or an EngineStatus push."""
    if not isinstance(obj, Mapping):
        return EngineStatus()
    status = obj.get("Status")
    code, text = -1, ""
    if isinstance(status, Mapping):
        raw_code = status.get("Code")
        if isinstance(raw_code, int | float) and not isinstance(raw_code, bool):
            code = int(raw_code)
        text = _str(status, "String")
    return EngineStatus(
        platform=_str(obj, "Platform"),
        state=_str(obj, "State", "Unknown"),
        design_name=_str(obj, "DesignName"),
        design_code=_str(obj, "DesignCode"),
        is_redundant=_bool(obj.get("IsRedundant", False)),
        is_emulator=_bool(obj.get("IsEmulator", False)),
        status_code=code,
        status_string=text,
    )


def component_from_wire(core: str, obj: Mapping[str, Any]) -> ComponentInfo:
    props: list[tuple[str, str]] = []
    raw = obj.get("Properties")
    if isinstance(raw, list):
        for prop in raw:
            if isinstance(prop, Mapping) and "Name" in prop:
                props.append((_str(prop, "Name"), _str(prop, "Value")))
    name = _str(obj, "Name")
    return ComponentInfo(
        core=core,
        name=name,
        type=_str(obj, "Type"),
        id=_str(obj, "ID", name),
        properties=tuple(props),
    )


def components_from_reply(core: str, result: Any) -> list[ComponentInfo]:
    """The components in a Component.GetComponents result (a list, or an object holding one)."""
    if isinstance(result, Mapping):
        result = result.get("Components", [])
    if not isinstance(result, list):
        return []
    return [
        component_from_wire(core, item)
        for item in result
        if isinstance(item, Mapping) and isinstance(item.get("Name"), str)
    ]


def normalize_value(value: Any, kind: str | None) -> Scalar:
    """A control's value in the Python type its control type implies.

    Booleans arrive as JSON booleans (GetControls) or 0/1 (Get, Poll); Floats as ints when
    whole. Normalizing keeps the store from seeing a change where the Core reported none.
    """
    if isinstance(value, list | dict):
        return None
    if kind == "Boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value != 0
        return value  # type: ignore[no-any-return]
    if kind == "Float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "Integer" and isinstance(value, float | bool) and float(value).is_integer():
        return int(value)
    return value  # type: ignore[no-any-return]


def control_value_from_wire(
    core: str,
    obj: Mapping[str, Any],
    *,
    component: str | None = None,
    kind: str | None = None,
) -> ControlValue:
    """One control object; ``component`` when the object does not carry ``Component``."""
    comp = obj.get("Component", component)
    ref = ControlRef(core, comp if isinstance(comp, str) else component, _str(obj, "Name"))
    raw = obj.get("Value")
    kind = kind or (obj.get("Type") if isinstance(obj.get("Type"), str) else None)
    extra = {k: v for k, v in obj.items() if k not in _CORE_MEMBERS}
    if isinstance(raw, list | dict):
        extra["Value"] = raw
    string = obj.get("String")
    return ControlValue(
        ref=ref,
        value=normalize_value(raw, kind),
        string=string if isinstance(string, str) else ("" if raw is None else str(raw)),
        position=_float(obj.get("Position")),
        metadata=MappingProxyType(extra) if extra else EMPTY_METADATA,
    )


def _control_items(result: Any) -> list[Mapping[str, Any]]:
    if isinstance(result, Mapping):
        result = result.get("Controls", [])
    if not isinstance(result, list):
        return []
    return [i for i in result if isinstance(i, Mapping) and isinstance(i.get("Name"), str)]


def controls_from_reply(
    core: str, component: str, result: Any
) -> tuple[list[ControlInfo], list[ControlValue]]:
    """Descriptions and values in a Component.GetControls result."""
    infos: list[ControlInfo] = []
    values: list[ControlValue] = []
    for item in _control_items(result):
        kind = _str(item, "Type", "Unknown")
        ref = ControlRef(core, component, _str(item, "Name"))
        infos.append(
            ControlInfo(
                ref=ref,
                type=kind,
                direction=_str(item, "Direction", "Read/Write"),
                value_min=_float(item.get("ValueMin")),
                value_max=_float(item.get("ValueMax")),
                string_min=item.get("StringMin")
                if isinstance(item.get("StringMin"), str)
                else None,
                string_max=item.get("StringMax")
                if isinstance(item.get("StringMax"), str)
                else None,
            )
        )
        if "Value" in item or "String" in item:
            values.append(control_value_from_wire(core, item, component=component, kind=kind))
    return infos, values


def values_from_reply(
    core: str,
    result: Any,
    *,
    component: str | None = None,
    kinds: Mapping[ControlRef, str] | None = None,
) -> list[ControlValue]:
    """Values in a Get or Set reply: a list, an object with ``Controls``, one control, or
    ``true`` (no values).

    Fits Component.Get, Component.Set with ResponseValues, Control.Get and Control.Set.
    """
    if isinstance(result, Mapping) and "Controls" not in result and "Name" in result:
        items: Sequence[Mapping[str, Any]] = [result]
    else:
        if isinstance(result, Mapping) and isinstance(result.get("Name"), str):
            component = result["Name"]
        items = _control_items(result)
    return _values(core, items, component, kinds)


def poll_from_wire(
    core: str, params: Any, kinds: Mapping[ControlRef, str] | None = None
) -> tuple[str | None, list[ControlValue]]:
    """The group id and the changes of a ChangeGroup.Poll result or AutoPoll push."""
    if not isinstance(params, Mapping):
        return None, []
    group = params.get("Id")
    changes = params.get("Changes")
    items = [i for i in (changes if isinstance(changes, list) else []) if isinstance(i, Mapping)]
    items = [i for i in items if isinstance(i.get("Name"), str)]
    return (None if group is None else str(group)), _values(core, items, None, kinds)


def _values(
    core: str,
    items: Iterable[Mapping[str, Any]],
    component: str | None,
    kinds: Mapping[ControlRef, str] | None,
) -> list[ControlValue]:
    out = []
    for item in items:
        value = control_value_from_wire(core, item, component=component)
        if kinds is not None:
            kind = kinds.get(value.ref)
            if kind is not None:
                value = attrs.evolve(value, value=normalize_value(item.get("Value"), kind))
        out.append(value)
    return out
