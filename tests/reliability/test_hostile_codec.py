"""The QRC codec, the stdio line reader and the client link, fed arbitrary bytes.

- The splitter and the frame decoder: no exception but the codec's own (InvalidFrame,
  FrameTooLarge), a buffer never past the frame limit plus one read, and every message they
  give out encodes and decodes back to itself.
- The stdio line reader: every line either passed on (and then the SDK's own parser takes it)
  or answered with a JSON-RPC error, never both and never neither.
- A client link to a fake Core on loopback that answers only garbage: every request ends in
  a QsysdError before its deadline, and the connection closes with a reason.

``QSYSD_HOSTILE_EXAMPLES`` scales the examples (default 25, as the tool tests).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings, strategies as st
from mcp import types

from qsysd.errors import FrameTooLarge, InvalidFrame, QsysdError
from qsysd.qrc import (
    FrameDecoder,
    RecordSplitter,
    decode_frame,
    encode_frame,
    open_qrc_connection,
    open_transport,
)
from qsysd.server._stdio import _LineReader, _Writer

EXAMPLES = int(os.environ.get("QSYSD_HOSTILE_EXAMPLES", "25"))
CODEC = settings(
    max_examples=EXAMPLES * 5, derandomize=True, database=None, deadline=None
)  # the codec is fast: five times the examples
WAIT = 10.0
#: Examples each check ran, for the record.
EXAMPLES_RUN: dict[str, int] = {}

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec=None), max_size=20),  # lone surrogates included
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=15,
)
IDS = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.floats(allow_nan=False))
#: Whole JSON-RPC objects of every shape the codec knows, and some it does not.
MESSAGES = st.one_of(
    st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "method": st.text(max_size=20), "id": IDS},
        optional={"params": JSON_VALUES},
    ),
    st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "result": JSON_VALUES, "id": IDS}),
    st.fixed_dictionaries(
        {
            "jsonrpc": st.just("2.0"),
            "id": IDS,
            "error": st.fixed_dictionaries({"code": st.integers(), "message": st.text()}),
        }
    ),
    st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5),
    JSON_VALUES,
)


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def encode(obj: Any) -> bytes:
    # ensure_ascii: lone surrogates go as escapes, as a peer's JSON encoder would send them
    return json.dumps(obj).encode()


#: Bytes as a Core (or an attacker) might send them: frames, junk, near misses, deep nesting.
CHUNKS = st.lists(
    st.one_of(
        st.binary(max_size=64),
        MESSAGES.map(encode),
        st.integers(1, 3000).map(lambda n: nested(n).encode()),
        st.sampled_from([b"\0", b"\0\0", b"{", b"}", b"\xff\xfe", b"NaN", b" \0"]),
    ),
    max_size=20,
)


def drain(decoder: FrameDecoder) -> list[Any]:
    """Every message and every refusal the decoder has ready."""
    out: list[Any] = []
    while True:
        try:
            message = decoder.next_message()
        except (InvalidFrame, FrameTooLarge) as exc:
            out.append(exc)
            continue
        if message is None:
            return out
        out.append(message)


@CODEC
@given(chunks=CHUNKS, limit=st.sampled_from([16, 256, 65536]))
def check_frame_decoder(chunks: list[bytes], limit: int) -> None:
    EXAMPLES_RUN["frame_decoder"] += 1
    decoder = FrameDecoder(max_frame_size=limit)
    for chunk in chunks:
        decoder.receive_data(chunk)
        for item in drain(decoder):
            if isinstance(item, Exception):
                assert str(item)  # a refusal says why
                continue
            assert decode_frame(encode_frame(item)[:-1]) == item
        assert decoder.buffered <= limit + len(chunk)


@CODEC
@given(chunks=st.lists(st.binary(max_size=300), max_size=30), limit=st.integers(1, 200))
def check_splitter(chunks: list[bytes], limit: int) -> None:
    EXAMPLES_RUN["splitter"] += 1
    splitter = RecordSplitter(b"\n", limit)
    out: list[bytes | None] = []
    for chunk in chunks:
        splitter.receive_data(chunk)
        while True:
            try:
                record = splitter.next_record()
            except FrameTooLarge:
                out.append(None)
                continue
            if record is None:
                break
            out.append(record)
        assert splitter.buffered <= limit + len(chunk)
    stream = b"".join(chunks)
    *whole, tail = stream.split(b"\n")
    expected = [r if len(r) <= limit else None for r in whole]
    if len(tail) > limit:  # refused as soon as it is known to be too long, not at its end
        expected.append(None)
    assert out == expected


@CODEC
@given(text=st.one_of(st.text(st.characters(codec=None)), MESSAGES.map(json.dumps)))
def check_decode_frame(text: str) -> None:
    EXAMPLES_RUN["decode_frame"] += 1
    try:
        message = decode_frame(text)
    except InvalidFrame as exc:
        assert str(exc)
    else:
        assert decode_frame(encode_frame(message)[:-1]) == message


class Answers:
    """A send stream that keeps the reader's error answers."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    async def send_all(self, data: bytes) -> None:
        self.lines.extend(orjson.loads(line) for line in data.splitlines())


LINES = st.lists(
    st.one_of(
        MESSAGES.map(json.dumps),
        # requests nested around the SDK's parser limit, which the reader must know
        st.integers(185, 215).map(
            lambda n: '{"jsonrpc":"2.0","id":7,"method":"x","params":{"a":' + nested(n) + "}}"
        ),
        st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
        st.just('{"jsonrpc":"2.0","id":1,"method":"ping"}'),
    ).map(lambda line: line.replace("\n", " ")),
    max_size=15,
)


