"""The sans-IO QRC codec: NUL framing, tolerance of real peers, errors, round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from qsysd.errors import FrameTooLarge, InvalidFrame, ParseError, UnknownChangeGroup
from qsysd.qrc import (
    DEFAULT_MAX_FRAME_SIZE,
    ErrorResponse,
    FrameDecoder,
    Message,
    Notification,
    Request,
    Response,
    decode_frame,
    encode_frame,
    encode_text,
)
from qsysd.qrc._framing import _decode_stdlib, _encode_stdlib
from qsysd.qrc._messages import to_wire


def decode_all(decoder: FrameDecoder, data: bytes = b"") -> list[Message]:
    decoder.receive_data(data)
    out = []
    while (message := decoder.next_message()) is not None:
        out.append(message)
    return out


def test_default_frame_limit_is_32_mib() -> None:
    assert DEFAULT_MAX_FRAME_SIZE == 32 * 1024 * 1024
    assert FrameDecoder().max_frame_size == DEFAULT_MAX_FRAME_SIZE


def test_encode_frame_is_compact_utf8_json_with_nul() -> None:
    frame = encode_frame(Request("Component.Set", {"Name": "Zoné"}, 1))
    assert frame.endswith(b"\0")
    assert frame.count(b"\0") == 1
    assert json.loads(frame[:-1].decode("utf-8")) == {
        "jsonrpc": "2.0",
        "method": "Component.Set",
        "params": {"Name": "Zoné"},
        "id": 1,
    }
    assert b" " not in frame


def test_wire_shapes_match_the_protocol() -> None:
    assert json.loads(encode_text(Notification("EngineStatus", {"State": "Active"}))) == {
        "jsonrpc": "2.0",
        "method": "EngineStatus",
        "params": {"State": "Active"},
    }
    assert json.loads(encode_text(Response("x", True))) == {
        "jsonrpc": "2.0",
        "result": True,
        "id": "x",
    }
    assert json.loads(encode_text(ErrorResponse(None, -32700, "Parse error"))) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "Parse error"},
    }


def test_request_without_params_omits_the_member() -> None:
    assert "params" not in json.loads(encode_text(Request("NoOp", None, 1)))


def test_several_frames_in_one_chunk_decode_in_order() -> None:
    data = encode_frame(Request("NoOp", {}, 1)) + encode_frame(Request("StatusGet", 0, 2))
    messages = decode_all(FrameDecoder(), data)
    assert messages == [Request("NoOp", {}, 1), Request("StatusGet", 0, 2)]


def test_frame_split_byte_by_byte_decodes_once_complete() -> None:
    frame = encode_frame(Response(7, {"Name": "Gain"}))
    decoder = FrameDecoder()
    for byte in frame[:-1]:
        assert decode_all(decoder, bytes([byte])) == []
    assert decoder.buffered == len(frame) - 1
    assert decode_all(decoder, b"\0") == [Response(7, {"Name": "Gain"})]
    assert decoder.buffered == 0


def test_whitespace_before_nul_and_between_frames_is_accepted() -> None:
    data = (
        b'{"jsonrpc":"2.0","result":true,"id":1}\n\r\0\r\n\0  {"jsonrpc":"2.0","id":2,"result":1}\0'
    )
    assert decode_all(FrameDecoder(), data) == [Response(1, True), Response(2, 1)]


def test_pretty_printed_result_is_accepted() -> None:
    data = b'{\n  "jsonrpc": "2.0",\n  "result": {\n    "a": [1, 2]\n  },\n  "id": 3\n}\0'
    assert decode_all(FrameDecoder(), data) == [Response(3, {"a": [1, 2]})]


@pytest.mark.parametrize("msg_id", ["crestron", "6f1c1a8e-1b1f-4f4c-9d0e-2b1b2b4b5b6b", 17, 2.5])
def test_ids_are_kept_unchanged(msg_id: object) -> None:
    frame = json.dumps({"jsonrpc": "2.0", "method": "NoOp", "params": {}, "id": msg_id})
    message = decode_frame(frame.encode())
    assert isinstance(message, Request)
    assert message.id == msg_id
    assert type(message.id) is type(msg_id)


def test_numeric_jsonrpc_version_and_unknown_members_are_tolerated() -> None:
    frame = b'{"jsonrpc":2,"method":"Logon","params":{},"id":1,"apiKey":"k","Bool":true}'
    assert decode_frame(frame) == Request("Logon", {}, 1)


def test_notification_has_no_id() -> None:
    message = decode_frame(b'{"jsonrpc":"2.0","method":"EngineStatus","params":{"State":"Idle"}}')
    assert message == Notification("EngineStatus", {"State": "Idle"})


def test_error_response_maps_to_its_exception_with_the_core_message() -> None:
    message = decode_frame(
        b'{"jsonrpc":"2.0","id":4,"error":{"code":6,"message":"Change group \'x\' does not exist"}}'
    )
    assert message == ErrorResponse(4, 6, "Change group 'x' does not exist")
    assert isinstance(message, ErrorResponse)
    exc = message.to_exception()
    assert isinstance(exc, UnknownChangeGroup)
    assert exc.qrc_message == "Change group 'x' does not exist"
    assert ErrorResponse.from_exception(None, ParseError()) == ErrorResponse(
        None, -32700, "Parse error"
    )


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"jsonrpc":"2.0","result":NaN,"id":1}', "not valid JSON"),
        (b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"result":1}', "not valid JSON"),
        (b"[1, 2]", "expected a JSON-RPC object"),
        (b'{"jsonrpc":"1.0","method":"NoOp","id":1}', "unsupported jsonrpc version"),
        (b'{"jsonrpc":"2.0","method":"NoOp","id":true}', "invalid id"),
        (b'{"jsonrpc":"2.0","method":5,"id":1}', "invalid method"),
        (b'{"jsonrpc":"2.0","id":1}', "needs 'method', 'result' or 'error'"),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}', "invalid error code"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_invalid_frames_raise_invalid_frame(frame: bytes, fragment: str) -> None:
    with pytest.raises(InvalidFrame, match=fragment):
        decode_frame(frame)


def test_decoder_reports_a_bad_frame_and_goes_on_with_the_next() -> None:
    good = encode_frame(Request("NoOp", {}, 2))
    decoder = FrameDecoder()
    decoder.receive_data(b"{oops}\0\xff\xfe\0" + good)
    with pytest.raises(InvalidFrame, match="not valid JSON"):
        decoder.next_message()
    with pytest.raises(InvalidFrame, match="UTF-8"):
        decoder.next_message()
    assert decoder.next_message() == Request("NoOp", {}, 2)
    assert decoder.next_message() is None


def test_oversize_frame_with_terminator_raises_and_decoding_continues() -> None:
    decoder = FrameDecoder(max_frame_size=64)
    big = encode_frame(Request("X", "a" * 200, 1))
    decoder.receive_data(big + encode_frame(Request("NoOp", {}, 2)))
    with pytest.raises(FrameTooLarge, match="exceeds"):
        decoder.next_message()
    assert decoder.next_message() == Request("NoOp", {}, 2)


def test_oversize_frame_without_terminator_is_discarded_up_to_its_nul() -> None:
    decoder = FrameDecoder(max_frame_size=64)
    decoder.receive_data(b'{"jsonrpc":"2.0","params":"' + b"a" * 100)
    with pytest.raises(FrameTooLarge):
        decoder.next_message()
    assert decoder.buffered == 0
    # The rest of the oversize frame keeps being dropped, without a second error.
    assert decode_all(decoder, b"b" * 500) == []
    assert decoder.buffered == 0
    assert decode_all(decoder, b'"}\0' + encode_frame(Response(3, True))) == [Response(3, True)]


def test_frame_at_the_limit_is_accepted() -> None:
    frame = encode_frame(Request("X", "a", 1))
    decoder = FrameDecoder(max_frame_size=len(frame) - 1)
    assert decode_all(decoder, frame) == [Request("X", "a", 1)]


def test_max_frame_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FrameDecoder(max_frame_size=0)


def test_unencodable_message_raises_invalid_frame() -> None:
    with pytest.raises(InvalidFrame, match="cannot encode"):
        encode_frame(Response(1, float("nan")))
    with pytest.raises(InvalidFrame, match="cannot encode"):
        encode_frame(Response(1, object()))


def test_lone_surrogate_from_a_peer_is_echoed_escaped() -> None:
    message = decode_frame(b'{"jsonrpc":"2.0","method":"X","params":"\\ud800","id":1}')
    frame = encode_frame(message)
    frame.decode("utf-8")  # still valid UTF-8 on the wire
    assert decode_frame(frame[:-1]) == message


def test_lone_surrogate_in_a_websocket_text_frame_goes_out_escaped() -> None:
    # trio-websocket encodes text frames as UTF-8: a raw lone surrogate cannot be sent.
    message = decode_frame('{"jsonrpc":"2.0","result":["x\\udc80","é"],"id":"u"}')
    text = encode_text(message)
    text.encode("utf-8")
    assert "\\udc80" in text
    assert decode_frame(text) == message


def test_text_without_surrogates_keeps_its_characters_unescaped() -> None:
    assert encode_text(Response(1, "é€😀")) == '{"jsonrpc":"2.0","result":"é€😀","id":1}'


# -- property tests -----------------------------------------------------------------------------
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_ids = (
    st.integers(min_value=-(2**53), max_value=2**53)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.none()
)
_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Request, method=st.text(), params=_json, id=_ids),
    st.builds(Notification, method=st.text(), params=_json),
    st.builds(Response, id=_ids, result=_json),
    st.builds(ErrorResponse, id=_ids, code=st.integers(-(2**31), 2**31), message=st.text()),
)


@given(_messages)
def test_encode_then_decode_gives_the_same_message(message: Message) -> None:
    assert decode_frame(encode_frame(message)[:-1]) == message
    assert decode_frame(encode_text(message)) == message


@settings(max_examples=200)
@given(st.lists(_messages, max_size=6), st.data())
def test_any_chunking_gives_the_same_messages(messages: list[Message], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = FrameDecoder()
    out: list[Message] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += decode_all(decoder, stream[start:cut])
        start = cut
    assert out == messages
    assert decoder.buffered == 0


@given(st.lists(st.binary(max_size=40), max_size=8))
def test_decoder_never_raises_anything_but_protocol_errors(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame_size=64)
    for chunk in chunks:
        decoder.receive_data(chunk)
        for _ in range(len(chunk) + 2):
            try:
                if decoder.next_message() is None:
                    break
            except (InvalidFrame, FrameTooLarge):
                continue


# -- the orjson fast path reads and writes exactly what stdlib json does ------------------------
@pytest.mark.parametrize(
    "text",
    [
        '{"jsonrpc":"2.0","result":[1e400,-1e400],"id":1}',  # inf, as stdlib json reads it
        '{"jsonrpc":"2.0","result":' + "9" * 30 + ',"id":1}',  # an exact int past 64 bits
        '{"jsonrpc":"2.0","result":[18446744073709551616,-9223372036854775809],"id":2}',
        '{"jsonrpc":"2.0","result":"\\ud800","id":3}',  # a lone surrogate escape
        '{"jsonrpc":"2.0","result":{"a":1,"a":2},"id":4}',  # the last duplicate wins
        '{"jsonrpc":"2.0","result":[0.1234567890123456789,-0.0,-0],"id":5}',
        ' \n{"jsonrpc":"2.0","result":null,"id":6}\r\n',
    ],
)
def test_fast_decoding_agrees_with_stdlib_json(text: str) -> None:
    expected = _decode_stdlib(text)
    for frame in (text, text.encode("utf-8")):
        message = decode_frame(frame)
        assert message == expected
        assert repr(message) == repr(expected)  # int stays int, float float


@pytest.mark.parametrize(
    "result",
    [2**70, -(2**64), {1: "int key"}, ["\udc80"], None, [None, 1.5e300], float("inf")],
)
def test_fast_encoding_agrees_with_stdlib_json(result: Any) -> None:
    message = Response(7, result)
    try:
        expected = _encode_stdlib(message, to_wire(message))
    except InvalidFrame as exc:
        with pytest.raises(InvalidFrame, match="cannot encode"):
            encode_frame(message)
        assert "cannot encode" in str(exc)
        return
    assert encode_text(message) == expected
    assert encode_frame(message) == expected.encode("utf-8") + b"\0"


@settings(max_examples=300)
@given(_json)
def test_fast_paths_agree_with_stdlib_json_on_any_value(value: Any) -> None:
    message = Response(1, value)
    text = _encode_stdlib(message, to_wire(message))
    assert decode_frame(encode_frame(message)[:-1]) == _decode_stdlib(text)
    assert decode_frame(text) == _decode_stdlib(text)
