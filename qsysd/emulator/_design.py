"""Design files: the components, controls, named controls and snapshot banks of an emulated Core.

A design is plain data (attrs, frozen). :func:`design_from_dict` structures a JSON object with
cattrs, expands the standard controls of known component types (see ``_templates``) and
validates the whole design, reporting every problem with its JSON path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import attrs
import cattrs

from qsysd.errors import DesignError

__all__ = [
    "CONTROL_TYPES",
    "DIRECTIONS",
    "FORMATS",
    "ComponentSpec",
    "ControlSpec",
    "Design",
    "DesignError",
    "SnapshotBankSpec",
    "SnapshotMember",
    "design_from_dict",
    "design_to_dict",
    "load_design",
]

InitialValue: TypeAlias = float | int | bool | str | None

CONTROL_TYPES = frozenset(
    {"Float", "Boolean", "Integer", "Text", "Trigger", "State Trigger", "Time", "Status"}
)
DIRECTIONS = frozenset({"Read/Write", "Read Only", "Write Only"})
#: How a control's value becomes its String (see ``_values``); None means "infer from name".
FORMATS = frozenset(
    {
        "dB",
        "Hz",
        "ms",
        "s",
        "%",
        "celsius",
        "number",
        "integer",
        "mute",
        "bypass",
        "invert",
        "boolean",
        "text",
        "choice",
        "trigger",
        "status",
    }
)
_NUMERIC_TYPES = frozenset({"Float", "Integer", "Time"})


@attrs.frozen(slots=True)
class ControlSpec:
    """One control as the design declares it."""

    name: str
    type: str = "Float"
    format: str | None = None
    min: float | None = None
    max: float | None = None
    value: InitialValue = None
    direction: str = "Read/Write"
    choices: tuple[str, ...] | None = None


@attrs.frozen(slots=True)
class ComponentSpec:
    """One component: its Q-SYS type, its properties (strings on the wire) and its controls."""

    name: str
    type: str
    properties: Mapping[str, Any] = attrs.field(factory=dict)
    controls: tuple[ControlSpec, ...] = ()


@attrs.frozen(slots=True)
class SnapshotMember:
    """Controls a snapshot bank covers: a whole component, or some of its controls."""

    component: str
    controls: tuple[str, ...] | None = None


@attrs.frozen(slots=True)
class SnapshotBankSpec:
    """A snapshot bank, served as a ``snapshot_controller`` component named ``name``."""

    name: str
    count: int = 8
    members: tuple[SnapshotMember, ...] = ()
    #: Stored values: snapshot number (as a string) -> component -> control -> value.
    snapshots: Mapping[str, Mapping[str, Mapping[str, InitialValue]]] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class Design:
    """A whole design, as deployed to the emulated Core."""

    name: str
    platform: str = "Core 110f"
    design_code: str | None = None
    components: tuple[ComponentSpec, ...] = ()
    named_controls: tuple[ControlSpec, ...] = ()
    snapshot_banks: tuple[SnapshotBankSpec, ...] = ()


def _strict_str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _initial_value(value: object, _: object) -> InitialValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"expected a number, a boolean or a string, got {type(value).__name__}")


def _float(value: object, _: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _int(value: object, _: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_structure_hook(str, _strict_str)
_converter.register_structure_hook(float, _float)
_converter.register_structure_hook(int, _int)
_converter.register_structure_hook(InitialValue, _initial_value)
_converter.register_structure_hook(Any, lambda v, _: v)


def design_from_dict(obj: object) -> Design:
    """Structure and validate a design object; raise :class:`DesignError` listing all problems."""
    from qsysd.emulator._templates import expand_component

    try:
        design = _converter.structure(obj, Design)
    except Exception as exc:  # cattrs raises ClassValidationError/ForbiddenExtraKeysError
        raise DesignError(cattrs.transform_error(exc, path="$")) from exc
    design = attrs.evolve(design, components=tuple(expand_component(c) for c in design.components))
    problems = validate_design(design)
    if problems:
        raise DesignError(problems)
    return design


def design_to_dict(design: Design) -> dict[str, Any]:
    """The JSON object for a design (controls expanded): what :func:`load_design` reads."""
    out: dict[str, Any] = _converter.unstructure(design)
    return out


def load_design(path: str | Path) -> Design:
    """Read and validate a JSON design file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DesignError([f"{path}: cannot read the design file ({exc.strerror})"]) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise DesignError([f"{path}: not valid JSON ({exc})"]) from exc
    try:
        return design_from_dict(obj)
    except DesignError as exc:
        raise DesignError([f"{path}: {p}" for p in exc.problems]) from None


