"""CoreLink against a hostile Core: right JSON-RPC shape, wrong content. It never dies.

The Core here is a tiny raw QRC server (``trio.serve_tcp`` on 127.0.0.1, port 0) that answers
like a Core until a test tells it to answer a method with crafted content, or pushes crafted
frames itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any

import attrs
import pytest
import trio

from qsysd.config import CoreConfig
from qsysd.core import Backoff, CoreLink
from qsysd.errors import RequestTimeout
from qsysd.qrc import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, Request
from qsysd.state import ComponentInfo, ControlInfo, ControlRef, ControlValue, StateStore

WAIT = 10.0

Reply = Callable[[Any], Any]  # params -> a whole JSON-RPC object minus its id, or None
SILENT = object()  # a Reply's answer: say nothing


@attrs.frozen
class RawResult:
    """A Reply's answer whose result is this JSON text, as it is."""

    text: str


STATUS = {
    "Platform": "Core 110f",
    "State": "Active",
    "DesignName": "Hostile",
    "DesignCode": "hostile0001",
    "IsRedundant": False,
    "IsEmulator": True,
    "Status": {"Code": 0, "String": "OK"},
}
COMPONENTS = [
    {"Name": "Gain1", "Type": "gain", "ID": "Gain1", "Properties": []},
    {"Name": "Gain2", "Type": "gain", "ID": "Gain2", "Properties": []},
    {"Name": "Gain3", "Type": "gain", "ID": "Gain3", "Properties": []},
]


def gain_controls(name: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Controls": [
            {
                "Name": "gain",
                "Type": "Float",
                "Value": -10.0,
                "String": "-10.0dB",
                "Position": 0.75,
                "ValueMin": -100.0,
                "ValueMax": 20.0,
                "Direction": "Read/Write",
            }
        ],
    }


def result(value: Any) -> dict[str, Any]:
    return {"result": value}


def error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@attrs.define(eq=False)
class HostileCore:
    """Answers like a Core, except where ``replies`` says otherwise; pushes what it is told."""

    port: int = 0
    replies: dict[str, Reply] = attrs.Factory(dict)
    streams: list[trio.SocketStream] = attrs.Factory(list)
    connections: int = 0
    connected: trio.Event = attrs.Factory(trio.Event)
    status_on_connect: bool = True

    def default(self, method: str, params: Any) -> dict[str, Any]:
        if method == "StatusGet":
            return result(STATUS)
        if method == "Component.GetComponents":
            return result(COMPONENTS)
        if method == "Component.GetControls":
            return result(gain_controls(params["Name"]))
        return result(True)

    async def push(self, obj: Any) -> None:
        """Send one raw frame (a JSON value, or bytes as they are) on every connection."""
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode() + b"\0"
        for stream in list(self.streams):
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(data)

    async def serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        self.streams.append(stream)
        self.connected.set()
        decoder = FrameDecoder()
        try:
            if self.status_on_connect:
                status = {"jsonrpc": "2.0", "method": "EngineStatus", "params": STATUS}
                await self.push_on(stream, status)
            while data := await stream.receive_some(65536):
                decoder.receive_data(data)
                while (message := decoder.next_message()) is not None:
                    if isinstance(message, Request):
                        await self.answer(stream, message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.streams.remove(stream)

    async def push_on(self, stream: trio.SocketStream, obj: Any) -> None:
        await stream.send_all(json.dumps(obj).encode() + b"\0")

    async def answer(self, stream: trio.SocketStream, request: Request) -> None:
        override = self.replies.get(request.method)
        reply = override(request.params) if override else None
        if reply is SILENT:
            return
        if isinstance(reply, RawResult):  # JSON text json.dumps would not write (1e400)
            frame = f'{{"jsonrpc":"2.0","id":{json.dumps(request.id)},"result":{reply.text}}}'
            await stream.send_all(frame.encode() + b"\0")
            return
        if reply is None:
            reply = self.default(request.method, request.params)
        await self.push_on(stream, {"jsonrpc": "2.0", "id": request.id, **reply})
        if request.method == "ChangeGroup.AutoPoll":
            # the first push of a group primes the subscription
            poll = {"Id": request.params["Id"], "Changes": []}
            await self.push_on(
                stream, {"jsonrpc": "2.0", "method": "ChangeGroup.Poll", "params": poll}
            )

    async def wait_connections(self, count: int) -> None:
        while self.connections < count:
            self.connected = trio.Event()
            await self.connected.wait()


@asynccontextmanager
async def hostile_core() -> AsyncIterator[HostileCore]:
    core = HostileCore()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, core.serve, 0, host="127.0.0.1"))
        core.port = listeners[0].socket.getsockname()[1]
        yield core
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_link(
    core: HostileCore, store: StateStore | None = None, **options: Any
) -> AsyncIterator[CoreLink]:
    """A link to ``core``; the test fails if :meth:`CoreLink.run` ends before ``stop()``."""
    config = CoreConfig(
        name="main", host="127.0.0.1", port=core.port, request_timeout=1.0, keepalive_interval=5.0
    )
    options.setdefault("backoff", Backoff(initial=0.01, maximum=0.05, healthy_after=1.0))
    link = CoreLink(config, store or StateStore(), **options)
    stopped = False

    async def run(*, task_status: trio.TaskStatus[None]) -> None:
        await link.run(task_status=task_status)
        assert stopped, "CoreLink.run returned without stop()"

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        try:
            yield link
        finally:
            stopped = True
            link.stop()


