"""qsysd-scenes: named scenes from configuration, recalled in one call through the policy.

A scene is a list of control changes (each with an optional ramp) and optionally a snapshot
to recall first. ``scene_recall`` applies it as the calling principal, so every change is
checked by qsysd's safety policy and audited; ``dry_run`` shows what it would do.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import attrs

from qsysd.api import ControlChange
from qsysd.errors import LookupFailed, QsysdError
from qsysd.plugins import Resource, Tool, ToolContext, doc, hookimpl

__all__ = ["Scene", "SceneChange", "SceneSnapshot", "ScenesConfig"]


@attrs.frozen
class SceneChange:
    """One control a scene sets: by value, string or position (0..1), with an optional ramp."""

    control: str = attrs.field(metadata=doc("'Component.control' or a named control.", minLength=1))
    value: float | bool | str | None = attrs.field(default=None, metadata=doc("The value."))
    string: str | None = attrs.field(default=None, metadata=doc("Or the Core's string, '-20dB'."))
    position: float | None = attrs.field(
        default=None, metadata=doc("Or the position, 0..1.", minimum=0, maximum=1)
    )
    ramp: float = attrs.field(
        default=0.0, metadata=doc("Seconds to ramp over.", minimum=0, maximum=300)
    )


@attrs.frozen
class SceneSnapshot:
    """A snapshot the scene recalls before its changes."""

    bank: str = attrs.field(metadata=doc("The snapshot bank component.", minLength=1))
    number: int = attrs.field(metadata=doc("The snapshot number.", minimum=1))
    ramp: float = attrs.field(default=0.0, metadata=doc("Seconds.", minimum=0, maximum=300))


@attrs.frozen
class Scene:
    """A named scene."""

    description: str = attrs.field(default="", metadata=doc("What the scene is for."))
    changes: list[SceneChange] = attrs.field(factory=list, metadata=doc("Controls to set."))
    snapshot: SceneSnapshot | None = attrs.field(default=None, metadata=doc("Recalled first."))


@attrs.frozen
class ScenesConfig:
    """[plugins.config.scenes]: the scenes by name."""

    scenes: dict[str, Scene] = attrs.field(factory=dict, metadata=doc("Scenes by name."))
    core: str | None = attrs.field(default=None, metadata=doc("The Core (default: the only)."))


@attrs.frozen
class ListInput:
    """No arguments."""


@attrs.frozen
class SceneSummary:
    name: str = attrs.field(metadata=doc("The scene's name."))
    description: str = attrs.field(metadata=doc("What it is for."))
    controls: list[str] = attrs.field(metadata=doc("The controls it sets."))
    snapshot: str | None = attrs.field(metadata=doc("The snapshot it recalls, 'Bank #n'."))


@attrs.frozen
class ListOutput:
    """The configured scenes."""

    scenes: list[SceneSummary] = attrs.field(metadata=doc("Every scene."))


@attrs.frozen
class RecallInput:
    """Arguments of scene_recall."""

    name: str = attrs.field(metadata=doc("The scene's name (see scene_list).", minLength=1))
    dry_run: bool = attrs.field(default=False, metadata=doc("Check and report; write nothing."))
    confirm: bool = attrs.field(
        default=False, metadata=doc("Lift the policy's step limit, as qsys_set's confirm.")
    )


@attrs.frozen
class ChangeResult:
    control: str = attrs.field(metadata=doc("The control."))
    ok: bool = attrs.field(metadata=doc("Whether the Core applied it (or would, in a dry run)."))
    before: str | None = attrs.field(metadata=doc("Its string before."))
    string: str | None = attrs.field(metadata=doc("Its string now (a ramp's start)."))
    error: str | None = attrs.field(metadata=doc("Why not, when not ok."))


@attrs.frozen
class RecallOutput:
    """What the scene did."""

    scene: str = attrs.field(metadata=doc("The scene."))
    dry_run: bool = attrs.field(metadata=doc("Whether nothing was written."))
    ok: bool = attrs.field(metadata=doc("Whether every change (and the snapshot) was applied."))
    snapshot: str | None = attrs.field(metadata=doc("The snapshot recall's outcome."))
    results: list[ChangeResult] = attrs.field(metadata=doc("One per change, in order."))


def _config(ctx: ToolContext) -> ScenesConfig:
    config: ScenesConfig = ctx.config
    return config


def _scene(ctx: ToolContext, name: str) -> Scene:
    scenes = _config(ctx).scenes
    if name not in scenes:
        raise LookupFailed(
            f"unknown scene {name!r}; scenes: {', '.join(sorted(scenes)) or 'none configured'}",
            difflib.get_close_matches(name, scenes, n=3),
        )
    return scenes[name]


async def scene_list(ctx: ToolContext, args: ListInput) -> ListOutput:
    return ListOutput(
        [
            SceneSummary(
                name,
                scene.description,
                [c.control for c in scene.changes],
                f"{scene.snapshot.bank} #{scene.snapshot.number}" if scene.snapshot else None,
            )
            for name, scene in sorted(_config(ctx).scenes.items())
        ]
    )


async def scene_recall(ctx: ToolContext, args: RecallInput) -> RecallOutput:
    scene = _scene(ctx, args.name)
    core = _config(ctx).core
    snapshot = None
    if scene.snapshot is not None:
        snap = scene.snapshot
        try:
            outcome = await ctx.load_snapshot(
                snap.bank, snap.number, core=core, ramp=snap.ramp, dry_run=args.dry_run
            )
        except QsysdError as exc:  # no half scene: the changes are not applied either
            return RecallOutput(args.name, args.dry_run, False, f"not recalled: {exc}", [])
        snapshot = outcome.message
    changes = [
        ControlChange(
            c.control, value=c.value, string=c.string, position=c.position, ramp=c.ramp or None
        )
        for c in scene.changes
    ]
    results: list[ChangeResult] = []
    if changes:
        done = await ctx.set(changes, core=core, confirm=args.confirm, dry_run=args.dry_run)
        results = [ChangeResult(r.control, r.ok, r.before, r.string, r.error) for r in done.results]
    ok = all(r.ok for r in results)
    return RecallOutput(args.name, args.dry_run, ok, snapshot, results)


async def read_scenes(ctx: ToolContext) -> dict[str, Any]:
    return attrs.asdict(await scene_list(ctx, ListInput()))


@hookimpl
def qsysd_plugin_config() -> type:
    return ScenesConfig


@hookimpl
def qsysd_register_tools(register: Callable[[Tool], None]) -> None:
    register(
        Tool(
            name="scene_list",
            title="List scenes",
            description="The configured scenes: name, purpose, the controls each sets.",
            input_type=ListInput,
            output_type=ListOutput,
            handler=scene_list,
        )
    )
    register(
        Tool(
            name="scene_recall",
            title="Recall a scene",
            description=(
                "Apply a named scene in one call: its snapshot, then its control changes with "
                "their ramps, each through the safety policy and audited. Use dry_run first "
                'to see what it would change. Example: {"name": "presentation"}.'
            ),
            input_type=RecallInput,
            output_type=RecallOutput,
            handler=scene_recall,
            permission="write",
            read_only=False,
            idempotent=True,
            examples=[{"name": "presentation", "dry_run": True}],
        )
    )


@hookimpl
def qsysd_register_resources(register: Callable[[Resource], None]) -> None:
    register(Resource("scenes://list", "scenes", "The configured scenes.", read_scenes))
