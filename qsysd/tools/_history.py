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
