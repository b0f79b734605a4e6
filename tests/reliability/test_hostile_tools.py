"""Hostile arguments for every tool, through the MCP SDK's client, to a daemon on the emulator.

Every tool the daemon lists (built-ins and the plugins installed in the environment) gets
arguments generated from its own ``inputSchema`` by hypothesis: valid ones (names drawn from
the design as often as random text), and the same mutated into invalid ones (a value of any
type or size at any path, an unknown key, a required key missing). Then hand-made bad ones:
wrong types, huge sizes, unicode (NUL, RTL overrides, zero-width), deep nesting, unknown
Cores, components and controls; and raw lines the SDK's client cannot send at all (lone
surrogates, nesting past any parser's limit, NaN). Each call must answer before its
deadline with a result or a clear tool error (``isError`` with a specific message: never the
SDK's bare "Error executing tool", an internal error or a traceback); an invalid argument
must be refused; the daemon must answer a normal call afterwards, logging no error; and the
emulator must hold no write the policy forbids.

``QSYSD_HOSTILE_EXAMPLES`` (default 25) sets the generated examples per tool and door; the
examples are derandomized, so a CI run is repeatable: set it to 1000 for a longer hunt.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import pytest
import trio
from _trio_thread import TrioThread
from hypothesis import HealthCheck, given, settings, strategies as st
from mcp import Client, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from qsysd.emulator import EmulatorServer, demo_design, serve_emulator
from qsysd.plugins import Registry
from tests.e2e.test_http_serve import _listening_url as listening_url
from tests.e2e.test_stdio_door import INIT, INITIALIZED, Pipe

EXAMPLES = int(os.environ.get("QSYSD_HOSTILE_EXAMPLES", "25"))
#: A call's deadline: far above any answer (the Core's request timeout is 2 s).
CALL_TIMEOUT = 30.0
DOORS = ("stdio", "mcp")

PROTECTED = ("Core_Status.*", "Terrace.*", "FireAlarmActive")
BOUND = ("Bar.gain", -60.0, -10.0)
MAX_GAIN_DB = 0.0

#: Words that mean an error escaped the one error mapping.
LEAKS = re.compile(
    r"Error executing tool|Traceback|internal error|This is a bug|Exception\b|"
    r"File \"|NoneType|object has no attribute|KeyError|TypeError|ValueError",
)


# -- JSON Schema -> hypothesis strategies -------------------------------------------------
# hypothesis-jsonschema does not work with this hypothesis; the tools' schemas use a small
# part of draft 2020-12, all of it covered here.

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _strings(schema: dict[str, Any], vocabulary: list[str]) -> st.SearchStrategy[str]:
    low = schema.get("minLength", 0)
    high = schema.get("maxLength", 10_000)
    text = st.text(min_size=low, max_size=min(high, max(low, 40)))
    if vocabulary:
        text = st.sampled_from(vocabulary) | text
    pattern = schema.get("pattern")
    fits = (lambda s: re.search(pattern, s) is not None) if pattern else (lambda s: True)
    return text.filter(lambda s: low <= len(s) <= high and fits(s))


def _numbers(schema: dict[str, Any], integer: bool) -> st.SearchStrategy[float | int]:
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if integer:
        lo = low if low is not None else (math.floor(xlow) + 1 if xlow is not None else -(2**63))
        hi = (
            high if high is not None else (math.ceil(xhigh) - 1 if xhigh is not None else 2**63 - 1)
        )
        return st.integers(min_value=lo, max_value=hi)
    floats = st.floats(
        min_value=low if low is not None else xlow,
        max_value=high if high is not None else xhigh,
        exclude_min=low is None and xlow is not None,
        exclude_max=high is None and xhigh is not None,
        allow_nan=False,
        allow_infinity=False,
    )
    whole = st.integers(min_value=-(10**6), max_value=10**6).filter(
        lambda n: jsonschema.Draft202012Validator(schema).is_valid(n)
    )
    if low is None and high is None and xlow is None and xhigh is None:
        # an unbounded number is mostly a control value: often one a gain would take
        floats = st.floats(min_value=-60.0, max_value=0.0) | floats
    return floats | whole


def valid_values(
    schema: dict[str, Any], root: dict[str, Any], vocabulary: list[str]
) -> st.SearchStrategy[Any]:
    """Values valid for ``schema`` (a part of ``root``, where ``$ref`` points)."""
    if "$ref" in schema:
        ref = schema["$ref"].removeprefix("#/")
        target = root
        for part in ref.split("/"):
            target = target[part]
        return valid_values(target, root, vocabulary)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([valid_values(s, root, vocabulary) for s in schema[key]])
    kinds = schema.get("type")
    if kinds is None:
        return JSON_VALUES
    if isinstance(kinds, list):
        return st.one_of([valid_values({**schema, "type": k}, root, vocabulary) for k in kinds])
    if kinds == "null":
        return st.none()
    if kinds == "boolean":
        return st.booleans()
    if kinds in ("integer", "number"):
        return _numbers(schema, kinds == "integer")
    if kinds == "string":
        return _strings(schema, vocabulary)
    if kinds == "array":
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", low + 4), low + 4)
        items = valid_values(schema.get("items", {}), root, vocabulary)
        unique = {"unique_by": json.dumps} if schema.get("uniqueItems") else {}
        return st.lists(items, min_size=low, max_size=high, **unique)  # type: ignore[arg-type]
    if kinds == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: valid_values(s, root, vocabulary) for k, s in props.items() if k in required},
            optional={
                k: valid_values(s, root, vocabulary) for k, s in props.items() if k not in required
            },
        )
    raise AssertionError(f"a schema keyword this generator does not know: {schema}")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], tuple(rest), new)
    return copy


@st.composite
def mutated(
    draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]], schema: dict[str, Any]
) -> dict[str, Any]:
    """A valid argument object changed in one place: likely (not surely) invalid."""
    base = draw(valid)
    how = draw(st.sampled_from(["anywhere", "extra key", "drop required"]))
    if how == "extra key":
        return {**base, draw(st.text(min_size=1, max_size=20)): draw(JSON_VALUES)}
    if how == "drop required" and schema.get("required"):
        gone = draw(st.sampled_from(schema["required"]))
        return {k: v for k, v in base.items() if k != gone}
    paths = [p for p in _paths(base) if p]
    if not paths:
        return {**base, "zz": draw(JSON_VALUES)}
    return _replace(base, draw(st.sampled_from(paths)), draw(JSON_VALUES))


def arguments_for(
    schema: dict[str, Any], vocabulary: list[str]
) -> st.SearchStrategy[dict[str, Any]]:
    valid = valid_values(schema, schema, vocabulary)
    return valid | mutated(valid, schema)


def test_the_generator_covers_valid_and_invalid_arguments() -> None:
    """The strategies themselves: valid ones validate, mutated ones mostly do not."""
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "null"], "maxLength": 5, "pattern": r"\S"},
            "b": {"type": "integer", "minimum": 1, "maximum": 9},
            "c": {"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 1, "maxItems": 3},
            "d": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]},
        },
        "required": ["b"],
        "additionalProperties": False,
    }
    validator = jsonschema.Draft202012Validator(schema)
    outcomes: list[bool] = []

    @settings(max_examples=200, derandomize=True, database=None)
    @given(
        valid_values(schema, schema, ["word"]), mutated(valid_values(schema, schema, []), schema)
    )
    def check(good: dict[str, Any], changed: dict[str, Any]) -> None:
        assert validator.is_valid(good), good
        outcomes.append(validator.is_valid(changed))

    check()
    assert outcomes.count(False) > len(outcomes) // 2


# -- the daemon, its doors and the emulator ------------------------------------------------


@attrs.define
class Doors:
    """One daemon (stdio and HTTP) on an emulator, with an MCP client on each of its doors."""

    emulator: EmulatorServer
    clients: dict[str, Client]
    tools: list[types.Tool]
    log_path: Path

    async def call(self, door: str, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """The tool's answer; a JSON-RPC error answer (a request refused whole) as an error."""
        try:
            return await self.clients[door].call_tool(name, arguments)
        except MCPError as exc:
            text = f"JSON-RPC error {exc.code}: {exc.message}"
            return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)

    async def values(self) -> dict[str, tuple[Any, str]]:
        """Every writable control's (value, string) on the emulator now.

        Read Only ones (meters, status) are the Core's own to change, never a client's.
        """
        core = self.emulator.core
        core.advance(trio.current_time())
        return {c.label(): (c.value, c.string) for c in core.all_controls() if c.writable}


