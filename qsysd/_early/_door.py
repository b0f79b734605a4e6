"""The early stdio door itself: where it looks, and the thread answering from the cache."""

from __future__ import annotations

import json
import os
import select
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from qsysd._early._cache import (
    ANSWER_PREFIX,
    CACHE_FILE,
    AnswerCache,
    RequestKeys,
    answer_id,
    environment_material,
)

TYPE_CHECKING = False  # not `typing` at run time: see qsysd/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = ["EarlyDoor", "EarlyStart", "Prelude", "open_early_door", "take_early_start"]

#: A partial line longer than this ends the early reading: the real door takes it over.
PENDING_LIMIT = 1 << 20
_CHUNK = 65536


class Prelude:
    """What the early door read and answered, for the real door to take over."""

    def __init__(self) -> None:
        self.data = bytearray()  # every byte read, in order
        self.eof = False
        #: (id, method, key, the answer line written) of each request answered early.
        self.answered: list[tuple[Any, str, str, bytes]] = []


class EarlyDoor:
    """A thread answering cached requests on ``stdout_fd`` until :meth:`take_over`."""

    def __init__(
        self, cache: AnswerCache, keys: RequestKeys, *, stdin_fd: int = 0, stdout_fd: int = 1
    ) -> None:
        self._cache = cache
        self._keys = keys
        self._in = stdin_fd
        self._out = stdout_fd
        self._wake_r, self._wake_w = os.pipe()
        self.prelude = Prelude()
        self.lock = threading.Lock()  # held while an answer is written
        self._thread = threading.Thread(target=self._run, name="qsysd-early-door", daemon=True)
        self.failure: str | None = None

    def start(self) -> None:
        self._thread.start()

    def take_over(self) -> Prelude:
        """Stop reading (the thread ends at once, between reads) and hand over what it read."""
        os.write(self._wake_w, b"x")
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)
        return self.prelude

    def _run(self) -> None:
        pending = bytearray()
        try:
            while True:
                ready, _, _ = select.select([self._in, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                data = os.read(self._in, _CHUNK)
                self.prelude.data += data
                if not data:
                    self.prelude.eof = True
                    return
                pending += data
                while (end := pending.find(b"\n")) >= 0:
                    line = bytes(pending[:end])
                    del pending[: end + 1]
                    if line.strip() and not self._answer(line):
                        return
                if len(pending) > PENDING_LIMIT:
                    return
        except OSError as exc:  # the real door meets the same fd and reports it
            self.failure = f"{type(exc).__name__}: {exc}"

    def _answer(self, line: bytes) -> bool:
        """Answer ``line`` from the cache, or keep a notification; False to stop reading."""
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            return False
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return False
        if not isinstance(message.get("method"), str):
            return False  # a response: the real door's business
        key = self._keys.key(message)
        msg_id = message.get("id")
        if msg_id is None:
            params = message.get("params", {})
            return isinstance(params, dict)  # a notification, kept for the real session
        suffix = self._cache.get(key) if key is not None else None
        written_id = answer_id(msg_id)
        if key is None or suffix is None or written_id is None:
            return False
        answer = f"{ANSWER_PREFIX}{written_id}{suffix}".encode()
        with self.lock:
            view = memoryview(answer)
            while view:
                view = view[os.write(self._out, view) :]
        self.prelude.answered.append((msg_id, message["method"], key, answer))
        return True


class EarlyStart:
    """What ``open_early_door`` found: the cache (and its keys) and the door, if one runs."""

    def __init__(self, cache: AnswerCache | None, door: EarlyDoor | None) -> None:
        self.cache = cache  # None: nothing is recorded (the daemon's configuration says so)
        self.door = door


_started: EarlyStart | None = None


def take_early_start() -> EarlyStart | None:
    """The early start of this process (once), for ``serve --stdio`` to take over."""
    global _started
    started, _started = _started, None
    return started


def open_early_door(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
) -> EarlyStart | None:
    """For ``serve --stdio``: load the cache and, if it has answers, start the door.

    None for anything unexpected (another command, an unreadable or invalid configuration,
    no state folder, the cache turned off): the normal path then runs unchanged and reports
    what is wrong, as it always did.
    """
    global _started
    env = os.environ if env is None else env
    serving, config_path = _serve_stdio_config(argv)
    if not serving or env.get("QSYSD_ENV") == "development":
        return None  # not `serve --stdio`, or a .env in the working folder may change it all
    if config_path is None:
        config_path = env.get("QSYSD_CONFIG") or None
    config_bytes = b""
    if config_path is not None:
        try:
            with open(config_path, "rb") as f:
                config_bytes = f.read()
        except OSError:
            return None
    settings = _settings(config_bytes, env)
    if settings is None:
        return None
    state_dir, plugin_dirs = settings
    cache = AnswerCache.load(Path(state_dir) / CACHE_FILE)
    cache.bind(environment_material(config_path, config_bytes, env, plugin_dirs))
    door = None
    if len(cache):
        door = EarlyDoor(cache, RequestKeys(cache.environment), stdin_fd=stdin_fd,
                         stdout_fd=stdout_fd)  # fmt: skip
        door.start()
    _started = EarlyStart(cache, door)
    return _started


def _serve_stdio_config(argv: Sequence[str]) -> tuple[bool, str | None]:
    """Whether ``argv`` is ``serve --stdio`` and its ``--config`` (None: none given)."""
    if not argv or argv[0] != "serve":
        return False, None
    stdio, config = False, None
    rest = list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg == "--stdio" and not stdio:
            stdio = True
        elif arg == "--config" and config is None and rest:
            config = rest.pop(0)
        elif arg.startswith("--config=") and config is None:
            config = arg.partition("=")[2]
        else:
            return False, None  # argparse's business (help, a typo, an abbreviation)
    return stdio and config != "", config


def _settings(config_bytes: bytes, env: Mapping[str, str]) -> tuple[str, list[str]] | None:
    """(state folder, plugin folders) as the configuration will have them; None if unsure.

    Only where to look: an entry is found only under the key of an environment (this
    configuration's bytes, these variables) in which the real daemon started and wrote it.
    """
    data: dict[str, Any] = {}
    if config_bytes:
        import tomllib

        try:
            data = tomllib.loads(config_bytes.decode())
        except (ValueError, UnicodeDecodeError):
            return None
    state, daemon, plugins = (data.get(s, {}) for s in ("state", "daemon", "plugins"))
    if not all(isinstance(s, dict) for s in (state, daemon, plugins)):
        return None
    values = {
        "state_dir": state.get("dir"),
        "backend": state.get("backend", "file"),
        "journal": state.get("journal", True),
        "stdio_cache": daemon.get("stdio_cache", True),
        "plugin_dirs": plugins.get("dirs", []),
    }
    names = {
        "QSYSD_STATE__DIR": "state_dir",
        "QSYSD_STATE__BACKEND": "backend",
        "QSYSD_STATE__JOURNAL": "journal",
        "QSYSD_DAEMON__STDIO_CACHE": "stdio_cache",
        "QSYSD_PLUGINS__DIRS": "plugin_dirs",
    }
    for var, name in names.items():
        if var in env:
            values[name] = _env_value(env[var])
    state_dir, dirs = values["state_dir"], values["plugin_dirs"]
    if values["stdio_cache"] is not True:
        return None
    if values["backend"] == "redis" and values["journal"] is False:
        return None  # the daemon writes nothing in the state folder: no cache either
    if values["backend"] not in ("file", "redis") or not isinstance(values["journal"], bool):
        return None
    if state_dir is None:
        from qsysd._state_folder import default_state_dir  # not qsysd.config: cattrs

        state_dir = default_state_dir(env)
    if not isinstance(state_dir, str) or not state_dir:
        return None
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        return None
    return state_dir, dirs


def _env_value(raw: str) -> Any:
    """An environment variable's value as the configuration loader reads it."""
    import tomllib

    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
