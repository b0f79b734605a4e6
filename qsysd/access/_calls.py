"""The one call path: authorize -> validate -> tool -> result, logged and counted once."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import attrs
import structlog

from qsysd.access._limits import RateLimits
from qsysd.access._principal import DOORS, Door, Principal
from qsysd.api import QsysApi
from qsysd.core import RequestCounters
from qsysd.errors import PermissionDenied, QsysdError, RateLimited, describe
from qsysd.logs import bound_context
from qsysd.plugins import Registry, Tool, ToolContext

__all__ = ["CallPath", "CallStatistics"]

log = structlog.get_logger("qsysd.access")

#: The tool label of calls for names the registry does not know (labels stay bounded).
UNKNOWN_TOOL = "(unknown)"


@attrs.frozen
class CallStatistics:
    """Tool calls per door: ``calls`` maps (tool, outcome) to a count; latency histogram.

    Outcomes: ``ok``; ``rejected`` (the caller's mistake or a refusal: bad arguments, unknown
    name, policy); ``denied`` (the role lacks the permission); ``failed`` (the Core or qsysd
    could not do it); ``limited`` (a rate limit); ``crashed`` (a bug: an exception outside
    the tree).
    """

    door: Door
    calls: Mapping[tuple[str, str], int]
    latency_buckets: tuple[tuple[float, int], ...]
    latency_sum: float
    latency_count: int


class CallPath:
    """Every door's tool calls and listings go through here, and nowhere else."""

    def __init__(
        self, api: QsysApi, registry: Registry, *, limits: RateLimits | None = None
    ) -> None:
        self.api = api
        self.registry = registry
        #: Per-principal and per-address budgets of the network doors (stdio is one trusted
        #: client, so it has none).
        self.limits = limits or RateLimits()
        self._counters = {door: RequestCounters() for door in DOORS}

    def tools(self, principal: Principal) -> list[Tool]:
        """The tools ``principal`` may call (the others are not listed to it)."""
        return [t for t in self.registry.tools() if principal.may(t.permission)]

    async def call_tool(
        self,
        principal: Principal,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Run tool ``name`` for ``principal``; its output, or a :class:`QsysdError` raised.

        Any other exception escaping a tool is logged with its traceback and re-raised; a
        door renders every exception with :func:`qsysd.errors.describe`.
        """
        started = time.perf_counter()
        label = name if self.registry.has_tool(name) else UNKNOWN_TOOL
        outcome = "crashed"
        with bound_context(request_id=request_id, door=principal.door):
            try:
                if principal.door != "stdio":
                    known = self.registry.has_tool(name)
                    reads = not known or self.registry.tool(name).permission == "read"
                    await self.limits.spend(
                        "read" if reads else "write",
                        principal=principal.name,
                        address=principal.address,
                    )
                output = await self.registry.call_tool(
                    name,
                    arguments,
                    ToolContext(self.api, principal.name),
                    permissions=principal.permissions,
                )
            except QsysdError as exc:
                report = describe(exc)
                outcome = _outcome(exc, report.status)
                log.info("tool.failed", tool=name, principal=principal.name,
                         error=report.type.rpartition(":")[2], detail=str(exc)[:200],
                         duration_ms=_ms(started))  # fmt: skip
                raise
            except Exception:
                log.exception("tool.crashed", tool=name, principal=principal.name)
                raise
            else:
                outcome = "ok"
                log.info("tool.called", tool=name, principal=principal.name,
                         duration_ms=_ms(started))  # fmt: skip
                return output
            finally:
                self._counters[principal.door].record(label, outcome, time.perf_counter() - started)

    def statistics(self) -> list[CallStatistics]:
        return [
            CallStatistics(
                door=door,
                calls=c.by_method_outcome(),
                latency_buckets=c.cumulative_buckets(),
                latency_sum=c.latency_sum,
                latency_count=c.latency_count,
            )
            for door, c in self._counters.items()
        ]


def _outcome(exc: QsysdError, status: int) -> str:
    """The bounded outcome label of a failed call."""
    if isinstance(exc, PermissionDenied):
        return "denied"
    if isinstance(exc, RateLimited):
        return "limited"
    return "rejected" if status < 500 else "failed"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
