"""How a Core turns control values into ``Value``/``String``/``Position``, and back.

Pure functions: float32 rounding, the Core's display strings per control format, positions
linear over the control's range, and parsing what a client writes (value, position, string).
"""

from __future__ import annotations

import functools
import math
import struct

from qsysd.emulator._design import ControlSpec
from qsysd.errors import InvalidParams

__all__ = [
    "STATUS_STRINGS",
    "Value",
    "clamp",
    "coerce_value",
    "float32",
    "format_string",
    "position_of",
    "resolve_format",
    "value_from_position",
    "value_from_string",
    "wire_number",
]

Value = float | str
#: Status codes as Cores report them (0, 1, 2, 4 captured; 3 and 5 guessed).
STATUS_STRINGS = {
    0: "OK",
    1: "Compromised",
    2: "Fault",
    3: "Not Present",
    4: "Missing",
    5: "Initializing",
}
_BOOLEAN_LABELS = {
    "mute": ("unmuted", "muted"),
    "bypass": ("no", "yes"),
    "invert": ("normal", "inverted"),
    "boolean": ("false", "true"),
}
_FLOAT32_MAX = 3.4028234663852886e38
_pack = struct.Struct("<f")


def float32(value: float) -> float:
    """``value`` at float32 precision, as a Core stores it."""
    value = max(-_FLOAT32_MAX, min(_FLOAT32_MAX, value))
    result: float = _pack.unpack(_pack.pack(value))[0]
    return result


def wire_number(value: float) -> float:
    """A float32 as the Core prints it: ten significant digits (-42.1 -> -42.09999847)."""
    if value == 0:  # 0.0 and -0.0 are equal keys for a cache, not equal answers
        return float(f"{float32(value):.10g}")
    return _wire_number(value)


@functools.lru_cache(maxsize=8192)
def _wire_number(value: float) -> float:
    # A design repeats a few values (ranges, rest positions) across every control: each GetControls
    # entry and Poll item takes about six of these.
    return float(f"{float32(value):.10g}")


def resolve_format(spec: ControlSpec) -> str:
    """The display format of a control: declared, or inferred from its type and name."""
    if spec.format is not None:
        return spec.format
    name = spec.name.lower()
    if spec.type == "Boolean":
        for word in ("mute", "bypass", "invert"):
            if word in name:
                return word
        return "boolean"
    if spec.type in ("Float", "Time"):
        if any(w in name for w in ("gain", "level", "meter", "peak", "rms")):
            return "dB"
        if "delay" in name:
            return "ms"
        if "freq" in name:
            return "Hz"
        if "temperature" in name:
            return "celsius"
        if "time" in name or spec.type == "Time":
            return "s"
        return "number"
    if spec.type == "Integer":
        return "integer"
    if spec.type == "Text":
        return "choice" if spec.choices else "text"
    if spec.type == "Status":
        return "status"
    return "trigger"


def format_string(fmt: str, value: Value, spec: ControlSpec) -> str:
    """The Core's display string for ``value``."""
    if isinstance(value, str):
        return value
    if fmt in _BOOLEAN_LABELS:
        return _BOOLEAN_LABELS[fmt][1 if value else 0]
    if fmt == "dB":
        if abs(value) < 0.05:
            return "0dB"
        return f"{value:.0f}dB" if abs(value) >= 100 else f"{value:.1f}dB"
    if fmt == "Hz":
        if value >= 1000:
            khz = value / 1000
            return f"{khz:.{2 if khz < 10 else 1 if khz < 100 else 0}f}kHz"
        return f"{value:.{2 if value < 10 else 1 if value < 100 else 0}f}Hz"
    if fmt == "ms":
        return f"{value:.1f}ms"
    if fmt == "s":
        return f"{value:.1f}s"
    if fmt == "%":
        return f"{value:.0f}%"
    if fmt == "celsius":
        return f"{value:.1f}°C"
    if fmt == "integer":
        return str(round(value))
    if fmt == "status":
        return STATUS_STRINGS.get(round(value), f"Unknown ({round(value)})")
    if fmt == "trigger":
        return ""
    return f"{value:.2f}"


