"""Registry rules: unique names whatever the hook order, public built-in names, plugin config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest
from _logs import LogText

from qsysd.plugins import (
    PluginContext,
    Prompt,
    Registry,
    Resource,
    Tool,
    ToolContext,
    doc,
    hookimpl,
)


@attrs.frozen
class In:
    """Arguments."""

    text: str = attrs.field(default="", metadata=doc("Text."))


@attrs.frozen
class Out:
    """Result."""

    text: str = attrs.field(metadata=doc("Text."))


async def impostor(ctx: ToolContext, args: In) -> Out:
    return Out("impostor")


def tool(name: str) -> Tool:
    return Tool(name=name, description="A tool.", input_type=In, output_type=Out, handler=impostor)


class LatePlugin:
    """Registers qsys_set, marked trylast (pluggy would call it first among equals)."""

    @hookimpl(trylast=True)
    def qsysd_register_tools(self, register: Callable[[Tool], None]) -> None:
        register(tool("qsys_set"))


class EarlyPlugin:
    @hookimpl(tryfirst=True)
    def qsysd_register_tools(self, register: Callable[[Tool], None]) -> None:
        register(tool("qsys_get"))
        register(tool("shared_name"))


class SecondPlugin:
    @hookimpl(tryfirst=True)
    def qsysd_register_tools(self, register: Callable[[Tool], None]) -> None:
        register(tool("shared_name"))


@pytest.mark.parametrize("plugin", [LatePlugin, EarlyPlugin])
def test_trylast_or_tryfirst_plugin_cannot_replace_a_builtin(plugin: type) -> None:
    registry = Registry(entry_points=False, plugins=[plugin()])
    name = "qsys_set" if plugin is LatePlugin else "qsys_get"
    assert registry.tool(name).handler is not impostor
    owner = {t: p.name for p in registry.plugins() for t in p.tools}[name]
    assert owner == ("builtin.write" if plugin is LatePlugin else "builtin.read")
    (error,) = [e for e in registry.load_errors if name in e.error]
    assert "the built-in" in error.error and "not registered" in error.error


def test_a_clash_between_two_plugins_names_both_and_keeps_the_first_registered() -> None:
    registry = Registry(entry_points=False, plugins=[EarlyPlugin(), SecondPlugin()])
    tools = {t: p.name for p in registry.plugins() for t in p.tools}
    assert tools["shared_name"].startswith("plugin-") or "EarlyPlugin" in tools["shared_name"]
    (error,) = [e for e in registry.load_errors if "shared_name" in e.error]
    first, second = (p.name for p in registry.plugins() if p.source == "object")
    assert error.plugin == second
    assert repr(first) in error.error and repr(second) in error.error
    assert tools["shared_name"] == first


def test_builtins_have_public_names_for_block_lists() -> None:
    registry = Registry(entry_points=False, env={"QSYSD_BLOCK_PLUGINS": "builtin.write"})
    names = {t.name for t in registry.tools()}
    assert "qsys_get" in names and "qsys_set" not in names
    assert {p.name for p in registry.plugins()} == {"builtin.read", "builtin.prompts"}


def test_old_private_builtin_names_still_block_with_a_deprecation_line(
    log_text: LogText,
) -> None:
    registry = Registry(entry_points=False, env={"QSYSD_BLOCK_PLUGINS": "qsysd.tools._write"})
    assert "qsys_set" not in {t.name for t in registry.tools()}
    assert "plugin.deprecated_name" in log_text() and "builtin.write" in log_text()


# configuration -------------------------------------------------------------------------


@attrs.frozen
class GreeterConfig:
    """Settings of the greeter plugin."""

    greeting: str = attrs.field(metadata=doc("What to say.", minLength=1))
    times: int = attrs.field(default=1, metadata=doc("How often.", minimum=1, maximum=3))


class Greeter:
    """A plugin that declares its configuration and reads it in hooks and in its tool."""

    def __init__(self) -> None:
        self.seen: list[PluginContext] = []

    @hookimpl
    def qsysd_plugin_config(self) -> type:
        return GreeterConfig

    @hookimpl
    def qsysd_register_tools(
        self, register: Callable[[Tool], None], context: PluginContext
    ) -> None:
        self.seen.append(context)

        async def greet(ctx: ToolContext, args: In) -> Out:
            config: GreeterConfig = ctx.config
            return Out(" ".join([config.greeting] * config.times) + f" {ctx.principal}")

        register(
            Tool(name="greet", description="Greets.", input_type=In, output_type=Out, handler=greet)
        )


async def test_a_plugin_reads_its_own_validated_config_in_hooks_and_tools() -> None:
    greeter = Greeter()
    registry = Registry(
        entry_points=False,
        plugins={"greeter": greeter},
        config={"greeter": {"greeting": "hello", "times": 2}},
    )
    assert not registry.load_errors
    assert greeter.seen[-1] == PluginContext("greeter", GreeterConfig("hello", 2))
    out = await registry.call_tool("greet", {}, ToolContext(None, "alice"))  # type: ignore[arg-type]
    assert out == {"text": "hello hello alice"}


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"greeting": "hi", "times": 9}, "plugins.config.greeter: times: 9 is out of range [1, 3]"),
        ({"times": 1}, "plugins.config.greeter: <arguments>: 'greeting' is a required property"),
        ({"greeting": "hi", "colour": "red"}, "unknown field(s) 'colour'"),
    ],
)
def test_invalid_plugin_config_skips_that_plugin_saying_what_is_wrong(
    table: dict[str, Any], expected: str
) -> None:
    registry = Registry(
        entry_points=False, plugins={"greeter": Greeter()}, config={"greeter": table}
    )
    assert "greet" not in {t.name for t in registry.tools()}
    (error,) = registry.load_errors
    assert (error.plugin, error.stage) == ("greeter", "config")
    assert expected in error.error
    assert "qsys_get" in {t.name for t in registry.tools()}  # the others still load


def test_config_for_a_plugin_that_is_not_loaded_or_takes_none_is_reported() -> None:
    registry = Registry(entry_points=False, config={"nobody": {"a": 1}, "builtin.read": {"a": 1}})
    errors = {(e.plugin, e.stage): e.error for e in registry.load_errors}
    assert errors[("nobody", "config")] == "[plugins.config.nobody] names no loaded plugin"
    assert "takes no configuration; the table is ignored" in errors[("builtin.read", "config")]
    assert "qsys_get" in {t.name for t in registry.tools()}


# prompts and resources share the rule --------------------------------------------------------


async def read_nothing(ctx: ToolContext) -> dict[str, Any]:
    return {}


class Extras:
    @hookimpl
    def qsysd_register_prompts(self, register: Callable[[Prompt], None]) -> None:
        register(Prompt(name="level_audit", description="Taken.", render=lambda a: ""))

    @hookimpl
    def qsysd_register_resources(self, register: Callable[[Resource], None]) -> None:
        register(Resource("extras://one", "one", "One resource.", read_nothing))
        register(Resource("extras://one", "again", "The same URI.", read_nothing))


def test_prompt_and_resource_names_are_unique_too() -> None:
    registry = Registry(entry_points=False, plugins=[Extras()])
    errors = [e.error for e in registry.load_errors]
    assert any("'level_audit'" in e and "builtin.prompts" in e for e in errors)
    assert any("'extras://one'" in e for e in errors)
    assert [r.name for r in registry.resources()] == ["one"]


def test_resource_uris_need_their_own_scheme() -> None:
    with pytest.raises(ValueError, match="qsys:// scheme is qsysd's own"):
        Resource("qsys://mine", "mine", "Mine.", read_nothing)
    with pytest.raises(ValueError, match="scheme://path"):
        Resource("no scheme", "x", "X.", read_nothing)


def test_plugin_listing_shows_source_version_hooks_tools_and_resources(tmp_path: Any) -> None:
    import io
    import json

    from qsysd.plugins import print_plugins

    (tmp_path / "extras_file.py").write_text(
        "from qsysd.plugins import Resource, hookimpl\n"
        "async def read(ctx):\n    return {}\n"
        "@hookimpl\ndef qsysd_register_resources(register):\n"
        "    register(Resource('extras://file', 'file', 'From a file.', read))\n"
    )
    registry = Registry(entry_points=False, plugin_dirs=[tmp_path])
    out = io.StringIO()
    assert print_plugins(registry=registry, out=out) == 0
    text = out.getvalue()
    assert "builtin.write (builtin)" in text and "tools: qsys_set" in text
    assert "extras_file (folder)" in text and "resources: extras://file" in text
    out = io.StringIO()
    print_plugins(as_json=True, registry=registry, out=out)
    listed = {p["name"]: p for p in json.loads(out.getvalue())["plugins"]}
    assert listed["extras_file"]["hooks"] == ["qsysd_register_resources"]
    assert listed["extras_file"]["resources"] == ["extras://file"]
