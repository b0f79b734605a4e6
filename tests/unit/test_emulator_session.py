"""The emulator's per-connection protocol state, driven by plain calls (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from qsysd.emulator import Core, Engine, Session, demo_design
from qsysd.errors import InvalidFrame
from qsysd.qrc import ErrorResponse, Message, Notification, Request, Response, decode_frame


@pytest.fixture
def engine() -> Engine:
    return Engine(Core(demo_design()), design_code="abcdefABCDEF")


def call(session: Session, method: str, params: Any = None, *, now: float = 0.0) -> Message:
    replies = session.handle(Request(method, params, "id-1"), now)
    assert len(replies) == 1
    return replies[0]


def ok(session: Session, method: str, params: Any = None, *, now: float = 0.0) -> Any:
    reply = call(session, method, params, now=now)
    assert isinstance(reply, Response), reply
    assert reply.id == "id-1"
    return reply.result


def error(session: Session, method: str, params: Any = None) -> tuple[int, str]:
    reply = call(session, method, params)
    assert isinstance(reply, ErrorResponse), reply
    return reply.code, reply.message


def test_new_session_has_engine_status_pending(engine: Engine) -> None:
    session = engine.open_session()
    [note] = session.take_notifications(0.0)
    assert note == Notification("EngineStatus", engine.status())
    assert session.take_notifications(0.0) == []


def test_status_change_queues_engine_status_for_every_session(engine: Engine) -> None:
    sessions = [engine.open_session(), engine.open_session()]
    for s in sessions:
        s.take_notifications(0.0)
    engine.update_status(state="Standby", is_redundant=True)
    for s in sessions:
        [note] = s.take_notifications(0.0)
        assert isinstance(note, Notification)
        assert note.params["State"] == "Standby"
        assert note.params["IsRedundant"] is True


def test_notification_from_client_is_executed_without_a_reply(engine: Engine) -> None:
    session = engine.open_session()
    params = {"Name": "MainGain", "Value": -3}
    assert session.handle(Notification("Control.Set", params), 0.0) == []
    assert engine.core.named["MainGain"].value == -3.0


def test_logon_gates_everything_but_noop_logon_and_statusget() -> None:
    engine = Engine(Core(demo_design()), password="1234")
    session = engine.open_session()
    assert ok(session, "NoOp", {}) is True
    assert ok(session, "StatusGet", 0)["State"] == "Active"
    assert error(session, "Component.GetComponents") == (10, "Logon required")
    assert error(session, "Logon", {"User": "admin", "Password": "0000"}) == (10, "Logon required")
    assert ok(session, "Logon", {"User": "admin", "Password": "1234"}) is True
    assert ok(session, "Component.GetComponents")


def test_refused_logon_fails_even_with_the_right_pin() -> None:
    engine = Engine(Core(demo_design()), password="1234")
    engine.faults.refuse_logon = True
    session = engine.open_session()
    assert error(session, "Logon", {"User": "u", "Password": "1234"}) == (10, "Logon required")


def test_standby_answers_only_noop_statusget_and_logon(engine: Engine) -> None:
    engine.update_status(state="Standby")
    session = engine.open_session()
    assert ok(session, "NoOp") is True
    assert ok(session, "Logon", {"User": "", "Password": ""}) is True
    assert ok(session, "StatusGet")["State"] == "Standby"
    assert error(session, "Control.Get", ["MainGain"]) == (-32604, "Core is on Standby")


def test_invalid_frames_map_to_parse_error_or_invalid_request(engine: Engine) -> None:
    session = engine.open_session()
    for frame, code in ((b"{nope", -32700), (b"\xff", -32700), (b"[1]", -32600)):
        with pytest.raises(InvalidFrame) as info:
            decode_frame(frame)
        [reply] = session.handle_invalid(info.value)
        assert isinstance(reply, ErrorResponse)
        assert (reply.id, reply.code) == (None, code)


def test_change_group_first_poll_is_complete_then_only_changes(engine: Engine) -> None:
    session = engine.open_session()
    ok(session, "ChangeGroup.AddControl", {"Id": 1, "Controls": ["MainGain", "MainMute"]})
    first = ok(session, "ChangeGroup.Poll", {"Id": 1})
    assert first["Id"] == 1
    assert [c["Name"] for c in first["Changes"]] == ["MainGain", "MainMute"]
    assert ok(session, "ChangeGroup.Poll", {"Id": "1"})["Changes"] == []
    ok(session, "Control.Set", {"Name": "MainMute", "Value": True})
    [change] = ok(session, "ChangeGroup.Poll", {"Id": 1})["Changes"]
    assert (change["Name"], change["Value"], change["String"]) == ("MainMute", 1.0, "muted")


def test_autopoll_pushes_on_its_rate_with_empty_changes(engine: Engine) -> None:
    session = engine.open_session()
    session.take_notifications(0.0)
    ok(session, "ChangeGroup.AddControl", {"Id": "a", "Controls": ["MainGain"]})
    ok(session, "ChangeGroup.Poll", {"Id": "a"})
    assert ok(session, "ChangeGroup.AutoPoll", {"Id": "a", "Rate": 0.5}, now=10.0) is True
    assert session.next_deadline() == 10.5
    assert session.take_notifications(10.4) == []
    [first] = session.take_notifications(10.5)
    assert isinstance(first, Notification)
    assert first.method == "ChangeGroup.Poll"
    assert [c["Name"] for c in first.params["Changes"]] == ["MainGain"]  # everything, once
    [second] = session.take_notifications(11.0)
    assert isinstance(second, Notification)
    assert second.params == {"Id": "a", "Changes": []}
    assert session.next_deadline() == 11.5


def test_closing_a_session_drops_its_change_groups(engine: Engine) -> None:
    session = engine.open_session()
    ok(session, "ChangeGroup.AddControl", {"Id": "a", "Controls": ["MainGain"]})
    assert engine.change_group_count() == 1
    session.close()
    assert engine.change_group_count() == 0
    assert not engine.core.named["MainGain"].watchers


async def test_ramp_moves_the_value_over_trio_time(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    session = engine.open_session()
    start = trio.current_time()
    gain = {"Name": "MainGain", "Value": 8.0, "Ramp": 2.0}
    assert ok(session, "Control.Set", gain, now=start)["Value"] == -12.0  # not moved yet
    await trio.sleep(1.0)
    [mid] = ok(session, "Control.Get", ["MainGain"], now=trio.current_time())
    assert mid["Value"] == pytest.approx(-2.0, abs=1e-4)
    assert mid["String"] == "-2.0dB"
    await trio.sleep(5.0)
    [end] = ok(session, "Control.Get", ["MainGain"], now=trio.current_time())
    assert (end["Value"], end["String"]) == (8.0, "8.0dB")
    assert engine.core.statistics()["ramping"] == 0


async def test_ramping_control_shows_up_in_every_poll_until_it_lands(
    engine: Engine, autojump_clock: trio.testing.MockClock
) -> None:
    session = engine.open_session()
    ok(session, "ChangeGroup.AddControl", {"Id": "g", "Controls": ["MainGain"]})
    ok(session, "ChangeGroup.Poll", {"Id": "g"})
    ok(
        session,
        "Control.Set",
        {"Name": "MainGain", "Value": -2, "Ramp": 1.0},
        now=trio.current_time(),
    )
    values = []
    for _ in range(6):
        await trio.sleep(0.25)
        changes = ok(session, "ChangeGroup.Poll", {"Id": "g"}, now=trio.current_time())["Changes"]
        values.append([c["Value"] for c in changes])
    assert values[:4] == [[-9.5], [-7.0], [-4.5], [-2.0]]
    assert values[4:] == [[], []]


def test_snapshot_load_with_ramp_moves_members_toward_the_stored_values(engine: Engine) -> None:
    session = engine.open_session()
    assert ok(session, "Snapshot.Load", {"Name": "Scenes", "Bank": 2, "Ramp": 4.0}, now=0.0)
    [mid] = ok(
        session, "Component.Get", {"Name": "Lobby_BGM", "Controls": [{"Name": "gain"}]}, now=2.0
    )["Controls"]
    assert mid["Value"] == -16.0  # halfway from -12 to -20
    ok(
        session,
        "Component.Set",
        {"Name": "Bar", "Controls": [{"Name": "gain", "Value": 0}]},
        now=5.0,
    )
    ok(session, "Snapshot.Save", {"Name": "Scenes", "Bank": 5}, now=5.0)
    ok(session, "Snapshot.Load", {"Name": "Scenes", "Bank": 3}, now=5.0)
    ok(session, "Snapshot.Load", {"Name": "Scenes", "Bank": 5}, now=5.0)
    bar = engine.core.components["Bar"].controls
    assert (bar["gain"].value, bar["mute"].value) == (0.0, 0.0)
    assert engine.core.components["Lobby_BGM"].controls["gain"].value == -20.0
