"""The early stdio door's parts: request keys, the answer cache file, where it looks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qsysd._early import (
    CACHE_FILE,
    MAX_ENTRIES,
    AnswerCache,
    EarlyDoor,
    RequestKeys,
    answer_suffix,
    open_early_door,
    take_early_start,
)

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "a"}},
}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
PV = "io.modelcontextprotocol/protocolVersion"


def keys_of(*messages: dict[str, object], environment: str = "env") -> list[str | None]:
    keys = RequestKeys(environment)
    return [keys.key(m) for m in messages]


def test_a_2025_tools_list_key_depends_on_its_initialize_and_the_initialized_notice() -> None:
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    _, _, after = keys_of(INIT, initialized, LIST)
    assert after is not None
    assert keys_of(INIT, initialized, {**LIST, "id": 77})[2] == after  # ids do not matter
    assert keys_of(INIT, LIST)[1] != after  # before notifications/initialized
    other = {**INIT, "params": {**INIT["params"], "protocolVersion": "2025-06-18"}}
    assert keys_of(other, initialized, LIST)[2] != after
    client = {**INIT, "params": {**INIT["params"], "clientInfo": {"name": "b"}}}
    assert keys_of(client, initialized, LIST)[2] != after  # kept: the SDK validates it
    assert keys_of(INIT, initialized, LIST, environment="other")[2] != after


def test_a_progress_token_is_left_out_of_the_key_but_an_invalid_one_is_not() -> None:
    envelope = {PV: "2026-07-28"}
    plain = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": envelope}}
    with_token = {**plain, "params": {"_meta": {**envelope, "progressToken": "p-1"}}}
    bad_token = {**plain, "params": {"_meta": {**envelope, "progressToken": {"x": 1}}}}
    assert keys_of(plain) == keys_of(with_token)
    assert keys_of(plain) != keys_of(bad_token)


def test_the_first_request_decides_the_era_and_other_methods_have_no_key() -> None:
    keys = RequestKeys("env")
    assert keys.era is None
    assert keys.key({"jsonrpc": "2.0", "method": "notifications/initialized"}) is None
    assert keys.key({"jsonrpc": "2.0", "id": 1, "method": "ping"}) is None
    assert keys.era == "2025"  # a non-enveloped first request: the 2025 era, uninitialized
    modern = RequestKeys("env")
    assert modern.key({**LIST, "params": {"_meta": {PV: "2026-07-28"}}}) is not None
    assert modern.era == "2026"


def test_answer_suffix_takes_results_only() -> None:
    assert answer_suffix('{"jsonrpc":"2.0","id":"a\\"b","result":{}}\n') == ',"result":{}}\n'
    assert answer_suffix('{"jsonrpc":"2.0","id":1,"error":{"code":1}}\n') is None
    assert answer_suffix('{"jsonrpc":"2.0","method":"x"}\n') is None


def test_the_cache_round_trips_privately_and_keeps_the_most_recent_entries(
    tmp_path: Path,
) -> None:
    path = tmp_path / CACHE_FILE
    cache = AnswerCache.load(path)
    assert len(cache) == 0 and cache.problem is None
    for n in range(MAX_ENTRIES + 3):
        cache.put(f"{n:064x}", f',"result":{{"n":{n}}}}}\n')
    cache.save()
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [CACHE_FILE]  # no temporary file left
    again = AnswerCache.load(path)
    assert again.problem is None and len(again) == MAX_ENTRIES and again.salt == cache.salt
    assert again.get(f"{0:064x}") is None  # the oldest went
    assert again.get(f"{MAX_ENTRIES + 2:064x}") == f',"result":{{"n":{MAX_ENTRIES + 2}}}}}\n'


@pytest.mark.parametrize(
    "content",
    [
        b'{"format": 1, "salt": "00',
        b"\xff\xfe",
        b'{"format": 2, "salt": "00000000000000000000000000000000", "entries": []}',
        b'{"format": 1, "salt": "zz", "entries": []}',
        b'{"format": 1, "salt": "00000000000000000000000000000000", "entries": [["k", "v"]]}',
        b"null",
    ],
)
def test_a_cache_that_is_not_ours_is_empty_with_the_problem_named(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / CACHE_FILE
    path.write_bytes(content)
    cache = AnswerCache.load(path)
    assert len(cache) == 0 and cache.problem and cache.changed


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qsysd.toml"
    path.write_text(text)
    return path


def warm_cache(state: Path, config_path: Path, env: dict[str, str]) -> None:
    """A cache with one entry, as a daemon would leave it for this environment."""
    start = open_early_door(["serve", "--stdio", "--config", str(config_path)], env)
    assert start is not None and start.cache is not None and start.door is None
    take_early_start()
    state.mkdir(exist_ok=True)
    keys = RequestKeys(start.cache.environment)
    start.cache.put(str(keys.key(INIT)), ',"result":{"early":true}}\n')
    start.cache.save()


def test_the_door_answers_a_cached_request_and_hands_over_the_rest(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = config(tmp_path, f'[state]\ndir = "{state}"\n')
    env = {"HOME": str(tmp_path)}
    warm_cache(state, path, env)
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    try:
        start = open_early_door(
            ["serve", "--config", str(path), "--stdio"], env, stdin_fd=stdin_r, stdout_fd=stdout_w
        )
        assert start is not None and isinstance(start.door, EarlyDoor)
        assert take_early_start() is start and take_early_start() is None
        sent = json.dumps(INIT).encode() + b"\n" + json.dumps(LIST).encode() + b"\n{partial"
        os.write(stdin_w, sent)
        assert os.read(stdout_r, 4096) == b'{"jsonrpc":"2.0","id":1,"result":{"early":true}}\n'
        prelude = start.door.take_over()
        assert bytes(prelude.data) == sent  # everything it read, for the real door
        assert prelude.eof is False
        assert [(i, m) for i, m, _, _ in prelude.answered] == [(1, "initialize")]
    finally:
        for fd in (stdin_r, stdin_w, stdout_r, stdout_w):
            os.close(fd)


@pytest.mark.parametrize(
    ("argv", "text", "env"),
    [
        (["serve"], "", {}),
        (["serve", "--stdio", "--help"], "", {}),
        (["demo", "--stdio"], "", {}),
        (["serve", "--stdio", "--config", "MISSING"], None, {}),
        (["serve", "--stdio"], "[state\n", {}),
        (["serve", "--stdio"], "[daemon]\nstdio_cache = false\n", {}),
        (["serve", "--stdio"], "", {"QSYSD_DAEMON__STDIO_CACHE": "false"}),
        (["serve", "--stdio"], '[state]\nbackend = "redis"\njournal = false\n', {}),
        (["serve", "--stdio"], "", {"QSYSD_ENV": "development"}),
    ],
    ids=[
        "no-stdio",
        "help",
        "demo",
        "missing-config",
        "bad-toml",
        "off",
        "off-env",
        "no-state-folder",
        "dotenv",
    ],
)
def test_anything_unexpected_means_no_early_door(
    tmp_path: Path, argv: list[str], text: str | None, env: dict[str, str]
) -> None:
    env = {"HOME": str(tmp_path), **env}
    if text is not None:
        env["QSYSD_CONFIG"] = str(config(tmp_path, text))
    assert open_early_door(argv, env) is None
    assert take_early_start() is None


def test_the_era_signal_is_the_sdks_own() -> None:
    import mcp_types

    from qsysd._early._cache import PROTOCOL_VERSION_META_KEY, enveloped

    assert PROTOCOL_VERSION_META_KEY == mcp_types.PROTOCOL_VERSION_META_KEY
    assert enveloped({"_meta": {mcp_types.PROTOCOL_VERSION_META_KEY: "2026-07-28"}})
    assert not enveloped({"_meta": {"progressToken": 1}})
    assert not enveloped({"_meta": "x"}) and not enveloped(None)
