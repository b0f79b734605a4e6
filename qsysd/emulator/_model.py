"""The emulated Core's live state: components, controls and their values, ramps, snapshots.

Sans-IO: time comes in as ``now`` (trio time from the I/O layer, so ``MockClock`` drives
ramps in tests). One :class:`Core` may serve two engines (a redundant pair shares its state).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import attrs

from qsysd.emulator._design import ComponentSpec, ControlSpec, Design
from qsysd.emulator._templates import expand_component, snapshot_controls
from qsysd.emulator._values import (
    Value,
    clamp,
    coerce_value,
    format_string,
    position_of,
    resolve_format,
    value_from_position,
    value_from_string,
    wire_number,
)
from qsysd.errors import InvalidParams, UnknownComponent, UnknownControl

__all__ = ["DISPLAY_METADATA", "Component", "Control", "Core", "SnapshotBank"]

#: What newer Cores add to Component.Get and Poll items (not to GetControls), at rest.
DISPLAY_METADATA: dict[str, Any] = {
    "Color": "",
    "Indeterminate": False,
    "Invisible": False,
    "Disabled": False,
    "Legend": "",
    "CssClass": "",
}


class ControlWatcher(Protocol):
    def control_changed(self, control: Control) -> None: ...


@attrs.frozen(slots=True)
class Ramp:
    start: float
    target: float
    t0: float
    t1: float

    def value_at(self, now: float) -> float:
        if now >= self.t1:
            return self.target
        return self.start + (self.target - self.start) * (now - self.t0) / (self.t1 - self.t0)


@attrs.define(eq=False, slots=True)
class Control:
    """One control and its current value; wire shapes are cached until the value changes."""

    component: str | None
    spec: ControlSpec
    fmt: str
    value: Value
    string: str = ""
    position: float = 0.0
    ramp: Ramp | None = None
    watchers: set[ControlWatcher] = attrs.field(factory=set)
    _item: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def writable(self) -> bool:
        return self.spec.direction != "Read Only"

    def label(self) -> str:
        return self.name if self.component is None else f"{self.component}.{self.name}"

    def wire_value(self) -> float | int | str:
        """Value as Get and Poll send it: booleans as 0/1, numbers at float32 precision."""
        if isinstance(self.value, str):
            return self.value
        if self.spec.type in ("Integer", "Status"):
            return int(self.value)
        return wire_number(self.value)

    def state(self) -> dict[str, Any]:
        """``{Name, Value, String, Position}``: Control.Get/Set replies (booleans as 0/1)."""
        value = self.wire_value()
        return {
            "Name": self.name,
            "Value": int(value) if self.spec.type == "Boolean" else value,
            "String": self.string,
            "Position": wire_number(self.position),
        }

    def item(self) -> dict[str, Any]:
        """Component.Get / Poll item, with ``Component`` for component controls and metadata."""
        if self._item is None:
            item = {**self.state(), "Value": self.wire_value()}  # Poll sends 1.0, not 1
            if self.component is not None:
                item = {"Component": self.component, **item}
            if self.spec.choices is not None:
                item["Choices"] = list(self.spec.choices)
            item.update(DISPLAY_METADATA)
            self._item = item
        return self._item

    def description(self) -> dict[str, Any]:
        """Component.GetControls entry: booleans as JSON booleans, ranges, direction."""
        spec = self.spec
        value: Any = self.wire_value()
        if spec.type == "Boolean":
            value = bool(self.value)
        out: dict[str, Any] = {"Name": self.name, "Type": spec.type, "Value": value}
        if spec.min is not None and spec.max is not None and spec.type != "Boolean":
            integer = spec.type in ("Integer", "Status")
            out["ValueMin"] = int(spec.min) if integer else wire_number(spec.min)
            out["ValueMax"] = int(spec.max) if integer else wire_number(spec.max)
            out["StringMin"] = format_string(self.fmt, spec.min, spec)
            out["StringMax"] = format_string(self.fmt, spec.max, spec)
        out.update(String=self.string, Position=wire_number(self.position))
        out["Direction"] = spec.direction
        return out

    def assign(self, value: Value) -> bool:
        """Store ``value``; tell watchers when what clients see changed."""
        string = format_string(self.fmt, value, self.spec)
        if value == self.value and string == self.string and self._item is not None:
            return False
        self.value = value
        self.string = string
        self.position = position_of(value, self.spec)
        self._item = None
        for watcher in self.watchers:
            watcher.control_changed(self)
        return True

    def initial_value(self) -> Value:
        spec, raw = self.spec, self.spec.value
        if spec.type == "Text":
            return raw if isinstance(raw, str) else (spec.choices[0] if spec.choices else "")
        if spec.type == "Boolean":
            return 1.0 if raw else 0.0
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return clamp(float(raw), spec)
        return clamp(spec.min if spec.min is not None and spec.min > 0 else 0.0, spec)


@attrs.define(eq=False, slots=True)
class Component:
    name: str
    type: str
    properties: dict[str, str]
    controls: dict[str, Control]

    def summary(self) -> dict[str, Any]:
        """Component.GetComponents entry (property values are strings, as Cores send them)."""
        return {
            "ID": self.name,
            "Name": self.name,
            "Type": self.type,
            "Properties": [
                {"Name": k, "Value": v, "PrettyName": k.replace("_", " ").title()}
                for k, v in self.properties.items()
            ],
            "Controls": None,
            "ControlSource": 2,
        }


@attrs.define(eq=False, slots=True)
class SnapshotBank:
    name: str
    members: list[Control]
    stored: list[dict[Control, Value]]  # index n-1 for snapshot n


def _make_control(component: str | None, spec: ControlSpec) -> Control:
    control = Control(component=component, spec=spec, fmt=resolve_format(spec), value=0.0)
    control.assign(control.initial_value())
    return control


def _property_text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


class Core:
    """Components, named controls, ramps and snapshot banks of one design."""

    def __init__(self, design: Design) -> None:
        self.design = design
        self.components: dict[str, Component] = {}
        self.named: dict[str, Control] = {}
        self.banks: dict[str, SnapshotBank] = {}
        self._ramping: set[Control] = set()
        for spec in design.components:
            self._add_component(expand_component(spec))
        for cspec in design.named_controls:
            self.named[cspec.name] = _make_control(None, cspec)
        for bank in design.snapshot_banks:
            self._add_component(
                ComponentSpec(
                    name=bank.name,
                    type="snapshot_controller",
                    properties={"num_snapshots": str(bank.count)},
                    controls=tuple(snapshot_controls(bank.count)),
                )
            )
            members: list[Control] = []
            for m in bank.members:
                comp = self.components[m.component]
                names = m.controls or [n for n, c in comp.controls.items() if c.writable]
                members += [comp.controls[n] for n in names if comp.controls[n].writable]
            stored = []
            for n in range(1, bank.count + 1):
                values = {c: c.value for c in members}
                for comp_name, controls in bank.snapshots.get(str(n), {}).items():
                    for name, raw in controls.items():
                        c = self.components[comp_name].controls[name]
                        values[c] = coerce_value(raw, c.spec, c.label())
                stored.append(values)
            self.banks[bank.name] = SnapshotBank(bank.name, members, stored)

    def _add_component(self, spec: ComponentSpec) -> None:
        controls = {c.name: _make_control(spec.name, c) for c in spec.controls}
        props = {k: _property_text(v) for k, v in spec.properties.items()}
        self.components[spec.name] = Component(spec.name, spec.type, props, controls)

    def statistics(self) -> dict[str, int]:
        return {
            "components": len(self.components),
            "controls": sum(len(c.controls) for c in self.components.values()) + len(self.named),
            "ramping": len(self._ramping),
        }

    # -- lookup (errors as a Core reports them) -------------------------------------------
    def component(self, name: object) -> Component:
        if not isinstance(name, str):
            raise InvalidParams("Invalid params: 'Name' must be a component name (a string)")
        try:
            return self.components[name]
        except KeyError:
            raise UnknownComponent(f"Unknown component name '{name}'") from None

    def control(self, component: Component, name: object) -> Control:
        if not isinstance(name, str):
            raise InvalidParams("Invalid params: a control 'Name' must be a string")
        try:
            return component.controls[name]
        except KeyError:
            raise UnknownControl(
                f"Unknown control '{name}' in component '{component.name}'"
            ) from None

    def named_control(self, name: object) -> Control:
        if not isinstance(name, str):
            raise InvalidParams("Invalid params: a control name must be a string")
        try:
            return self.named[name]
        except KeyError:
            raise UnknownControl(f"Unknown control '{name}'") from None

    def all_controls(self) -> Iterator[Control]:
        for comp in self.components.values():
            yield from comp.controls.values()
        yield from self.named.values()

    # -- writes ---------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """Move every ramp to ``now``; call before reading values."""
        if not self._ramping:
            return
        for control in list(self._ramping):
            ramp = control.ramp
            assert ramp is not None
            if now >= ramp.t1:
                control.ramp = None
                self._ramping.discard(control)
            control.assign(clamp(ramp.value_at(now), control.spec))

    def write(self, control: Control, value: Value, *, now: float, ramp: float = 0.0) -> None:
        """Set ``value`` (already coerced), over ``ramp`` seconds for numeric controls."""
        self.advance(now)
        control.ramp = None
        self._ramping.discard(control)
        rampable = control.spec.type in ("Float", "Integer") and isinstance(control.value, float)
        if ramp > 0 and rampable and isinstance(value, float) and value != control.value:
            assert isinstance(control.value, float)
            control.ramp = Ramp(control.value, value, now, now + ramp)
            self._ramping.add(control)
            return
        control.assign(value)
        if control.component in self.banks and control.spec.type == "Trigger":
            self._trigger(self.banks[control.component], control.name, now)

    def parse_write(self, control: Control, entry: dict[str, Any]) -> tuple[Value, float]:
        """A client's ``{Value | Position | String, Ramp?}`` as (value, ramp seconds)."""
        what = f"control '{control.label()}'"
        if "Value" in entry:
            value = coerce_value(entry["Value"], control.spec, what)
        elif "Position" in entry:
            value = value_from_position(entry["Position"], control.spec, what)
        elif "String" in entry:
            value = value_from_string(entry["String"], control.spec, control.fmt, what)
        else:
            raise InvalidParams(f"Invalid params: {what} needs 'Value', 'Position' or 'String'")
        return value, ramp_seconds(entry.get("Ramp"))

    def set_value(
        self, component: str | None, name: str, value: object, *, now: float, ramp: float = 0.0
    ) -> None:
        """Set a control directly (tests, fault scripts): Read Only controls included."""
        comp = None if component is None else self.component(component)
        control = self.named_control(name) if comp is None else self.control(comp, name)
        self.write(control, coerce_value(value, control.spec, control.label()), now=now, ramp=ramp)

    def get_control(self, component: str | None, name: str, *, now: float) -> Control:
        """A control with its ramp advanced to ``now``."""
        self.advance(now)
        if component is None:
            return self.named_control(name)
        return self.control(self.component(component), name)

    def reset(self) -> None:
        """Every control back to its design value (a redeploy)."""
        self._ramping.clear()
        for control in self.all_controls():
            control.ramp = None
            control.assign(control.initial_value())

    # -- snapshots -----------------------------------------------------------------------
    def bank(self, name: object) -> SnapshotBank:
        component = self.component(name)
        bank = self.banks.get(component.name)
        if bank is None:
            raise InvalidParams(f"Invalid params: '{component.name}' is not a snapshot bank")
        return bank

    def save_snapshot(self, bank: SnapshotBank, number: int, *, now: float) -> None:
        self.advance(now)
        bank.stored[self._snapshot_index(bank, number)] = {c: c.value for c in bank.members}

    def load_snapshot(self, bank: SnapshotBank, number: int, *, now: float, ramp: float) -> None:
        for control, value in bank.stored[self._snapshot_index(bank, number)].items():
            self.write(control, value, now=now, ramp=ramp)

    @staticmethod
    def _snapshot_index(bank: SnapshotBank, number: int) -> int:
        if not 1 <= number <= len(bank.stored):
            raise InvalidParams(
                f"Invalid params: snapshot {number} out of range 1..{len(bank.stored)} "
                f"in bank '{bank.name}'"
            )
        return number - 1

    def _trigger(self, bank: SnapshotBank, name: str, now: float) -> None:
        action, _, number = name.partition(".")
        if action == "load":
            ramp = self.components[bank.name].controls["ramp.time"].value
            self.load_snapshot(bank, int(number), now=now, ramp=float(ramp))
        elif action == "save":
            self.save_snapshot(bank, int(number), now=now)


def ramp_seconds(raw: object) -> float:
    """A ``Ramp`` member as seconds (absent -> 0)."""
    if raw is None:
        return 0.0
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not raw >= 0:
        raise InvalidParams("Invalid params: 'Ramp' must be a number of seconds >= 0")
    return float(raw)


def iter_names(raw: object, what: str) -> Iterable[object]:
    """Names given as a list of strings or of ``{"Name": ...}`` objects."""
    if not isinstance(raw, list):
        raise InvalidParams(f"Invalid params: '{what}' must be a list")
    return [item.get("Name") if isinstance(item, dict) else item for item in raw]
