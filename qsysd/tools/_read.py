"""Built-in read tools: status, components, controls, values, search, summary, history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import attrs

from qsysd.plugins import NOT_BLANK, Tool, ToolContext, doc, hookimpl
from qsysd.state import Scalar
from qsysd.tools._common import (
    CORE_DOC,
    NAME_MAX,
    CoreOut,
    core_out,
    iso,
    json_scalar,
    parse_time,
)

# qsys_status ---------------------------------------------------------------------------------


@attrs.frozen
class StatusInput:
    """Arguments of qsys_status."""

    core: str | None = attrs.field(default=None, metadata=CORE_DOC)


@attrs.frozen
class StatusOutput:
    """The status of each Core."""

    cores: list[CoreOut] = attrs.field(metadata=doc("One entry per configured Core."))


async def status(ctx: ToolContext, args: StatusInput) -> StatusOutput:
    core = ctx.api.core(args.core) if args.core is not None else None
    return StatusOutput([core_out(s) for s in ctx.api.statuses() if core is None or s.core == core])


# qsys_list_components ------------------------------------------------------------------------


@attrs.frozen
class ListComponentsInput:
    """Arguments of qsys_list_components."""

    core: str | None = attrs.field(default=None, metadata=CORE_DOC)
    filter: str | None = attrs.field(
        default=None,
        metadata=doc(
            "Only components whose name contains this text (case-insensitive), or matches this "
            "glob ('Zone_*').",
            maxLength=NAME_MAX,
            examples=["lobby", "Zone_*"],
        ),
    )
    type: str | None = attrs.field(
        default=None,
        metadata=doc(
            "Only components of this Q-SYS type, e.g. 'gain', 'mixer', 'snapshot_controller'.",
            maxLength=NAME_MAX,
        ),
    )
    offset: int = attrs.field(
        default=0,
        metadata=doc(
            "How many matching components to skip (paging).", minimum=0, maximum=1_000_000
        ),
    )
    limit: int = attrs.field(
        default=50, metadata=doc("At most this many components.", minimum=1, maximum=500)
    )


@attrs.frozen
class ComponentOut:
    """One component."""

    name: str = attrs.field(metadata=doc("The component's name, used in 'Component.control'."))
    type: str = attrs.field(metadata=doc("The Q-SYS component type."))
    controls: int = attrs.field(metadata=doc("How many controls it has."))


@attrs.frozen
class ListComponentsOutput:
    """A page of components."""

    core: str = attrs.field(metadata=doc("The Core listed."))
    total: int = attrs.field(metadata=doc("How many components match in all."))
    offset: int = attrs.field(metadata=doc("The offset of this page."))
    next_offset: int | None = attrs.field(
        metadata=doc("Pass as offset for the next page; null on the last page.")
    )
    components: list[ComponentOut] = attrs.field(
        metadata=doc("The components of this page, in design order.")
    )


async def list_components(ctx: ToolContext, args: ListComponentsInput) -> ListComponentsOutput:
    page = ctx.api.components(
        args.core, filter=args.filter, type=args.type, offset=args.offset, limit=args.limit
    )
    return ListComponentsOutput(
        core=page.core,
        total=page.total,
        offset=page.offset,
        next_offset=page.next_offset,
        components=[
            ComponentOut(c.name, c.type, n)
            for c, n in zip(page.components, page.control_counts, strict=True)
        ],
    )


# qsys_list_controls --------------------------------------------------------------------------


@attrs.frozen
class ListControlsInput:
    """Arguments of qsys_list_controls."""

    component: str | None = attrs.field(
        default=None,
        metadata=doc(
            "The component's exact name; omit it (or null) for the design's named controls.",
            maxLength=NAME_MAX,
        ),
    )
    core: str | None = attrs.field(default=None, metadata=CORE_DOC)
    filter: str | None = attrs.field(
        default=None,
        metadata=doc(
            "Only controls whose name contains this text or matches this glob ('input.*.gain').",
            maxLength=NAME_MAX,
        ),
    )


@attrs.frozen
class ControlOut:
    """One control with its current value."""

    name: str = attrs.field(
        metadata=doc("The control's name within its component (e.g. 'gain', 'input.1.mute').")
    )
    type: str = attrs.field(metadata=doc("Float, Boolean, Integer, Text, Trigger, ..."))
    direction: str = attrs.field(metadata=doc("Read/Write, Read Only or Write Only."))
    value: Scalar = attrs.field(
        metadata=doc("The current value (numbers in the control's unit; booleans 0/1).")
    )
    string: str | None = attrs.field(
        metadata=doc("The Core's string for the value, e.g. '-12.0dB', 'muted'.")
    )
    position: float | None = attrs.field(metadata=doc("The value's position in its range, 0..1."))
    min: float | None = attrs.field(metadata=doc("The smallest value the control accepts."))
    max: float | None = attrs.field(metadata=doc("The largest value the control accepts."))
    age_s: float = attrs.field(metadata=doc("Seconds since the Core last confirmed this value."))
    stale: bool = attrs.field(
        metadata=doc("True while the Core is unreachable: the value may be out of date.")
    )


@attrs.frozen
class ListControlsOutput:
    """A component's controls."""

    core: str = attrs.field(metadata=doc("The Core."))
    component: str | None = attrs.field(metadata=doc("The component; null for named controls."))
    type: str | None = attrs.field(metadata=doc("The component's Q-SYS type."))
    controls: list[ControlOut] = attrs.field(metadata=doc("Every control, with its value."))


