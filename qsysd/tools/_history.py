"""The read tool for what happened: qsys_history (audited writes and value changes)."""

from __future__ import annotations

from typing import Literal

import attrs

from qsysd.plugins import Tool, ToolContext, doc
from qsysd.tools._common import CORE_DOC, NAME_MAX, iso, parse_time


@attrs.frozen
class HistoryInput:
    """Arguments of qsys_history."""

    kind: Literal["audit", "changes"] = attrs.field(
        default="audit",
        metadata=doc(
            "'audit': writes made through qsysd (who, before, after, outcome). 'changes': value "
            "changes seen on the Core, whoever made them (needs the journal)."
        ),
    )
    control: str | None = attrs.field(
        default=None,
        metadata=doc("Only this control ('Component.control').", maxLength=NAME_MAX),
    )
    component: str | None = attrs.field(
        default=None,
        metadata=doc("Only the controls of this component.", maxLength=NAME_MAX),
    )
    core: str | None = attrs.field(default=None, metadata=CORE_DOC)
    principal: str | None = attrs.field(
        default=None,
        metadata=doc("Only writes by this principal (audit).", maxLength=NAME_MAX),
    )
    since_minutes: float | None = attrs.field(
        default=None,
        metadata=doc("Only the last N minutes.", exclusiveMinimum=0, maximum=5_256_000),
    )
    since: str | None = attrs.field(
        default=None,
        metadata=doc(
            "Only entries at or after this ISO 8601 time ('2026-11-26T08:00:00Z'; UTC when no "
            "zone is given).",
            maxLength=64,
        ),
    )
    until: str | None = attrs.field(
        default=None,
        metadata=doc("Only entries before this ISO 8601 time.", maxLength=64),
    )
    limit: int = attrs.field(
        default=20, metadata=doc("At most this many entries, newest first.", minimum=1, maximum=500)
    )
    offset: int = attrs.field(
        default=0,
        metadata=doc(
            "Skip this many entries: pass the previous answer's next_offset for the next page.",
            minimum=0,
            maximum=1_000_000,
        ),
    )


@attrs.frozen
class HistoryEntry:
    """One audited write or one value change."""

    time: str | None = attrs.field(metadata=doc("ISO 8601 UTC."))
    core: str = attrs.field(metadata=doc("The Core."))
    control: str = attrs.field(
        metadata=doc("The control; a snapshot is its bank's 'load.N' / 'save.N'.")
    )
    principal: str | None = attrs.field(metadata=doc("Who asked (audit); null for a change."))
    before: str | None = attrs.field(metadata=doc("The Core's string before."))
    after: str | None = attrs.field(metadata=doc("The Core's string after."))
    outcome: str = attrs.field(
        metadata=doc("ok, dry_run, refused or error (audit); 'changed' for a change.")
    )
    error: str | None = attrs.field(metadata=doc("Why a write was refused or failed."))


@attrs.frozen
class HistoryOutput:
    """History entries, newest first."""

    kind: str = attrs.field(metadata=doc("audit or changes."))
    entries: list[HistoryEntry] = attrs.field(metadata=doc("Newest first."))
    next_offset: int | None = attrs.field(
        metadata=doc("The offset of the next page, or null when this is the last one.")
    )
    note: str | None = attrs.field(metadata=doc("Why the list may be incomplete, if it may be."))


async def history(ctx: ToolContext, args: HistoryInput) -> HistoryOutput:
    since = parse_time(args.since, "since")
    if args.since_minutes is not None:
        recent = ctx.now() - args.since_minutes * 60
        since = recent if since is None else max(since, recent)
    until = parse_time(args.until, "until")
    # One entry more than asked for says whether another page follows.
    rows = await ctx.history(
        kind="write" if args.kind == "audit" else "change",
        core=args.core,
        control=args.control,
        component=args.component,
        principal=args.principal,
        since=since,
        until=until,
        limit=args.limit + 1,
        offset=args.offset,
    )
    more = len(rows) > args.limit
    rows = rows[: args.limit]
    entries = [
        HistoryEntry(
            time=iso(row.at),
            core=row.ref.core,
            control=str(row.ref),
            principal=row.principal,
            before=row.before_string,
            after=row.after_string,
            outcome=row.outcome or "changed",
            error=row.error,
        )
        for row in rows
    ]
    note = None
    if not ctx.has_journal:
        note = "the journal is disabled: no change history; writes are those of this process only"
    next_offset = args.offset + len(entries) if more else None
    return HistoryOutput(args.kind, entries, next_offset, note)


HISTORY_TOOL = Tool(
    name="qsys_history",
    title="Write audit and change history",
    description=(
        "Who changed what, and when. kind='audit' (default) lists writes made through qsysd "
        "with principal, before/after strings and result; kind='changes' lists value changes "
        'seen on the Core from any source (needs the journal). Example: {"control": '
        '"Lobby_BGM.gain", "since_minutes": 60}.'
    ),
    input_type=HistoryInput,
    output_type=HistoryOutput,
    handler=history,
    examples=[{"control": "Lobby_BGM.gain", "since_minutes": 60}],
)


