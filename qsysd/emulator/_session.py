"""One client connection's protocol state: requests in, responses and notifications out.

Sans-IO: :meth:`Session.handle` takes a decoded message and the current time and returns
the messages to send; :meth:`Session.take_notifications` returns EngineStatus and AutoPoll
pushes that are due. The I/O layer (``_server``) only moves bytes and keeps time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from qsysd.emulator import _changegroups, _mixer
from qsysd.emulator._changegroups import ChangeGroup
from qsysd.emulator._model import Control, iter_names
from qsysd.errors import (
    CoreOnStandby,
    FrameTooLarge,
    InvalidParams,
    InvalidRequest,
    LogonRequired,
    MethodNotFound,
    ParseError,
    ProtocolError,
    QrcError,
    ServerError,
)
from qsysd.qrc import ErrorResponse, Message, Notification, Request, Response

if TYPE_CHECKING:
    from qsysd.emulator._engine import Engine

__all__ = ["Session"]

_log = structlog.get_logger(__name__)

Method = Callable[["Session", Any, float], object]
#: Methods a client may call before Logon, and that a Standby Core still answers.
_EXEMPT = frozenset({"NoOp", "Logon", "StatusGet"})
#: Methods whose params are not an object (or are ignored).
_FREE_PARAMS = frozenset({"NoOp", "Logon", "StatusGet", "Component.GetComponents", "Control.Get"})


class Session:
    """Logon state, change groups and pending pushes of one connection."""

    def __init__(self, engine: Engine, *, transport: str = "tcp") -> None:
        self.engine = engine
        self.transport = transport
        self.groups: dict[str, ChangeGroup] = {}
        self._logged_on = False
        self._pending: list[Message] = []
        #: Called when a push becomes pending; the I/O layer wakes its writer.
        self.wakeup: Callable[[], None] = lambda: None
        self.push_engine_status()

    @property
    def logged_on(self) -> bool:
        return self._logged_on or self.engine.password is None

    def push_engine_status(self) -> None:
        self._pending.append(Notification("EngineStatus", self.engine.status()))
        self.wakeup()

    # -- requests ---------------------------------------------------------------------------
    def handle(self, message: Message, now: float) -> list[Message]:
        """Answer one message from the client (a notification gets no answer)."""
        if not isinstance(message, Request | Notification):
            return []  # a client's Response or ErrorResponse: nothing to do with it
        msg_id = message.id if isinstance(message, Request) else None
        try:
            result = self._call(message.method, message.params, now)
        except QrcError as exc:
            reply: Message = ErrorResponse.from_exception(msg_id, exc)
        except Exception:
            _log.exception("emulator.request_failed", method=message.method)
            reply = ErrorResponse.from_exception(msg_id, ServerError("Server error"))
        else:
            reply = Response(msg_id, result)
        return [reply] if isinstance(message, Request) else []

    def handle_invalid(self, exc: ProtocolError) -> list[Message]:
        """Answer a frame that did not decode: -32700 for bad JSON, -32600 for a bad object."""
        cause = exc.__cause__
        if isinstance(exc, FrameTooLarge) or isinstance(cause, ValueError | RecursionError):
            return [ErrorResponse.from_exception(None, ParseError("Parse error"))]
        return [ErrorResponse.from_exception(None, InvalidRequest("Invalid request"))]

    def _call(self, method: str, params: Any, now: float) -> object:
        handler = _METHODS.get(method)
        if handler is None:
            raise MethodNotFound("Method not found")
        if method not in _EXEMPT:
            if self.engine.state != "Active":
                raise CoreOnStandby("Core is on Standby")
            if not self.logged_on:
                raise LogonRequired("Logon required")
        if method not in _FREE_PARAMS and not isinstance(params, dict):
            raise InvalidParams("Invalid params: expected an object")
        self.engine.core.advance(now)
        return handler(self, params, now)

    # -- pushes -----------------------------------------------------------------------------
    def next_deadline(self) -> float:
        """When the next AutoPoll push is due (``inf`` when none is set)."""
        return min((g.next_push for g in self.groups.values()), default=math.inf)

    def take_notifications(self, now: float) -> list[Message]:
        """EngineStatus pushes pending, then every AutoPoll push due at ``now``."""
        out, self._pending = self._pending, []
        active = self.engine.state == "Active"
        advanced = False
        for group in self.groups.values():
            if group.rate is None or group.next_push > now:
                continue
            # Keep the cadence; after a stall, start again from now rather than burst.
            group.next_push += group.rate
            if group.next_push <= now:
                group.next_push = now + group.rate
            if not active:
                continue  # a Standby Core pushes nothing
            if not advanced:
                self.engine.core.advance(now)
                advanced = True
            params = {"Id": group.id, "Changes": group.poll()}
            out.append(Notification("ChangeGroup.Poll", params))
        return out

    def close(self) -> None:
        """The connection is gone: its change groups go with it."""
        for group in self.groups.values():
            group.clear()
        self.groups.clear()
        self.engine.sessions.discard(self)


# -- methods ----------------------------------------------------------------------------------
def _noop(session: Session, params: Any, now: float) -> object:
    return True


def _logon(session: Session, params: Any, now: float) -> object:
    params = params if isinstance(params, dict) else {}
    if not session.engine.check_logon(params.get("User"), params.get("Password")):
        session._logged_on = False
        raise LogonRequired("Logon required")
    session._logged_on = True
    return True


def _status_get(session: Session, params: Any, now: float) -> object:
    return session.engine.status()


def _control_get(session: Session, params: Any, now: float) -> object:
    if isinstance(params, str):
        params = [params]
    core = session.engine.core
    return [core.named_control(name).state() for name in iter_names(params, "params")]


def _check_writable(control: Control) -> None:
    if not control.writable:
        raise InvalidParams(f"Invalid params: control '{control.label()}' is Read Only")


def _control_set(session: Session, params: Any, now: float) -> object:
    core = session.engine.core
    control = core.named_control(params.get("Name"))
    _check_writable(control)
    value, ramp = core.parse_write(control, params)
    core.write(control, value, now=now, ramp=ramp)
    return control.state()


def _get_components(session: Session, params: Any, now: float) -> object:
    return [c.summary() for c in session.engine.core.components.values()]


def _get_controls(session: Session, params: Any, now: float) -> object:
    component = session.engine.core.component(params.get("Name"))
    controls = [c.description() for c in component.controls.values()]
    return {"Name": component.name, "Controls": controls}


def _component_get(session: Session, params: Any, now: float) -> object:
    core = session.engine.core
    component = core.component(params.get("Name"))
    names = iter_names(params.get("Controls"), "Controls")
    items = []
    for name in names:
        item = dict(core.control(component, name).item())
        del item["Component"]
        items.append(item)
    return {"Name": component.name, "Controls": items}


def _component_set(session: Session, params: Any, now: float) -> object:
    core = session.engine.core
    component = core.component(params.get("Name"))
    entries = params.get("Controls")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidParams("Invalid params: 'Controls' must be a list of objects")
    writes = []
    for entry in entries:  # check every entry before writing any (all or nothing)
        control = core.control(component, entry.get("Name"))
        _check_writable(control)
        writes.append((control, *core.parse_write(control, entry)))
    for control, value, ramp in writes:
        core.write(control, value, now=now, ramp=ramp)
    if not params.get("ResponseValues"):
        return True
    return [
        {
            "Component": component.name,
            "Name": c.name,
            "String": c.string,
            "Value": c.wire_value(),
            "Position": c.state()["Position"],
        }
        for c, _, _ in writes
    ]


_METHODS: dict[str, Method] = {
    "NoOp": _noop,
    "Logon": _logon,
    "StatusGet": _status_get,
    "Control.Get": _control_get,
    "Control.Set": _control_set,
    "Component.GetComponents": _get_components,
    "Component.GetControls": _get_controls,
    "Component.Get": _component_get,
    "Component.Set": _component_set,
    **_changegroups.METHODS,
    **_mixer.METHODS,
}