async def list_controls(ctx: ToolContext, args: ListControlsInput) -> ListControlsOutput:
    core = ctx.api.core(args.core)
    comp_type = None
    if args.component is not None:
        comp_type = ctx.api.component(core, args.component).type
    readings = ctx.api.controls(core, args.component, filter=args.filter)
    controls = []
    for r in readings:
        v = r.value
        controls.append(
            ControlOut(
                name=r.info.ref.name,
                type=r.info.type,
                direction=r.info.direction,
                value=json_scalar(v.value) if v else None,
                string=v.string if v else None,
                position=v.position if v else None,
                min=r.info.value_min,
                max=r.info.value_max,
                age_s=round(r.age, 3),
                stale=r.stale,
            )
        )
    return ListControlsOutput(core, args.component, comp_type, controls)


# qsys_get ------------------------------------------------------------------------------------


@attrs.frozen
class GetInput:
    """Arguments of qsys_get."""

    controls: list[str] = attrs.field(
        metadata=doc(
            "Controls to read, as 'Component.control' (e.g. 'Lobby_BGM.gain'), a named control "
            "('MainGain') or a configured alias.",
            minItems=1,
            maxItems=200,
            items={"type": "string", "minLength": 1, "maxLength": NAME_MAX, "pattern": NOT_BLANK},
            examples=[["Lobby_BGM.gain", "Lobby_BGM.mute"]],
        )
    )
    core: str | None = attrs.field(default=None, metadata=CORE_DOC)
    fresh: bool = attrs.field(
        default=False,
        metadata=doc(
            "False (default): answer from qsysd's live cache, which the Core keeps current, with "
            "each value's age. True: ask the Core now (slower)."
        ),
    )


@attrs.frozen
class ValueOut:
    """One control's value, or why it could not be read."""

    control: str = attrs.field(metadata=doc("The control as resolved ('Component.control')."))
    value: Scalar = attrs.field(
        metadata=doc("The value (gains in dB, booleans 0/1 or true/false).")
    )
    string: str | None = attrs.field(metadata=doc("The Core's string, e.g. '-12.0dB'."))
    position: float | None = attrs.field(metadata=doc("Position in the range, 0..1."))
    age_s: float | None = attrs.field(metadata=doc("Seconds since the Core confirmed the value."))
    stale: bool = attrs.field(
        metadata=doc("True when the Core is unreachable and the value may be out of date.")
    )
    source: str = attrs.field(metadata=doc("'cache' or 'core' (read fresh)."))
    error: str | None = attrs.field(
        metadata=doc("Why the control could not be read; null when it was.")
    )


@attrs.frozen
class GetOutput:
    """Values of the requested controls, in request order."""

    values: list[ValueOut] = attrs.field(metadata=doc("One entry per requested control."))


async def get(ctx: ToolContext, args: GetInput) -> GetOutput:
    results = await ctx.api.get(args.controls, core=args.core, fresh=args.fresh)
    return GetOutput(
        [
            ValueOut(
                control=r.control,
                value=json_scalar(r.value),
                string=r.string,
                position=r.position,
                age_s=r.age,
                stale=r.stale,
                source=r.source,
                error=r.error,
            )
            for r in results
        ]
    )


