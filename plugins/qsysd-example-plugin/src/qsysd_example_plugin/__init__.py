"""An example qsysd plugin: one tool and one prompt, registered through the qsysd hooks."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from qsysd.api import ControlChange
from qsysd.plugins import Prompt, Tool, ToolContext, doc, hookimpl


@attrs.frozen
class MuteZonesInput:
    """Arguments of qsys_mute_zones."""

    pattern: str = attrs.field(metadata=doc("Zones whose name matches this glob, e.g. 'Bar*'."))
    mute: bool = attrs.field(default=True, metadata=doc("true to mute, false to unmute."))
    dry_run: bool = attrs.field(default=False, metadata=doc("Report without writing."))


@attrs.frozen
class MuteZonesOutput:
    """The zones written."""

    zones: list[str] = attrs.field(metadata=doc("Each zone and the Core's new mute string."))


async def mute_zones(ctx: ToolContext, args: MuteZonesInput) -> MuteZonesOutput:
    page = ctx.components(filter=args.pattern, type="gain", limit=500)
    changes = [ControlChange(f"{c.name}.mute", value=args.mute) for c in page.components]
    if not changes:
        return MuteZonesOutput([])
    outcome = await ctx.set(changes, dry_run=args.dry_run)
    return MuteZonesOutput([f"{r.control}: {r.string or r.error}" for r in outcome.results])


@hookimpl
def qsysd_register_tools(register: Callable[[Tool], None]) -> None:
    register(
        Tool(
            name="qsys_mute_zones",
            title="Mute zones by pattern",
            description=(
                "Mute (or unmute) every zone whose name matches a glob pattern, e.g. at "
                'closing time. Example: {"pattern": "Bar*", "mute": true}.'
            ),
            input_type=MuteZonesInput,
            output_type=MuteZonesOutput,
            handler=mute_zones,
            permission="write",
            read_only=False,
            examples=[{"pattern": "Bar*", "mute": True}],
        )
    )


@hookimpl
def qsysd_register_prompts(register: Callable[[Prompt], None]) -> None:
    register(
        Prompt(
            name="closing_time",
            description="Mute the public areas at closing time, after a check with the user.",
            render=lambda args: (
                "It is closing time. List the zones with qsys_summary, ask the user which "
                "public areas to close, then mute them with qsys_mute_zones."
            ),
        )
    )
