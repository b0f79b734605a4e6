"""QRC wire shapes -> state model values, in one place.

Tolerant by design: both reply shapes the reference lists as open questions, booleans as
0/1 or JSON booleans, numbers as ints or floats, and unknown extra members (kept as metadata
on values, ignored elsewhere). Items that are not objects, have no string ``Name`` or carry a
``Component`` that is not a string are skipped. Numbers that are not finite (``1e400``) or too
large for a float become None; a ``Position`` is clamped to 0..1.

A result or push whose outer shape is wrong (a GetComponents result that is not a list, Poll
``Changes`` that are not a list, EngineStatus params that are not an object) raises
:class:`~qsysd.errors.InvalidReply`, the one exception these converters raise: returning
"nothing" there would make the store drop a whole design. ``values_from_reply`` never
raises (a write's reply is only a courtesy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from sys import intern
from types import MappingProxyType
from typing import Any

import attrs

from qsysd.errors import InvalidReply
from qsysd.state import (
    EMPTY_METADATA,
    ComponentInfo,
    ControlInfo,
    ControlRef,
    ControlValue,
    share_leaf,
)

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
# isinstance() with a tuple: an ``A | B`` union is built anew at every call (4x slower)
_NUMBER = (int, float)
_CONTAINER = (list, dict)
_FLOAT_OR_BOOL = (float, bool)
_GROUP_ID = (str, int, float, type(None))

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
    """A string member; a number or boolean as text; anything else (null, list) the default."""
    value = obj.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, _NUMBER):  # bool included: the Core's own text would be "true"
        return str(value).lower() if isinstance(value, bool) else str(value)
    return default


def _float(value: Any) -> float | None:
    """A finite float, or None (not a number, not finite, or an int too large for a float)."""
    if type(value) is float:  # the usual case, first
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _position(value: Any) -> float | None:
    number = _float(value)
    return None if number is None else min(1.0, max(0.0, number))


def _bool(value: Any) -> bool | None:
    """A boolean sent as a JSON boolean, 0/1 or a string; None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, _NUMBER):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return None


def engine_status_from_wire(obj: Any, base: EngineStatus | None = None) -> EngineStatus:
    """The engine status in a StatusGet result or an EngineStatus push.

    Members that are missing or of the wrong type keep their value in ``base`` (the previous
    status, for a push) or the default. Raises InvalidReply when ``obj`` is not an object.
    """
    if not isinstance(obj, Mapping):
        raise InvalidReply(
            f"engine status is {_kind(obj)}, expected an object with State and DesignCode"
        )
    old = base or EngineStatus()

    def text(value: Any, default: str) -> str:
        return value if isinstance(value, str) else default

    def flag(value: Any, default: bool) -> bool:
        parsed = _bool(value)
        return default if parsed is None else parsed

    code, string = old.status_code, old.status_string
    status = obj.get("Status")
    if isinstance(status, Mapping):
        number = _float(status.get("Code"))
        if number is not None and abs(number) < 2**31:
            code = int(number)
        string = text(status.get("String"), string)
    return EngineStatus(
        platform=text(obj.get("Platform"), old.platform),
        state=text(obj.get("State"), old.state),
        design_name=text(obj.get("DesignName"), old.design_name),
        design_code=text(obj.get("DesignCode"), old.design_code),
        is_redundant=flag(obj.get("IsRedundant"), old.is_redundant),
        is_emulator=flag(obj.get("IsEmulator"), old.is_emulator),
        status_code=code,
        status_string=string,
    )


def _kind(obj: Any) -> str:
    """How a JSON value is named in messages: ``a list``, ``true``, ``null``, ..."""
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "true" if obj else "false"
    names = {Mapping: "an object", list: "a list", str: "a string", int: "a number"}
    for cls, name in names.items():
        if isinstance(obj, cls):
            return name
    return "a number" if isinstance(obj, float) else type(obj).__name__


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
    """The components in a Component.GetComponents result (a list, or an object holding one).

    Items that are not objects with a string Name are skipped, and so is a repeated name (the
    first wins). Raises InvalidReply when the result holds no list.
    """
    items = result.get("Components") if isinstance(result, Mapping) else result
    if not isinstance(items, list):
        raise InvalidReply(
            f"Component.GetComponents returned {_kind(result)}, expected a list of components"
        )
    seen: set[str] = set()
    out = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("Name"), str):
            if item["Name"] in seen:
                continue
            seen.add(item["Name"])
            out.append(component_from_wire(core, item))
    return out


