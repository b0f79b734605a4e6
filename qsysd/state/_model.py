"""The values of the state layer: what a Core has, what it reported, and what a read returns."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeAlias

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
]

#: A control's value as the Core sends it.
Scalar: TypeAlias = float | int | bool | str | None

#: Shared by every value without metadata, so 100,000 controls do not hold 100,000 empty dicts.
EMPTY_METADATA: Mapping[str, Any] = MappingProxyType({})


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
