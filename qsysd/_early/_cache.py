"""The answer cache of the early stdio door: its file, its keys, the environment they hash."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

TYPE_CHECKING = False  # not `typing` at run time: see qsysd/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ANSWER_PREFIX",
    "CACHED_METHODS",
    "CACHE_FILE",
    "MAX_ENTRIES",
    "AnswerCache",
    "RequestKeys",
    "answer_id",
    "answer_suffix",
    "enveloped",
    "environment_material",
]

CACHE_FILE = "stdio-cache.json"
FORMAT = 1
#: Entries kept (most recently recorded first): a few clients, each with its initialize.
MAX_ENTRIES = 8
MAX_FILE_BYTES = 16 * 1024 * 1024
#: A larger answer is not cached (a catalogue of thousands of tools; it still works).
MAX_ANSWER_BYTES = 4 * 1024 * 1024
CACHED_METHODS = frozenset({"initialize", "server/discover", "tools/list"})
#: The MCP SDK's ``PROTOCOL_VERSION_META_KEY`` (a test holds the two equal).
PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
#: What an answer line starts with, before its id.
ANSWER_PREFIX = '{"jsonrpc":"2.0","id":'
_SAFE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def enveloped(params: Any) -> bool:
    """Whether params carry the 2026-07-28 envelope (the SDK's era signal)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta


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
            elif enveloped(params):
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
    if not text.startswith(ANSWER_PREFIX):
        return None
    try:
        head = json.JSONDecoder().raw_decode(text, len(ANSWER_PREFIX))
    except ValueError:
        return None
    suffix = text[head[1] :]
    return suffix if suffix.startswith(',"result":') and suffix.endswith("}\n") else None


def answer_id(msg_id: Any) -> str | None:
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