async def roundtrip(link: CoreLink) -> None:
    """A request answered on the same connection: every frame pushed before it was read."""
    assert await link.request("StatusGet", 0)


@pytest.mark.parametrize(
    "bad",
    [
        {"Components": "none"},
        "components",
        True,
        None,
        {"Id": 1},
    ],
)
async def test_unreadable_get_components_keeps_the_store_and_retries(bad: Any) -> None:
    store = StateStore()
    ref = ControlRef("main", "Gain1", "gain")
    # what an earlier run discovered (or a snapshot restored) must survive a bad answer
    store.replace_design(
        "main",
        "older",
        [ComponentInfo("main", "Gain1", "gain", "Gain1")],
        [ControlInfo(ref, "Float", "Read/Write")],
        [ControlValue(ref, -5.0, "-5.0dB", 0.8)],
    )
    with trio.fail_after(WAIT):
        async with hostile_core() as core:
            core.replies["Component.GetComponents"] = lambda _: result(bad)
            async with running_link(core, store) as link:
                await core.wait_connections(3)  # refused three times, reconnected each time
                assert not link.connected
                assert store.read(ref).value is not None
                assert store.read(ref).value.value == -5.0  # type: ignore[union-attr]
                assert "Component.GetComponents returned" in (link.status().last_error or "")
                del core.replies["Component.GetComponents"]
                await link.wait_connected()
                assert [c.name for c in store.components("main")] == ["Gain1", "Gain2", "Gain3"]


async def test_one_failing_component_does_not_fail_discovery() -> None:
    store = StateStore()
    failures = {
        "Gain2": error(7, "Unknown component name"),
        "Gain3": error(8, "Unknown control"),
    }
    with trio.fail_after(WAIT):
        async with hostile_core() as core:

            def get_controls(params: Any) -> Any:
                return failures.get(params["Name"])

            core.replies["Component.GetControls"] = get_controls
            async with running_link(core, store) as link:
                await link.wait_connected()
                assert [c.name for c in store.components("main")] == ["Gain1"]
                assert store.read(ControlRef("main", "Gain1", "gain")).value is not None
                # incomplete: the next connection discovers again
                assert store.design_code("main") is None
                failures.clear()
                await core.push(b"garbage\0" * 11)  # drop the connection: too many bad frames
                await link.wait_disconnected()
                await link.wait_connected()
                assert [c.name for c in store.components("main")] == ["Gain1", "Gain2", "Gain3"]
                assert store.design_code("main") == "hostile0001"


