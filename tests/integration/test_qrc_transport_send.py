"""TcpTransport's send on a real socket: frames whole and in order, whatever fits the buffer."""

from __future__ import annotations

import socket

import pytest
import trio

from qsysd.errors import TransportError
from qsysd.qrc import FrameDecoder, Message, Request, TcpTransport

WAIT = 10.0


def socket_pair(send_buffer: int | None = None) -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = trio.socket.socketpair()
    if send_buffer is not None:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    return trio.SocketStream(a), trio.SocketStream(b)


async def read_messages(stream: trio.SocketStream, count: int) -> list[Message]:
    decoder = FrameDecoder(max_frame_size=1 << 24)
    messages: list[Message] = []
    while len(messages) < count:
        message = decoder.next_message()
        if message is not None:
            messages.append(message)
            continue
        data = await stream.receive_some(4096)
        assert data, "the stream ended before every frame arrived"
        decoder.receive_data(bytes(data))
        await trio.lowlevel.checkpoint()  # a slow reader: the sender's buffer fills up
    return messages


async def test_concurrent_sends_larger_than_the_buffer_arrive_whole() -> None:
    ours, theirs = socket_pair(send_buffer=4096)
    transport = TcpTransport(ours, peer="socketpair")
    sent = [
        Request(method="Component.Set", params={"Name": f"c{i}", "Pad": "x" * size}, id=i)
        for i, size in enumerate([10, 200_000, 5, 300_000, 50, 100_000])
    ]
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            for message in sent:
                nursery.start_soon(transport.send, message)
            nursery.start_soon(transport.send_many, sent[:2])
            received = await read_messages(theirs, len(sent) + 2)
    # every frame whole (decoded equal to what was sent), send_many's two frames together
    expected = [*sent, *sent[:2]]
    assert sorted(received, key=repr) == sorted(expected, key=repr)
    assert any(received[k : k + 2] == sent[:2] for k in range(len(received) - 1))
    await transport.aclose()
    await theirs.aclose()


async def test_send_to_a_closed_peer_fails_and_breaks_the_transport() -> None:
    ours, theirs = socket_pair()
    transport = TcpTransport(ours, peer="socketpair")
    await theirs.aclose()
    message = Request(method="NoOp", params={}, id=1)
    with trio.fail_after(WAIT), pytest.raises(TransportError, match="socketpair: broken pipe"):
        for _ in range(3):  # the first send may still reach the socket's buffer
            await transport.send(message)
    with pytest.raises(TransportError, match="socketpair: connection broken during a send"):
        await transport.send(message)
    await transport.aclose()


async def test_send_after_close_fails_without_writing() -> None:
    ours, theirs = socket_pair()
    transport = TcpTransport(ours, peer="socketpair")
    await transport.aclose()
    with pytest.raises(TransportError, match="socketpair: connection closed"):
        await transport.send(Request(method="NoOp", params={}, id=1))
    await theirs.aclose()
