"""Change groups over loopback: limits, errors, poll semantics and AutoPoll pushes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio

from qsysd.emulator import EmulatorServer

WAIT = 5.0
Client = Callable[..., AbstractAsyncContextManager[Any]]
TRANSPORTS = pytest.mark.parametrize("transport", ["tcp", "ws"])


def compact(changes: list[dict[str, Any]]) -> list[tuple[str | None, str, Any]]:
    return [(c.get("Component"), c["Name"], c["Value"]) for c in changes]


@TRANSPORTS
async def test_fifth_change_group_is_refused_with_error_5(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            for n in range(4):
                assert await c.result(
                    "ChangeGroup.AddControl", {"Id": f"g{n}", "Controls": ["MainGain"]}
                )
            error = await c.error("ChangeGroup.AddControl", {"Id": "g4", "Controls": ["MainGain"]})
            assert (error.code, error.message) == (5, "Change Groups exhausted")
            # Adding to an existing group is fine; destroying one frees a slot.
            assert await c.result("ChangeGroup.AddControl", {"Id": "g0", "Controls": ["MainMute"]})
            assert await c.result("ChangeGroup.Destroy", {"Id": "g1"})
            assert await c.result("ChangeGroup.AddControl", {"Id": "g4", "Controls": ["MainGain"]})
        async with client(emulator, transport) as other:  # the limit is per connection
            assert await other.result(
                "ChangeGroup.AddControl", {"Id": "g0", "Controls": ["MainGain"]}
            )


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("ChangeGroup.Poll", {}),
        ("ChangeGroup.Invalidate", {}),
        ("ChangeGroup.Clear", {}),
        ("ChangeGroup.Destroy", {}),
        ("ChangeGroup.Remove", {"Controls": ["MainGain"]}),
        ("ChangeGroup.AutoPoll", {"Rate": 1}),
    ],
)
async def test_unknown_group_is_error_6_with_its_id(
    client: Client, emulator: EmulatorServer, method: str, extra: dict[str, Any]
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            error = await c.error(method, {"Id": "ghost", **extra})
    assert (error.code, error.message) == (6, "Change group 'ghost' does not exist")


async def test_first_poll_returns_all_then_only_changes(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.result(
                "ChangeGroup.AddControl", {"Id": "1", "Controls": ["MainGain", "MainMute"]}
            )
            await c.result(
                "ChangeGroup.AddComponentControl",
                {
                    "Id": "1",
                    "Component": {"Name": "Bar", "Controls": [{"Name": "gain"}, {"Name": "mute"}]},
                },
            )
            first = await c.result("ChangeGroup.Poll", {"Id": "1"})
            assert first["Id"] == "1"
            assert compact(first["Changes"]) == [
                (None, "MainGain", -12.0),
                (None, "MainMute", 0.0),
                ("Bar", "gain", -10.0),
                ("Bar", "mute", 0.0),
            ]
            assert (await c.result("ChangeGroup.Poll", {"Id": "1"}))["Changes"] == []
            emulator.set_value("Bar", "mute", True)
            changes = (await c.result("ChangeGroup.Poll", {"Id": "1"}))["Changes"]
            assert changes == [
                {
                    "Component": "Bar",
                    "Name": "mute",
                    "Value": 1.0,
                    "String": "muted",
                    "Position": 1.0,
                    "Color": "",
                    "Indeterminate": False,
                    "Invisible": False,
                    "Disabled": False,
                    "Legend": "",
                    "CssClass": "",
                }
            ]


async def test_new_control_counts_as_changed(client: Client, emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.result("ChangeGroup.AddControl", {"Id": 7, "Controls": ["MainGain"]})
            await c.result("ChangeGroup.Poll", {"Id": 7})
            await c.result("ChangeGroup.AddControl", {"Id": 7, "Controls": ["MainMute"]})
            poll = await c.result("ChangeGroup.Poll", {"Id": 7})
    assert poll["Id"] == 7
    assert compact(poll["Changes"]) == [(None, "MainMute", 0.0)]


async def test_invalidate_remove_clear_destroy(client: Client, emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.result(
                "ChangeGroup.AddControl", {"Id": "g", "Controls": ["MainGain", "MainMute"]}
            )
            await c.result("ChangeGroup.Poll", {"Id": "g"})
            assert await c.result("ChangeGroup.Invalidate", {"Id": "g"}) is True
            assert len((await c.result("ChangeGroup.Poll", {"Id": "g"}))["Changes"]) == 2
            assert (
                await c.result("ChangeGroup.Remove", {"Id": "g", "Controls": ["MainGain"]}) is True
            )
            await c.result("ChangeGroup.Invalidate", {"Id": "g"})
            assert compact((await c.result("ChangeGroup.Poll", {"Id": "g"}))["Changes"]) == [
                (None, "MainMute", 0.0)
            ]
            assert await c.result("ChangeGroup.Clear", {"Id": "g"}) is True
            emulator.set_value(None, "MainMute", True)
            assert (await c.result("ChangeGroup.Poll", {"Id": "g"}))["Changes"] == []
            assert await c.result("ChangeGroup.Destroy", {"Id": "g"}) is True
            assert (await c.error("ChangeGroup.Poll", {"Id": "g"})).code == 6


async def test_adding_unknown_controls_is_an_error_and_adds_nothing(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            named = await c.error(
                "ChangeGroup.AddControl", {"Id": "x", "Controls": ["MainGain", "Nope"]}
            )
            comp = await c.error(
                "ChangeGroup.AddComponentControl",
                {"Id": "x", "Component": {"Name": "Nope", "Controls": [{"Name": "gain"}]}},
            )
            assert (await c.error("ChangeGroup.Poll", {"Id": "x"})).code == 6
    assert (named.code, named.message) == (8, "Unknown control 'Nope'")
    assert (comp.code, comp.message) == (7, "Unknown component name 'Nope'")


@TRANSPORTS
async def test_autopoll_answers_true_then_pushes_everything_then_changes_and_empties(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator, transport) as c:
            await c.result(
                "ChangeGroup.AddComponentControl",
                {
                    "Id": "auto",
                    "Component": {
                        "Name": "Restaurant",
                        "Controls": [{"Name": "gain"}, {"Name": "mute"}],
                    },
                },
            )
            await c.result("ChangeGroup.Poll", {"Id": "auto"})
            assert await c.result("ChangeGroup.AutoPoll", {"Id": "auto", "Rate": 0.02}) is True
            first = await c.notification("ChangeGroup.Poll")
            assert first.params["Id"] == "auto"
            assert compact(first.params["Changes"]) == [
                ("Restaurant", "gain", -18.0),
                ("Restaurant", "mute", 0.0),
            ]
            empty = await c.notification("ChangeGroup.Poll")
            assert empty.params == {"Id": "auto", "Changes": []}
            emulator.set_value("Restaurant", "gain", -3)
            while not (note := await c.notification("ChangeGroup.Poll")).params["Changes"]:
                pass
            assert compact(note.params["Changes"]) == [("Restaurant", "gain", -3.0)]


async def test_change_groups_vanish_with_the_connection(
    client: Client, emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        async with client(emulator) as c:
            await c.result("ChangeGroup.AddControl", {"Id": "g", "Controls": ["MainGain"]})
            await c.result("ChangeGroup.AutoPoll", {"Id": "g", "Rate": 0.05})
            assert emulator.statistics()["change_groups"] == 1
        await emulator.wait_connections(0)
        assert emulator.statistics()["change_groups"] == 0
        async with client(emulator) as c:
            assert (await c.error("ChangeGroup.Poll", {"Id": "g"})).code == 6


@TRANSPORTS
async def test_every_request_is_answered_whole_while_autopoll_pushes_are_due(
    client: Client, emulator: EmulatorServer, transport: str
) -> None:
    # A push falling due while a reply is being written once cut that reply short.
    with trio.fail_after(WAIT * 4):
        async with client(emulator, transport) as c:
            group = {"Id": "busy", "Component": {"Name": "Bar", "Controls": [{"Name": "gain"}]}}
            await c.result("ChangeGroup.AddComponentControl", group)
            await c.result("ChangeGroup.AutoPoll", {"Id": "busy", "Rate": 0.001})
            for i in range(400):
                control = {"Name": "gain", "Value": -20.0 - (i % 2)}
                params = {"Name": "Bar", "Controls": [control], "ResponseValues": True}
                result = await c.result("Component.Set", params)
                assert result[0]["Value"] == -20.0 - (i % 2)