def validate_design(design: Design) -> list[str]:
    """Every problem of a structured design, each with its JSON path."""
    problems: list[str] = []
    components: dict[str, ComponentSpec] = {}
    for i, comp in enumerate(design.components):
        path = f"$.components[{i}]"
        if not comp.name:
            problems.append(f"{path}.name: must not be empty")
        elif comp.name in components:
            problems.append(f"{path}.name: duplicate component name {comp.name!r}")
        components[comp.name] = comp
        for key, value in comp.properties.items():
            if not isinstance(value, str | int | float | bool):
                problems.append(f"{path}.properties.{key}: expected a string or a number")
        problems += _validate_controls(comp.controls, f"{path}.controls")
    problems += _validate_controls(design.named_controls, "$.named_controls")
    for i, bank in enumerate(design.snapshot_banks):
        path = f"$.snapshot_banks[{i}]"
        if bank.name in components:
            problems.append(f"{path}.name: {bank.name!r} is already a component name")
        if bank.count < 1:
            problems.append(f"{path}.count: must be at least 1")
        covered: dict[str, set[str]] = {}
        for j, member in enumerate(bank.members):
            comp_spec = components.get(member.component)
            if comp_spec is None:
                problems.append(f"{path}.members[{j}].component: unknown {member.component!r}")
                continue
            names = {c.name for c in comp_spec.controls}
            for name in member.controls or ():
                if name not in names:
                    problems.append(
                        f"{path}.members[{j}].controls: {member.component!r} has no control "
                        f"{name!r}"
                    )
            covered.setdefault(member.component, set()).update(member.controls or names)
        for number, values in bank.snapshots.items():
            if not number.isdigit() or not 1 <= int(number) <= bank.count:
                problems.append(f"{path}.snapshots.{number}: not a number in 1..{bank.count}")
            for comp_name, controls in values.items():
                for name in controls:
                    if name not in covered.get(comp_name, ()):
                        problems.append(
                            f"{path}.snapshots.{number}.{comp_name}.{name}: not a member of "
                            "the bank"
                        )
    return problems


def _validate_controls(controls: tuple[ControlSpec, ...], base: str) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for k, spec in enumerate(controls):
        path = f"{base}[{k}]"
        if not spec.name:
            problems.append(f"{path}.name: must not be empty")
        elif spec.name in seen:
            problems.append(f"{path}.name: duplicate control name {spec.name!r}")
        seen.add(spec.name)
        if spec.type not in CONTROL_TYPES:
            problems.append(f"{path}.type: {spec.type!r} is not one of {sorted(CONTROL_TYPES)}")
        if spec.direction not in DIRECTIONS:
            problems.append(
                f"{path}.direction: {spec.direction!r} is not one of {sorted(DIRECTIONS)}"
            )
        if spec.format is not None and spec.format not in FORMATS:
            problems.append(f"{path}.format: {spec.format!r} is not one of {sorted(FORMATS)}")
        if spec.type in _NUMERIC_TYPES:
            if spec.min is None or spec.max is None:
                problems.append(f"{path}: a {spec.type} control needs 'min' and 'max'")
            elif not (math.isfinite(spec.min) and math.isfinite(spec.max)) or spec.min >= spec.max:
                problems.append(f"{path}: 'min' must be below 'max' ({spec.min} >= {spec.max})")
            elif spec.value is not None and (
                isinstance(spec.value, str | bool) or not spec.min <= spec.value <= spec.max
            ):
                problems.append(
                    f"{path}.value: {spec.value!r} is not a number in {spec.min}..{spec.max}"
                )
        elif spec.type == "Boolean" and spec.value is not None and not isinstance(spec.value, bool):
            problems.append(f"{path}.value: a Boolean control needs true or false")
        elif spec.type == "Text":
            if spec.value is not None and not isinstance(spec.value, str):
                problems.append(f"{path}.value: a Text control needs a string")
            if (
                spec.choices is not None
                and spec.value is not None
                and (spec.value not in spec.choices)
            ):
                problems.append(f"{path}.value: {spec.value!r} is not one of its choices")
    return problems
