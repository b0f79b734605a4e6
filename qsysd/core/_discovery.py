"""Discovery: every component and control of a Core's design, with their current values."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import structlog
import trio

from qsysd.core._wire import (
    components_from_reply,
    controls_from_reply,
    normalize_value,
    values_from_reply,
)
from qsysd.errors import CoreError, InvalidReply, QrcError, UnknownComponent
from qsysd.state import ComponentInfo, ControlInfo, ControlRef, ControlValue

__all__ = [
    "AnswerHandler",
    "BatchRequester",
    "Discovery",
    "ReaderBatchRequester",
    "Requester",
    "discover",
    "each",
]

log = structlog.get_logger(__name__)

#: ``await request(method, params)`` -> the result; a QrcConnection's or a CoreLink's.
Requester = Callable[[str, Any], Awaitable[Any]]
#: ``on_answer(index, answer)``: the result of ``params[index]``, or the QrcError of the
#: Core's error answer.
AnswerHandler = Callable[[int, Any], None]
#: ``await requests(method, [params, ...], on_answer)``: one request per params, each answer
#: handed to ``on_answer`` as it comes (any order); raises a CoreError that is no answer (a
#: timeout, a dead connection). A CoreLink's bulk path, or :func:`each` over a Requester.
BatchRequester = Callable[[str, Sequence[Any], AnswerHandler], Awaitable[None]]
#: A BatchRequester whose ``on_answer`` runs in the connection's reader, in order with the
#: notifications around each reply (``QrcConnection.request_batch(in_reader=True)``).
ReaderBatchRequester = BatchRequester


def each(request: Requester, concurrency: int) -> BatchRequester:
    """A BatchRequester over ``request``: one call per params, ``concurrency`` at a time."""

    async def requests(method: str, params: Sequence[Any], on_answer: AnswerHandler) -> None:
        send, receive = trio.open_memory_channel[int](math.inf)
        for index in range(len(params)):
            send.send_nowait(index)
        send.close()
        fatal: list[CoreError] = []

        async def worker(scope: trio.CancelScope) -> None:
            async for index in receive:
                try:
                    answer = await request(method, params[index])
                except QrcError as exc:
                    answer = exc
                except CoreError as exc:  # raised alone below, not in an ExceptionGroup
                    fatal.append(exc)
                    scope.cancel()
                    return
                on_answer(index, answer)

        async with trio.open_nursery() as nursery:
            for _ in range(max(1, min(concurrency, len(params)))):
                nursery.start_soon(worker, nursery.cancel_scope)
        if fatal:
            raise fatal[0]

    return requests


@attrs.frozen
class Discovery:
    """What a Core's design holds.

    ``vanished`` names components gone while discovering (error 7), ``failed`` those whose
    GetControls got another error answer or an unreadable reply; neither is in ``components``.
    """

    design_code: str
    components: tuple[ComponentInfo, ...]
    controls: tuple[ControlInfo, ...]
    values: tuple[ControlValue, ...]
    vanished: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


async def discover(
    request: Requester,
    core: str,
    *,
    design_code: str,
    concurrency: int = 8,
    named_controls: Sequence[str] = (),
    batch: BatchRequester | None = None,
) -> Discovery:
    """GetComponents, then GetControls for every component, ``concurrency`` at a time.

    ``batch`` is the link's bulk path for the GetControls (pipelined, ``concurrency`` in
    flight); without it they go through ``request``, one at a time per worker.

    One component does not fail the whole: an error answer (7 when it was just removed, or any
    other) or an unreadable reply leaves it out, logged. A timeout or a transport error fails
    the discovery (the connection is suspect; the link reconnects and discovers again), and so
    does an unreadable GetComponents result (InvalidReply): the store keeps what it had.

    QRC has no method that lists named controls: ``named_controls`` (from configuration) are
    read with Control.Get and described from their values.
    """
    components = components_from_reply(core, await request("Component.GetComponents", {}))
    per_component: list[tuple[list[ControlInfo], list[ControlValue]] | None] = [None] * len(
        components
    )
    vanished: list[str] = []
    failed: list[str] = []
    requests = batch or each(request, concurrency)

    copies: dict[Any, Any] = {}  # the design's repeated ranges, texts and metadata, once each

    def on_answer(index: int, answer: Any) -> None:
        # each reply is turned into values as it comes: the raw replies are never all held
        name = components[index].name
        try:
            if isinstance(answer, QrcError):
                raise answer
            per_component[index] = controls_from_reply(core, name, answer, copies)
        except UnknownComponent:
            vanished.append(name)  # removed between GetComponents and now
        except (QrcError, InvalidReply) as exc:
            failed.append(name)
            log.error(
                "core.discovery_component_failed",
                core=core,
                component=name,
                error=str(exc)[:300],
                hint="the component is left out until the next discovery",
            )

    # A timeout or a dead connection raises here: the discovery fails (CoreError alone).
    await requests("Component.GetControls", [{"Name": c.name} for c in components], on_answer)

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
    if failed:
        log.warning("core.discovery_incomplete", core=core, failed=len(failed), kept=len(kept))
    return Discovery(
        design_code=design_code,
        components=tuple(kept),
        controls=tuple(controls),
        values=tuple(values),
        vanished=tuple(vanished),
        failed=tuple(failed),
    )


# Control.Get sends booleans as 0/1; the Core's string tells a Boolean from a number.
_BOOLEAN_STRINGS = frozenset(
    {"true", "false", "muted", "unmuted", "yes", "no", "on", "off", "normal", "inverted"}
)


def _kind_of(value: Any, string: str) -> str:
    """A named control's type, guessed from its value: QRC has no GetControls for them."""
    if isinstance(value, bool) or (value in (0, 1) and string.lower() in _BOOLEAN_STRINGS):
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
    infos: list[ControlInfo] = []
    values: list[ControlValue] = []
    for reported in values_from_reply(core, result):
        ref = ControlRef(core, None, reported.ref.name)
        kind = _kind_of(reported.value, reported.string)
        infos.append(ControlInfo(ref=ref, type=kind, direction="Read/Write"))
        value = normalize_value(reported.value, kind)
        values.append(attrs.evolve(reported, ref=ref, value=value))
    return infos, values