def position_of(value: Value, spec: ControlSpec) -> float:
    """The control's position, 0..1: linear over its range (as captured on gains)."""
    if isinstance(value, str):
        if spec.choices and value in spec.choices and len(spec.choices) > 1:
            return spec.choices.index(value) / (len(spec.choices) - 1)
        return 0.0
    if spec.type == "Boolean":
        return 1.0 if value else 0.0
    if spec.min is None or spec.max is None:
        return 0.0
    return min(1.0, max(0.0, (value - spec.min) / (spec.max - spec.min)))


def coerce_value(raw: object, spec: ControlSpec, what: str) -> Value:
    """A written ``Value`` as the control stores it (clamped to its range, float32)."""
    if spec.type == "Boolean":
        if isinstance(raw, bool | int | float):
            return 1.0 if raw else 0.0
        if isinstance(raw, str):
            return value_from_string(raw, spec, "boolean", what)
        raise InvalidParams(f"Invalid params: {what} needs a boolean or a number")
    if spec.type == "Text":
        if isinstance(raw, str):
            return raw
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return f"{raw:g}"
        raise InvalidParams(f"Invalid params: {what} needs a string")
    if spec.type in ("Trigger", "State Trigger"):
        return 0.0
    if isinstance(raw, bool):
        raw = 1.0 if raw else 0.0
    if not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidParams(f"Invalid params: {what} needs a number")
    return clamp(float(raw), spec)


def clamp(value: float, spec: ControlSpec) -> float:
    """``value`` limited to the control's range, rounded as the control stores it."""
    if spec.min is not None and spec.max is not None:
        value = min(spec.max, max(spec.min, value))
    if spec.type in ("Integer", "Status"):
        return float(round(value))
    return float32(value)


def value_from_position(raw: object, spec: ControlSpec, what: str) -> Value:
    """The value a written ``Position`` stands for."""
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidParams(f"Invalid params: {what} needs a Position number in 0..1")
    pos = min(1.0, max(0.0, float(raw)))
    if spec.type == "Boolean":
        return 1.0 if pos >= 0.5 else 0.0
    if spec.choices:
        return spec.choices[round(pos * (len(spec.choices) - 1))]
    if spec.min is None or spec.max is None:
        raise InvalidParams(f"Invalid params: {what} has no range to set a Position on")
    return clamp(spec.min + pos * (spec.max - spec.min), spec)


def value_from_string(raw: object, spec: ControlSpec, fmt: str, what: str) -> Value:
    """The value a written ``String`` stands for ("-6dB", "muted", "1.00kHz", "true", ...)."""
    if not isinstance(raw, str):
        raise InvalidParams(f"Invalid params: {what} needs a String")
    if spec.type == "Text":
        return raw
    text = raw.strip().lower()
    if spec.type == "Boolean":
        labels = _BOOLEAN_LABELS.get(fmt, _BOOLEAN_LABELS["boolean"])
        if text in (labels[1], "true", "1", "on", "yes"):
            return 1.0
        if text in (labels[0], "false", "0", "off", "no"):
            return 0.0
        raise InvalidParams(f"Invalid params: {what} cannot be set to {raw!r}")
    scale = 1.0
    for suffix, factor in (("khz", 1000.0), ("hz", 1.0), ("db", 1.0), ("ms", 1.0)):
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)], factor
            break
    text = text.rstrip("s%°c").strip()
    try:
        number = float(text) * scale
    except ValueError:
        raise InvalidParams(f"Invalid params: {what} cannot be set to {raw!r}") from None
    if not math.isfinite(number):
        raise InvalidParams(f"Invalid params: {what} cannot be set to {raw!r}")
    return clamp(number, spec)
