"""Built-in write tools: set controls, snapshots, mixers. Every one goes through the policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import attrs

from qsysd.api import ControlChange, ControlResult, WriteFailed
from qsysd.errors import ToolInputError
from qsysd.plugins import NOT_BLANK, Tool, ToolContext, doc, hookimpl
from qsysd.tools._common import CORE_DOC, NAME_MAX, ControlResultOut, result_out

_CONFIRM_DOC = (
    "Set true only after the user explicitly agreed to a large gain change: lifts the "
    "gain step limit, per call and over recent calls (other limits still apply)."
)
_DRY_RUN_DOC = "True: check everything and report what would change, without writing."


def _raise_if_nothing_written(results: Sequence[ControlResult]) -> None:
    if results and not any(r.ok for r in results):
        raise WriteFailed(results)


# qsys_set ------------------------------------------------------------------------------------


@attrs.frozen
class ChangeIn:
    """One control to change: give exactly one of value, position or string."""

    control: str = attrs.field(
        metadata=doc(
            "The control: 'Component.control' (e.g. 'Lobby_BGM.gain'), a named control, or "
            "an alias.",
            minLength=1,
            maxLength=NAME_MAX,
            pattern=NOT_BLANK,
        )
    )
    value: float | bool | str | None = attrs.field(
        default=None,
        metadata=doc(
            "The new value in the control's unit: dB for gains (e.g. -20), true/false for mutes, "
            "text for Text controls.",
            maxLength=4096,
        ),
    )
    position: float | None = attrs.field(
        default=None,
        metadata=doc(
            "The new position in the control's range, 0.0 (minimum) to 1.0 (maximum).",
            minimum=0,
            maximum=1,
        ),
    )
    string: str | None = attrs.field(
        default=None,
        metadata=doc(
            "The new value as the Core would write it, e.g. '-12dB' or 'muted'.", maxLength=4096
        ),
    )
    ramp: float | None = attrs.field(
        default=None,
        metadata=doc(
            "Seconds to fade to the new value (gains); omit for an immediate change.",
            minimum=0,
            maximum=300,
        ),
    )


@attrs.frozen
class SetInput:
    """Arguments of qsys_set."""

    changes: list[ChangeIn] = attrs.field(
        metadata=doc(
            "The controls to change; each is written and reported on its own.",
            minItems=1,
            maxItems=100,
        )
    )
    core: str | None = attrs.field(default=None, metadata=CORE_DOC)
    confirm: bool = attrs.field(default=False, metadata=doc(_CONFIRM_DOC))
    dry_run: bool = attrs.field(default=False, metadata=doc(_DRY_RUN_DOC))


@attrs.frozen
class SetOutput:
    """Per-control results of a write."""

    core: str = attrs.field(metadata=doc("The Core written to."))
    dry_run: bool = attrs.field(metadata=doc("True when nothing was written."))
    results: list[ControlResultOut] = attrs.field(
        metadata=doc(
            "One per requested change, in request order: the Core's acknowledged value and string, "
            "or the error."
        )
    )


async def set_controls(ctx: ToolContext, args: SetInput) -> SetOutput:
    changes = []
    for i, c in enumerate(args.changes):
        given = [n for n in ("value", "position", "string") if getattr(c, n) is not None]
        if len(given) != 1:
            raise ToolInputError(
                f"changes[{i}] ({c.control}): give exactly one of value, position or string; "
                f"got {', '.join(given) or 'none'}"
            )
        changes.append(ControlChange(c.control, c.value, c.position, c.string, c.ramp))
    outcome = await ctx.set(
        changes,
        core=args.core,
        confirm=args.confirm,
        dry_run=args.dry_run,
    )
    _raise_if_nothing_written(outcome.results)
    return SetOutput(outcome.core, outcome.dry_run, [result_out(r) for r in outcome.results])


# snapshots -----------------------------------------------------------------------------------


@attrs.frozen
class SnapshotLoadInput:
    """Arguments of qsys_snapshot_load."""

    bank: str = attrs.field(
        metadata=doc(
            "The snapshot bank component's name (type snapshot_controller), e.g. 'Scenes'.",
            minLength=1,
            maxLength=NAME_MAX,
        )
    )
    number: int = attrs.field(
        metadata=doc("The snapshot to recall, from 1.", minimum=1, maximum=1000)
    )
    ramp: float = attrs.field(
        default=0.0,
        metadata=doc(
            "Seconds to fade to the snapshot's values; 0 for immediate.", minimum=0, maximum=300
        ),
    )
    core: str | None = attrs.field(default=None, metadata=CORE_DOC)
    dry_run: bool = attrs.field(default=False, metadata=doc(_DRY_RUN_DOC))


@attrs.frozen
class SnapshotSaveInput:
    """Arguments of qsys_snapshot_save."""

    bank: str = attrs.field(
        metadata=doc("The snapshot bank component's name.", minLength=1, maxLength=NAME_MAX)
    )
    number: int = attrs.field(
        metadata=doc("The snapshot to overwrite, from 1.", minimum=1, maximum=1000)
    )
    core: str | None = attrs.field(default=None, metadata=CORE_DOC)
    dry_run: bool = attrs.field(default=False, metadata=doc(_DRY_RUN_DOC))


@attrs.frozen
class SnapshotOutput:
    """What the Core acknowledged."""

    core: str = attrs.field(metadata=doc("The Core."))
    bank: str = attrs.field(metadata=doc("The snapshot bank."))
    number: int = attrs.field(metadata=doc("The snapshot."))
    operation: str = attrs.field(metadata=doc("load or save."))
    ramp: float = attrs.field(metadata=doc("The ramp in seconds."))
    dry_run: bool = attrs.field(metadata=doc("True when nothing was sent."))
    message: str = attrs.field(metadata=doc("What the Core acknowledged."))


async def snapshot_load(ctx: ToolContext, args: SnapshotLoadInput) -> SnapshotOutput:
    o = await ctx.load_snapshot(
        args.bank, args.number, core=args.core, ramp=args.ramp,
        dry_run=args.dry_run,
    )  # fmt: skip
    return SnapshotOutput(o.core, o.bank, o.number, o.operation, o.ramp, o.dry_run, o.message)


async def snapshot_save(ctx: ToolContext, args: SnapshotSaveInput) -> SnapshotOutput:
    o = await ctx.save_snapshot(args.bank, args.number, core=args.core, dry_run=args.dry_run)
    return SnapshotOutput(o.core, o.bank, o.number, o.operation, o.ramp, o.dry_run, o.message)


# qsys_mixer_set ------------------------------------------------------------------------------

_CHANNELS_DOC = (
    "Channels in the Core's syntax: '3', '1 2 5', '1-4', '*' (all), '1-8 !3' (all but 3)."
)


@attrs.frozen
class MixerSetInput:
    """Arguments of qsys_mixer_set."""

    mixer: str = attrs.field(
        metadata=doc("The mixer component's name.", minLength=1, maxLength=NAME_MAX)
    )
    target: Literal["crosspoint", "input", "output"] = attrs.field(
        metadata=doc(
            "What to set: 'input' or 'output' channel strips, or 'crosspoint' (input -> output)."
        )
    )
    inputs: str | None = attrs.field(
        default=None,
        metadata=doc(_CHANNELS_DOC + " Needed for input and crosspoint.", maxLength=NAME_MAX),
    )
    outputs: str | None = attrs.field(
        default=None,
        metadata=doc(_CHANNELS_DOC + " Needed for output and crosspoint.", maxLength=NAME_MAX),
    )
    gain: float | None = attrs.field(
        default=None, metadata=doc("The gain in dB, e.g. -10.", minimum=-100, maximum=20)
    )
    mute: bool | None = attrs.field(default=None, metadata=doc("true to mute, false to unmute."))
    ramp: float | None = attrs.field(
        default=None, metadata=doc("Seconds to fade the gain.", minimum=0, maximum=300)
    )
    core: str | None = attrs.field(default=None, metadata=CORE_DOC)
    confirm: bool = attrs.field(default=False, metadata=doc(_CONFIRM_DOC))
    dry_run: bool = attrs.field(default=False, metadata=doc(_DRY_RUN_DOC))


@attrs.frozen
class MixerSetOutput:
    """The mixer controls after the change, as the Core reports them."""

    core: str = attrs.field(metadata=doc("The Core."))
    mixer: str = attrs.field(metadata=doc("The mixer."))
    methods: list[str] = attrs.field(metadata=doc("The QRC Mixer methods sent."))
    dry_run: bool = attrs.field(metadata=doc("True when nothing was sent."))
    results: list[ControlResultOut] = attrs.field(
        metadata=doc("Each affected control with its new string.")
    )


async def mixer_set(ctx: ToolContext, args: MixerSetInput) -> MixerSetOutput:
    o = await ctx.mixer_set(
        args.mixer,
        args.target,
        core=args.core,
        inputs=args.inputs,
        outputs=args.outputs,
        gain=args.gain,
        mute=args.mute,
        ramp=args.ramp,
        confirm=args.confirm,
        dry_run=args.dry_run,
    )
    return MixerSetOutput(
        o.core, o.mixer, list(o.methods), o.dry_run, [result_out(r) for r in o.results]
    )


# registration --------------------------------------------------------------------------------

TOOLS = [
    Tool(
        name="qsys_set",
        title="Set control values",
        description=(
            "Change one or more controls: gains in dB (value: -20), mutes (value: true), any "
            "control by position (0..1) or by string ('-12dB'); optional ramp in seconds. "
            "Reported done only when the Core acknowledged it, with the Core's own strings per "
            "control. Each control at most once per call. The safety policy applies to every "
            "gain in dB (zones, mixers, EQ bands, named controls), however it is written: "
            "protected controls, bounds, a maximum gain, and a maximum gain step per call (ask "
            "the user, then confirm: true). Use dry_run to preview. Example: "
            '{"changes": [{"control": "Lobby_BGM.gain", "value": -20, "ramp": 2}]}.'
        ),
        input_type=SetInput,
        output_type=SetOutput,
        handler=set_controls,
        examples=[
            {"changes": [{"control": "Lobby_BGM.gain", "value": -20, "ramp": 2}]},
            {"changes": [{"control": "Lobby_BGM.mute", "value": True}], "dry_run": True},
        ],
        permission="write",
        read_only=False,
        destructive=False,
        idempotent=True,
    ),
    Tool(
        name="qsys_snapshot_load",
        title="Recall a snapshot",
        description=(
            "Recall a stored snapshot (scene/preset) of a snapshot bank component, optionally "
            "fading over ramp seconds. Changes many controls at once to values stored in the "
            "Core, which the gain limits cannot check: recall only what the user asked for. "
            "Find banks with "
            'qsys_list_components type=\'snapshot_controller\'. Example: {"bank": "Scenes", '
            '"number": 2, "ramp": 3}.'
        ),
        input_type=SnapshotLoadInput,
        output_type=SnapshotOutput,
        handler=snapshot_load,
        examples=[{"bank": "Scenes", "number": 2, "ramp": 3}],
        permission="write",
        read_only=False,
        destructive=False,
        idempotent=True,
    ),
    Tool(
        name="qsys_snapshot_save",
        title="Save a snapshot",
        description=(
            "Overwrite a snapshot of a bank with the current values of the controls it covers. "
            "The old snapshot is lost: do it only when the user asked. Example: "
            '{"bank": "Scenes", "number": 4}.'
        ),
        input_type=SnapshotSaveInput,
        output_type=SnapshotOutput,
        handler=snapshot_save,
        examples=[{"bank": "Scenes", "number": 4}],
        permission="admin",
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        name="qsys_mixer_set",
        title="Set mixer gains and mutes",
        description=(
            "Set the gain (dB) and/or mute of a mixer's input strips, output strips or "
            "crosspoints, many channels at once with the Core's channel syntax ('1-4', '*', "
            "'1-8 !3'). Reports every affected control's new string. Example: route input 2 "
            'to outputs 1-2 at -6 dB: {"mixer": "Main_Mixer", "target": "crosspoint", '
            '"inputs": "2", "outputs": "1-2", "gain": -6}.'
        ),
        input_type=MixerSetInput,
        output_type=MixerSetOutput,
        handler=mixer_set,
        examples=[
            {
                "mixer": "Main_Mixer",
                "target": "crosspoint",
                "inputs": "2",
                "outputs": "1-2",
                "gain": -6,
            }
        ],
        permission="write",
        read_only=False,
        destructive=False,
        idempotent=True,
    ),
]


@hookimpl
def qsysd_register_tools(register: Callable[[Tool], None]) -> None:
    for tool in TOOLS:
        register(tool)