def write_config(path: Path, emulator: EmulatorServer) -> Path:
    named = ", ".join(f'"{c.name}"' for c in demo_design().named_controls)
    protected = ", ".join(f'"{p}"' for p in PROTECTED)
    config = path / "qsysd.toml"
    config.write_text(
        f"""
[[cores]]
name = "venue"
host = "127.0.0.1"
port = {emulator.tcp_port}
request_timeout = 2.0
named_controls = [{named}]

[state]
dir = "{path / "state"}"

[auth]
mode = "none"
stdio_role = "admin"

[policy]
protected = [{protected}]
max_gain_db = {MAX_GAIN_DB}
bounds = [{{ pattern = "{BOUND[0]}", min = {BOUND[1]}, max = {BOUND[2]} }}]

[http]
enabled = true
listen = "127.0.0.1:0"

[logging]
format = "json"
level = "info"
"""
        + (SCENES if entry_points(group="qsysd", name="scenes") else "")
    )
    return config


#: Scenes for the scenes plugin, where it is installed (config for a missing plugin is refused).
SCENES = """
[plugins.config.scenes.scenes.quiet]
changes = [{ control = "Bar.gain", value = -30 }]

[plugins.config.scenes.scenes.forbidden]
changes = [{ control = "Terrace.gain", value = -5 }, { control = "Lobby_BGM.gain", value = 12 }]
"""


