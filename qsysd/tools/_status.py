"""Read tools for the system at large: qsys_status and qsys_summary."""

from __future__ import annotations

import attrs

from qsysd.plugins import Tool, ToolContext, doc
from qsysd.tools._common import CORE_DOC, CoreOut, core_out

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
    core = ctx.core(args.core) if args.core is not None else None
    return StatusOutput([core_out(s) for s in ctx.statuses() if core is None or s.core == core])


STATUS_TOOL = Tool(
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
    s = ctx.summary(args.core, max_zones=args.max_zones)
    return SummaryOutput(
        cores=[
            CoreBrief(c.core, c.connected, c.state, c.design_name, c.status_string) for c in s.cores
        ],
        zones=[ZoneOut(z.name, z.core, z.gain, z.gain_db, z.muted, z.stale) for z in s.zones],
        zones_total=s.zones_total,
        components=s.components,
        controls=s.controls,
    )


SUMMARY_TOOL = Tool(
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
)
