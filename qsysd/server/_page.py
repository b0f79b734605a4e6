"""The operator status page: a static shell at ``/`` whose script reads the API with a token.

A browser's first navigation cannot send a bearer header, so the shell (HTML, script, style
and icon, read from package data) is served without authentication, like ``/health``; it
holds no data. Its script asks for a token, keeps it in ``sessionStorage`` (this tab only,
never in a URL) and reads ``GET /api/v1/status`` and the event stream with it, so every datum
on the page passes the same authentication, roles and rate limits as any API call.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from qsysd import __version__
from qsysd.access import Principal
from qsysd.core import CoreLinkStatistics
from qsysd.tools import iso

__all__ = ["PAGE_CSP", "PAGE_PATHS", "PageAsset", "load_assets", "status_document"]

#: URL path -> (file in qsysd/server/static, content type).
_FILES: Mapping[str, tuple[str, str]] = {
    "/": ("status.html", "text/html; charset=utf-8"),
    "/static/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/static/status.css": ("status.css", "text/css; charset=utf-8"),
    "/static/icon.svg": ("icon.svg", "image/svg+xml"),
}
#: The paths of the shell: open to anyone, as they hold no data.
PAGE_PATHS: tuple[str, ...] = tuple(_FILES)
#: The Content-Security-Policy of the page at ``/`` (every other answer keeps
#: ``default-src 'none'``): script, style, icon and fetches from this origin only, no inline
#: script or style, no DOM sinks that parse HTML (Trusted Types), no form that could put the
#: token in a URL should the script fail to load, no framing.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)


@attrs.frozen
class PageAsset:
    """One file of the shell."""

    body: bytes
    content_type: str


def load_assets() -> dict[str, PageAsset]:
    """The shell's files by URL path, read once from the package (they ship as package data)."""
    folder = importlib.resources.files("qsysd.server") / "static"
    return {
        path: PageAsset((folder / name).read_bytes(), content_type)
        for path, (name, content_type) in _FILES.items()
    }


def _recovery(stats: CoreLinkStatistics | None) -> dict[str, Any] | None:
    """How a link has fared and when it tries again, from its statistics()."""
    if stats is None:
        return None
    return {
        "reconnects": stats.reconnects,
        "connect_failures": stats.connect_failures,
        "breaker_openings": stats.breaker_opened,
        "breaker_retry_in_s": round(stats.breaker_retry_in, 1),
        "retry_every_s": None if stats.connected else round(stats.retry_every, 1) or None,
        "last_push_age_s": None if stats.last_push_age is None else round(stats.last_push_age, 2),
        "design_mismatch": stats.design_mismatch,
    }


def status_document(
    principal: Principal,
    cores: Iterable[Mapping[str, Any]],
    statistics: Mapping[str, CoreLinkStatistics],
    writes: Mapping[str, Any],
    *,
    now: float,
) -> dict[str, Any]:
    """The answer of ``GET /api/v1/status``.

    ``cores`` is qsys_status's output, ``writes`` qsys_history's (kind audit) or the error
    that kept it from answering; each Core gains ``link``, its recovery counters and times.
    """
    return {
        "version": __version__,
        "time": iso(now),
        "principal": {
            "name": principal.name,
            "role": principal.role,
            "permissions": sorted(principal.permissions),
        },
        "cores": [{**core, "link": _recovery(statistics.get(core["name"]))} for core in cores],
        "writes": dict(writes),
    }