@asynccontextmanager
async def running_doors(tmp: Path) -> AsyncIterator[Doors]:
    """The emulator, ``qsysd serve --stdio`` (HTTP on too) with every installed plugin."""
    async with serve_emulator(demo_design()) as emulator:
        config = write_config(tmp, emulator)
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "qsysd", "serve", "--stdio", "--config", str(config)],
            env={k: v for k, v in os.environ.items() if k != "QSYSD_LOAD_PLUGINS"},
        )
        log_path = tmp / "stderr.log"
        with log_path.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as stdio:
                with trio.fail_after(CALL_TIMEOUT):
                    base = await listening_url(log_path)
                    tools = (await stdio.list_tools()).tools
                async with Client(f"{base}/mcp") as mcp:
                    yield Doors(emulator, {"stdio": stdio, "mcp": mcp}, tools, log_path)


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TrioThread[Doors], Doors]]:
    tmp = tmp_path_factory.mktemp("hostile")
    with TrioThread(lambda: running_doors(tmp)) as (portal, running):
        yield portal, running
    assert_quiet_log(running.log_path.read_text())


def assert_quiet_log(text: str) -> None:
    """No error logged and nothing but JSON log lines (a raw traceback would not be)."""
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            assert record.get("level") not in ("error", "critical"), line[:500]


def vocabulary(emulator: EmulatorServer) -> list[str]:
    """Names from the design (so writes land), and near misses of them."""
    core = emulator.core
    words = ["venue", "*", "1", "1-4", "2 3", "1-8 !3", "Bar*", "Zone_*", "quiet", "forbidden"]
    for component in core.components.values():
        words.append(component.name)
        words += [f"{component.name}.{c}" for c in component.controls]
    words += list(core.named)
    return words + [w.upper() for w in words[:20]] + [w + "x" for w in words[:20]]


# -- what every answer must be ---------------------------------------------------------------


def error_text(result: types.CallToolResult) -> str:
    return " ".join(b.text for b in result.content if isinstance(b, types.TextContent))


def assert_clear(result: types.CallToolResult, *, valid: bool, what: str) -> None:
    """A result, or a specific tool error; an invalid argument is always refused."""
    if not valid:
        assert result.is_error, f"{what}: invalid arguments accepted: {result.structured_content}"
    if result.is_error:
        text = error_text(result)
        assert len(text) >= 15, f"{what}: an error that says nothing: {text!r}"
        assert not LEAKS.search(text), f"{what}: an error that leaks internals: {text[:500]}"
    else:
        assert result.structured_content is not None, what


