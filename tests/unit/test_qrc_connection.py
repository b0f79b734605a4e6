"""QrcConnection over in-memory streams, with a scripted Core on the other end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from qsysd.errors import LogonRequired, RequestTimeout, TransportError, UnknownControl
from qsysd.qrc import (
    ErrorResponse,
    FrameDecoder,
    Message,
    Notification,
    QrcConnection,
    Request,
    Response,
    TcpTransport,
    encode_frame,
    open_qrc_connection,
)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class ScriptedCore:
    """The far end of a memory stream: reads requests, writes whatever the test says."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder()

    async def receive(self) -> Request:
        while True:
            message = self.decoder.next_message()
            if message is not None:
                assert isinstance(message, Request)
                return message
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.decoder.receive_data(data)

    async def send(self, message: Message) -> None:
        await self.stream.send_all(encode_frame(message))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)


@asynccontextmanager
async def connected(
    *, keepalive: float | None = None, request_timeout: float = 5.0, **kw: Any
) -> AsyncIterator[tuple[QrcConnection, ScriptedCore]]:
    client, server = trio.testing.memory_stream_pair()
    transport = TcpTransport(client, peer="memory://core")
    async with open_qrc_connection(
        transport, name="main", request_timeout=request_timeout, keepalive_interval=keepalive, **kw
    ) as conn:
        yield conn, ScriptedCore(server)


async def test_pipelined_requests_match_out_of_order_replies() -> None:
    with trio.fail_after(5):
        async with connected() as (conn, core):
            results: dict[str, Any] = {}

            async def ask(name: str) -> None:
                results[name] = await conn.request("Component.Get", {"Name": name})

            async with trio.open_nursery() as nursery:
                for name in ("a", "b", "c"):
                    nursery.start_soon(ask, name)
                requests = [await core.receive() for _ in range(3)]
                assert len({r.id for r in requests}) == 3
                assert all(isinstance(r.id, int) for r in requests)
                for r in reversed(requests):
                    await core.send(Response(id=r.id, result=f"for-{r.params['Name']}"))
            assert results == {"a": "for-a", "b": "for-b", "c": "for-c"}


@pytest.mark.parametrize("echo", [float, str])
async def test_reply_matches_when_core_echoes_id_as_float_or_string(echo: Any) -> None:
    with trio.fail_after(5):
        async with connected() as (conn, core), trio.open_nursery() as nursery:

            async def serve() -> None:
                r = await core.receive()
                await core.send(Response(id=echo(r.id), result=True))

            nursery.start_soon(serve)
            assert await conn.request("NoOp", {}) is True


async def test_error_reply_raises_the_qrc_error_class() -> None:
    with trio.fail_after(5):
        async with connected() as (conn, core), trio.open_nursery() as nursery:

            async def serve() -> None:
                r = await core.receive()
                await core.send(ErrorResponse(id=r.id, code=8, message="Unknown control"))

            nursery.start_soon(serve)
            with pytest.raises(UnknownControl):
                await conn.request("Component.Set", {"Name": "x"})
            assert not conn.closed


