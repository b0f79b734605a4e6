"""The stdio line reader: lines across chunks, oversize lines dropped, memory bounded."""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any, cast

import pytest
import trio
import trio.testing

from qsysd.server._stdio import _LineReader, _Writer


async def read_all(chunks: list[bytes], limit: int) -> list[str]:
    send, receive = trio.testing.memory_stream_pair()
    for chunk in chunks:
        await send.send_all(chunk)
    await send.aclose()
    return [line async for line in _LineReader(receive, limit)]


def ping(n: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"ping"}' % n


async def test_lines_are_split_across_and_within_chunks() -> None:
    one, two, three = ping(1), ping(2), ping(3)
    chunks = [one[:5], one[5:] + b"\n" + two[:9], two[9:] + b"\n\n" + three]
    assert await read_all(chunks, 100) == [one.decode(), two.decode(), three.decode()]


async def test_an_oversize_line_is_dropped_and_reading_goes_on() -> None:
    chunks = [b"x" * 30, b"y" * 30, b"z\n", ping(1) + b"\n"]
    with trio.fail_after(5):
        assert await read_all(chunks, 50) == [ping(1).decode()]


async def test_an_endless_line_is_refused_once_and_the_next_line_is_read() -> None:
    # How much the splitter may hold is tested in test_qrc_splitter.py; here: the door's answer.
    passed, answers = await read_answering([b"a" * 900] * 200 + [b"\n" + ping(7) + b"\n"], 1000)
    assert passed == [ping(7).decode()]
    assert [(a["id"], a["error"]["code"]) for a in answers] == [(None, -32600)]
    assert "over 1000 bytes" in answers[0]["error"]["message"]