# qsys_find_controls --------------------------------------------------------------------------


@attrs.frozen
class FindInput:
    """Arguments of qsys_find_controls."""

    query: str = attrs.field(
        metadata=doc(
            "What the user calls the control, in plain words: 'lobby music volume', "
            "'boardroom mic mute', 'zone 3 level'.",
            minLength=1,
            maxLength=200,
        )
    )
    core: str | None = attrs.field(
        default=None,
        metadata=doc("Search this Core only; omit to search every Core.", maxLength=100),
    )
    limit: int = attrs.field(
        default=10, metadata=doc("At most this many matches.", minimum=1, maximum=50)
    )


@attrs.frozen
class MatchOut:
    """One candidate control."""

    control: str = attrs.field(
        metadata=doc("Use this in qsys_get / qsys_set ('Component.control').")
    )
    core: str = attrs.field(metadata=doc("The Core it is on."))
    type: str = attrs.field(metadata=doc("The control's type (Float, Boolean, ...)."))
    component_type: str | None = attrs.field(
        metadata=doc("The component's Q-SYS type; null for named controls.")
    )
    score: float = attrs.field(
        metadata=doc("Relevance; higher is better (a configured alias scores 2).")
    )
    string: str | None = attrs.field(metadata=doc("Its current value as the Core shows it."))
    why: str = attrs.field(metadata=doc("Which words matched."))


@attrs.frozen
class FindOutput:
    """Controls ranked by relevance."""

    matches: list[MatchOut] = attrs.field(metadata=doc("Best first; empty when nothing matches."))


async def find_controls(ctx: ToolContext, args: FindInput) -> FindOutput:
    found = ctx.api.find_controls(args.query, core=args.core, limit=args.limit)
    return FindOutput(
        [
            MatchOut(m.control, m.core, m.type, m.component_type, m.score, m.string, m.why)
            for m in found
        ]
    )


# qsys_summary --------------------------------------------------------------------------------


@attrs.frozen
class SummaryInput:
    """Arguments of qsys_summary."""

    core: str | None = attrs.field(
        default=None,
        metadata=doc("Summarize this Core only; omit for every Core.", maxLength=100),
    )
    max_zones: int = attrs.field(
        default=40, metadata=doc("List at most this many zones.", minimum=1, maximum=500)
    )


@attrs.frozen
class ZoneOut:
    """A zone: a component with a gain and a mute."""

    name: str = attrs.field(
        metadata=doc("The component's name; its controls are '<name>.gain' and '<name>.mute'.")
    )
    core: str = attrs.field(metadata=doc("The Core."))
    gain: str | None = attrs.field(metadata=doc("The Core's gain string, e.g. '-12.0dB'."))
    gain_db: float | None = attrs.field(metadata=doc("The gain in dB."))
    muted: bool | None = attrs.field(metadata=doc("True when muted."))
    stale: bool = attrs.field(metadata=doc("True when the value may be out of date."))


@attrs.frozen
class CoreBrief:
    """A Core in one line."""

    name: str = attrs.field(metadata=doc("The Core's configured name."))
    connected: bool = attrs.field(metadata=doc("Connected now."))
    state: str = attrs.field(metadata=doc("Active, Standby, Idle or Unknown."))
    design: str = attrs.field(metadata=doc("The running design's name."))
    status: str = attrs.field(metadata=doc("The Core's status string."))


@attrs.frozen
class SummaryOutput:
    """The system at a glance."""

    cores: list[CoreBrief] = attrs.field(metadata=doc("Each Core."))
    zones: list[ZoneOut] = attrs.field(
        metadata=doc("Zones with their level and mute, design order.")
    )
    zones_total: int = attrs.field(
        metadata=doc("How many zones exist (more than listed when truncated).")
    )
    components: int = attrs.field(metadata=doc("Components in all."))
    controls: int = attrs.field(metadata=doc("Controls in all."))