def assert_policy_held(
    before: dict[str, tuple[Any, str]], after: dict[str, tuple[Any, str]]
) -> int:
    """No protected control changed, no gain above the ceiling, the bounded control in bounds.

    Returns how many controls changed.
    """
    changed = 0
    for label, (value, string) in after.items():
        old_value, old_string = before[label]
        if any(fnmatch.fnmatchcase(label, p) for p in PROTECTED):
            assert (value, string) == (old_value, old_string), f"protected {label} changed"
        numeric = isinstance(value, float) and not isinstance(value, bool)
        if numeric and string.endswith("dB") and value != old_value:
            assert value <= max(MAX_GAIN_DB, old_value) + 1e-6, f"{label} at {string}"
        if label == BOUND[0] and value != old_value:
            assert BOUND[1] <= value <= BOUND[2], f"{label} out of its bounds: {string}"
        changed += value != old_value
    return changed


def assert_up(portal: TrioThread[Doors], running: Doors, door: str) -> None:
    status = portal.run(running.call, door, "qsys_status", {}, timeout=CALL_TIMEOUT)
    assert not status.is_error and status.structured_content is not None
    (core,) = status.structured_content["cores"]
    assert core["connected"] is True, core


# -- the tests ---------------------------------------------------------------------------


def test_the_daemon_lists_every_tool_of_the_environment(
    doors: tuple[TrioThread[Doors], Doors],
) -> None:
    """So the tests below fuzz every tool: built-ins, admin ones and installed plugins'."""
    _, running = doors
    installed = Registry(entry_points=True).tools()
    assert {t.name for t in running.tools} == {t.name for t in installed}
    assert "qsys_snapshot_save" in {t.name for t in running.tools}  # stdio runs as admin here


def fuzz_tool(
    portal: TrioThread[Doors],
    running: Doors,
    door: str,
    tool: types.Tool,
    words: list[str],
    counts: dict[str, int],
) -> None:
    """``EXAMPLES`` generated argument objects for ``tool`` through ``door``."""
    schema = tool.input_schema
    validator = jsonschema.Draft202012Validator(schema)
    writes = not (tool.annotations and tool.annotations.read_only_hint)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(arguments=arguments_for(schema, words))
    def check(arguments: dict[str, Any]) -> None:
        valid = validator.is_valid(arguments)
        counts["valid" if valid else "invalid"] += 1
        result = portal.run(running.call, door, tool.name, arguments, timeout=CALL_TIMEOUT)
        counts["refused" if result.is_error else "results"] += 1
        counts["write_results"] += not result.is_error and writes
        assert_clear(result, valid=valid, what=f"{tool.name}({json.dumps(arguments)[:300]})")

    check()


@pytest.mark.parametrize("door", DOORS)
def test_generated_arguments_for_every_tool_get_results_or_clear_errors(
    doors: tuple[TrioThread[Doors], Doors], door: str, reliability: Any
) -> None:
    portal, running = doors
    before = portal.run(running.values, timeout=CALL_TIMEOUT)
    words = vocabulary(running.emulator)
    counts = dict.fromkeys(["valid", "invalid", "refused", "results", "write_results"], 0)
    for tool in running.tools:
        fuzz_tool(portal, running, door, tool, words, counts)
        assert_up(portal, running, door)
    after = portal.run(running.values, timeout=CALL_TIMEOUT)
    counts["controls_changed"] = assert_policy_held(before, after)
    # the generator reached both outcomes, and write tools answered: the policy had work
    assert counts["results"] and counts["refused"] and counts["write_results"], counts
    trials = counts["valid"] + counts["invalid"]
    reliability.record(
        area="hostile input",
        case=f"schema-generated arguments for all {len(running.tools)} tools",
        door=door,
        trials=trials,
        outcome="only results or clear tool errors; every invalid argument refused; "
        "no write beyond the policy",
        figures={k: float(v) for k, v in counts.items()},
    )


