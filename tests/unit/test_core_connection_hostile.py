"""QrcConnection against odd frames: ids never sent, handlers that cannot read a push."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from qsysd.errors import InvalidReply, RequestTimeout
from qsysd.qrc import (
    FrameDecoder,
    Notification,
    QrcConnection,
    Request,
    Response,
    TcpTransport,
    encode_frame,
    open_qrc_connection,
)


@asynccontextmanager
async def connected(**kw: Any) -> AsyncIterator[tuple[QrcConnection, trio.abc.Stream]]:
    client, server = trio.testing.memory_stream_pair()
    transport = TcpTransport(client, peer="memory://core")
    async with open_qrc_connection(
        transport, name="main", request_timeout=5.0, keepalive_interval=None, **kw
    ) as conn:
        yield conn, server


async def answer_one(server: trio.abc.Stream, *before: bytes) -> None:
    """Read one request; send ``before`` frames, then its answer."""
    decoder = FrameDecoder()
    while (message := decoder.next_message()) is None:
        decoder.receive_data(await server.receive_some(65536))
    assert isinstance(message, Request)
    for frame in before:
        await server.send_all(frame)
    await server.send_all(encode_frame(Response(message.id, True)))


@pytest.mark.parametrize("msg_id", ["²", "٣", "①", "1" * 5000, "-1"])
async def test_a_reply_with_an_odd_string_id_is_dropped_and_the_connection_stays(
    msg_id: str,
) -> None:
    with trio.fail_after(5):
        async with connected() as (conn, server):
            odd = b'{"jsonrpc":"2.0","result":true,"id":"%s"}\0' % msg_id.encode()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer_one, server, odd)
                assert await conn.request("NoOp", {}) is True
            assert not conn.closed
            stats = conn.statistics()
            assert stats.wrong_ids == 1 and stats.late_replies == 0 and stats.in_flight == 0


async def test_a_push_its_handler_cannot_read_counts_as_an_invalid_frame() -> None:
    seen: list[Any] = []

    def handler(params: Any) -> None:
        if not isinstance(params, dict):
            raise InvalidReply("ChangeGroup.Poll carried null, expected an object")
        seen.append(params)

    with trio.fail_after(5):
        async with connected(max_invalid_frames=2) as (conn, server):
            conn.on_notification("ChangeGroup.Poll", handler)
            bad = encode_frame(Notification("ChangeGroup.Poll", None))
            good = encode_frame(Notification("ChangeGroup.Poll", {"Id": "1"}))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer_one, server, bad, good, bad)
                assert await conn.request("NoOp", {}) is True
            assert seen == [{"Id": "1"}]
            assert conn.statistics().invalid_frames == 2 and not conn.closed
            await server.send_all(bad)  # the third within the window: dropped
            reason = await conn.wait_closed()
            assert "3 invalid frames" in str(reason)


async def test_requests_that_time_out_or_are_cancelled_leave_no_pending_entry() -> None:
    with trio.fail_after(5):
        async with connected() as (conn, _server):
            for _ in range(20):
                with trio.move_on_after(0.001):
                    await conn.request("NoOp", {})
            with pytest.raises(RequestTimeout, match="did not answer"):
                await conn.request("NoOp", {}, timeout=0.001)
            assert conn.statistics().in_flight == 0
            assert not conn._pending