async def summary(ctx: ToolContext, args: SummaryInput) -> SummaryOutput:
    s = ctx.api.summary(args.core, max_zones=args.max_zones)
    return SummaryOutput(
        cores=[
            CoreBrief(c.core, c.connected, c.state, c.design_name, c.status_string) for c in s.cores
        ],
        zones=[ZoneOut(z.name, z.core, z.gain, z.gain_db, z.muted, z.stale) for z in s.zones],
        zones_total=s.zones_total,
        components=s.components,
        controls=s.controls,
    )


# qsys_history --------------------------------------------------------------------------------


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
        recent = ctx.api.now() - args.since_minutes * 60
        since = recent if since is None else max(since, recent)
    until = parse_time(args.until, "until")
    # One entry more than asked for says whether another page follows.
    rows = await ctx.api.history(
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
    if ctx.api.journal is None:
        note = "the journal is disabled: no change history; writes are those of this process only"
    next_offset = args.offset + len(entries) if more else None
    return HistoryOutput(args.kind, entries, next_offset, note)


# registration --------------------------------------------------------------------------------

TOOLS = [
    Tool(
        name="qsys_status",
        title="Q-SYS Core status",
        description=(
            "Connection and engine status of the Q-SYS Cores: connected or not, Active/Standby, "
            "design name, status string (OK/Fault), circuit breaker. Use it first when anything "
            'fails, or to learn the Core names. Example: {} or {"core": "main"}.'
        ),
        input_type=StatusInput,
        output_type=StatusOutput,
        handler=status,
        examples=[{}, {"core": "main"}],
    ),
    Tool(
        name="qsys_summary",
        title="System summary",
        description=(
            "A compact overview: each Core, and every zone (a component with a gain and a mute) "
            "with its level in dB and mute state. The best first call to understand a venue; "
            "then use qsys_find_controls or qsys_list_controls for detail. Example: {}."
        ),
        input_type=SummaryInput,
        output_type=SummaryOutput,
        handler=summary,
        examples=[{}],
    ),
    Tool(
        name="qsys_find_controls",
        title="Find controls by description",
        description=(
            "Find controls from the words a person uses: 'lobby music volume' finds "
            "Lobby_BGM.gain. Ranked fuzzy search over component and control names, component "
            "types and configured aliases, with synonyms (volume=gain=level, music=bgm, "
            "mic=microphone, room=zone). Use it before qsys_get/qsys_set when you do not know "
            'the exact name. Example: {"query": "boardroom mic mute"}.'
        ),
        input_type=FindInput,
        output_type=FindOutput,
        handler=find_controls,
        examples=[{"query": "lobby music volume"}, {"query": "boardroom mic mute", "limit": 3}],
    ),
    Tool(
        name="qsys_list_components",
        title="List components",
        description=(
            "List the design's components (name, Q-SYS type, control count), filtered by name "
            "or type, a page at a time. Use to explore a design; to find a control from a "
            'description prefer qsys_find_controls. Example: {"filter": "zone", '
            '"type": "gain"}.'
        ),
        input_type=ListComponentsInput,
        output_type=ListComponentsOutput,
        handler=list_components,
        examples=[{"filter": "zone", "type": "gain"}],
    ),
    Tool(
        name="qsys_list_controls",
        title="List a component's controls",
        description=(
            "Every control of one component with its type, direction, range (min/max), value, "
            "the Core's string and position. Gains are in dB (typically -100..20), mutes are "
            "booleans. Omit component for the design's named controls. Example: "
            '{"component": "Lobby_BGM"}.'
        ),
        input_type=ListControlsInput,
        output_type=ListControlsOutput,
        handler=list_controls,
        examples=[{"component": "Lobby_BGM"}],
    ),
    Tool(
        name="qsys_get",
        title="Read control values",
        description=(
            "Read one or more controls. Answers from qsysd's live cache (kept current by the "
            "Core, each value with its age in seconds); fresh=true asks the Core directly. "
            'Unknown names get an error naming the closest ones. Example: {"controls": '
            '["Lobby_BGM.gain", "Lobby_BGM.mute"]}.'
        ),
        input_type=GetInput,
        output_type=GetOutput,
        handler=get,
        examples=[{"controls": ["Lobby_BGM.gain", "Lobby_BGM.mute"]}],
    ),
    Tool(
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
    ),
]


@hookimpl
def qsysd_register_tools(register: Callable[[Tool], None]) -> None:
    for tool in TOOLS:
        register(tool)
