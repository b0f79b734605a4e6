"""Read tools to explore a design: qsys_find_controls, qsys_list_components, qsys_list_controls."""

from __future__ import annotations

from typing import Any, cast

import attrs

from qsysd.plugins import Tool, ToolContext, doc
from qsysd.tools._common import CORE_DOC, NAME_MAX, ControlOut, controls_json

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


@attrs.define  # per match of every search: see ControlOut
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
    found = ctx.find_controls(args.query, core=args.core, limit=args.limit)
    return FindOutput(
        [
            MatchOut(m.control, m.core, m.type, m.component_type, m.score, m.string, m.why)
            for m in found
        ]
    )


FIND_CONTROLS_TOOL = Tool(
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
)

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
    page = ctx.components(
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


LIST_COMPONENTS_TOOL = Tool(
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
class ListControlsOutput:
    """A component's controls."""

    core: str = attrs.field(metadata=doc("The Core."))
    component: str | None = attrs.field(metadata=doc("The component; null for named controls."))
    type: str | None = attrs.field(metadata=doc("The component's Q-SYS type."))
    # list_controls puts each control's JSON object here (controls_json): what cattrs would
    # make of its ControlOut, which is the schema's
    controls: list[ControlOut] = attrs.field(metadata=doc("Every control, with its value."))

    def json_object(self) -> dict[str, Any]:
        """This output as cattrs would convert it, the controls' objects as they are."""
        return {
            "core": self.core,
            "component": self.component,
            "type": self.type,
            "controls": [
                attrs.asdict(c) if isinstance(c, ControlOut) else c for c in self.controls
            ],
        }


async def list_controls(ctx: ToolContext, args: ListControlsInput) -> ListControlsOutput:
    core = ctx.core(args.core)
    comp_type = None
    if args.component is not None:
        comp_type = ctx.component(core, args.component).type
    rows = ctx.control_rows(core, args.component, filter=args.filter)
    controls = cast(list[ControlOut], controls_json(rows))
    return ListControlsOutput(core, args.component, comp_type, controls)


LIST_CONTROLS_TOOL = Tool(
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
)