AuditOutcome = Literal[
    "ok", "rejected", "refused", "denied", "limited", "unauthenticated", "failed", "crashed"
]


@attrs.frozen
class AuditInput:
    """Arguments of qsys_audit."""

    principal: str | None = attrs.field(
        default=None,
        metadata=doc("Only calls by this principal (token name or JWT subject).",
                     maxLength=NAME_MAX),
    )  # fmt: skip
    outcome: AuditOutcome | None = attrs.field(
        default=None,
        metadata=doc(
            "Only calls with this outcome: ok, rejected (bad input), refused (the safety "
            "policy), denied (403: the role lacks the permission), limited (429), "
            "unauthenticated (401), failed (the Core or qsysd could not) or crashed."
        ),
    )
    tool: str | None = attrs.field(
        default=None, metadata=doc("Only calls of this tool.", maxLength=NAME_MAX)
    )
    since_minutes: float | None = attrs.field(
        default=None,
        metadata=doc("Only the last N minutes.", exclusiveMinimum=0, maximum=5_256_000),
    )
    since: str | None = attrs.field(
        default=None,
        metadata=doc(
            "Only calls at or after this ISO 8601 time (UTC when no zone is given).", maxLength=64
        ),
    )
    until: str | None = attrs.field(
        default=None, metadata=doc("Only calls before this ISO 8601 time.", maxLength=64)
    )
    limit: int = attrs.field(
        default=20, metadata=doc("At most this many calls, newest first.", minimum=1, maximum=500)
    )
    offset: int = attrs.field(
        default=0,
        metadata=doc(
            "Skip this many calls: pass the previous answer's next_offset for the next page.",
            minimum=0,
            maximum=1_000_000,
        ),
    )


@attrs.frozen
class AuditEntry:
    """One audited call: a write on any door, or a refused call."""

    time: str | None = attrs.field(metadata=doc("ISO 8601 UTC."))
    principal: str | None = attrs.field(
        metadata=doc("Token name or JWT subject; null when authentication failed.")
    )
    role: str | None = attrs.field(metadata=doc("The principal's role."))
    door: str = attrs.field(metadata=doc("stdio, mcp or rest."))
    address: str | None = attrs.field(metadata=doc("The client's network address."))
    request_id: str | None = attrs.field(metadata=doc("The request id (HTTP X-Request-Id)."))
    tool: str | None = attrs.field(metadata=doc("The tool; null when refused before one."))
    arguments: str | None = attrs.field(metadata=doc("The arguments, as JSON (bounded)."))
    outcome: str = attrs.field(metadata=doc("See the outcome argument."))
    answer: str | None = attrs.field(metadata=doc("The tool's answer, as JSON (bounded)."))
    error: str | None = attrs.field(metadata=doc("Why the call was refused or failed."))


@attrs.frozen
class AuditOutput:
    """Audited calls, newest first."""

    entries: list[AuditEntry] = attrs.field(metadata=doc("Newest first."))
    next_offset: int | None = attrs.field(
        metadata=doc("The offset of the next page, or null when this is the last one.")
    )
    note: str | None = attrs.field(metadata=doc("Why the list may be incomplete, if it may be."))


async def audit(ctx: ToolContext, args: AuditInput) -> AuditOutput:
    since = parse_time(args.since, "since")
    if args.since_minutes is not None:
        recent = ctx.now() - args.since_minutes * 60
        since = recent if since is None else max(since, recent)
    rows = await ctx.audit(
        principal=args.principal,
        outcome=args.outcome,
        tool=args.tool,
        since=since,
        until=parse_time(args.until, "until"),
        limit=args.limit + 1,  # one more says whether another page follows
        offset=args.offset,
    )
    more = len(rows) > args.limit
    entries = [
        AuditEntry(
            time=iso(r.at),
            principal=r.principal,
            role=r.role,
            door=r.door,
            address=r.address,
            request_id=r.request_id,
            tool=r.tool,
            arguments=r.arguments,
            outcome=r.outcome,
            answer=r.answer,
            error=r.error,
        )
        for r in rows[: args.limit]
    ]
    note = None
    if not ctx.has_journal:
        note = "the journal is disabled: these are the latest calls of this process only"
    return AuditOutput(entries, args.offset + len(entries) if more else None, note)


AUDIT_TOOL = Tool(
    name="qsys_audit",
    title="Audit of calls and refusals",
    description=(
        "The security audit (admin only): every write on any door and every refused call "
        "(401, 403, 429, policy) with principal, role, door, client address, request id, tool, "
        "arguments and answer, newest first. Filter by principal, outcome, tool and time; page "
        'with offset. Example: {"outcome": "denied", "since_minutes": 60}.'
    ),
    input_type=AuditInput,
    output_type=AuditOutput,
    handler=audit,
    permission="admin",
    examples=[{"outcome": "denied", "since_minutes": 60}],
)