@pytest.mark.parametrize(
    "status",
    [
        json.dumps(STATUS).replace('"Code": 0', '"Code": 1e400'),
        json.dumps(STATUS).replace('"Code": 0', '"Code": ' + "9" * 400),
        json.dumps(STATUS).replace('"State": "Active"', '"State": 1'),
        "true",
        json.dumps([STATUS]),
    ],
)
async def test_odd_status_get_results_are_served(status: str) -> None:
    with trio.fail_after(WAIT):
        async with hostile_core() as core:
            core.status_on_connect = False  # the link learns the status from StatusGet alone
            core.replies["StatusGet"] = lambda _: RawResult(status)
            async with running_link(core) as link:
                await link.wait_connected()
                await roundtrip(link)
                assert link.connected and link.statistics().reconnects == 0
                assert -(2**31) < link.status().status_code < 2**31


@pytest.mark.parametrize("msg_id", ["²", "٣", "1e400", "-1", [1], {"a": 1}, 1e300, 1.5])
async def test_replies_with_ids_never_sent_are_dropped(msg_id: Any) -> None:
    with trio.fail_after(WAIT):
        async with hostile_core() as core, running_link(core) as link:
            await link.wait_connected()
            await core.push({"jsonrpc": "2.0", "id": msg_id, "result": True})
            await core.push({"jsonrpc": "2.0", "result": {"Platform": "x"}})  # for a notification
            await core.push(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "x"}}
            )
            await roundtrip(link)
            assert link.connected and link.statistics().reconnects == 0


@pytest.mark.parametrize(
    "params",
    [
        None,
        [],
        "Active",
        {"State": 5, "DesignCode": ["x"], "IsRedundant": "maybe", "Status": {"Code": "zero"}},
        {"Status": {"Code": 1e400}},
        {},  # missing members keep their values
    ],
)
async def test_odd_engine_status_pushes_leave_the_session_alone(params: Any) -> None:
    with trio.fail_after(WAIT):
        async with hostile_core() as core, running_link(core) as link:
            await link.wait_connected()
            await core.push({"jsonrpc": "2.0", "method": "EngineStatus", "params": params})
            await roundtrip(link)
            status = link.status()
            assert status.state == "Active" and status.design_code == "hostile0001"
            stats = link.statistics()
            assert stats.reconnects == 0 and stats.discoveries == 1


@pytest.mark.parametrize(
    "params",
    [
        None,
        "1",
        {"Id": "qsysd-main-1", "Changes": "everything"},
        {"Id": "qsysd-main-1", "Changes": {"Name": "gain"}},
        {"Id": {"x": 1}, "Changes": []},
        {"Id": "qsysd-main-1", "Changes": [{"Value": 1}, "gain", {"Name": 5}]},
        {"Id": "qsysd-main-1", "Changes": [{"Component": "Nope", "Name": "gain", "Value": 1}]},
        {"Id": "qsysd-main-1", "Changes": [{"Component": 7, "Name": "gain", "Value": 1}]},
    ],
)
async def test_odd_poll_pushes_change_nothing_and_keep_the_link(params: Any) -> None:
    store = StateStore()
    with trio.fail_after(WAIT):
        async with hostile_core() as core, running_link(core, store) as link:
            await link.wait_connected()
            before = store.statistics()
            await core.push({"jsonrpc": "2.0", "method": "ChangeGroup.Poll", "params": params})
            await roundtrip(link)
            after = store.statistics()
            assert after.changes_applied == before.changes_applied
            assert after.controls == before.controls  # no control made up from a bad item
            assert link.connected and link.statistics().reconnects == 0


async def test_odd_values_in_a_poll_push_are_stored_sanely() -> None:
    store = StateStore()
    ref = ControlRef("main", "Gain1", "gain")
    changes: Sequence[dict[str, Any]] = [
        {
            "Component": "Gain1",
            "Name": "gain",
            "Value": 10**400,
            "String": 5,
            "Position": 7,
            "Choices": 3,
        },
    ]
    with trio.fail_after(WAIT):
        async with hostile_core() as core, running_link(core, store) as link:
            await link.wait_connected()
            push = {"Id": "qsysd-main-1", "Changes": changes}
            await core.push({"jsonrpc": "2.0", "method": "ChangeGroup.Poll", "params": push})
            await roundtrip(link)
            value = store.read(ref).value
            assert value is not None
            assert value.value is None and value.position == 1.0
            assert "Choices" not in value.metadata
            assert link.connected


