"""The real stdio door's side of the early door (``qsysd._early``): check, record, save.

:class:`CachedAnswers` sees every message the reader accepts and every line the SDK writes.
The requests the early door answered come first (its prelude, replayed): their answers from
the SDK are swallowed and compared with what the early door sent; a difference is a stale
cache, logged, corrected and, for ``tools/list``, followed by ``list_changed``. The SDK's
answers to ``initialize``, ``server/discover`` and ``tools/list`` are recorded, and the
cache is saved (off the trio thread) once the daemon's start-up wait is over.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import structlog
import trio

from qsysd._early import AnswerCache, Prelude, RequestKeys, answer_suffix
from qsysd.errors import describe_os_error

__all__ = ["ANSWER_HEAD", "CachedAnswers"]

log = structlog.get_logger("qsysd.server._stdio")

#: The id at the head of an answer as the SDK writes it.
ANSWER_HEAD = re.compile(rb'^\{"jsonrpc":"2\.0","id":(-?\d+|"(?:[^"\\]|\\.)*"),"(?:result|error)"')
_LIST_CHANGED = b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n'
_LISTEN_ACK = b'"method":"notifications/subscriptions/acknowledged"'
_SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
#: How long the last save at end of input may take.
_SAVE_S = 5.0


class CachedAnswers:
    """Swallow and check the early door's answers; record the SDK's for the next start."""

    def __init__(
        self,
        cache: AnswerCache | None,
        prelude: Prelude | None,
        send: Any,
    ) -> None:
        self._cache = cache
        self._keys = RequestKeys(cache.environment if cache is not None else "")
        self._send = send  # the writer's send(): one whole line, under its lock
        self._recording: dict[Any, str] = {}  # request id -> its key, until answered
        self._early: dict[Any, tuple[str, bytes]] = {}
        for msg_id, method, _, answer in prelude.answered if prelude is not None else ():
            self._early.setdefault(msg_id, (method, answer))
        self._ready = False
        self._changed = trio.Event()
        self._saving = trio.Lock()
        #: 2026-07-28 listen streams open (acknowledged, not ended) that asked for tool changes.
        self._listeners: set[Any] = set()
        self._tools_stale = False  # a stale tools/list on 2026-07-28: tell every listener
        self.stale = 0

    def asked(self, message: dict[str, Any]) -> None:
        """A message the reader accepted (the early door's replayed ones included)."""
        key = self._keys.key(message)
        if key is not None and self._cache is not None:
            self._recording[message["id"]] = key

    async def answered(self, text: str, data: bytes) -> bool:
        """One line the SDK writes: whether to write it (False: the early door did)."""
        head = ANSWER_HEAD.match(data)
        if head is None:
            return _LISTEN_ACK not in data or not await self._acknowledged(data)
        msg_id = orjson.loads(head.group(1))
        self._listeners.discard(msg_id)  # a listen stream ends with its answer
        key = self._recording.pop(msg_id, None)
        if key is not None and self._cache is not None:
            suffix = answer_suffix(text)
            if suffix is not None and self._cache.get(key) != suffix:
                self._cache.put(key, suffix)
                self._changed.set()
        early = self._early.pop(msg_id, None)
        if early is None:
            return True
        method, sent = early
        if sent != data:
            self.stale += 1
            log.warning(
                "mcp.stdio_cache_stale",
                method=method,
                hint="the early door's cached answer differed from the server's; the cache is "
                "corrected"
                + (" and the client told the tool list changed" if method == "tools/list" else ""),
            )
            if method == "tools/list":
                await self._tools_changed()
        return False

    async def _tools_changed(self) -> None:
        if self._keys.era == "2026":  # delivered on subscriptions/listen streams
            self._tools_stale = True
            for subscription in sorted(self._listeners, key=str):
                await self._tell_listener(subscription)
        else:  # 2025: the stdio door declares tools.listChanged while it caches
            await self._send(_LIST_CHANGED)

    async def _acknowledged(self, data: bytes) -> bool:
        """A listen stream's first line: noted; True if written here, with list_changed."""
        try:
            params = orjson.loads(data)["params"]
            subscription = params["_meta"][_SUBSCRIPTION_ID]
            wanted = params["notifications"].get("toolsListChanged") is True
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return False
        if not wanted or not isinstance(subscription, str | int):
            return False
        self._listeners.add(subscription)
        if not self._tools_stale:
            return False
        await self._send(data)  # the ack first: it opens the stream
        await self._tell_listener(subscription)
        return True

    async def _tell_listener(self, subscription: Any) -> None:
        """``list_changed`` on one listen stream, as the SDK's ListenHandler words it."""
        meta = {_SUBSCRIPTION_ID: subscription}
        note = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
        await self._send(orjson.dumps({**note, "params": {"_meta": meta}}) + b"\n")

    async def keep_saved(self, hold: trio.Event | None) -> None:
        """Save the cache whenever it changed, from the end of the daemon's start-up wait."""
        if self._cache is None:
            return
        if hold is not None:
            await hold.wait()
        self._ready = True
        while True:
            if self._cache.changed:
                await self._save()
            await self._changed.wait()
            self._changed = trio.Event()

    async def save_last(self) -> None:
        """At end of input: what changed since the last save (once the daemon was ready)."""
        if self._cache is not None and self._ready and self._cache.changed:
            with trio.move_on_after(_SAVE_S, shield=True):
                await self._save()

    async def _save(self) -> None:
        assert self._cache is not None
        try:
            async with self._saving:
                await trio.to_thread.run_sync(self._cache.save)
        except OSError as exc:
            log.warning(
                "mcp.stdio_cache_unsaved",
                path=str(self._cache.path),
                error=describe_os_error(exc),
                hint="the next start answers without the early door; check the state folder",
            )