@settings(
    max_examples=EXAMPLES * 3,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(lines=LINES, cut=st.integers(1, 100))
def check_line_reader(lines: list[str], cut: int) -> None:
    EXAMPLES_RUN["line_reader"] += 1
    trio.run(line_reader_one, lines, cut)


async def line_reader_one(lines: list[str], cut: int) -> None:
    data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")
    send, receive = trio.testing.memory_stream_pair()
    answers = Answers()
    reader = _LineReader(receive, writer=_Writer(cast(Any, answers)))
    passed: list[str] = []
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:

            async def consume() -> None:
                passed.extend([line async for line in reader])

            nursery.start_soon(consume)
            for start in range(0, len(data), cut):
                await send.send_all(data[start : start + cut])
            await send.aclose()
    for line in passed:
        # a request or notification the SDK cannot parse, it drops unanswered: none may reach
        # it (a malformed response gets no answer in JSON-RPC, so it may pass)
        if "method" in orjson.loads(line):
            types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    for answer in answers.lines:
        assert answer["error"]["code"] in (-32700, -32600) and answer["error"]["message"]
    non_blank = [line for line in data.split(b"\n") if line.strip()]
    assert len(passed) + len(answers.lines) == len(non_blank)


# -- the client link against a fake Core that answers garbage ---------------------------------


def never_ours(message: Any) -> Any:
    """A reply in the junk gets an id the link never sends: it must not answer a request."""
    if (
        isinstance(message, dict)
        and "id" in message
        and ("result" in message or "error" in message)
    ):
        return {**message, "id": 10**9}
    return message


JUNK = st.lists(
    st.one_of(st.binary(min_size=1, max_size=200), MESSAGES.map(never_ours).map(encode)),
    min_size=1,
    max_size=5,
)


@settings(max_examples=max(5, EXAMPLES // 2), derandomize=True, database=None, deadline=None)
@given(junk=JUNK, terminated=st.booleans())
def check_garbage_core(junk: list[bytes], terminated: bool) -> None:
    EXAMPLES_RUN["garbage_core"] += 1
    trio.run(garbage_core_one, junk, terminated)


async def garbage_core_one(junk: list[bytes], terminated: bool) -> None:
    """Each request fails with a QsysdError before its deadline; the link closes saying why."""
    frames = b"".join(g + (b"\0" if terminated else b"") for g in junk)

    async def fake_core(stream: trio.SocketStream) -> None:
        # the link hangs up on it: that is the point, not a failure of the fake Core
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            async with stream:
                while data := await stream.receive_some(65536):
                    # answer whatever came (a request, a keepalive) with the same junk
                    for _ in range(data.count(b"\0")):
                        await stream.send_all(frames)

    errors: list[str] = []
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(
            functools.partial(trio.serve_tcp, fake_core, 0, host="127.0.0.1")
        )
        port = listener.socket.getsockname()[1]
        with trio.fail_after(WAIT):
            async with (
                open_transport("127.0.0.1", port, max_frame_size=4096) as transport,
                open_qrc_connection(
                    transport, request_timeout=0.3, keepalive_interval=60, max_invalid_frames=3
                ) as connection,
            ):
                for _ in range(4):
                    try:
                        await connection.request("StatusGet", 0)
                    except QsysdError as exc:
                        errors.append(str(exc))
                # a timed-out request probes at once: the probe gets junk too, and the link
                # closes (stalled, or too many invalid frames) instead of hanging on
                reason = await connection.wait_closed()
        nursery.cancel_scope.cancel()
    assert len(errors) == 4, errors
    assert all("Core" in e or "127.0.0.1" in e for e in errors), errors
    assert "stalled" in str(reason) or "invalid frames" in str(reason), reason


# -- the tests, each recorded for docs/reliability.md -----------------------------------------

#: test name -> (its check, its key in EXAMPLES_RUN, what was tried, door, what held)
CHECKS: dict[str, tuple[Callable[[], None], str, str, str, str]] = {
    "test_the_frame_decoder_takes_any_bytes_and_every_message_round_trips": (
        check_frame_decoder, "frame_decoder",
        "QRC frame decoder fed arbitrary bytes in arbitrary reads", "codec",
        "only InvalidFrame or FrameTooLarge; buffer within the limit and one read; "
        "every message round-trips",
    ),
    "test_the_splitter_gives_each_short_record_whole_and_refuses_each_long_one_once": (
        check_splitter, "splitter", "record splitter fed arbitrary bytes", "codec",
        "each short record whole, each long one refused once; "
        "buffer within the limit and one read",
    ),
    "test_decode_frame_refuses_anything_but_a_message_with_invalid_frame": (
        check_decode_frame, "decode_frame", "decode_frame fed arbitrary text and JSON", "codec",
        "a message that round-trips, or InvalidFrame saying why",
    ),
    "test_every_stdio_line_is_passed_to_the_sdk_parseable_or_answered": (
        check_line_reader, "line_reader",
        "stdio line reader fed arbitrary lines in arbitrary reads", "stdio",
        "each line passed on (the SDK can parse it) or answered with a JSON-RPC "
        "error, exactly once",
    ),
    "test_a_link_to_a_core_answering_garbage_ends_in_a_clear_error": (
        check_garbage_core, "garbage_core", "client link to a fake Core answering only garbage",
        "QRC over TCP",
        "every request a clear error before its deadline; the link closes saying why",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CHECKS), ids=lambda name: name.removeprefix("test_"))
def test_codec_check(name: str, reliability: Any) -> None:
    check, key, case, door, outcome = CHECKS[name]
    EXAMPLES_RUN[key] = 0
    check()
    reliability.record(
        area="hostile input", case=case, door=door, trials=EXAMPLES_RUN[key], outcome=outcome
    )
