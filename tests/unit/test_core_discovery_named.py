"""Named controls: QRC cannot describe them, so their type is read off Control.Get."""

from __future__ import annotations

from typing import Any

import trio

from qsysd.core import discover
from qsysd.state import ControlRef


async def test_named_controls_get_types_from_their_values_and_strings() -> None:
    replies: dict[str, Any] = {
        "Component.GetComponents": [],
        "Control.Get": [
            {"Name": "MainGain", "Value": -12, "String": "-12.0dB", "Position": 0.73},
            {"Name": "MainMute", "Value": 1, "String": "muted", "Position": 1.0},
            {"Name": "FireAlarmActive", "Value": 0, "String": "false", "Position": 0.0},
            {"Name": "PagingPriority", "Value": 1, "String": "1", "Position": 0.1},
            {"Name": "Welcome", "Value": "Hello", "String": "Hello", "Position": 0.0},
        ],
    }

    async def request(method: str, params: Any = None) -> Any:
        await trio.lowlevel.checkpoint()
        return replies[method]

    names = ["MainGain", "MainMute", "FireAlarmActive", "PagingPriority", "Welcome"]
    found = await discover(request, "main", design_code="x", named_controls=names)
    types = {info.ref.name: info.type for info in found.controls}
    assert types == {
        "MainGain": "Float",
        "MainMute": "Boolean",
        "FireAlarmActive": "Boolean",
        "PagingPriority": "Float",
        "Welcome": "Text",
    }
    values = {v.ref: v.value for v in found.values}
    assert values[ControlRef("main", None, "MainMute")] is True
    assert values[ControlRef("main", None, "FireAlarmActive")] is False
    assert values[ControlRef("main", None, "MainGain")] == -12.0
