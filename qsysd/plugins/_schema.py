"""JSON Schemas derived from attrs classes, and argument validation against them.

A tool's input and output are attrs classes; this module is the one place that turns them
into JSON Schema (draft 2020-12), validates raw arguments and converts both ways. Field
documentation lives in ``attrs.field(metadata=doc("...", minimum=0))``: the description,
plus JSON Schema keywords merged into the field's schema (``minimum``, ``maxItems``...).
"""

from __future__ import annotations

import enum
import functools
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, Union

import attrs
import cattrs

from qsysd.errors import ToolInputError

__all__ = [
    "NOT_BLANK",
    "SchemaError",
    "doc",
    "json_schema",
    "structure_arguments",
    "unstructure_output",
    "validate_arguments",
]

_T = TypeVar("_T")
#: A ``pattern`` for strings that must hold something besides spaces.
NOT_BLANK = r"\S"
_JSON_SCALARS = (str, int, float, bool, type(None))
# isinstance() with a tuple: an ``A | B`` union is built anew at every call (4x slower)
_SEQUENCE = (list, tuple)
_NUMBER = (int, float)


class SchemaError(TypeError):
    """A type cannot be described as JSON Schema (a bug in a tool declaration)."""


def doc(description: str, **schema: Any) -> dict[str, Any]:
    """Field metadata: ``attrs.field(default=0, metadata=doc("How many.", minimum=0))``.

    ``schema`` holds extra JSON Schema keywords merged into the field's schema.
    """
    return {"description": description, "schema": schema}


def json_schema(cls: type, *, strict: bool = True) -> dict[str, Any]:
    """The JSON Schema of an attrs class; ``strict`` forbids unknown properties (for inputs)."""
    if not attrs.has(cls):
        raise SchemaError(f"{cls!r} is not an attrs class")
    schema = _object_schema(cls, strict=strict)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _object_schema(cls: type, *, strict: bool) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for a in attrs.fields(cls):
        sub = _type_schema(hints[a.name], strict=strict)
        meta = a.metadata
        if "description" in meta:
            sub["description"] = meta["description"]
        sub.update(meta.get("schema", {}))
        if a.default is not attrs.NOTHING and not isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
            default = a.default
            if isinstance(default, enum.Enum):
                default = default.value
            if isinstance(default, _JSON_SCALARS):
                sub.setdefault("default", default)
        # Inputs may omit defaulted fields; outputs always carry every field.
        if a.default is attrs.NOTHING or not strict:
            required.append(a.name)
        properties[a.name] = sub
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if strict:
        schema["additionalProperties"] = False
    doc = (cls.__doc__ or "").strip().splitlines()
    if doc:
        schema["description"] = doc[0]
    return schema


