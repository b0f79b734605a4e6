"""Plugins at run time against the emulator: the ToolContext contract, observers, start-up
tasks, resources, and plugins that break."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import attrs
import mcp_types as types
import pytest
import trio
import trio.testing
from _logs import LogText

from qsysd.api import ControlChange, QsysApi
from qsysd.api._audit import AuditTrail
from qsysd.config import PolicyConfig
from qsysd.core import CoreLink
from qsysd.emulator import EmulatorServer
from qsysd.plugins import (
    ChangeObserver,
    PluginContext,
    Resource,
    StartupTask,
    Tool,
    ToolContext,
    ValueChange,
    WriteObserver,
    doc,
    hookimpl,
)
from qsysd.policy import Policy
from qsysd.state import Journal, JournalEntry, StateStore
from qsysd.testing import connected_client, running_stack

WAIT = 10.0
FORBIDDEN = (CoreLink, StateStore, Policy, Journal, QsysApi, AuditTrail)


def reachable(obj: object, depth: int = 3) -> list[tuple[str, object]]:
    """Every value reachable through public, non-method attributes, ``depth`` levels down."""
    found: list[tuple[str, object]] = []
    if depth == 0 or isinstance(obj, str | int | float | bool | type(None)):
        return found
    for name in dir(obj):
        if name.startswith("_"):
            continue
        value = getattr(obj, name)
        if inspect.ismethod(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
            continue
        found.append((name, value))
        found += [(f"{name}.{n}", v) for n, v in reachable(value, depth - 1)]
    return found


async def test_tool_context_reaches_no_link_store_policy_or_journal(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with running_stack(emulator) as stack:
            ctx = stack.context("alice")
            paths = reachable(ctx)
            assert {p for p, _ in paths} >= {"principal", "config", "plugin", "has_journal"}
            for path, value in paths:
                assert not isinstance(value, FORBIDDEN), f"ctx.{path} is a {type(value)}"
            for name in ("links", "store", "policy", "journal"):
                assert not hasattr(stack.api, name)
            assert not hasattr(ctx, "api")


async def test_a_plugin_with_only_tool_context_writes_through_policy_and_audit(
    emulator: EmulatorServer,
) -> None:
    policy = PolicyConfig(protected=["Bar.mute", "Scenes.*"])
    with trio.fail_after(WAIT):
        async with running_stack(emulator, policy=policy) as stack:
            ctx = stack.context("alice")
            refused = await ctx.set([ControlChange("Bar.mute", value=True)])
            assert (refused.results[0].ok, refused.results[0].rule) == (False, "protected")
            assert emulator.get_value("Bar", "mute") in (0, False)
            done = await ctx.set([ControlChange("Bar.gain", value=-12.0)])
            assert done.results[0].ok and emulator.get_value("Bar", "gain") == -12.0
            with pytest.raises(Exception, match="protected"):
                await ctx.load_snapshot("Scenes", 1)
            audit = await ctx.history(kind="write")
            assert [(str(e.ref), e.principal, e.outcome) for e in reversed(audit)] == [
                ("Bar.mute", "alice", "refused"),
                ("Bar.gain", "alice", "ok"),
                ("Scenes.load.1", "alice", "refused"),
            ]


# observers -----------------------------------------------------------------------------------


@attrs.define
class Observers:
    """A slow write observer (blocked until released), a fast one, and a change observer."""

    release: trio.Event = attrs.field(factory=trio.Event)
    slow_seen: list[JournalEntry] = attrs.field(factory=list)
    fast_seen: list[JournalEntry] = attrs.field(factory=list)
    changes: list[ValueChange] = attrs.field(factory=list)
    changed: trio.Event = attrs.field(factory=trio.Event)
    slow_done: trio.Event = attrs.field(factory=trio.Event)
    fast_done: trio.Event = attrs.field(factory=trio.Event)

    @hookimpl
    def qsysd_observe_writes(self, context: PluginContext) -> WriteObserver:
        async def observe(entry: JournalEntry) -> None:
            if context.name == "slow":
                await self.release.wait()
                self.slow_seen.append(entry)
                if len(self.slow_seen) == 3:
                    self.slow_done.set()
            else:
                self.fast_seen.append(entry)
                if len(self.fast_seen) == 6:
                    self.fast_done.set()

        return observe

    @hookimpl
    def qsysd_observe_changes(self, context: PluginContext) -> ChangeObserver | None:
        if context.name == "slow":
            return None

        async def observe(batch: list[ValueChange]) -> None:
            self.changes.extend(batch)
            if any(c.current.ref.name == "gain" and c.current.value == -16.0 for c in batch):
                self.changed.set()

        return observe


async def test_a_slow_observer_never_delays_writes_and_its_drops_are_counted(
    emulator: EmulatorServer, log_text: LogText
) -> None:
    slow, fast = Observers(), Observers()
    with trio.fail_after(WAIT):
        async with running_stack(
            emulator, plugins={"slow": slow, "fast": fast}, observer_queue_size=2
        ) as stack:
            ctx = stack.context("bob")
            for gain in (-11.0, -12.0, -13.0, -14.0, -15.0, -16.0):
                outcome = await ctx.set([ControlChange("Bar.gain", value=gain)])
                assert outcome.results[0].ok  # done while the slow observer is blocked
            await fast.changed.wait()
            stats = {(s.plugin, s.hook): s for s in stack.runtime.statistics()}
            blocked = stats[("slow", "qsysd_observe_writes")]
            # One taken by the blocked observer, two queued, the other three dropped.
            assert (blocked.pending, blocked.dropped) == (2, 3)
            assert "plugin.observer_dropped" in log_text()
            await fast.fast_done.wait()
            assert [e.after for e in fast.fast_seen] == [-11.0, -12.0, -13.0, -14.0, -15.0, -16.0]
            assert all(e.principal == "bob" and e.outcome == "ok" for e in fast.fast_seen)
            assert any(
                c.previous is not None and c.current.ref.name == "gain" for c in fast.changes
            )
            slow.release.set()
            await slow.slow_done.wait()
            assert [e.after for e in slow.slow_seen] == [-11.0, -12.0, -13.0]


@attrs.define
class FailingObserver:
    calls: int = 0
    twice: trio.Event = attrs.field(factory=trio.Event)

    @hookimpl
    def qsysd_observe_writes(self) -> WriteObserver:
        async def observe(entry: JournalEntry) -> None:
            self.calls += 1
            if self.calls == 2:
                self.twice.set()
            raise RuntimeError("observer bug")

        return observe


async def test_a_failing_observer_is_logged_and_writes_go_on(
    emulator: EmulatorServer, log_text: LogText
) -> None:
    with trio.fail_after(WAIT):
        failing = FailingObserver()
        async with running_stack(emulator, plugins={"failing": failing}) as stack:
            ctx = stack.context()
            for gain in (-11.0, -12.0):
                assert (await ctx.set([ControlChange("Bar.gain", value=gain)])).results[0].ok
            await failing.twice.wait()
            await trio.testing.wait_all_tasks_blocked()
            (stats,) = stack.runtime.statistics()
            assert (stats.failed, stats.delivered) == (2, 0)
            assert "plugin.observer_failed" in log_text() and "observer bug" in log_text()


# start-up tasks --------------------------------------------------------------------------------


@attrs.define
class Background:
    started: trio.Event = attrs.field(factory=trio.Event)
    cancelled: bool = False
    principal: str | None = None

    @hookimpl
    def qsysd_startup(self, context: PluginContext) -> StartupTask:
        async def run(ctx: ToolContext) -> None:
            self.principal = ctx.principal
            await ctx.set([ControlChange("Bar.mute", value=True)])
            self.started.set()
            try:
                await trio.sleep_forever()
            finally:
                self.cancelled = True

        return run


class BrokenStartup:
    @hookimpl
    def qsysd_startup(self) -> StartupTask:
        async def run(ctx: ToolContext) -> None:
            raise RuntimeError("could not reach the building system")

        return run


class BrokenHook:
    @hookimpl
    def qsysd_startup(self) -> StartupTask:
        raise RuntimeError("hook bug")


async def test_startup_tasks_run_as_their_plugin_and_are_cancelled_at_stop(
    emulator: EmulatorServer, log_text: LogText
) -> None:
    background = Background()
    plugins = {"bg": background, "broken": BrokenStartup(), "hookbug": BrokenHook()}
    with trio.fail_after(WAIT):
        async with running_stack(emulator, plugins=plugins) as stack:
            await background.started.wait()
            assert background.principal == "plugin:bg"
            assert emulator.get_value("Bar", "mute") in (1, True)
            assert [(e.plugin, e.stage) for e in stack.registry.load_errors] == [
                ("hookbug", "qsysd_startup")
            ]
            assert "qsys_get" in {t.name for t in stack.registry.tools()}
            assert not background.cancelled
        assert background.cancelled
    assert "plugin.task_failed" in log_text() and "building system" in log_text()


# resources ----------------------------------------------------------------------------------------


@attrs.frozen
class RoomsConfig:
    """Settings."""

    rooms: list[str] = attrs.field(metadata=doc("Room names."))


class Rooms:
    @hookimpl
    def qsysd_plugin_config(self) -> type:
        return RoomsConfig

    @hookimpl
    def qsysd_register_resources(self, register: Callable[[Resource], None]) -> None:
        async def read(ctx: ToolContext) -> dict[str, Any]:
            config: RoomsConfig = ctx.config
            return {"rooms": config.rooms, "bar": (await ctx.get(["Bar.gain"]))[0].string}

        async def broken(ctx: ToolContext) -> str:
            raise RuntimeError("resource bug")

        register(Resource("rooms://all", "rooms", "The configured rooms.", read))
        register(Resource("rooms://broken", "broken", "Fails.", broken))


async def test_plugin_resources_are_listed_and_read_over_mcp(emulator: EmulatorServer) -> None:
    config = {"rooms": {"rooms": ["Bar", "Lobby"]}}
    with trio.fail_after(WAIT):
        async with (
            running_stack(emulator, plugins={"rooms": Rooms()}, plugin_config=config) as stack,
            connected_client(stack) as client,
        ):
            listed = {str(r.uri) for r in (await client.list_resources()).resources}
            assert {"rooms://all", "rooms://broken", "qsys://cores"} <= listed
            result = await client.read_resource("rooms://all")
            content = result.contents[0]
            assert isinstance(content, types.TextResourceContents)
            assert json.loads(content.text)["rooms"] == ["Bar", "Lobby"]
            with pytest.raises(Exception, match="resource 'rooms://broken' of plugin 'rooms'"):
                await client.read_resource("rooms://broken")
            assert (await client.call_tool("qsys_status", {})).is_error is False


# tools see their plugin's config --------------------------------------------------------------


@attrs.frozen
class NoArgs:
    """No arguments."""


@attrs.frozen
class Greeting:
    """A greeting."""

    text: str = attrs.field(metadata=doc("The greeting."))


@attrs.frozen
class GreeterConfig:
    """Settings."""

    greeting: str = attrs.field(metadata=doc("What to say."))


class Greeter:
    @hookimpl
    def qsysd_plugin_config(self) -> type:
        return GreeterConfig

    @hookimpl
    def qsysd_register_tools(self, register: Callable[[Tool], None]) -> None:
        async def greet(ctx: ToolContext, args: NoArgs) -> Greeting:
            return Greeting(f"{ctx.config.greeting}, {ctx.principal} ({ctx.plugin})")

        register(
            Tool(
                name="greet",
                description="Greets.",
                input_type=NoArgs,
                output_type=Greeting,
                handler=greet,
            )
        )


async def test_a_tool_called_over_mcp_sees_its_plugins_config(emulator: EmulatorServer) -> None:
    config = {"greeter": {"greeting": "hello"}}
    with trio.fail_after(WAIT):
        async with (
            running_stack(emulator, plugins={"greeter": Greeter()}, plugin_config=config) as stack,
            connected_client(stack) as client,
        ):
            result = await client.call_tool("greet", {})
            assert result.structured_content == {"text": "hello, stdio (greeter)"}
