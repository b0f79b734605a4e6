"""The registry: built-in and third-party plugins (pluggy) -> one tool and prompt catalogue."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import pluggy
import structlog

from qsysd.errors import LookupFailed
from qsysd.plugins import _hookspecs
from qsysd.plugins._context import ToolContext
from qsysd.plugins._tool import (
    PERMISSIONS,
    Permission,
    PermissionDenied,
    Prompt,
    Tool,
)

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginLoadError",
    "Registry",
]

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "qsysd"
# Built-ins go through the same hooks as third-party plugins (datasette's DEFAULT_PLUGINS).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "qsysd.tools._read",
    "qsysd.tools._write",
    "qsysd.tools._prompts",
)

Source = Literal["builtin", "entrypoint", "file", "object"]


@attrs.frozen
class PluginLoadError:
    """A plugin that was skipped, and why."""

    plugin: str
    stage: str  # "load", "register", "validate", "qsysd_register_tools", ...
    error: str


@attrs.frozen
class PluginInfo:
    """One loaded plugin, for `qsysd plugins` and /api/v1/plugins."""

    name: str
    source: Source
    hooks: tuple[str, ...]
    tools: tuple[str, ...]
    prompts: tuple[str, ...]
    version: str | None = None


def _plugin_files(directory: str | os.PathLike[str]) -> list[Path]:
    return [p for p in sorted(Path(directory).glob("*.py")) if not p.name.startswith("_")]


def _env_list(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(part.strip() for part in value.split(",") if part.strip())


class Registry:
    """Loads plugins and holds the catalogue of tools and prompts they register.

    Entry points of group ``qsysd`` are loaded one by one; a plugin that fails to import,
    to validate or to register is logged, listed in ``load_errors`` and skipped.
    ``QSYSD_LOAD_PLUGINS`` (comma-separated entry point names; empty means none) is an
    allow-list for third-party plugins; ``QSYSD_BLOCK_PLUGINS`` blocks any plugin by name,
    built-ins included (``qsysd.tools._write`` turns off every built-in write tool).
    """

    def __init__(
        self,
        *,
        builtins: bool = True,
        entry_points: bool = True,
        plugin_dirs: Iterable[str | os.PathLike[str]] = (),
        plugins: Iterable[object] = (),
        allow: Collection[str] | None = None,
        block: Collection[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self._allow = (
            frozenset(allow) if allow is not None else _env_list(env.get("QSYSD_LOAD_PLUGINS"))
        )
        self._block = (
            frozenset(block)
            if block is not None
            else (_env_list(env.get("QSYSD_BLOCK_PLUGINS")) or frozenset())
        )
        self.pm = pluggy.PluginManager("qsysd")
        self.pm.add_hookspecs(_hookspecs)
        self.load_errors: list[PluginLoadError] = []
        self._sources: dict[str, Source] = {}
        self._versions: dict[str, str | None] = {}
        self._tools: dict[str, Tool] = {}
        self._tool_owner: dict[str, str] = {}
        self._prompts: dict[str, Prompt] = {}
        self._prompt_owner: dict[str, str] = {}
        if builtins:
            for module_name in DEFAULT_PLUGINS:
                if module_name in self._block:
                    continue
                self._register(importlib.import_module(module_name), module_name, "builtin")
        if entry_points:
            self._load_entry_points()
        for directory in plugin_dirs:
            for path in _plugin_files(directory):
                self._load_file(path)
        for obj in plugins:
            self._register_object(obj)
        self.refresh()

    # loading ------------------------------------------------------------------------------

    def _fail(self, plugin: str, stage: str, exc: BaseException | str) -> None:
        error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.load_errors.append(PluginLoadError(plugin, stage, error))
        log.error("plugin.skipped", plugin=plugin, stage=stage, error=error)

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if self._allow is not None and ep.name not in self._allow:
                log.info("plugin.not_allowed", plugin=ep.name)
                continue
            if ep.name in self._block:
                log.info("plugin.blocked", plugin=ep.name)
                continue
            if self.pm.has_plugin(ep.name):
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not take the daemon down
                self._fail(ep.name, "load", exc)
                continue
            version = ep.dist.version if ep.dist is not None else None
            self._register(obj, ep.name, "entrypoint", version=version)

    def load_file(self, path: str | os.PathLike[str]) -> str | None:
        """Load one ``.py`` file as a plugin; return its name, or None if it was skipped."""
        name = self._load_file(path)
        self.refresh()
        return name

    def load_directory(self, directory: str | os.PathLike[str]) -> None:
        """Load every ``*.py`` file of a folder (sorted by name) as a plugin."""
        for path in _plugin_files(directory):
            self._load_file(path)
        self.refresh()

    def register_plugin(self, obj: object, name: str | None = None) -> str | None:
        """Register a plugin object (a module or an instance with hookimpls); for tests too."""
        registered = self._register_object(obj, name)
        self.refresh()
        return registered

    def _load_file(self, path: str | os.PathLike[str]) -> str | None:
        path = Path(path)
        name = f"qsysd_plugin_{path.stem}"
        if path.stem in self._block or name in self._block:
            return None
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {str(path)!r} as a module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            self._fail(str(path), "load", exc)
            return None
        return name if self._register(module, name, "file") else None

    def _register_object(self, obj: object, name: str | None = None) -> str | None:
        name = name or getattr(obj, "__name__", None) or f"plugin-{id(obj):x}"
        if name in self._block:
            return None
        return name if self._register(obj, name, "object") else None

    def _register(
        self, obj: object, name: str, source: Source, *, version: str | None = None
    ) -> bool:
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:  # pluggy.PluginValidationError, ValueError (duplicate)
            self._fail(name, "register", exc)
            return False
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            # A hook name that is no hookspec (a typo) fails loudly, for this plugin only.
            self.pm.unregister(obj)
            self._fail(name, "validate", exc)
            return False
        self._sources[name] = source
        self._versions[name] = version
        log.debug("plugin.registered", plugin=name, source=source)
        return True

    # catalogue ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Collect the tools and prompts every plugin registers (again)."""
        self._tools.clear()
        self._tool_owner.clear()
        self._prompts.clear()
        self._prompt_owner.clear()
        self._collect("qsysd_register_tools", self._add_tool)
        self._collect("qsysd_register_prompts", self._add_prompt)

    def _collect(self, hook_name: str, add: Callable[[str, Any], None]) -> None:
        hook = getattr(self.pm.hook, hook_name)
        # Registration order (pluggy calls LIFO): built-ins first, so their names win.
        for impl in hook.get_hookimpls():
            plugin = impl.plugin_name
            staged: list[Any] = []
            try:
                impl.function(register=staged.append)
            except Exception as exc:
                self._fail(plugin, hook_name, exc)
                continue
            for item in staged:
                add(plugin, item)

    def _add_tool(self, plugin: str, tool: Any) -> None:
        if not isinstance(tool, Tool):
            self._fail(plugin, "qsysd_register_tools", f"registered {tool!r}, not a Tool")
        elif tool.name in self._tools:
            owner = self._tool_owner[tool.name]
            self._fail(plugin, "qsysd_register_tools", f"tool {tool.name!r} already from {owner}")
        else:
            self._tools[tool.name] = tool
            self._tool_owner[tool.name] = plugin

    def _add_prompt(self, plugin: str, prompt: Any) -> None:
        if not isinstance(prompt, Prompt):
            self._fail(plugin, "qsysd_register_prompts", f"registered {prompt!r}, not a Prompt")
        elif prompt.name in self._prompts:
            owner = self._prompt_owner[prompt.name]
            self._fail(plugin, "qsysd_register_prompts", f"prompt {prompt.name!r} from {owner}")
        else:
            self._prompts[prompt.name] = prompt
            self._prompt_owner[prompt.name] = plugin

    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    def tool(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._tools, n=3, cutoff=0.5)
            raise LookupFailed(f"unknown tool {name!r}", close) from None

    def prompts(self) -> list[Prompt]:
        return list(self._prompts.values())

    def prompt(self, name: str) -> Prompt:
        try:
            return self._prompts[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._prompts, n=3, cutoff=0.5)
            raise LookupFailed(f"unknown prompt {name!r}", close) from None

    def plugins(self) -> list[PluginInfo]:
        out = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
            out.append(
                PluginInfo(
                    name=name,
                    source=self._sources.get(name, "object"),
                    hooks=hooks,
                    tools=tuple(t for t, o in self._tool_owner.items() if o == name),
                    prompts=tuple(p for p, o in self._prompt_owner.items() if o == name),
                    version=self._versions.get(name),
                )
            )
        return out

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        ctx: ToolContext,
        *,
        permissions: Collection[Permission] = PERMISSIONS,
    ) -> dict[str, Any]:
        """Look up, authorize, validate and run a tool; return its output object."""
        tool = self.tool(name)
        if tool.permission not in permissions:
            raise PermissionDenied(
                f"tool {name!r} needs the {tool.permission!r} permission; "
                f"{ctx.principal!r} has {', '.join(sorted(permissions)) or 'none'}"
            )
        return await tool.call(ctx, arguments)

    def statistics(self) -> dict[str, int]:
        return {
            "plugins": len(self.pm.list_name_plugin()),
            "tools": len(self._tools),
            "prompts": len(self._prompts),
            "load_errors": len(self.load_errors),
        }
