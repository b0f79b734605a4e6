"""Change groups: per-connection sets of controls polled for changes, and AutoPoll."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs

from qsysd.emulator._model import Control, iter_names
from qsysd.errors import ChangeGroupsExhausted, InvalidParams, UnknownChangeGroup

if TYPE_CHECKING:
    from qsysd.emulator._session import Session

__all__ = ["METHODS", "ChangeGroup"]

#: AutoPoll rates below this are raised to it, so a typo cannot spin the emulator.
MIN_AUTOPOLL_RATE = 0.001


@attrs.define(eq=False, slots=True)
class ChangeGroup:
    """Controls watched for one client; the first poll returns all, later ones the changes."""

    id: Any  # as the client sent it: echoed in Poll replies
    members: dict[Control, None] = attrs.field(factory=dict)
    changed: dict[Control, None] = attrs.field(factory=dict)
    complete: bool = True  # the next poll returns every member
    rate: float | None = None  # AutoPoll period, seconds
    next_push: float = math.inf

    def control_changed(self, control: Control) -> None:
        self.changed[control] = None

    def add(self, controls: list[Control]) -> None:
        for control in controls:
            if control not in self.members:
                self.members[control] = None
                control.watchers.add(self)
                self.changed[control] = None  # a new control counts as changed

    def remove(self, controls: list[Control]) -> None:
        for control in controls:
            if control in self.members:
                del self.members[control]
                control.watchers.discard(self)
                self.changed.pop(control, None)

    def clear(self) -> None:
        self.remove(list(self.members))

    def poll(self) -> list[dict[str, Any]]:
        """Items for the controls changed since the last poll (every member after Invalidate)."""
        controls = self.members if self.complete else self.changed
        items = [c.item() for c in controls]
        self.complete = False
        self.changed.clear()
        return items


def _group_key(params: object) -> tuple[str, Any]:
    if not isinstance(params, dict) or "Id" not in params:
        raise InvalidParams("Invalid params: 'Id' is required")
    raw = params["Id"]
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidParams("Invalid params: 'Id' must be a string or a number")
    return str(raw), raw


def _existing(session: Session, params: object) -> ChangeGroup:
    key, _ = _group_key(params)
    group = session.groups.get(key)
    if group is None:
        raise UnknownChangeGroup(f"Change group '{key}' does not exist")
    return group


def _create(session: Session, params: object) -> ChangeGroup:
    key, raw = _group_key(params)
    group = session.groups.get(key)
    if group is None:
        engine = session.engine
        if (
            len(session.groups) >= engine.max_groups_per_connection
            or engine.change_group_count() >= engine.max_groups_per_core
        ):
            raise ChangeGroupsExhausted("Change Groups exhausted")
        group = session.groups[key] = ChangeGroup(raw)
    return group


def _add_control(session: Session, params: Any, now: float) -> object:
    core = session.engine.core
    controls = [core.named_control(n) for n in iter_names(params.get("Controls"), "Controls")]
    _create(session, params).add(controls)
    return True


def _add_component_control(session: Session, params: Any, now: float) -> object:
    core = session.engine.core
    spec = params.get("Component")
    if not isinstance(spec, dict):
        raise InvalidParams("Invalid params: 'Component' must be an object {Name, Controls}")
    component = core.component(spec.get("Name"))
    names = iter_names(spec.get("Controls"), "Component.Controls")
    controls = [core.control(component, n) for n in names]
    _create(session, params).add(controls)
    return True


def _remove(session: Session, params: Any, now: float) -> object:
    group = _existing(session, params)
    core = session.engine.core
    group.remove([core.named_control(n) for n in iter_names(params.get("Controls"), "Controls")])
    return True


def _poll(session: Session, params: Any, now: float) -> object:
    group = _existing(session, params)
    return {"Id": group.id, "Changes": group.poll()}


def _invalidate(session: Session, params: Any, now: float) -> object:
    _existing(session, params).complete = True
    return True


def _clear(session: Session, params: Any, now: float) -> object:
    _existing(session, params).clear()
    return True


def _destroy(session: Session, params: Any, now: float) -> object:
    group = _existing(session, params)
    group.clear()
    del session.groups[_group_key(params)[0]]
    return True


def _auto_poll(session: Session, params: Any, now: float) -> object:
    group = _existing(session, params)
    rate = params.get("Rate")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise InvalidParams("Invalid params: 'Rate' must be a number of seconds > 0")
    group.rate = max(MIN_AUTOPOLL_RATE, float(rate))
    group.next_push = now + group.rate
    group.complete = True  # the first push carries every control
    return True


METHODS = {
    "ChangeGroup.AddControl": _add_control,
    "ChangeGroup.AddComponentControl": _add_component_control,
    "ChangeGroup.Remove": _remove,
    "ChangeGroup.Poll": _poll,
    "ChangeGroup.Invalidate": _invalidate,
    "ChangeGroup.Clear": _clear,
    "ChangeGroup.Destroy": _destroy,
    "ChangeGroup.AutoPoll": _auto_poll,
}
