"""The stdio line reader: lines across chunks, oversize lines dropped, memory bounded."""

from __future__ import annotations

import trio
import trio.testing

from qsysd.server._stdio import _LineReader


async def read_all(chunks: list[bytes], limit: int) -> list[str]:
    send, receive = trio.testing.memory_stream_pair()
    for chunk in chunks:
        await send.send_all(chunk)
    await send.aclose()
    return [line async for line in _LineReader(receive, limit)]


async def test_lines_are_split_across_and_within_chunks() -> None:
    chunks = [b'{"a":', b"1}\n{", b'"b":2}\n\n{"c":3}']
    assert await read_all(chunks, 100) == ['{"a":1}', '{"b":2}', '{"c":3}']


async def test_an_oversize_line_is_dropped_and_reading_goes_on() -> None:
    chunks = [b"x" * 30, b"y" * 30, b"z\n", b"ok\n"]
    with trio.fail_after(5):
        assert await read_all(chunks, 50) == ["ok"]


async def test_an_endless_line_without_newline_never_grows_past_the_limit() -> None:
    send, receive = trio.testing.memory_stream_pair()
    reader = _LineReader(receive, 1000)
    lines: list[str] = []

    async def consume() -> None:
        async for line in reader:
            lines.append(line)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            for _ in range(200):
                await send.send_all(b"a" * 900)
            await send.send_all(b"\nlast\n")
            await send.aclose()
    assert lines == ["last"]
