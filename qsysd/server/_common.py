"""Paging and JSON text shared by the MCP handlers."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

import mcp_types as types
import orjson
from mcp.shared.exceptions import MCPError

T = TypeVar("T")


def page(items: list[T], cursor: str | None, size: int) -> tuple[list[T], str | None]:
    """The page of ``items`` at ``cursor`` and the cursor of the next page (None on the last)."""
    try:
        start = int(cursor) if cursor else 0
    except ValueError:
        start = -1
    if not 0 <= start <= len(items):
        # Cursors are opaque: only one this server gave out is valid.
        raise MCPError(
            types.INVALID_PARAMS,
            f"invalid cursor {(cursor or '')[:40]!r}; use the nextCursor of the previous page",
        )
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def to_json(data: Any) -> str:
    """Compact JSON text for a tool result or a resource (NaN and infinities become null)."""
    try:
        text: str = orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        # A lone surrogate a caller sent (echoed in an error) is no UTF-8: escape it instead.
        return json.dumps(_finite(data), separators=(",", ":"), default=str)
    return text


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {str(k): _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data