def _type_schema(tp: Any, *, strict: bool) -> dict[str, Any]:
    if tp is Any:
        return {}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is type(None):
        return {"type": "null"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if isinstance(tp, type) and attrs.has(tp):
        return _object_schema(tp, strict=strict)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        members = [_type_schema(a, strict=strict) for a in args]
        simple = [m.get("type") for m in members]
        if all(isinstance(t, str) and len(m) == 1 for t, m in zip(simple, members, strict=True)):
            return {"type": simple}
        return {"anyOf": members}
    if origin in (list, Sequence, tuple) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise SchemaError(f"fixed-length tuples are not supported: {tp!r}")
        return {"type": "array", "items": _type_schema(args[0], strict=strict)}
    if origin in (dict, Mapping) and args:
        if args[0] is not str:
            raise SchemaError(f"object keys must be strings: {tp!r}")
        return {"type": "object", "additionalProperties": _type_schema(args[1], strict=strict)}
    raise SchemaError(f"no JSON Schema for {tp!r}")


@functools.cache
def _validator(cls: type) -> Any:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]

    schema = json_schema(cls)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_arguments(cls: type, arguments: Mapping[str, Any] | None) -> None:
    """Check raw arguments against ``cls``'s schema; raise ToolInputError naming each field.

    NaN and infinities (which JSON lacks, but Python's parsers accept) are refused wherever
    they are: JSON Schema's ``minimum``/``maximum`` let NaN through.
    """
    # type() first: isinstance against the Mapping ABC is the slow test, and a door's
    # arguments are a dict
    if arguments is not None and type(arguments) is not dict and not isinstance(arguments, Mapping):
        raise ToolInputError(f"invalid arguments: expected an object, got {_json_type(arguments)}")
    # The compiled check also refuses every NaN and infinity, so what it accepts needs
    # neither the walk below nor jsonschema; a refusal is explained by those two, in order.
    accepts = _acceptor(cls)
    if accepts is not None and accepts(arguments or {}):
        return
    not_finite = list(_non_finite(arguments or {}, ""))
    if not_finite:
        where = ", ".join(f"{path or '<arguments>'} is {value!r}" for path, value in not_finite[:5])
        raise ToolInputError(f"invalid arguments: {where}; give a finite number")
    validator = _validator(cls)
    errors = sorted(validator.iter_errors(dict(arguments or {})), key=_error_sort_key)
    if not errors:
        return
    problems = [_describe_error(e) for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    raise ToolInputError("invalid arguments: " + "; ".join(problems) + more)


Check = typing.Callable[[Any], bool]
#: Keywords that never reject anything (annotations; ``format`` asserts nothing here).
_ANNOTATIONS = frozenset(
    {"$schema", "title", "description", "default", "examples", "format", "deprecated"}
)
#: What a ``type`` keyword's kinds and their own keywords compile to (see :func:`_typed`).
_TYPED_KEYWORDS = frozenset(
    {
        "type", "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "items", "minItems", "maxItems", "properties", "required",
        "additionalProperties",
    }
)  # fmt: skip


@functools.cache
def _acceptor(cls: type) -> Check | None:
    """A fast check that accepts only arguments the full validator accepts, with no NaN or
    infinity anywhere in them.

    It never explains a refusal: when it says no, :func:`validate_arguments` runs the
    non-finite walk and the jsonschema validator, whose errors are the ones reported. It is
    built once per class from the schema; None when the schema uses a keyword it does not know.
    """
    try:
        return _compile(json_schema(cls))
    except _Unsupported:
        return None


class _Unsupported(Exception):
    pass


def _compile(schema: Mapping[str, Any]) -> Check:
    """A check of ``schema`` that also refuses any NaN or infinity in what it accepts."""
    keys = {key for key in schema if key not in _ANNOTATIONS}
    kinds = schema.get("type")
    if kinds is not None and keys <= _TYPED_KEYWORDS:
        # The common shape: one flat function per kind, no closure per keyword.
        if isinstance(kinds, str):
            return _typed(kinds, schema)
        per_kind = [_typed(kind, schema) for kind in kinds]
        if len(per_kind) == 2:
            first, second = per_kind
            return lambda v: first(v) or second(v)
        return lambda v: any(c(v) for c in per_kind)
    checks: list[Check] = []
    for key in keys:
        check = _keyword(key, schema[key], schema)
        if check is not None:
            checks.append(check)
    enum = schema.get("enum")
    if enum is not None and all(not isinstance(o, float) for o in enum):
        pass  # a value the same type as a non-float option holds no float
    elif "anyOf" not in schema:  # each anyOf option is a full check
        checks.append(_finite)
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(c(v) for c in checks)


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in ``value`` (what :func:`_non_finite` finds, as a test)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(_finite(item) for item in value.values())
    if isinstance(value, _SEQUENCE):
        return all(_finite(item) for item in value)
    return True


def _bound(schema: Mapping[str, Any], key: str) -> Any:
    value = schema.get(key)
    if value is not None and not _number(value):
        raise _Unsupported(key)
    return value


def _typed(kind: str, schema: Mapping[str, Any]) -> Check:
    """The check of one ``type`` kind with the keywords that apply to it (the others ignore it)."""
    if kind == "null":
        return lambda v: v is None
    if kind == "boolean":
        return lambda v: v is True or v is False
    if kind == "string":
        low = _bound(schema, "minLength") or 0
        high = _bound(schema, "maxLength")
        pattern = schema.get("pattern")
        search = re.compile(pattern).search if pattern is not None else None

        def string(v: Any) -> bool:
            if not isinstance(v, str):
                return False
            size = len(v)
            if size < low or (high is not None and size > high):
                return False
            return search is None or search(v) is not None

        return string
    if kind in ("integer", "number"):
        # Integral floats (1.0) are integers to JSON Schema: left to the full validator.
        kinds: type | tuple[type, ...] = int if kind == "integer" else (int, float)
        bounds = [
            (_bound(schema, key), test)
            for key, test in (
                ("minimum", _at_least),
                ("maximum", _at_most),
                ("exclusiveMinimum", _above),
                ("exclusiveMaximum", _below),
            )
            if key in schema
        ]

        def number(v: Any) -> bool:
            if not isinstance(v, kinds) or isinstance(v, bool):
                return False
            if isinstance(v, float) and not math.isfinite(v):
                return False
            return all(test(v, bound) for bound, test in bounds)

        return number
    if kind == "array":
        items = schema.get("items")
        if items is not None and not isinstance(items, Mapping):
            raise _Unsupported("items")
        item = _compile(items) if items is not None else _finite
        low = _bound(schema, "minItems") or 0
        high = _bound(schema, "maxItems")

        def array(v: Any) -> bool:
            if not isinstance(v, list):
                return False
            size = len(v)
            if size < low or (high is not None and size > high):
                return False
            return all(map(item, v))

        return array
    if kind == "object":
        subs = {name: _compile(sub) for name, sub in schema.get("properties", {}).items()}
        needed = frozenset(schema.get("required", ()))
        extra_schema = schema.get("additionalProperties", True)
        # False: no other key; True: any other value, as long as it is finite.
        extra: Check | None = (
            None
            if extra_schema is False
            else _finite
            if extra_schema is True
            else _compile(extra_schema)
        )

        def object_(v: Any) -> bool:
            if not isinstance(v, dict) or not v.keys() >= needed:
                return False
            for key, value in v.items():
                check = subs.get(key, extra)
                if check is None or not check(value):
                    return False
            return True

        return object_
    raise _Unsupported("type")


def _at_least(v: Any, bound: Any) -> bool:
    return bool(v >= bound)


def _at_most(v: Any, bound: Any) -> bool:
    return bool(v <= bound)


def _above(v: Any, bound: Any) -> bool:
    return bool(v > bound)


def _below(v: Any, bound: Any) -> bool:
    return bool(v < bound)


def _number(v: Any) -> bool:
    return isinstance(v, _NUMBER) and not isinstance(v, bool)


def _keyword(key: str, value: Any, schema: Mapping[str, Any]) -> Check | None:
    if key == "type":  # beside a keyword _typed lacks (enum, anyOf): the type test alone
        tests = [_typed(kind, {}) for kind in ([value] if isinstance(value, str) else value)]
        return tests[0] if len(tests) == 1 else (lambda v: any(t(v) for t in tests))
    if key == "enum":
        # same type as well as equal: True is not 1, 1.0 is left to the full validator
        options = [(type(o), o) for o in value]
        return lambda v: any(type(v) is t and v == o for t, o in options)
    if key == "properties":
        subs = {name: _compile(sub) for name, sub in value.items()}
        return lambda v: (
            not isinstance(v, dict)
            or all(name not in v or sub(v[name]) for name, sub in subs.items())
        )
    if key == "required":
        needed = list(value)
        return lambda v: not isinstance(v, dict) or all(name in v for name in needed)
    if key == "additionalProperties":
        known = frozenset(schema.get("properties", {}))
        if value is False:
            return lambda v: not isinstance(v, dict) or all(k in known for k in v)
        if value is True:
            return None
        extra = _compile(value)
        return lambda v: (
            not isinstance(v, dict) or all(extra(item) for k, item in v.items() if k not in known)
        )
    if key == "items":
        if not isinstance(value, Mapping):
            raise _Unsupported(key)
        item_check = _compile(value)
        return lambda v: not isinstance(v, list) or all(item_check(i) for i in v)
    if key == "anyOf":
        options_ = [_compile(sub) for sub in value]
        return lambda v: any(o(v) for o in options_)
    if key == "pattern":
        regex = re.compile(value)
        return lambda v: not isinstance(v, str) or regex.search(v) is not None
    bounds: dict[str, Check] = {
        "minimum": lambda v: not _number(v) or v >= value,
        "maximum": lambda v: not _number(v) or v <= value,
        "exclusiveMinimum": lambda v: not _number(v) or v > value,
        "exclusiveMaximum": lambda v: not _number(v) or v < value,
        "minLength": lambda v: not isinstance(v, str) or len(v) >= value,
        "maxLength": lambda v: not isinstance(v, str) or len(v) <= value,
        "minItems": lambda v: not isinstance(v, list) or len(v) >= value,
        "maxItems": lambda v: not isinstance(v, list) or len(v) <= value,
    }
    if key in bounds:
        if not _number(value):
            raise _Unsupported(key)
        return bounds[key]
    raise _Unsupported(key)


def _non_finite(value: Any, path: str) -> Iterator[tuple[str, float]]:
    """Each NaN or infinity in a JSON-like value, with its path (``changes[0].value``)."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, _SEQUENCE):
        for index, item in enumerate(value):
            yield from _non_finite(item, f"{path}[{index}]")


def _error_sort_key(error: Any) -> tuple[int, str]:
    return (len(error.absolute_path), str(list(error.absolute_path)))


def _path(error: Any) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<arguments>"


def _describe_error(error: Any) -> str:
    where = _path(error)
    validator = error.validator
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        unknown = ", ".join(map(repr, extra))
        return f"{where}: unknown field(s) {unknown}; allowed: {', '.join(allowed)}"
    if validator == "required":
        return f"{where}: {error.message}"
    if validator == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        return f"{where}: {error.instance!r} is not one of {options}"
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        low = error.schema.get("minimum", error.schema.get("exclusiveMinimum"))
        high = error.schema.get("maximum", error.schema.get("exclusiveMaximum"))
        return f"{where}: {error.instance!r} is out of range [{low}, {high}]"
    if validator in ("minLength", "minItems") and error.validator_value == 1:
        return f"{where}: must not be empty"
    if validator == "pattern" and error.validator_value == NOT_BLANK:
        return f"{where}: must not be empty or only spaces"
    if validator in ("maxLength", "maxItems", "minItems"):
        size = len(error.instance)
        unit = "characters" if validator == "maxLength" else "items"
        bound = "at most" if validator.startswith("max") else "at least"
        return f"{where}: {size} {unit}; give {bound} {error.validator_value}"
    if validator == "type":
        expected = error.validator_value
        if isinstance(expected, list):
            expected = " or ".join(expected)
        return f"{where}: expected {expected}, got {_json_type(error.instance)} {error.instance!r}"
    return f"{where}: {error.message}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, _NUMBER):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()

    def is_scalar_union(tp: Any) -> bool:
        if typing.get_origin(tp) not in (Union, types.UnionType):
            return False
        return all(a in _JSON_SCALARS for a in typing.get_args(tp))

    # Arguments are validated against the schema first, so scalar unions pass through as is.
    conv.register_structure_hook_func(is_scalar_union, lambda value, _: value)
    conv.register_structure_hook(Any, lambda value, _: value)
    return conv


_converter = _make_converter()


def structure_arguments(cls: type[_T], arguments: Mapping[str, Any] | None) -> _T:
    """Validate raw arguments and build the input object."""
    validate_arguments(cls, arguments)
    try:
        # validated above, a dict is only read: no copy
        data = arguments if type(arguments) is dict else dict(arguments or {})
        return _converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:  # schema drift: a bug
        raise ToolInputError(f"invalid arguments: {exc}") from exc


def unstructure_output(value: Any) -> dict[str, Any]:
    """The JSON object of a tool's output.

    An output with a ``json_object()`` method gives its own: for an output of many items,
    built without an object per item (it must give what cattrs would; test it so).
    """
    render = getattr(value, "json_object", None)
    data = render() if callable(render) else _converter.unstructure(value)
    if not isinstance(data, dict):
        raise SchemaError(f"a tool output must be an object, got {type(data).__name__}")
    return data
