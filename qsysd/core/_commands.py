"""Typed Core commands: the QRC requests the facade sends, built and read back in one place.

:class:`CoreCommands` turns typed calls (``set_component``, ``get_named``, ``load_snapshot``,
``mixer_set``...) into QRC requests through ``request`` and their replies into state model
values, so nothing above the Core layer builds wire dicts. :class:`~qsysd.core.CoreLink`
inherits it; a test double that only implements ``request`` gets the same commands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from qsysd.core._wire import values_from_reply
from qsysd.qrc import ChannelStringError, parse_channels
from qsysd.state import ControlRef, ControlValue

__all__ = [
    "ChannelStringError",
    "ControlWrite",
    "CoreCommands",
    "MixerTarget",
    "mixer_method",
    "parse_channels",
]

MixerTarget = Literal["crosspoint", "input", "output"]
_MIXER_KIND = {"crosspoint": "CrossPoint", "input": "Input", "output": "Output"}


@attrs.frozen
class ControlWrite:
    """One control to set: by ``position`` (0..1), else ``string``, else ``value``."""

    name: str
    value: float | int | bool | str | None = None
    string: str | None = None
    position: float | None = None
    ramp: float | None = None

    def wire(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"Name": self.name}
        if self.position is not None:
            entry["Position"] = self.position
        elif self.string is not None:
            entry["String"] = self.string
        else:
            entry["Value"] = self.value
        if self.ramp:
            entry["Ramp"] = self.ramp
        return entry


def mixer_method(target: MixerTarget, what: Literal["gain", "mute"]) -> str:
    """The Mixer method name that sets ``what`` of ``target`` (``Mixer.SetInputGain``)."""
    return f"Mixer.Set{_MIXER_KIND[target]}{what.capitalize()}"


def _reply_text(reply: Any) -> str | None:
    """None for a plain ``true`` acknowledgement, else what the Core answered."""
    return None if reply is True else repr(reply)


class CoreCommands:
    """The typed commands of one Core, on top of ``request(method, params)``."""

    name: str

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- the link's per-request deadline
    ) -> Any:
        raise NotImplementedError

    async def get_component(
        self, component: str, names: Sequence[str], *, kinds: Mapping[ControlRef, str]
    ) -> list[ControlValue]:
        """Component.Get: the current values of some controls of one component."""
        params = {"Name": component, "Controls": [{"Name": n} for n in names]}
        reply = await self.request("Component.Get", params)
        return values_from_reply(self.name, reply, component=component, kinds=kinds)

    async def get_named(
        self, names: Sequence[str], *, kinds: Mapping[ControlRef, str]
    ) -> list[ControlValue]:
        """Control.Get: the current values of named controls."""
        reply = await self.request("Control.Get", list(names))
        return values_from_reply(self.name, reply, kinds=kinds)

    async def set_component(
        self, component: str, writes: Sequence[ControlWrite], *, kinds: Mapping[ControlRef, str]
    ) -> list[ControlValue]:
        """Component.Set with ResponseValues: the values the Core echoed (maybe none)."""
        params = {
            "Name": component,
            "Controls": [w.wire() for w in writes],
            "ResponseValues": True,
        }
        reply = await self.request("Component.Set", params)
        return values_from_reply(self.name, reply, component=component, kinds=kinds)

    async def set_named(
        self, write: ControlWrite, *, kinds: Mapping[ControlRef, str]
    ) -> list[ControlValue]:
        """Control.Set of one named control: the value the Core echoed (maybe none)."""
        reply = await self.request("Control.Set", write.wire())
        return values_from_reply(self.name, reply, kinds=kinds)

    async def load_snapshot(self, bank: str, number: int, *, ramp: float = 0.0) -> str | None:
        """Snapshot.Load; None when the Core answered a plain ``true``."""
        reply = await self.request("Snapshot.Load", {"Name": bank, "Bank": number, "Ramp": ramp})
        return _reply_text(reply)

    async def save_snapshot(self, bank: str, number: int) -> str | None:
        """Snapshot.Save; None when the Core answered a plain ``true``."""
        return _reply_text(await self.request("Snapshot.Save", {"Name": bank, "Bank": number}))

    async def mixer_set(
        self,
        mixer: str,
        target: MixerTarget,
        what: Literal["gain", "mute"],
        value: float | bool,
        *,
        inputs: str | None = None,
        outputs: str | None = None,
        ramp: float | None = None,
    ) -> str:
        """One Mixer.Set*Gain or Mixer.Set*Mute call over channel strings; its method name."""
        params: dict[str, Any] = {"Name": mixer}
        if target in ("crosspoint", "input"):
            params["Inputs"] = inputs
        if target in ("crosspoint", "output"):
            params["Outputs"] = outputs
        params["Value"] = value
        if what == "gain" and ramp:
            params["Ramp"] = ramp
        method = mixer_method(target, what)
        await self.request(method, params)
        return method
