"""The one call path: authorize -> validate -> tool -> result, logged and counted once."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import attrs

from qsysd.access._limits import RateLimits
from qsysd.access._principal import DOORS, Door, Principal
from qsysd.api import QsysApi
from qsysd.core import RequestCounters
from qsysd.errors import (
    PermissionDenied,
    PolicyViolation,
    QsysdError,
    RateLimited,
    WriteFailed,
    describe,
)
from qsysd.logs import HotLogger, bound_context
from qsysd.plugins import Registry, Tool, ToolContext
from qsysd.policy import acting_role
from qsysd.state import CallRecord

__all__ = ["CallPath", "CallStatistics"]

log = HotLogger("qsysd.access")

#: The tool label of calls for names the registry does not know (labels stay bounded).
UNKNOWN_TOOL = "(unknown)"
#: Outcomes of a read that are audited all the same: the caller was refused.
REFUSALS = frozenset({"denied", "limited", "refused", "unauthenticated"})
#: The most characters of arguments or of an answer an audit row keeps.
AUDIT_TEXT_MAX = 4_000


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
        # Every tool beyond reads is audited (a plugin's read_only hint is not trusted for
        # that); reading the audit itself is audited too, without its answer.
        tool = self.registry.tool(name) if label != UNKNOWN_TOOL else None
        writes = tool is not None and tool.permission != "read"
        outcome = "crashed"
        with bound_context(request_id=request_id, door=principal.door):
            try:
                if principal.door != "stdio":
                    await self.limits.spend(
                        "write" if writes else "read",
                        principal=principal.name,
                        address=principal.address,
                    )
                # Every write the tool makes (a plugin's through its ToolContext too) is checked
                # against the role's [policy.roles] entry, as well as the global policy.
                # A write's audit rows are committed with the call's row below: one commit.
                with acting_role(principal.role), self.api.call_row_follows(writes):
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
                audited = _audit_outcome(exc, outcome)
                if writes or audited in REFUSALS:
                    error = f"{report.type}: {exc}"
                    await self.audit(principal, audited, request_id=request_id, tool=label,
                                     arguments=arguments, error=error)  # fmt: skip
                raise
            except Exception as exc:
                log.exception("tool.crashed", tool=name, principal=principal.name)
                if writes:
                    await self.audit(principal, "crashed", request_id=request_id, tool=label,
                                     arguments=arguments, error=type(exc).__name__)  # fmt: skip
                raise
            else:
                outcome = "ok"
                log.info("tool.called", tool=name, principal=principal.name,
                         duration_ms=_ms(started))  # fmt: skip
                if writes:
                    answer = None if tool and tool.read_only else output
                    await self.audit(principal, "ok", request_id=request_id, tool=label,
                                     arguments=arguments, answer=answer)  # fmt: skip
                return output
            finally:
                self._counters[principal.door].record(label, outcome, time.perf_counter() - started)

    async def audit(
        self,
        principal: Principal | None,
        outcome: str,
        *,
        door: Door | None = None,
        address: str | None = None,
        request_id: str | None,
        tool: str | None,
        arguments: Mapping[str, Any] | None,
        answer: Any = None,
        error: str | None = None,
    ) -> None:
        """Journal one call or refusal; ``principal`` None: the caller is not authenticated.

        Doors call this only for refusals before the call path (a 401 on HTTP); everything
        else is audited by :meth:`call_tool`. Never pass credentials in ``arguments``.
        """
        await self.api.record_call(
            CallRecord(
                at=self.api.now(),
                principal=principal.name if principal else None,
                role=principal.role if principal else None,
                door=principal.door if principal else door or "rest",
                address=principal.address if principal else address,
                request_id=request_id,
                tool=tool,
                arguments=_bounded_json(arguments) if arguments is not None else None,
                outcome=outcome,
                answer=_bounded_json(answer) if answer is not None else None,
                error=error[:AUDIT_TEXT_MAX] if error is not None else None,
            )
        )

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


def _audit_outcome(exc: QsysdError, outcome: str) -> str:
    """The audit's outcome: as the metrics say, and ``refused`` when the policy refused."""
    if isinstance(exc, PolicyViolation) or (
        isinstance(exc, WriteFailed) and any(getattr(r, "rule", None) for r in exc.results)
    ):
        return "refused"
    return outcome


def _bounded_json(value: Any) -> str:
    text = json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
    if len(text) > AUDIT_TEXT_MAX:
        return text[: AUDIT_TEXT_MAX - 1] + "…"
    return text


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
