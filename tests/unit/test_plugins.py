"""The plugin registry: built-ins, entry points, allow/block lists, files, broken plugins."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import attrs
import pytest

from qsysd.errors import LookupFailed
from qsysd.plugins import (
    PermissionDenied,
    Prompt,
    Registry,
    Tool,
    ToolContext,
    doc,
    hookimpl,
    print_plugins,
)

BUILTIN_TOOLS = {
    "qsys_status",
    "qsys_summary",
    "qsys_find_controls",
    "qsys_list_components",
    "qsys_list_controls",
    "qsys_get",
    "qsys_history",
    "qsys_audit",
    "qsys_set",
    "qsys_snapshot_load",
    "qsys_snapshot_save",
    "qsys_mixer_set",
}


@attrs.frozen
class EchoInput:
    """Arguments of echo."""

    text: str = attrs.field(metadata=doc("What to echo."))


@attrs.frozen
class EchoOutput:
    """The echo."""

    text: str = attrs.field(metadata=doc("The text."))


async def echo(ctx: ToolContext, args: EchoInput) -> EchoOutput:
    return EchoOutput(f"{ctx.principal}: {args.text}")


def echo_tool(name: str = "test_echo", permission: str = "read") -> Tool:
    return Tool(
        name=name,
        description="Echo text.",
        input_type=EchoInput,
        output_type=EchoOutput,
        handler=echo,
        permission=permission,  # type: ignore[arg-type]
    )


class EchoPlugin:
    def __init__(self, *tools: Tool) -> None:
        self.tools = tools or (echo_tool(),)

    @hookimpl
    def qsysd_register_tools(self, register: Callable[[Tool], None]) -> None:
        for tool in self.tools:
            register(tool)


def write_distribution(root: Path, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """An installed distribution (dist-info + modules) on ``root``, found by importlib.metadata."""
    info = root / "qsysd_test_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: qsysd-test-plugins\nVersion: 1.0\n"
    )
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[qsysd]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


GOOD_MODULE = """
    import attrs
    from qsysd.plugins import Tool, doc, hookimpl

    @attrs.frozen
    class In:
        '''Arguments.'''
        n: int = attrs.field(default=1, metadata=doc("A number."))

    @attrs.frozen
    class Out:
        '''Result.'''
        n: int = attrs.field(metadata=doc("The number."))

    async def run(ctx, args):
        return Out(args.n)

    @hookimpl
    def qsysd_register_tools(register):
        register(Tool(name="good_tool", description="A good tool.", input_type=In,
                      output_type=Out, handler=run))
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_distribution(
        tmp_path,
        {"good": "qsysd_test_good", "broken": "qsysd_test_broken"},
        {
            "qsysd_test_good": GOOD_MODULE,
            "qsysd_test_broken": "raise ImportError('missing dependency: nothing')\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtin_tools_are_registered_through_the_hook() -> None:
    registry = Registry(entry_points=False)
    assert {t.name for t in registry.tools()} == BUILTIN_TOOLS
    assert not registry.load_errors
    sources = {p.name: p.source for p in registry.plugins()}
    assert sources["builtin.read"] == "builtin"
    read = next(p for p in registry.plugins() if p.name == "builtin.read")
    assert "qsysd_register_tools" in read.hooks
    assert "qsys_get" in read.tools


def test_broken_entry_point_is_skipped_and_reported(installed: Path) -> None:
    registry = Registry(env={})
    assert "good_tool" in {t.name for t in registry.tools()}
    assert [(e.plugin, e.stage) for e in registry.load_errors] == [("broken", "load")]
    assert "missing dependency" in registry.load_errors[0].error
    good = next(p for p in registry.plugins() if p.name == "good")
    assert good.source == "entrypoint" and good.version == "1.0"


def test_allow_list_loads_only_named_entry_points(installed: Path) -> None:
    registry = Registry(env={"QSYSD_LOAD_PLUGINS": "good"})
    assert "good_tool" in {t.name for t in registry.tools()}
    assert not registry.load_errors


def test_empty_allow_list_loads_no_entry_point_but_keeps_builtins(installed: Path) -> None:
    registry = Registry(env={"QSYSD_LOAD_PLUGINS": ""})
    assert {t.name for t in registry.tools()} == BUILTIN_TOOLS
    assert not registry.load_errors


def test_block_list_skips_entry_points_and_builtins(installed: Path) -> None:
    registry = Registry(env={"QSYSD_BLOCK_PLUGINS": "broken, good,builtin.write"})
    names = {t.name for t in registry.tools()}
    assert "good_tool" not in names
    assert "qsys_set" not in names and "qsys_get" in names
    assert not registry.load_errors


def test_plugin_from_a_file_in_a_plugin_folder(tmp_path: Path) -> None:
    (tmp_path / "room_tools.py").write_text(textwrap.dedent(GOOD_MODULE))
    (tmp_path / "_private.py").write_text("raise RuntimeError('never loaded')\n")
    registry = Registry(entry_points=False, plugin_dirs=[tmp_path])
    assert "good_tool" in {t.name for t in registry.tools()}
    assert not registry.load_errors
    assert {p.name: p.source for p in registry.plugins()}["room_tools"] == "folder"


def test_plugin_file_that_fails_to_import_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("import qsysd_no_such_module\n")
    registry = Registry(entry_points=False)
    assert registry.load_file(path) is None
    assert registry.load_errors[0].plugin == str(path)
    assert "qsysd_no_such_module" in registry.load_errors[0].error


def test_misspelled_hook_fails_validation_and_is_skipped() -> None:
    typo = SimpleNamespace()

    @hookimpl
    def qsysd_register_tool(register: Callable[[Tool], None]) -> None:  # missing "s"
        register(echo_tool())

    typo.qsysd_register_tool = qsysd_register_tool
    registry = Registry(entry_points=False, plugins=[typo])
    assert [e.stage for e in registry.load_errors] == ["validate"]
    assert "qsysd_register_tool" in registry.load_errors[0].error
    assert "test_echo" not in {t.name for t in registry.tools()}


def test_hook_that_raises_is_reported_and_others_still_register() -> None:
    class Exploding:
        @hookimpl
        def qsysd_register_tools(self, register: Callable[[Tool], None]) -> None:
            raise RuntimeError("boom")

    registry = Registry(entry_points=False, plugins=[Exploding(), EchoPlugin()])
    assert [(e.stage, e.error) for e in registry.load_errors] == [
        ("qsysd_register_tools", "RuntimeError: boom")
    ]
    assert "test_echo" in {t.name for t in registry.tools()}


def test_duplicate_tool_name_keeps_the_first_and_reports_the_second() -> None:
    registry = Registry(entry_points=False, plugins=[EchoPlugin(echo_tool("qsys_get"))])
    assert registry.tool("qsys_get").description != "Echo text."
    error = registry.load_errors[0].error
    assert "'qsys_get' of plugin" in error and "by the built-in 'builtin.read'" in error


def test_registering_something_that_is_not_a_tool_is_reported() -> None:
    class Wrong:
        @hookimpl
        def qsysd_register_tools(self, register: Callable[[object], None]) -> None:
            register("not a tool")

    registry = Registry(entry_points=False, builtins=False, plugins=[Wrong()])
    assert "not a Tool" in registry.load_errors[0].error


def test_prompts_are_registered_and_looked_up() -> None:
    class Prompts:
        @hookimpl
        def qsysd_register_prompts(self, register: Callable[[Prompt], None]) -> None:
            register(Prompt("test_prompt", "A prompt.", lambda args: "hello"))

    registry = Registry(entry_points=False, plugins=[Prompts()])
    assert registry.prompt("test_prompt").render({}) == "hello"
    assert {"room_control_assistant", "level_audit", "troubleshoot_silent_room"} <= {
        p.name for p in registry.prompts()
    }


def test_unknown_tool_lookup_suggests_close_names() -> None:
    registry = Registry(entry_points=False)
    with pytest.raises(LookupFailed, match="qsys_get"):
        registry.tool("qsys_gte")


async def test_call_tool_validates_and_runs_with_the_principal() -> None:
    registry = Registry(entry_points=False, builtins=False, plugins=[EchoPlugin()])
    ctx = ToolContext(api=None, principal="alice")  # type: ignore[arg-type]
    assert await registry.call_tool("test_echo", {"text": "hi"}, ctx) == {"text": "alice: hi"}


async def test_call_tool_refuses_a_principal_without_the_permission() -> None:
    tool = echo_tool("test_admin", permission="admin")
    registry = Registry(entry_points=False, builtins=False, plugins=[EchoPlugin(tool)])
    ctx = ToolContext(api=None, principal="bob")  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="needs the 'admin' permission"):
        await registry.call_tool("test_admin", {"text": "x"}, ctx, permissions=("read",))


def test_tool_declaration_rejects_bad_names_and_empty_descriptions() -> None:
    with pytest.raises(ValueError, match="must match"):
        echo_tool("Bad-Name")
    with pytest.raises(ValueError, match="needs a description"):
        attrs.evolve(echo_tool(), description=" ")


def test_plugin_listing_shows_hooks_tools_and_failures(installed: Path) -> None:
    out = io.StringIO()
    code = print_plugins(registry=Registry(env={}), out=out)
    text = out.getvalue()
    assert code == 1
    assert "good 1.0 (entrypoint)" in text and "tools: good_tool" in text
    assert "FAILED broken (load)" in text
    out = io.StringIO()
    assert print_plugins(as_json=True, registry=Registry(entry_points=False), out=out) == 0
    assert "qsys_get" in out.getvalue()
