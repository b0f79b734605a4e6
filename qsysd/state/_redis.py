"""Snapshots in Redis (the ``redis`` extra): one key holds the snapshot JSON."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import coredis
import structlog
import trio

from qsysd.errors import StateUnavailable
from qsysd.state._snapshot import Snapshot, SnapshotCorrupt, decode_snapshot, encode_snapshot

__all__ = ["RedisStateBackend"]

log = structlog.get_logger(__name__)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@contextmanager
def _mapped(where: str) -> Iterator[None]:
    """The one mapping of coredis, socket and deadline errors to :class:`StateUnavailable`."""
    try:
        yield
    except Exception as exc:
        # coredis raises from its own nursery: a group of one error says less than the error.
        leaf: BaseException = exc
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, trio.TooSlowError):
            raise StateUnavailable(f"Redis at {where} did not answer in time") from exc
        if isinstance(leaf, coredis.exceptions.RedisError | OSError):
            reason = str(leaf) or type(leaf).__name__
            raise StateUnavailable(f"Redis at {where} cannot be used: {reason}") from exc
        if leaf is exc:
            raise
        raise leaf from exc


class RedisStateBackend:
    """A :class:`StateBackend` keeping the snapshot JSON under one Redis key.

    ``url`` is ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS); it may hold a
    password, so it is never logged or shown. Each save or load opens its own connection, so
    a Redis restart between snapshots needs no reconnect logic; SET replaces the key
    atomically. An unreadable snapshot is renamed to ``<key>.corrupt-<timestamp>`` and reported.
    A Redis that cannot be reached, refuses the credentials or does not answer within
    ``timeout`` seconds raises :class:`StateUnavailable`; nothing else is retried here.
    """

    def __init__(self, url: str, *, key: str = "qsysd:snapshot", timeout: float = 10.0) -> None:
        self._url = url
        self.key = key
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"RedisStateBackend({_redacted(self._url)!r}, key={self.key!r})"

    def _client(self) -> coredis.Redis[bytes]:
        return coredis.Redis.from_url(self._url)

    async def save(self, snapshot: Snapshot) -> None:
        data = await trio.to_thread.run_sync(encode_snapshot, snapshot)
        with _mapped(_redacted(self._url)), trio.fail_after(self.timeout):
            async with self._client() as client:
                await client.set(self.key, data)

    async def load(self) -> Snapshot | None:
        with _mapped(_redacted(self._url)), trio.fail_after(self.timeout):
            async with self._client() as client:
                data = await client.get(self.key)
                if data is None:
                    return None
                try:
                    return await trio.to_thread.run_sync(decode_snapshot, data)
                except SnapshotCorrupt as exc:
                    aside = f"{self.key}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
                    await client.rename(self.key, aside)
                    reason = str(exc)
        log.warning("state.snapshot_corrupt", key=self.key, reason=reason, set_aside=aside)
        return None