def hand_made(tool: types.Tool, *, every_property: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """(what, arguments): bad values of every kind in ``tool``'s properties (or its first)."""
    props = list(tool.input_schema.get("properties", {}))
    deep: Any = "bottom"
    for _ in range(200):
        deep = [deep]
    # Sizes cost time on the wire: each tool gets them in its first property only.
    big: list[tuple[str, Any]] = [
        ("huge string", "x" * 1_000_000),
        ("long list", ["Bar.gain"] * 10_000),
        ("deep nesting", deep),
    ]
    bad: list[tuple[str, Any]] = [
        ("null", None),
        ("wrong type: object", {"a": 1}),
        ("wrong type: list", [1, "two", None]),
        ("wrong type: bool", True),
        ("huge float", 1.7e308),
        ("tiny float", -1.7e308),
        ("64-bit int", 2**63 - 1),
        ("NUL", "Bar\x00.gain"),
        ("RTL override", "\u202eniag.raB"),
        ("zero width", "Bar\u200b.gain"),
        ("emoji", "🎛️.🔊"),
        ("combining marks", "B\u0301\u0327ar.gain"),
        ("unknown name", "NoSuchComponent.gain"),
        ("unknown control", "Bar.nosuchcontrol"),
        ("unknown core", "nosuchcore"),
        ("glob everything", "*"),
        ("blank", "   "),
        ("empty", ""),
    ]
    for index, prop in enumerate(props if every_property else props[:1]):
        for what, value in bad + (big if index == 0 else []):
            yield f"{prop}: {what}", {prop: value}
    yield "unknown key", {"nosuchargument": 1}
    yield "many unknown keys", {f"k{i}": i for i in range(1000)}
    if tool.name == "qsys_set":
        for what, value in bad + big:
            yield f"changes[].control: {what}", {"changes": [{"control": value, "value": -20}]}
            yield (
                f"changes[].value: {what}",
                {"changes": [{"control": "Lobby_BGM.gain", "value": value}]},
            )
        yield (
            "a good write",
            {"changes": [{"control": "Lobby_BGM.gain", "value": -21}], "confirm": True},
        )
        yield "protected control", {"changes": [{"control": "Terrace.gain", "value": -30}]}
        yield (
            "gain over the ceiling",
            {"changes": [{"control": "Lobby_BGM.gain", "value": 15}], "confirm": True},
        )
        yield "out of bounds", {"changes": [{"control": "Bar.gain", "value": -5}], "confirm": True}
        yield (
            "two of value, position, string",
            {"changes": [{"control": "Bar.gain", "value": -20, "position": 0.5}]},
        )


@pytest.mark.parametrize("door", DOORS)
def test_hand_made_bad_arguments_get_clear_errors(
    doors: tuple[TrioThread[Doors], Doors], door: str, reliability: Any
) -> None:
    portal, running = doors
    before = portal.run(running.values, timeout=CALL_TIMEOUT)
    trials = refused = 0
    for tool in running.tools:
        validator = jsonschema.Draft202012Validator(tool.input_schema)
        # every property on stdio; the first on /mcp, whose validation is the same code
        for what, arguments in hand_made(tool, every_property=door == "stdio"):
            result = portal.run(running.call, door, tool.name, arguments, timeout=CALL_TIMEOUT)
            assert_clear(result, valid=validator.is_valid(arguments), what=f"{tool.name}: {what}")
            trials += 1
            refused += bool(result.is_error)
        assert_up(portal, running, door)
    after = portal.run(running.values, timeout=CALL_TIMEOUT)
    changed = assert_policy_held(before, after)
    if door == "stdio":  # the first door's good writes land (the second's find them done)
        assert changed, "no write landed: the policy check had nothing to check"
    reliability.record(
        area="hostile input",
        case="hand-made bad arguments (types, sizes, unicode, nesting, unknown names, extra keys)",
        door=door,
        trials=trials,
        outcome="only results or clear tool errors; no write beyond the policy",
        figures={
            "refused": float(refused),
            "results": float(trials - refused),
            "controls_changed": float(changed),
        },
    )


# -- raw lines: what the SDK's client cannot send ---------------------------------------------

#: JSON texts for an argument's value that no SDK client would write (it cannot encode lone
#: surrogates, for one), each sent as the first property of every tool over a raw stdio pipe.
RAW_VALUES = [
    ("lone high surrogate", '"Bar\\ud800.gain"'),
    ("lone low surrogate", '"\\udfff"'),
    ("escaped NUL", '"Bar\\u0000.gain"'),
    ("nested to the SDK's limit", "[" * 196 + '"x"' + "]" * 196),
    ("nested past the SDK's limit", "[" * 300 + '"x"' + "]" * 300),
    ("nested past any parser's limit", "[" * 3000 + '"x"' + "]" * 3000),
    ("integer past 64 bits", "123456789012345678901234567890"),
    ("number past a double", "1e400"),
    ("NaN", "NaN"),
    ("Infinity", "-Infinity"),
    ("duplicate keys", '{"a": 1, "a": 2}'),
]
RAW_ARGUMENTS = [
    ("arguments a list", "[]"),
    ("arguments a string", '"x"'),
    ("arguments a number", "5"),
    ("arguments null", "null"),
]


async def test_raw_lines_for_every_tool_are_answered_on_stdio(
    tmp_path: Path, reliability: Any
) -> None:
    """Hostile JSON texts the SDK's client cannot send, as raw lines: each gets its answer."""
    async with serve_emulator(demo_design()) as emulator:
        config = write_config(tmp_path, emulator)
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "qsysd", "serve", "--stdio", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k != "QSYSD_LOAD_PLUGINS"},
        )
        pipe = Pipe(process)
        answers: dict[str, int] = {}
        try:
            with trio.fail_after(CALL_TIMEOUT):
                await pipe.send(INIT)
                assert (await pipe.answer())["id"] == 1
                await pipe.send(INITIALIZED)
                await pipe.send(b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}')
                tools = (await pipe.answer())["result"]["tools"]
            next_id = 10
            for tool in tools:
                first = next(iter(tool["inputSchema"].get("properties", {})), "x")
                cases = [(w, f'{{"{first}": {v}}}') for w, v in RAW_VALUES] + RAW_ARGUMENTS
                for what, arguments in cases:
                    next_id += 1
                    line = (
                        f'{{"jsonrpc":"2.0","id":{next_id},"method":"tools/call",'
                        f'"params":{{"name":"{tool["name"]}","arguments":{arguments}}}}}'
                    )
                    with trio.fail_after(CALL_TIMEOUT):
                        await pipe.send(line.encode())
                        answer = await pipe.answer()
                    where = f"{tool['name']}: {what}"
                    kind = check_raw_answer(answer, next_id, where)
                    answers[kind] = answers.get(kind, 0) + 1
            with trio.fail_after(CALL_TIMEOUT):
                await pipe.send(b'{"jsonrpc":"2.0","id":3,"method":"tools/call",'
                                b'"params":{"name":"qsys_status","arguments":{}}}')  # fmt: skip
                status = await pipe.answer()
            assert status["id"] == 3 and not status["result"]["isError"], status
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()
            with trio.fail_after(CALL_TIMEOUT):
                assert await process.wait() == 0
    reliability.record(
        area="hostile input",
        case="raw JSON the SDK cannot send (lone surrogates, 3,000-deep nesting, NaN, "
        "64-bit overflow, non-object arguments) for every tool",
        door="stdio",
        trials=sum(answers.values()),
        outcome="every line answered: a JSON-RPC error with its reason or a clear tool error",
        figures={k: float(v) for k, v in answers.items()},
    )


def check_raw_answer(answer: dict[str, Any], request_id: int, where: str) -> str:
    """Which kind of answer ``answer`` is; fails unless it is specific and for this request."""
    if "error" in answer:
        error = answer["error"]
        assert error["code"] in (-32700, -32600, -32602), (where, answer)
        # A line that could not be parsed has no id to answer with; any other one does.
        assert answer["id"] in (request_id, None), (where, answer)
        if answer["id"] is None:
            assert error["code"] == -32700, (where, answer)
        assert len(error["message"]) >= 15 and not LEAKS.search(error["message"]), (where, error)
        return f"json-rpc {error['code']}"
    assert answer["id"] == request_id, (where, answer)
    result = answer["result"]
    if result["isError"]:
        text = " ".join(b.get("text", "") for b in result["content"])
        assert len(text) >= 15 and not LEAKS.search(text), (where, text[:500])
        return "tool error"
    return "result"
