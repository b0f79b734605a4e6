"""Discovery: every component and control of a Core's design, with their current values."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import structlog
import trio

from qsysd.core._wire import components_from_reply, controls_from_reply, values_from_reply
from qsysd.errors import QrcError, UnknownComponent
from qsysd.state import ComponentInfo, ControlInfo, ControlRef, ControlValue

__all__ = ["Discovery", "Requester", "discover"]

log = structlog.get_logger(__name__)

#: ``await request(method, params)`` -> the result; a QrcConnection's or a CoreLink's.
Requester = Callable[[str, Any], Awaitable[Any]]


@attrs.frozen
class Discovery:
    """What a Core's design holds; ``vanished`` names components gone while discovering."""

    design_code: str
    components: tuple[ComponentInfo, ...]
    controls: tuple[ControlInfo, ...]
    values: tuple[ControlValue, ...]
    vanished: tuple[str, ...] = ()


async def discover(
    request: Requester,
    core: str,
    *,
    design_code: str,
    concurrency: int = 8,
    named_controls: Sequence[str] = (),
) -> Discovery:
    """GetComponents, then GetControls for every component, ``concurrency`` at a time.

    QRC has no method that lists named controls: ``named_controls`` (from configuration) are
    read with Control.Get and described from their values.
    """
    components = components_from_reply(core, await request("Component.GetComponents", {}))
    per_component: list[tuple[list[ControlInfo], list[ControlValue]] | None] = [None] * len(
        components
    )
    vanished: list[str] = []
    send, receive = trio.open_memory_channel[int](math.inf)
    for index in range(len(components)):
        send.send_nowait(index)
    send.close()

    async def worker() -> None:
        async for index in receive:
            name = components[index].name
            try:
                result = await request("Component.GetControls", {"Name": name})
            except UnknownComponent:
                vanished.append(name)  # removed between GetComponents and now
                continue
            per_component[index] = controls_from_reply(core, name, result)

    async with trio.open_nursery() as nursery:
        for _ in range(max(1, min(concurrency, len(components)))):
            nursery.start_soon(worker)

    controls: list[ControlInfo] = []
    values: list[ControlValue] = []
    kept: list[ComponentInfo] = []
    for component, found in zip(components, per_component, strict=True):
        if found is None:
            continue
        kept.append(component)
        controls.extend(found[0])
        values.extend(found[1])
    if named_controls:
        named_infos, named_values = await _discover_named(request, core, named_controls)
        controls.extend(named_infos)
        values.extend(named_values)
    if vanished:
        log.warning("core.discovery_vanished", core=core, components=len(vanished))
    return Discovery(
        design_code=design_code,
        components=tuple(kept),
        controls=tuple(controls),
        values=tuple(values),
        vanished=tuple(vanished),
    )


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Float"
    return "Text"


async def _discover_named(
    request: Requester, core: str, names: Sequence[str]
) -> tuple[list[ControlInfo], list[ControlValue]]:
    try:
        result = await request("Control.Get", list(names))
    except QrcError as exc:
        log.warning("core.named_controls_failed", core=core, error=str(exc))
        return [], []
    values = values_from_reply(core, result)
    infos = [
        ControlInfo(
            ref=ControlRef(core, None, v.ref.name), type=_kind_of(v.value), direction="Read/Write"
        )
        for v in values
    ]
    return infos, [attrs.evolve(v, ref=ControlRef(core, None, v.ref.name)) for v in values]