async def test_request_without_reply_times_out_at_its_deadline(
    clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with connected(request_timeout=5.0) as (conn, _core):
            start = trio.current_time()
            with pytest.raises(RequestTimeout, match=r'Core "main" did not answer NoOp'):
                await conn.request("NoOp", {})
            assert trio.current_time() - start == pytest.approx(5.0)
            with pytest.raises(RequestTimeout):
                await conn.request("NoOp", {}, timeout=0.5)
            assert conn.statistics().timeouts == 2
            assert conn.statistics().in_flight == 0
            assert not conn.closed


async def test_late_reply_after_timeout_is_counted_and_ignored(
    clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with connected(request_timeout=1.0) as (conn, core):
            with pytest.raises(RequestTimeout):
                await conn.request("NoOp", {})
            r = await core.receive()
            await core.send(Response(id=r.id, result=True))
            async with trio.open_nursery() as nursery:

                async def serve() -> None:
                    r2 = await core.receive()
                    await core.send(Response(id=r2.id, result="second"))

                nursery.start_soon(serve)
                assert await conn.request("StatusGet", 0) == "second"
            assert conn.statistics().late_replies == 1


async def test_reader_death_fails_every_pending_request_at_once(
    clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with connected(request_timeout=30.0) as (conn, core):
            failures: list[BaseException] = []

            async def ask() -> None:
                try:
                    await conn.request("Component.GetControls", {"Name": "x"})
                except TransportError as exc:
                    failures.append(exc)

            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(ask)
                for _ in range(5):
                    await core.receive()
                start = trio.current_time()
                await core.stream.aclose()
            assert trio.current_time() - start < 1.0
            assert len(failures) == 5
            assert conn.closed
            assert isinstance(await conn.wait_closed(), TransportError)
            with pytest.raises(TransportError):
                await conn.request("NoOp", {})


async def test_notifications_reach_subscribers_and_a_failing_handler_is_contained() -> None:
    with trio.fail_after(5):
        async with connected() as (conn, core):
            got: list[Any] = []
            done = trio.Event()

            def broken(params: Any) -> None:
                raise RuntimeError("handler bug")

            def collect(params: Any) -> None:
                got.append(params)
                if len(got) == 2:
                    done.set()

            conn.on_notification("EngineStatus", broken)
            conn.on_notification("EngineStatus", collect)
            remove = conn.on_notification("ChangeGroup.Poll", collect)
            remove()
            await core.send(Notification("ChangeGroup.Poll", {"Id": "1", "Changes": []}))
            await core.send(Notification("EngineStatus", {"State": "Active"}))
            await core.send(Notification("EngineStatus", {"State": "Standby"}))
            await done.wait()
            assert got == [{"State": "Active"}, {"State": "Standby"}]
            assert not conn.closed


async def test_frames_split_into_single_bytes_are_reassembled() -> None:
    with trio.fail_after(5):
        async with connected() as (conn, core), trio.open_nursery() as nursery:

            async def serve() -> None:
                r = await core.receive()
                for byte in encode_frame(Response(id=r.id, result={"ok": [1, 2]})):
                    await core.send_raw(bytes([byte]))

            nursery.start_soon(serve)
            assert await conn.request("StatusGet", 0) == {"ok": [1, 2]}


async def test_a_few_invalid_frames_are_tolerated_and_counted() -> None:
    with trio.fail_after(5):
        async with connected(max_invalid_frames=5) as (conn, core), trio.open_nursery() as n:

            async def serve() -> None:
                r = await core.receive()
                await core.send_raw(b"not json\0[1,2]\0\xff\xfe\0")
                await core.send(Response(id=r.id, result=True))

            n.start_soon(serve)
            assert await conn.request("NoOp", {}) is True
            assert conn.statistics().invalid_frames == 3
            assert not conn.closed


async def test_a_stream_of_garbage_drops_the_connection() -> None:
    with trio.fail_after(5):
        async with connected(max_invalid_frames=5) as (conn, core):
            await core.send_raw(b"garbage\0" * 20)
            reason = await conn.wait_closed()
            assert "invalid frames" in str(reason)
            assert conn.statistics().invalid_frames == 6


async def test_keepalive_sends_noop_on_every_interval(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(600):
        async with connected(keepalive=20.0) as (conn, core):
            seen: list[float] = []
            start = trio.current_time()
            for _ in range(4):
                r = await core.receive()
                assert r.method == "NoOp"
                seen.append(trio.current_time() - start)
                await core.send(Response(id=r.id, result=True))
            assert seen == pytest.approx([20.0, 40.0, 60.0, 80.0])
            assert not conn.closed


async def test_unanswered_keepalive_declares_the_connection_dead(
    clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(600):
        async with connected(keepalive=20.0, request_timeout=5.0) as (conn, _core):
            start = trio.current_time()
            reason = await conn.wait_closed()
            assert "keepalive got no answer" in str(reason)
            assert trio.current_time() - start == pytest.approx(25.0)


async def test_logon_with_wrong_password_raises_without_the_password() -> None:
    with trio.fail_after(5):
        async with connected() as (conn, core), trio.open_nursery() as nursery:

            async def serve() -> None:
                r = await core.receive()
                assert r.params == {"User": "admin", "Password": "s3cr3t-pin"}
                await core.send(ErrorResponse(id=r.id, code=10, message="Logon required"))

            nursery.start_soon(serve)
            with pytest.raises(LogonRequired) as info:
                await conn.logon("admin", "s3cr3t-pin")
            text = str(info.value) + repr(info.value) + str(info.value.__cause__)
            assert "s3cr3t-pin" not in text
            assert "wrong username or password" in text


async def test_logon_accepts_true() -> None:
    with trio.fail_after(5):
        async with connected() as (conn, core), trio.open_nursery() as nursery:

            async def serve() -> None:
                r = await core.receive()
                await core.send(Response(id=r.id, result=True))

            nursery.start_soon(serve)
            await conn.logon("admin", "1234")


async def test_cancelled_request_leaves_nothing_pending() -> None:
    with trio.fail_after(5):
        async with connected() as (conn, _core):
            with trio.move_on_after(0.01):
                await conn.request("NoOp", {})
            assert conn.statistics().in_flight == 0


async def test_closing_the_block_closes_the_transport() -> None:
    with trio.fail_after(5):
        async with connected() as (conn, core):
            pass
        assert conn.closed
        assert await core.stream.receive_some(10) == b""


async def test_a_batch_taken_in_the_reader_sees_replies_in_order_with_notifications() -> None:
    # A poll's reply then a push read in the same bytes: the reply must be taken first, or its
    # older values would overwrite the push's newer ones.
    events: list[str] = []
    with trio.fail_after(5):
        async with connected() as (conn, core), trio.open_nursery() as nursery:
            conn.on_notification("ChangeGroup.Poll", lambda params: events.append("push"))

            def on_reply(index: int, reply: Response | ErrorResponse, latency: float) -> None:
                assert isinstance(reply, Response)
                events.append(f"reply {index} {reply.result}")

            async def serve() -> None:
                first, second = await core.receive(), await core.receive()
                push = Notification("ChangeGroup.Poll", {"Id": "1", "Changes": []})
                await core.send_raw(
                    encode_frame(Response(first.id, "a"))
                    + encode_frame(push)
                    + encode_frame(ErrorResponse(second.id, 6, "no group"))
                )

            nursery.start_soon(serve)
            answers: list[str] = []

            def on_error(index: int, reply: Response | ErrorResponse, latency: float) -> None:
                if isinstance(reply, ErrorResponse):
                    answers.append(f"error {index} {reply.code}")
                else:
                    on_reply(index, reply, latency)

            await conn.request_batch(
                "ChangeGroup.Poll", [{"Id": "1"}, {"Id": "2"}], on_error, in_reader=True
            )
            assert events == ["reply 0 a", "push"]
            assert answers == ["error 1 6"]
            assert conn.statistics().in_flight == 0
