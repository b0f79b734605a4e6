"""The early stdio door: ``initialize`` and ``tools/list`` answered before the SDK is imported.

Importing the MCP SDK costs most of a second of CPU (``mcp_types`` builds pydantic models for
every protocol version), and trio a third of one. ``qsysd serve --stdio`` first runs this
module, which uses only the standard library: it finds the state folder, loads the answer
cache there (``stdio-cache.json``: the SDK's own answers to ``initialize``,
``server/discover`` and ``tools/list`` as the real server wrote them, minus the id) and, if
it holds entries, starts a thread that reads stdin and answers cached requests at once.
The first line it cannot answer (uncached, malformed, a response, a line longer than
:data:`PENDING_LIMIT`), or end of input, ends its reading; every byte it read is handed to
the real door (``qsysd.server.serve_stdio``) as a prelude, which replays the requests
answered here into the SDK's session with their answers swallowed and compared: a
difference (a stale cache) is logged, corrected in the cache and, for ``tools/list``,
followed by ``notifications/tools/list_changed``. docs/architecture.md, "The early stdio door".

A cache entry's key is a salted SHA-256 of everything that can change those answers (see
:func:`environment_material`) and of the request (its method, its params but a progress
token, and the connection's state: era, its ``initialize``, ``notifications/initialized``
seen); nothing is stored in clear but the answers, which any client may read anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

TYPE_CHECKING = False  # not `typing` at run time: see qsysd/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CACHE_FILE",
    "AnswerCache",
    "EarlyDoor",
    "EarlyStart",
    "Prelude",
    "RequestKeys",
    "answer_suffix",
    "open_early_door",
    "take_early_start",
]

CACHE_FILE = "stdio-cache.json"
FORMAT = 1
#: Entries kept (most recently recorded first): a few clients, each with its initialize.
MAX_ENTRIES = 8
MAX_FILE_BYTES = 16 * 1024 * 1024
#: A larger answer is not cached (a catalogue of thousands of tools; it still works).
MAX_ANSWER_BYTES = 4 * 1024 * 1024
CACHED_METHODS = frozenset({"initialize", "server/discover", "tools/list"})
#: A partial line longer than this ends the early reading: the real door takes it over.
PENDING_LIMIT = 1 << 20
_CHUNK = 65536
_PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
_ANSWER_PREFIX = '{"jsonrpc":"2.0","id":'
_SAFE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _enveloped(params: Any) -> bool:
    """Whether params carry the 2026-07-28 envelope (the SDK's era signal)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and _PROTOCOL_VERSION_META_KEY in meta


def _keyed_params(params: Any) -> Any:
    """``params`` without what cannot change the answer: a valid progress token."""
    if not isinstance(params, dict) or not isinstance(params.get("_meta"), dict):
        return params
    meta = params["_meta"]
    token = meta.get("progressToken")
    if isinstance(token, bool) or not isinstance(token, str | int):
        return params  # absent, or invalid (the SDK may refuse it): kept in the key
    return {**params, "_meta": {k: v for k, v in meta.items() if k != "progressToken"}}


class RequestKeys:
    """The cache key of each request of one connection, the same on both doors.

    The first request decides the era by the SDK's rule (``initialize``: 2025, with that
    request in every later key; an enveloped request: 2026-07-28); a 2025 key also says
    whether ``notifications/initialized`` came before. Requests of other methods, and
    notifications, have no key (None).
    """

    def __init__(self, environment: str) -> None:
        self._environment = environment.encode()
        self._context: bytes | None = None
        self._legacy = False
        self._initialized = False

    @property
    def era(self) -> str | None:
        """``"2025"`` or ``"2026"`` once the first request decided it."""
        if self._context is None:
            return None
        return "2025" if self._legacy else "2026"

    def key(self, message: Mapping[str, Any]) -> str | None:
        method = message.get("method")
        if not isinstance(method, str):
            return None  # a response
        if message.get("id") is None:
            if method == "notifications/initialized":
                self._initialized = True
            return None
        params = message.get("params")
        if self._context is None:
            where = b"first"
            if method == "initialize":
                self._legacy = True
                self._context = b"2025:" + _canonical(params)
            elif _enveloped(params):
                self._context = b"2026"
            else:
                self._legacy = True
                self._context = b"2025:none"
        else:
            where = self._context + (b":initialized" if self._legacy and self._initialized else b"")
        if method not in CACHED_METHODS:
            return None
        return _digest(self._environment, where, method.encode(), _canonical(_keyed_params(params)))


def answer_suffix(text: str) -> str | None:
    """What follows the id in the SDK's answer line ``text``, if it is a result."""
    if not text.startswith(_ANSWER_PREFIX):
        return None
    try:
        head = json.JSONDecoder().raw_decode(text, len(_ANSWER_PREFIX))
    except ValueError:
        return None
    suffix = text[head[1] :]
    return suffix if suffix.startswith(',"result":') and suffix.endswith("}\n") else None


def _answer_id(msg_id: Any) -> str | None:
    """The id as the SDK writes it, for the ids whose spelling is unambiguous."""
    if isinstance(msg_id, int) and not isinstance(msg_id, bool) and abs(msg_id) < 1 << 53:
        return str(msg_id)
    if isinstance(msg_id, str) and len(msg_id) <= 128 and set(msg_id) <= _SAFE_ID:
        return f'"{msg_id}"'
    return None


class AnswerCache:
    """The answers file in the state folder: a few entries, most recently recorded first."""

    def __init__(self, path: Path, salt: bytes, entries: dict[str, str]) -> None:
        self.path = path
        self.salt = salt
        self._entries = entries
        self.environment = ""  # set by bind()
        self.problem: str | None = None  # why the file on disk was not usable, if it was not
        self.changed = False

    @classmethod
    def load(cls, path: Path) -> AnswerCache:
        """The cache at ``path``; one that is missing, corrupt or foreign is empty."""
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return cls(path, os.urandom(16), {})
        except OSError as exc:
            return cls._unusable(path, f"cannot be read: {exc.strerror or exc}")
        if len(data) > MAX_FILE_BYTES:
            return cls._unusable(path, f"larger than {MAX_FILE_BYTES} bytes")
        try:
            doc = json.loads(data)
        except ValueError:  # invalid JSON or UTF-8: truncated or not ours
            return cls._unusable(path, "not valid JSON (truncated or not a qsysd file)")
        problem = _check_document(doc)
        if problem is not None:
            return cls._unusable(path, problem)
        return cls(path, bytes.fromhex(doc["salt"]), dict(doc["entries"]))

    @classmethod
    def _unusable(cls, path: Path, problem: str) -> AnswerCache:
        cache = cls(path, os.urandom(16), {})
        cache.problem = problem
        cache.changed = True  # written anew at the first save
        return cache

    def bind(self, material: bytes) -> None:
        """Key this cache to the environment ``material`` describes (salted)."""
        self.environment = _digest(self.salt, material)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        return self._entries.get(key)

    def put(self, key: str, suffix: str) -> None:
        """Record an answer (first in the file); the oldest beyond the bound go."""
        if len(suffix) > MAX_ANSWER_BYTES:
            return
        if next(iter(self._entries), None) == key and self._entries[key] == suffix:
            return
        self._entries = {key: suffix, **{k: v for k, v in self._entries.items() if k != key}}
        for old in list(self._entries)[MAX_ENTRIES:]:
            del self._entries[old]
        self.changed = True

    def save(self) -> None:
        """Write the file atomically, readable only by this user; raises OSError."""
        doc = {"format": FORMAT, "salt": self.salt.hex(), "entries": list(self._entries.items())}
        data = _canonical(doc)
        tmp = self.path.with_name(f".{self.path.name}.{os.urandom(6).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        self.changed = False


def _check_document(doc: Any) -> str | None:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return f"not a qsysd stdio cache of format {FORMAT}"
    salt, entries = doc.get("salt"), doc.get("entries")
    if not isinstance(salt, str) or len(salt) != 32 or set(salt) - set("0123456789abcdef"):
        return "its salt is invalid"
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        return "its entries are invalid"
    for entry in entries:
        if not (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and len(entry[0]) == 64
            and isinstance(entry[1], str)
            and entry[1].startswith(',"result":')
            and entry[1].endswith("}\n")
        ):
            return "an entry is invalid"
    return None


# The environment ------------------------------------------------------------------------


def environment_material(
    config_path: str | None, config_bytes: bytes, env: Mapping[str, str], plugin_dirs: Sequence[str]
) -> bytes:
    """Everything besides the request that can change the SDK's answers, as bytes to hash.

    The configuration file's bytes and every ``QSYSD_*`` variable (secrets included, so
    only ever hashed), the interpreter, the working folder (relative paths), ``sys.path``
    and the installed distributions on it (their ``*.dist-info`` names carry the versions
    of qsysd, the SDK and every plugin; their times change on reinstall), and the files of
    the ``[plugins] dirs``.
    """
    parts: list[Any] = [
        FORMAT,
        sys.version,
        sys.executable,
        os.getcwd(),
        list(sys.path),
        os.path.abspath(config_path) if config_path else None,
        config_bytes.hex(),
        sorted((k, v) for k, v in env.items() if k.startswith("QSYSD_")),
        [_listing(p, (".dist-info", ".egg-info", ".pth", ".egg-link")) for p in sys.path if p],
        [_listing(d, None) for d in plugin_dirs],
    ]
    return _canonical(parts)


def _listing(folder: str, suffixes: tuple[str, ...] | None) -> list[Any]:
    try:
        with os.scandir(folder) as entries:
            found = []
            for entry in entries:
                if suffixes is None or entry.name.endswith(suffixes):
                    stat = entry.stat()
                    found.append([entry.name, stat.st_size, stat.st_mtime_ns])
    except OSError:
        return [folder, None]
    return [folder, sorted(found)]


# The door ---------------------------------------------------------------------------------


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
        written_id = _answer_id(msg_id)
        if key is None or suffix is None or written_id is None:
            return False
        answer = f"{_ANSWER_PREFIX}{written_id}{suffix}".encode()
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