def normalize_value(value: Any, kind: str | None) -> Scalar:
    """A control's value in the Python type its control type implies.

    Booleans arrive as JSON booleans (GetControls) or 0/1 (Get, Poll); Floats as ints when
    whole. Normalizing keeps the store from seeing a change where the Core reported none.
    """
    if isinstance(value, _CONTAINER):
        return None
    if kind == "Boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, _NUMBER):
            return value != 0
        return value  # type: ignore[no-any-return]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # 1e400 parses as inf; not a value JSON (or a client) can carry
    if kind == "Float" and isinstance(value, int) and not isinstance(value, bool):
        return _float(value)
    if kind == "Integer" and isinstance(value, _FLOAT_OR_BOOL) and float(value).is_integer():
        return int(value)
    return value  # type: ignore[no-any-return]


def control_value_from_wire(
    core: str,
    obj: Mapping[str, Any],
    *,
    component: str | None = None,
    kind: str | None = None,
    kinds: Mapping[ControlRef, str] | None = None,
) -> ControlValue:
    """One control object; ``component`` when the object does not carry ``Component``.

    The control's type is ``kinds[ref]`` if known there, else ``kind``, else the object's own.
    """
    return _control_value(core, obj, component, kind, kinds, None)


#: What one reply (or one discovery) already read, one object each. Its keys are of kinds
#: that never compare equal: texts and floats (:func:`~qsysd.state.share_leaf`), an item's
#: member names (its layout), and metadata as (names, values, types) or as its items and
#: their types (an even number of members).
_Copies = dict[Any, Any]


def _control_value(
    core: str,
    obj: Mapping[str, Any],
    component: str | None,
    kind: str | None,
    kinds: Mapping[ControlRef, str] | None,
    copies: _Copies | None,
) -> ControlValue:
    comp = obj.get("Component", component)
    name = obj.get("Name")
    ref = ControlRef(
        core,
        comp if isinstance(comp, str) else component,
        name if type(name) is str else _str(obj, "Name"),
    )
    raw = obj.get("Value")
    if kinds is not None:
        kind = kinds.get(ref, kind)
    if not kind:
        own = obj.get("Type")
        kind = own if isinstance(own, str) else None
    value = normalize_value(raw, kind)
    string = obj.get("String")
    if not isinstance(string, str):
        string = "" if value is None else str(value)
    position = obj.get("Position")
    if type(position) is float and 0.0 <= position <= 1.0:
        position = position or 0.0  # as _position: -0.0 is 0.0
    else:
        position = _position(position)
    if copies is not None:  # a poll's texts and values repeat: one object each
        value = share_leaf(copies, value)
        # share_leaf inline: a text, and a position that is a float or None (+-0.0 kept)
        string = copies.setdefault(string, string)
        position = position and copies.setdefault(position, position)
    metadata = _metadata(obj, raw, copies)
    return ControlValue(ref, value, string, position, metadata)  # positional: the hot path


def _metadata(obj: Mapping[str, Any], raw: Any, copies: _Copies | None) -> Mapping[str, Any]:
    """The members of ``obj`` beyond a control's own, read-only; one copy per reply of each
    distinct metadata through ``copies`` (a poll's 13,000 items mostly carry equal ones)."""
    if copies is not None and not isinstance(raw, _CONTAINER):
        # A reply's items are alike: which members are extra is worked out once per layout,
        # and their values read in one call (half the cost of a dict built per item).
        layout = tuple(obj)
        found = copies.get(layout)
        if found is None:
            names = tuple(k for k in layout if k not in _CORE_MEMBERS)
            # None: no extra members, or Choices, which the general case below checks
            getter = _getter(names) if names and "Choices" not in names else None
            found = copies[layout] = (names, getter)
        names, getter = found
        if not names:
            return EMPTY_METADATA  # GetControls items: no extra members
        if getter is not None:
            values = getter(obj)
            key = (names, values, tuple(map(type, values)))  # metadata 0 is not false
            try:
                shared = copies.get(key)
                if shared is None:
                    shared = copies[key] = MappingProxyType(dict(zip(names, values, strict=True)))
                return shared
            except TypeError:  # a value that cannot be hashed (a list)
                return MappingProxyType(dict(zip(names, values, strict=True)))
    extra = (
        {}
        if obj.keys() <= _CORE_MEMBERS
        else {k: v for k, v in obj.items() if k not in _CORE_MEMBERS}
    )
    if "Choices" in extra and not isinstance(extra["Choices"], list):
        del extra["Choices"]  # a client would iterate it
    if isinstance(raw, _CONTAINER):
        extra["Value"] = raw
    if not extra:
        return EMPTY_METADATA
    if copies is None:
        return MappingProxyType(extra)
    try:  # the types too: metadata 0 is not metadata false
        members = (*extra.items(), *map(type, extra.values()))
        copy: Mapping[str, Any] = copies.get(members) or copies.setdefault(
            members, MappingProxyType(extra)
        )
        return copy
    except TypeError:  # a list (Choices) or another value that cannot be hashed
        return MappingProxyType(extra)