class Answers:
    """A send stream that keeps what the reader answers."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    async def send_all(self, data: bytes) -> None:
        self.lines.extend(json.loads(line) for line in data.splitlines())

    async def wait_send_all_might_not_block(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def read_answering(chunks: list[bytes], limit: int = 100_000) -> tuple[list[str], list[Any]]:
    send, receive = trio.testing.memory_stream_pair()
    for chunk in chunks:
        await send.send_all(chunk)
    await send.aclose()
    answers = Answers()
    reader = _LineReader(receive, limit, writer=_Writer(cast(Any, answers)))
    with trio.fail_after(5):
        passed = [line async for line in reader]
    return passed, answers.lines


OK = b'{"jsonrpc":"2.0","id":9,"method":"ping"}\n'


@pytest.mark.parametrize(
    ("line", "code", "answer_id", "words"),
    [
        (b'{"jsonrpc":"2.0","id":1,"params":{"a":"\\ud800"}}', -32700, None, "surrogate"),
        (b"[" * 2000 + b"]" * 2000, -32700, None, "depth"),
        # deep enough for the SDK's parser to refuse (it would drop it), not for orjson's
        (b'{"jsonrpc":"2.0","id":2,"method":"x","params":{"a":%s}}' % (b"[" * 250 + b"]" * 250),
         -32600, 2, "nested deeper than 200"),
        (b'{"jsonrpc":"2.0","id":1,', -32700, None, "Parse error"),
        (b'{"jsonrpc":"2.0","id":1,"method":"x"}\xff', -32700, None, "UTF-8"),
        (b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":[1]}', -32600, 3, "params"),
        (b'{"jsonrpc":"2.0","id":4,"method":7}', -32600, 4, "method"),
        (b'{"jsonrpc":"1.0","id":5,"method":"ping"}', -32600, 5, "jsonrpc"),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600, None, "id"),
        (b'{"jsonrpc":"2.0","id":6}', -32600, 6, "neither"),
        (b"[]", -32600, None, "object"),
        (b"42", -32600, None, "object"),
    ],
)  # fmt: skip
async def test_every_unparseable_line_gets_a_json_rpc_error_answer_and_reading_goes_on(
    line: bytes, code: int, answer_id: Any, words: str
) -> None:
    passed, answers = await read_answering([line + b"\n" + OK])
    assert passed == [OK.decode().strip()]
    assert len(answers) == 1
    answer = answers[0]
    assert answer["jsonrpc"] == "2.0"
    assert answer["id"] == answer_id
    assert answer["error"]["code"] == code
    assert words in answer["error"]["message"]


async def test_an_over_long_line_is_answered_with_invalid_request() -> None:
    passed, answers = await read_answering([b"x" * 3000 + b"\n", OK], limit=1000)
    assert passed == [OK.decode().strip()]
    assert [a["error"]["code"] for a in answers] == [-32600]
    assert "1000 bytes" in answers[0]["error"]["message"]


async def test_responses_and_notifications_pass_unchanged() -> None:
    lines = [
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
        b'{"jsonrpc":"2.0","id":"s-1","result":{}}',
        b'{"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"no"}}',
    ]
    passed, answers = await read_answering([b"\n".join(lines) + b"\n"])
    assert passed == [line.decode() for line in lines]
    assert answers == []


async def test_held_requests_wait_for_the_event_and_others_pass_at_once() -> None:
    send, receive = trio.testing.memory_stream_pair()
    hold = trio.Event()
    reader = _LineReader(receive, 1000, hold=hold)
    listing = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    call = b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t"}}'
    passed: list[str] = []
    got_listing, got_call = trio.Event(), trio.Event()

    async def consume() -> None:
        async for line in reader:
            passed.append(line)
            (got_call if "tools/call" in line else got_listing).set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await send.send_all(listing + b"\n" + call + b"\n")
            await got_listing.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert passed == [listing.decode()]  # the tool call is held
            hold.set()
            await got_call.wait()
            await send.aclose()
    assert passed == [listing.decode(), call.decode()]


async def stop_while_asked(*client_lines: bytes, answer: bytes | None) -> tuple[list[str], bool]:
    """Lines passed on when a stop comes with ``client_lines`` read; whether reading ended
    before ``answer`` (when given) was written."""
    send, receive = trio.testing.memory_stream_pair()
    writer = _Writer(cast(Any, Answers()))
    reader = _LineReader(receive, writer=writer)
    passed: list[str] = []
    ended_early = False
    answered = False
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def read() -> None:
                nonlocal ended_early
                async for line in reader:
                    passed.append(line)
                ended_early = not answered and answer is not None

            nursery.start_soon(read)
            for line in client_lines:
                await send.send_all(line + b"\n")
            await trio.testing.wait_all_tasks_blocked()
            reader.stop()
            await trio.testing.wait_all_tasks_blocked()
            if answer is not None:
                answered = True
                await writer.write(answer.decode() + "\n")
    return passed, ended_early


async def test_a_stop_reads_no_more_and_ends_once_the_request_read_is_answered() -> None:
    call = b'{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{}}'
    answer = b'{"jsonrpc":"2.0","id":"call-1","result":{"content":[]}}'
    passed, ended_early = await stop_while_asked(call, answer=answer)
    assert passed == [call.decode()] and not ended_early


async def test_a_stop_does_not_wait_for_a_cancelled_request_or_a_notification() -> None:
    cancelled = b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4}}'
    note = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
    passed, _ = await stop_while_asked(ping(4), cancelled, note, answer=None)
    assert passed == [ping(4).decode(), cancelled.decode(), note.decode()]


async def test_an_answer_in_another_key_order_is_still_recognised() -> None:
    answer = b'{"result":{},"id":9,"jsonrpc":"2.0"}'
    passed, ended_early = await stop_while_asked(ping(9), answer=answer)
    assert passed == [ping(9).decode()] and not ended_early


async def test_a_refused_line_reusing_an_id_in_flight_does_not_end_the_wait() -> None:
    bad = b'{"jsonrpc":"1.0","id":5,"method":"ping"}'  # refused by the reader, with id 5
    answer = b'{"jsonrpc":"2.0","id":5,"result":{}}'
    passed, ended_early = await stop_while_asked(ping(5), bad, answer=answer)
    assert passed == [ping(5).decode()] and not ended_early


# -- on a real pipe: the reader reads before it waits, the writer writes before it awaits ----


def pipe_streams() -> tuple[trio.lowlevel.FdStream, trio.lowlevel.FdStream]:
    read_fd, write_fd = os.pipe()
    return trio.lowlevel.FdStream(read_fd), trio.lowlevel.FdStream(write_fd)


async def test_on_a_pipe_lines_come_as_written_and_end_at_eof() -> None:
    receive, send = pipe_streams()
    one, two = ping(1), ping(2)

    async def client() -> None:
        for piece in (one[:7], one[7:] + b"\n" + two[:3], two[3:] + b"\n"):
            await send.send_all(piece)
            await trio.sleep(0.01)  # the reader waits in between
        await send.aclose()

    with trio.fail_after(5):
        async with receive, trio.open_nursery() as nursery:
            nursery.start_soon(client)
            lines = [line async for line in _LineReader(receive)]
    assert lines == [one.decode(), two.decode()]


async def test_a_flood_of_lines_on_a_pipe_leaves_other_tasks_their_turn() -> None:
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 18)
    flood = b"".join(ping(n) + b"\n" for n in range(5000))  # 3 of the reader's chunks
    assert os.write(write_fd, flood) == len(flood)  # all there before the reader starts
    os.close(write_fd)
    receive = trio.lowlevel.FdStream(read_fd)
    ticks = 0
    ticks_seen: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    with trio.fail_after(10):
        async with receive, trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.lowlevel.checkpoint()
            async for _ in _LineReader(receive):  # it never has to wait for data
                ticks_seen.append(ticks)
            nursery.cancel_scope.cancel()
    assert len(ticks_seen) == 5000
    assert ticks_seen[-1] > ticks_seen[0]  # yet it let the others run between chunks


async def test_a_stop_ends_a_reader_waiting_on_an_empty_pipe() -> None:
    receive, send = pipe_streams()
    reader = _LineReader(receive)
    with trio.fail_after(5):
        async with receive, send, trio.open_nursery() as nursery:
            nursery.start_soon(lambda: send.send_all(ping(1) + b"\n"))
            lines = []
            async for line in reader:
                lines.append(line)
                reader.stop()  # the pipe stays open: only the stop ends the lines
    assert lines == [ping(1).decode()]


async def test_a_line_longer_than_the_pipe_holds_is_written_whole_and_alone() -> None:
    receive, send = pipe_streams()
    writer = _Writer(send)
    lines = [b"a" * 300_000 + b"\n", b"b" * 200_000 + b"\n", ping(3) + b"\n"]
    got = bytearray()

    async def drain() -> None:
        while data := await receive.receive_some(7_000):
            got.extend(data)
            await trio.lowlevel.checkpoint()

    with trio.fail_after(10):
        async with receive, trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            async with send, trio.open_nursery() as writers:  # at once: the lock orders them
                for line in lines:
                    writers.start_soon(writer.send, line)
    assert sorted(got.splitlines(keepends=True)) == sorted(lines)


async def test_writing_to_a_pipe_nobody_reads_raises_trios_error() -> None:
    receive, send = pipe_streams()
    await receive.aclose()
    writer = _Writer(send)
    with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
        await writer.send(ping(1) + b"\n")
    await send.aclose()
