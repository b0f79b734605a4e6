"""The values of the state layer: what a Core has, what it reported, and what a read returns."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

import attrs
import msgspec

__all__ = [
    "EMPTY_METADATA",
    "ComponentInfo",
    "ControlInfo",
    "ControlReading",
    "ControlRef",
    "ControlValue",
    "CoreStatus",
    "Scalar",
    "share_leaf",
]

#: A control's value as the Core sends it.
Scalar: TypeAlias = float | int | bool | str | None

#: Shared by every value without metadata, so 100,000 controls do not hold 100,000 empty dicts.
EMPTY_METADATA: Mapping[str, Any] = MappingProxyType({})

_Leaf = TypeVar("_Leaf")


def share_leaf(copies: dict[Any, Any], value: _Leaf) -> _Leaf:
    """``value``, or the equal text or float met before in ``copies``; anything else as is.

    The JSON decoder makes a new object for every text and float it reads: a design's 40,000
    controls would hold 40,000 copies of "0dB" and of -100.0. A zero float is never shared
    (0.0 == -0.0) and only texts and floats go in, so 1, 1.0 and True never meet. ``copies``
    may hold other keys of its owner's (tuples) beside them.
    """
    if type(value) is str or (type(value) is float and value):
        shared: _Leaf = copies.setdefault(value, value)
        return shared
    return value


class ControlRef(msgspec.Struct, frozen=True, gc=False):
    """Identifies one control in one Core; ``component`` is None for a named control.

    A msgspec struct, not an attrs class, like :class:`ControlInfo`: a large design holds one
    per control, and a struct is built in a tenth of the time and has no GC header.
    """

    core: str
    component: str | None
    name: str

    def __str__(self) -> str:
        if self.component is None:
            return self.name
        return f"{self.component}.{self.name}"


@attrs.frozen
class ComponentInfo:
    """A component of a Core's design; ``properties`` are (name, value) as the Core sends them."""

    core: str
    name: str
    type: str
    id: str
    properties: tuple[tuple[str, str], ...] = ()


class ControlInfo(msgspec.Struct, frozen=True, gc=False):
    """The static description of a control (from Component.GetControls or a named control)."""

    ref: ControlRef
    type: str
    direction: str
    value_min: float | None = None
    value_max: float | None = None
    string_min: str | None = None
    string_max: str | None = None


@attrs.frozen
class ControlValue:
    """One value as the Core reported it (GetControls, Get, Poll, Set reply).

    ``metadata`` holds Choices, Color, Legend, Disabled, ...; treat it as read-only. It is left
    out of the hash so values stay hashable.
    """

    ref: ControlRef
    value: Scalar
    string: str
    position: float | None = None
    metadata: Mapping[str, Any] = attrs.field(default=EMPTY_METADATA, hash=False)


@attrs.frozen
class ControlReading:
    """What a read from the store returns: the description, the value and how fresh it is.

    ``changed_at`` is wall-clock UNIX time of the last change; ``age`` is seconds since the Core
    last confirmed the value; ``version`` counts changes of this control; ``stale`` is True while
    the Core is away or the value was restored from a snapshot and not yet confirmed.
    """

    info: ControlInfo
    value: ControlValue | None
    changed_at: float
    age: float
    version: int
    stale: bool

    @property
    def ref(self) -> ControlRef:
        return self.info.ref


@attrs.frozen
class CoreStatus:
    """What the daemon knows about one Core's connection and engine status.

    ``since`` is the UNIX time of the last connect or disconnect; ``breaker`` is "closed",
    "open" or "half-open".
    """

    core: str
    connected: bool = False
    state: str = "Unknown"
    platform: str = ""
    design_name: str = ""
    design_code: str = ""
    is_redundant: bool = False
    is_emulator: bool = False
    status_code: int = -1
    status_string: str = ""
    active_host: str | None = None
    since: float = 0.0
    last_error: str | None = None
    breaker: str = "closed"