def _getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """Reads ``names`` of a mapping as a tuple, in one call."""
    if len(names) == 1:
        name = names[0]
        return lambda obj: (obj[name],)
    return itemgetter(*names)


def _is_item(item: Any) -> bool:
    """A control object we can use: an object with a string Name and no odd Component."""
    return (
        (type(item) is dict or isinstance(item, Mapping))  # decoded JSON: skip the ABC check
        and isinstance(item.get("Name"), str)
        and isinstance(item.get("Component", ""), str)
    )


def _control_items(result: Any) -> list[Mapping[str, Any]] | None:
    """The control objects in a list or in an object's ``Controls``; None for another shape."""
    if isinstance(result, Mapping):
        result = result.get("Controls")
        if result is None:
            return []  # a component without controls, sloppily
    if not isinstance(result, list):
        return None
    return [i for i in result if _is_item(i)]


def controls_from_reply(
    core: str, component: str, result: Any, copies: dict[Any, Any] | None = None
) -> tuple[list[ControlInfo], list[ControlValue]]:
    """Descriptions and values in a Component.GetControls result.

    ``Controls`` null means no controls; another shape than a list raises InvalidReply.
    ``copies``, one dict passed to every reply of a discovery, makes equal ranges, texts and
    metadata of the whole design one object each; without it they are shared per reply.
    """
    items = _control_items(result)
    if items is None:
        raise InvalidReply(
            f'Component.GetControls of "{component}" returned {_kind(result)}, '
            "expected an object with a list of Controls"
        )
    infos: list[ControlInfo] = []
    values: list[ControlValue] = []
    seen: set[str] = set()
    shared: _Copies = {} if copies is None else copies
    for item in items:
        if item["Name"] in seen:
            continue  # a repeated name: the first wins
        seen.add(item["Name"])
        # A design repeats a few types, directions and control names thousands of times: one
        # string object each instead of one per control (the JSON decoder makes new ones).
        kind = intern(_str(item, "Type", "Unknown"))
        string_min = item.get("StringMin")
        string_max = item.get("StringMax")
        infos.append(
            ControlInfo(  # positional: one per control of the design
                ControlRef(core, component, intern(item["Name"])),
                kind,
                intern(_str(item, "Direction", "Read/Write")),
                share_leaf(shared, _float(item.get("ValueMin"))),
                share_leaf(shared, _float(item.get("ValueMax"))),
                share_leaf(shared, string_min) if isinstance(string_min, str) else None,
                share_leaf(shared, string_max) if isinstance(string_max, str) else None,
            )
        )
        if "Value" in item or "String" in item:
            values.append(_control_value(core, item, component, kind, None, shared))
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
    Never raises: an unexpected shape gives no values.
    """
    if isinstance(result, Mapping) and "Controls" not in result and "Name" in result:
        items: Sequence[Mapping[str, Any]] = [result] if _is_item(result) else []
    else:
        if isinstance(result, Mapping) and isinstance(result.get("Name"), str):
            component = result["Name"]
        items = _control_items(result) or []
    return _values(core, items, component, kinds)


def poll_from_wire(
    core: str, params: Any, kinds: Mapping[ControlRef, str] | None = None
) -> tuple[str | None, list[ControlValue]]:
    """The group id and the changes of a ChangeGroup.Poll result or AutoPoll push.

    ``Changes`` null or missing means none; params that are not an object, an ``Id`` that is
    not a string or number, or ``Changes`` that are not a list raise InvalidReply.
    """
    if not isinstance(params, Mapping):
        raise InvalidReply(f"ChangeGroup.Poll carried {_kind(params)}, expected an object")
    group = params.get("Id")
    if isinstance(group, bool) or not isinstance(group, _GROUP_ID):
        raise InvalidReply(f"ChangeGroup.Poll carried an Id that is {_kind(group)}")
    changes = params.get("Changes")
    if changes is None:
        changes = []
    if not isinstance(changes, list):
        raise InvalidReply(
            f"ChangeGroup.Poll of group {group!r} carried Changes that are {_kind(changes)}, "
            "expected a list"
        )
    items = [i for i in changes if _is_item(i)]
    return (None if group is None else str(group)), _values(core, items, None, kinds)


def _values(
    core: str,
    items: Iterable[Mapping[str, Any]],
    component: str | None,
    kinds: Mapping[ControlRef, str] | None,
) -> list[ControlValue]:
    copies: _Copies = {}
    return [_control_value(core, item, component, None, kinds, copies) for item in items]