async def test_an_unexpected_error_in_a_session_is_logged_and_reconnected() -> None:
    class FlakyStore(StateStore):
        failures = 1

        def replace_design(self, *args: Any, **kwargs: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("a bug in the store")
            super().replace_design(*args, **kwargs)

    store = FlakyStore()
    with trio.fail_after(WAIT):
        async with hostile_core() as core, running_link(core, store) as link:
            await link.wait_connected()
            assert core.connections == 2
            assert store.failures == 0


async def test_an_unexpected_error_in_a_notification_path_is_survived() -> None:
    class FlakyStore(StateStore):
        def confirm(self, core: str) -> None:
            raise RuntimeError("a bug on the push path")

    with trio.fail_after(WAIT):
        async with hostile_core() as core, running_link(core, FlakyStore()) as link:
            await link.wait_connected()
            await roundtrip(link)
            assert link.connected


async def test_a_component_the_core_never_describes_fails_setup_not_the_link() -> None:
    with trio.fail_after(WAIT):
        async with hostile_core() as core:
            silent = {"Gain2"}
            core.replies["Component.GetControls"] = lambda p: (
                SILENT if p["Name"] in silent else None
            )
            async with running_link(core, request_timeout=0.2) as link:
                await core.wait_connections(2)
                assert not link.connected
                assert "did not answer Component.GetControls" in (link.status().last_error or "")
                silent.clear()
                await link.wait_connected()


async def test_replies_with_wrong_ids_are_named_as_the_cause_of_a_timeout() -> None:
    with trio.fail_after(WAIT):
        async with hostile_core() as core, running_link(core) as link:
            await link.wait_connected()
            core.replies["Component.Get"] = lambda _: {"id": 987654, **result({"Controls": []})}
            with pytest.raises(RequestTimeout) as info:
                await link.request("Component.Get", {"Name": "Gain1", "Controls": []})
            assert "ids it was never sent arrived instead" in str(info.value)
            assert "last 987654" in str(info.value)
            assert "ids it was never sent" in (link.status().last_error or "")


async def test_an_oversized_frame_is_named_as_the_cause_of_a_timeout() -> None:
    asked = trio.Event()

    def ask(_: Any) -> object:
        asked.set()
        return SILENT

    with trio.fail_after(WAIT):
        async with hostile_core() as core, running_link(core) as link:
            await link.wait_connected()
            core.replies["Component.Get"] = ask
            async with trio.open_nursery() as nursery:

                async def push_huge() -> None:
                    await asked.wait()
                    await core.push(b'{"result":"' + b"a" * DEFAULT_MAX_FRAME_SIZE + b'"}\0')

                nursery.start_soon(push_huge)
                with pytest.raises(RequestTimeout) as info:
                    await link.request("Component.Get", {"Name": "Gain1", "Controls": []})
            assert "an invalid frame arrived instead (FrameTooLarge: frame of" in str(info.value)
            assert "FrameTooLarge" in (link.status().last_error or "")
            await roundtrip(link)  # one oversized frame does not end the connection


async def test_a_push_read_while_subscribing_does_not_make_the_core_live() -> None:
    # Each group's first push comes right after its AutoPoll, while the subscription is still
    # setting up; the poll after the adds is never answered. Only a push read after the adds
    # may make the Core live (or, failing that, the priming wait running out).
    polled = trio.Event()

    def poll(_: Any) -> Any:
        polled.set()
        return SILENT

    async with hostile_core() as core:
        core.replies["ChangeGroup.Poll"] = poll
        with trio.fail_after(WAIT):
            async with running_link(core) as link:
                await polled.wait()
                await trio.sleep(1.3)  # the poll timed out (1 s); the priming wait runs on
                assert not link.connected
                for index in range(3):
                    params = {"Id": f"qsysd-main-{index + 1}", "Changes": []}
                    await core.push(
                        {"jsonrpc": "2.0", "method": "ChangeGroup.Poll", "params": params}
                    )
                with trio.fail_after(0.5):
                    await link.wait_connected()
