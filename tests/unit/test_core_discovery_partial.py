"""Discovery when the Core answers some components with errors or unreadable replies."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from qsysd.core import discover
from qsysd.errors import InvalidReply, RequestTimeout, UnknownComponent, UnknownControl


def core_with(answers: dict[str, Any]) -> Any:
    async def request(method: str, params: Any) -> Any:
        await trio.lowlevel.checkpoint()
        if method == "Component.GetComponents":
            return [{"Name": f"C{i}", "Type": "gain"} for i in range(5)]
        answer = answers.get(params["Name"])
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        return {"Name": params["Name"], "Controls": [{"Name": "gain", "Type": "Float", "Value": 1}]}

    return request


async def test_one_component_with_an_error_or_odd_reply_is_left_out_not_the_design() -> None:
    request = core_with(
        {
            "C1": UnknownComponent("gone"),
            "C2": UnknownControl("odd"),
            "C3": {"Name": "C3", "Controls": "gain"},
        }
    )
    with trio.fail_after(5):
        found = await discover(request, "main", design_code="abc", concurrency=2)
    assert [c.name for c in found.components] == ["C0", "C4"]
    assert found.vanished == ("C1",)
    assert sorted(found.failed) == ["C2", "C3"]
    assert len(found.controls) == 2


async def test_a_timeout_on_one_component_fails_the_discovery_with_that_error_alone() -> None:
    request = core_with({"C2": RequestTimeout("slow")})
    with trio.fail_after(5), pytest.raises(RequestTimeout):
        await discover(request, "main", design_code="abc", concurrency=2)


async def test_an_unreadable_component_list_fails_the_discovery() -> None:
    async def request(method: str, params: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return {"Components": None}

    with trio.fail_after(5), pytest.raises(InvalidReply, match="GetComponents returned"):
        await discover(request, "main", design_code="abc")
