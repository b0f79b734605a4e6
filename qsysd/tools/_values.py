"""The read tool for control values: qsys_get."""

from __future__ import annotations

import attrs

from qsysd.plugins import NOT_BLANK, Tool, ToolContext, doc
from qsysd.state import Scalar
from qsysd.tools._common import CORE_DOC, NAME_MAX, json_scalar


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


@attrs.define  # per control of every read: see ControlOut
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
    source: str = attrs.field(
        metadata=doc("'cache', 'core' (read fresh), or 'none' (not read: see error).")
    )
    error: str | None = attrs.field(
        metadata=doc("Why the control could not be read; null when it was.")
    )


@attrs.frozen
class GetOutput:
    """Values of the requested controls, in request order."""

    values: list[ValueOut] = attrs.field(metadata=doc("One entry per requested control."))


async def get(ctx: ToolContext, args: GetInput) -> GetOutput:
    results = await ctx.get(args.controls, core=args.core, fresh=args.fresh)
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


GET_TOOL = Tool(
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
)
