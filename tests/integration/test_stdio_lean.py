"""The stdio door's lean ``tools/call`` path answers exactly as the SDK's session layer does."""

from __future__ import annotations

import datetime
import itertools
import json
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import mcp_types as types
import orjson
import pytest
import trio
from _stacks import TEST_PRINCIPAL, tool_stack
from mcp_types import methods as sdk_methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, SUPPORTED_PROTOCOL_VERSIONS

from qsysd.emulator import EmulatorServer
from qsysd.server import QsysMcpServer, serve_stdio
from qsysd.server._lean import LeanCalls, _envelope_key, plain_call
from qsysd.server._mcp import ToolAnswer

WAIT = 10.0
LEGACY, MODERN = "2025-11-25", "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "lean-test", "version": "1"},
}


class Wire:
    """A JSON-RPC line client on the two pipes of a served stdio door."""

    def __init__(self, send: trio.lowlevel.FdStream, receive: trio.lowlevel.FdStream) -> None:
        self.send_stream, self.receive_stream = send, receive
        self.buffer = bytearray()
        self.ids = itertools.count(1)

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_stream.send_all(json.dumps(message).encode() + b"\n")

    async def answer(self) -> dict[str, Any]:
        while (end := self.buffer.find(b"\n")) < 0:
            data = await self.receive_stream.receive_some(65536)
            assert data, "the door closed its output"
            self.buffer += data
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def request(self, method: str, params: dict[str, Any] | None, era: str) -> Any:
        if era == MODERN and params is not None:
            params = {**params, "_meta": {**params.get("_meta", {}), **ENVELOPE}}
        msg_id = next(self.ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        answer = await self.answer()
        assert answer["id"] == msg_id
        return answer

    async def open(self, era: str) -> None:
        if era == LEGACY:
            init = {
                "protocolVersion": LEGACY,
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            }
            assert "result" in await self.request("initialize", init, era)
            await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


@asynccontextmanager
async def door(
    server: QsysMcpServer, *, lean: bool, hold: trio.Event | None = None
) -> AsyncIterator[Wire]:
    """``serve_stdio`` on two pipes; closing the client's end of input ends it."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: serve_stdio(
                    server, stdin_fd=in_r, stdout_fd=out_w, divert=False, hold=hold, lean_calls=lean
                )
            )
            send, receive = trio.lowlevel.FdStream(in_w), trio.lowlevel.FdStream(out_r)
            in_w = out_r = -1  # the streams own them now
            async with receive, send:  # send closes first: the door reads end of input
                yield Wire(send, receive)
    finally:
        for fd in (in_r, in_w, out_r, out_w):
            if fd >= 0:
                os.close(fd)


#: Calls whose answers do not depend on time: each is compared between the two paths.
CALLS: list[tuple[str, dict[str, Any] | None]] = [
    ("tools/call", {"name": "qsys_list_components", "arguments": {}}),
    ("tools/call", {"name": "qsys_list_controls", "arguments": {"component": "Bar"}}),
    ("tools/call", {"name": "qsys_get", "arguments": {"controls": ["Nowhere.gain"]}}),
    ("tools/call", {"name": "qsys_get", "arguments": {"controls": "Bar.gain"}}),
    ("tools/call", {"name": "qsys_set", "arguments": {"changes": []}}),
    ("tools/call", {"name": "no_such_tool", "arguments": {}}),
    ("tools/call", {"name": "qsys_status"}),
    ("tools/call", {"arguments": {}}),  # no name: the SDK's own INVALID_PARAMS
    ("tools/call", {"name": 7}),
    # after valid calls with the same envelope: what else the 2026 surface types still counts
    ("tools/call", {"name": "qsys_status", "requestState": 5}),
    ("tools/call", {"name": "qsys_status", "arguments": "x"}),
    ("tools/call", {"name": "qsys_status", "arguments": None}),
    ("tools/call", None),
    ("tools/list", {}),
]


#: Fields that move between two runs (live meters, ages, counters).
MOVING = {"value", "string", "position", "age_s", "stale", "cores"}


def steady(answer: Any) -> Any:
    """``answer`` without the moving fields, its text content read as the JSON it is."""
    if isinstance(answer, dict):
        if answer.get("type") == "text" and isinstance(answer.get("text"), str):
            try:
                return {**answer, "text": steady(json.loads(answer["text"]))}
            except ValueError:
                return answer
        return {k: steady(v) for k, v in answer.items() if k not in MOVING}
    if isinstance(answer, list):
        return [steady(v) for v in answer]
    return answer


@pytest.mark.parametrize("era", [LEGACY, MODERN])
async def test_every_answer_is_the_one_the_sdk_gives(emulator: EmulatorServer, era: str) -> None:
    answers: dict[bool, list[Any]] = {}
    async with tool_stack(emulator) as (server, _, _):
        for lean in (False, True):
            with trio.fail_after(WAIT):
                async with door(server, lean=lean) as wire:
                    await wire.open(era)
                    answers[lean] = [await wire.request(m, p, era) for m, p in CALLS]
    for sdk, ours, (method, params) in zip(answers[False], answers[True], CALLS, strict=True):
        assert steady(ours) == steady(sdk), (method, params)
    assert answers[True][0]["result"]["structuredContent"]["components"]
    if era == MODERN:
        assert answers[True][0]["result"]["resultType"] == "complete"
        assert answers[True][0]["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]


async def test_a_cancelled_call_is_never_answered_and_the_door_reads_on(
    emulator: EmulatorServer,
) -> None:
    hold = trio.Event()  # unset: a tool call waits, as before the Cores are synced
    async with tool_stack(emulator) as (server, _, _):
        with trio.fail_after(WAIT):
            async with door(server, lean=True, hold=hold) as wire:
                await wire.open(LEGACY)
                call = {"name": "qsys_get", "arguments": {"controls": ["Bar.gain"]}}
                await wire.send(
                    {"jsonrpc": "2.0", "id": 50, "method": "tools/call", "params": call}
                )
                await wire.send(
                    {"jsonrpc": "2.0", "id": 51, "method": "tools/call", "params": call}
                )
                cancel = {"requestId": "50", "reason": "user"}  # a stringified id still matches
                await wire.send(
                    {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel}
                )
                # the held calls do not stop the door reading: a ping is answered meanwhile
                assert (await wire.request("ping", None, LEGACY))["result"] == {}
                hold.set()
                answer = await wire.answer()
                assert answer["id"] == 51 and not answer["result"]["isError"]
                assert (await wire.request("ping", None, LEGACY))["result"] == {}  # never 50


async def test_a_call_running_at_end_of_input_is_answered_connection_closed(
    emulator: EmulatorServer,
) -> None:
    async with tool_stack(emulator) as (server, _, _):
        with trio.fail_after(WAIT):
            async with door(server, lean=True, hold=trio.Event()) as wire:
                await wire.open(LEGACY)
                call = {"name": "qsys_status", "arguments": {}}
                await wire.send({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": call})
                await wire.send_stream.aclose()  # end of input with the call held
                answer = await wire.answer()
    assert answer == {
        "jsonrpc": "2.0",
        "id": 9,
        "error": {"code": -32000, "message": "Connection closed"},
    }


class _Label(str):
    """A str subclass: orjson would render it as the SDK does, but the lean path must not guess."""


#: Outputs orjson renders otherwise than the SDK's dump, or not at all: the SDK shapes them.
ODD_OUTPUTS: list[dict[str, Any]] = [
    {"at": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)},
    {"keys": {1: "one", None: "none"}},
    {"big": 2**70},  # past JSON's (orjson's) integers: neither path renders it
    {"label": _Label("x"), "nested": [{"label": _Label("y")}]},
    {"nan": math.nan, "inf": -math.inf, "zero": -0.0, "tuple": (1, "2", None)},
    {"text": 'naïve \u2028 "quoted" \\ \x00', "empty": {}, "list": []},
]


@pytest.mark.parametrize("version", sorted(SUPPORTED_PROTOCOL_VERSIONS))
async def test_lean_lines_are_the_sdk_results_byte_for_byte(
    emulator: EmulatorServer, version: str
) -> None:
    """Every tool's answer, success and error, as the lean path writes it and as the SDK
    shapes it (``sdk_result``, the reference), then renders it: the same bytes."""
    async with tool_stack(emulator) as (server, _, _):
        lean = LeanCalls(server, server.qsys, TEST_PRINCIPAL, cast(Any, None))
        answers: list[ToolAnswer] = []
        with trio.fail_after(WAIT):
            for tool in server.qsys.registry.tools():
                for arguments in [*tool.examples, {}, {"no_such_field": 1}]:
                    answers.append(
                        await server.qsys.answer_tool(
                            TEST_PRINCIPAL, tool.name, dict(arguments), request_id="t"
                        )
                    )
            unknown = await server.qsys.answer_tool(TEST_PRINCIPAL, "nope", {}, request_id="t")
            answers.append(unknown)
        assert any(a.error is None for a in answers) and any(a.error for a in answers)
        answers += [ToolAnswer(output) for output in ODD_OUTPUTS]
        answers += [ToolAnswer(None, 'an error with "quotes", ü and \n'), ToolAnswer({})]
        for msg_id in (1, "req-1", 0, -5):
            for answer in answers:
                reference: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id}
                reference["result"] = lean.sdk_result(version, answer.result())
                try:
                    expected = orjson.dumps(reference) + b"\n"
                except TypeError:
                    with pytest.raises(TypeError):
                        lean.wire(msg_id, version, answer)
                    continue
                assert lean.wire(msg_id, version, answer) == expected


#: tools/call params: those plain_call takes as they are, and some it leaves to the SDK.
PLAIN = [
    {"name": "qsys_get"},
    {"name": ""},
    {"name": "ü" * 500, "arguments": None},
    {"name": "x", "arguments": {}},
    {"name": "x", "arguments": {"a": [1, {"b": None}], "": 1.5, "c": "\u2028"}},
]
NOT_PLAIN: list[Any] = [
    None,
    {},
    {"name": 7},
    {"name": None},
    {"arguments": {}},
    {"name": "x", "arguments": []},
    {"name": "x", "arguments": "s"},
    {"name": "x", "_meta": {"progressToken": 1}},
    {"name": "x", "task": {}},
    {"name": "x", "arguments": {}, "extra": 1},
    ["name", "x"],
]


@pytest.mark.parametrize("version", sorted(HANDSHAKE_PROTOCOL_VERSIONS))
def test_plain_call_params_are_exactly_what_the_sdk_models_accept_and_give(version: str) -> None:
    for params in PLAIN:
        typed = types.CallToolRequestParams.model_validate(params, by_name=False)
        sdk_methods.validate_client_request("tools/call", version, params)  # accepted
        assert plain_call(params) == (typed.name, typed.arguments)
    assert [plain_call(p) for p in NOT_PLAIN] == [None] * len(NOT_PLAIN)


def test_an_envelope_key_is_everything_the_2026_checks_read_and_nothing_else() -> None:
    meta = {"_meta": ENVELOPE}
    one = _envelope_key({"name": "qsys_get", "arguments": {"controls": ["A.gain"]}, **meta})
    two = _envelope_key({"name": "qsys_get", "arguments": {"controls": ["B.mute"]}, **meta})
    assert one is not None and one == two  # the arguments' content is not checked
    assert one == _envelope_key({"name": "qsys_get", "arguments": None, **meta})
    assert one == _envelope_key({"name": "qsys_get", **meta})
    assert one != _envelope_key({"name": "qsys_set", **meta})
    assert one != _envelope_key({"name": "qsys_get", "requestState": "s", **meta})
    other = {**ENVELOPE, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
    assert one != _envelope_key({"name": "qsys_get", "_meta": other})
    for params in ({"name": 7, **meta}, {"name": "qsys_get", "arguments": [], **meta}, None, []):
        assert _envelope_key(params) is None  # never remembered: the SDK checks each one
