"""The registry: built-in and third-party plugins (pluggy) -> one tool and prompt catalogue."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import attrs
import pluggy
import structlog

from qsysd.errors import ConfigError, LookupFailed, ToolInputError
from qsysd.plugins import _hookspecs
from qsysd.plugins._context import ToolContext
from qsysd.plugins._hookspecs import ChangeObserver, StartupTask, WriteObserver
from qsysd.plugins._schema import structure_arguments
from qsysd.plugins._tool import (
    PERMISSIONS,
    Permission,
    PermissionDenied,
    PluginContext,
    Prompt,
    Resource,
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
# Built-ins go through the same hooks as third-party plugins (datasette's DEFAULT_PLUGINS),
# under public names that allow and block lists use.
DEFAULT_PLUGINS: Mapping[str, str] = MappingProxyType(
    {
        "builtin.read": "qsysd.tools._read",
        "builtin.write": "qsysd.tools._write",
        "builtin.prompts": "qsysd.tools._prompts",
    }
)
_OLD_BUILTIN_NAMES = {module: name for name, module in DEFAULT_PLUGINS.items()}

Source = Literal["builtin", "entrypoint", "folder", "object"]


@attrs.frozen
class PluginLoadError:
    """A plugin (or part of one) that was skipped, and why."""

    plugin: str
    stage: str  # "load", "register", "validate", "config", "qsysd_register_tools", ...
    error: str


@attrs.frozen
class PluginInfo:
    """One loaded plugin, for `qsysd plugins` and /api/v1/plugins."""

    name: str
    source: Source
    hooks: tuple[str, ...]
    tools: tuple[str, ...]
    prompts: tuple[str, ...]
    resources: tuple[str, ...] = ()
    version: str | None = None


def _plugin_files(directory: str | os.PathLike[str]) -> list[Path]:
    return [p for p in sorted(Path(directory).glob("*.py")) if not p.name.startswith("_")]


def _env_list(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _public_names(names: frozenset[str]) -> frozenset[str]:
    """Block-list names, the built-ins' old module names mapped to their public ones."""
    out = set()
    for name in names:
        public = _OLD_BUILTIN_NAMES.get(name)
        if public is not None:
            log.warning("plugin.deprecated_name", name=name, use=public)
            name = public
        out.add(name)
    return frozenset(out)


class Registry:
    """Loads plugins and holds the catalogue of tools, prompts and resources they register.

    Built-ins come first, then entry points of group ``qsysd`` (one by one), plugin folders,
    then objects given in code (a mapping names them). A plugin that fails to import,
    validate, configure or register is logged, listed in ``load_errors`` and skipped. Names
    are unique across all of them: a tool, prompt or resource whose name is taken is refused,
    naming both plugins, whatever ``tryfirst``/``trylast`` say, so a built-in is never
    replaced.

    ``QSYSD_LOAD_PLUGINS`` (comma-separated entry point names; empty means none) is an
    allow-list for entry points; ``QSYSD_BLOCK_PLUGINS`` blocks any plugin by name, built-ins
    included (``builtin.write`` turns off every built-in write tool). ``config`` holds the
    ``[plugins.config.NAME]`` tables, each validated by the schema its plugin declares.
    """

    def __init__(
        self,
        *,
        builtins: bool = True,
        entry_points: bool = True,
        plugin_dirs: Iterable[str | os.PathLike[str]] = (),
        plugins: Iterable[object] | Mapping[str, object] = (),
        allow: Collection[str] | None = None,
        block: Collection[str] | None = None,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self._allow = (
            frozenset(allow) if allow is not None else _env_list(env.get("QSYSD_LOAD_PLUGINS"))
        )
        self._block = _public_names(
            frozenset(block)
            if block is not None
            else (_env_list(env.get("QSYSD_BLOCK_PLUGINS")) or frozenset())
        )
        self._config_tables = dict(config or {})
        self.pm = pluggy.PluginManager("qsysd")
        self.pm.add_hookspecs(_hookspecs)
        self.load_errors: list[PluginLoadError] = []
        self._sources: dict[str, Source] = {}  # in registration order: the order names win
        self._versions: dict[str, str | None] = {}
        self._contexts: dict[str, PluginContext] = {}
        self._tools: dict[str, Tool] = {}
        self._tool_owner: dict[str, str] = {}
        self._prompts: dict[str, Prompt] = {}
        self._prompt_owner: dict[str, str] = {}
        self._resources: dict[str, Resource] = {}
        self._resource_owner: dict[str, str] = {}
        self._startups: list[tuple[str, StartupTask]] = []
        self._change_observers: list[tuple[str, ChangeObserver]] = []
        self._write_observers: list[tuple[str, WriteObserver]] = []
        if builtins:
            for name, module_name in DEFAULT_PLUGINS.items():
                if name in self._block:
                    continue
                self._register(importlib.import_module(module_name), name, "builtin")
        if entry_points:
            self._load_entry_points()
        for directory in plugin_dirs:
            for path in _plugin_files(directory):
                self._load_file(path)
        if isinstance(plugins, Mapping):
            for name, obj in plugins.items():
                self._register_object(obj, name)
        else:
            for obj in plugins:
                self._register_object(obj)
        failed = {e.plugin for e in self.load_errors}
        for name in self._config_tables:
            if name not in self._sources and name not in failed:
                self._fail(name, "config", f"[plugins.config.{name}] names no loaded plugin")
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
        """Load one ``.py`` file as a plugin named by its stem; its name, or None if skipped."""
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
        name = path.stem
        module_name = f"qsysd_plugin_{path.stem}"
        if name in self._block or module_name in self._block:
            return None
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {str(path)!r} as a module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            self._fail(str(path), "load", exc)
            return None
        return name if self._register(module, name, "folder") else None

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
        try:
            config = self._configure(name)
        except Exception as exc:  # a bad table or a broken schema: skip this plugin only
            self.pm.unregister(obj)
            problem = "; ".join(exc.problems) if isinstance(exc, ConfigError) else repr(exc)
            self._fail(name, "config", problem)
            return False
        self._sources[name] = source
        self._versions[name] = version
        self._contexts[name] = PluginContext(name, config)
        log.debug("plugin.registered", plugin=name, source=source)
        return True

    def _configure(self, name: str) -> Any:
        """The plugin's ``[plugins.config.NAME]`` built into the class it declares, or None."""
        table = self._config_tables.get(name)
        impl = self._impl(name, "qsysd_plugin_config")
        schema = impl.function() if impl is not None else None
        if schema is None:
            if table:  # reported, not fatal: the plugin works without it
                self._fail(name, "config", f"plugins.config.{name}: the plugin takes no "
                           "configuration; the table is ignored")  # fmt: skip
            return None
        if not isinstance(schema, type) or not attrs.has(schema):
            raise TypeError(f"qsysd_plugin_config returned {schema!r}, not an attrs class")
        try:
            return structure_arguments(schema, table or {})
        except ToolInputError as exc:
            problem = str(exc).removeprefix("invalid arguments: ")
            raise ConfigError([f"plugins.config.{name}: {problem}"]) from None

    def _impl(self, plugin: str, hook_name: str) -> pluggy.HookImpl | None:
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name == plugin:
                found: pluggy.HookImpl = impl
                return found
        return None

    # catalogue ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Collect what every plugin registers (again), in registration order."""
        for catalogue in (
            self._tools,
            self._tool_owner,
            self._prompts,
            self._prompt_owner,
            self._resources,
            self._resource_owner,
        ):
            catalogue.clear()
        self._startups.clear()
        self._change_observers.clear()
        self._write_observers.clear()
        for plugin in self._sources:
            self._collect(plugin, "qsysd_register_tools", Tool, self._tools, self._tool_owner)
            self._collect(
                plugin, "qsysd_register_prompts", Prompt, self._prompts, self._prompt_owner
            )
            self._collect(
                plugin,
                "qsysd_register_resources",
                Resource,
                self._resources,
                self._resource_owner,
            )
            self._returned(plugin, "qsysd_startup", self._startups)
            self._returned(plugin, "qsysd_observe_changes", self._change_observers)
            self._returned(plugin, "qsysd_observe_writes", self._write_observers)

    def _call(self, plugin: str, hook_name: str, **arguments: Any) -> tuple[bool, Any]:
        """Call one plugin's implementation with the arguments it takes: (called, result)."""
        impl = self._impl(plugin, hook_name)
        if impl is None:
            return False, None
        wanted = {k: v for k, v in arguments.items() if k in impl.argnames}
        try:
            return True, impl.function(**wanted)
        except Exception as exc:
            self._fail(plugin, hook_name, exc)
            return False, None

    def _collect(
        self,
        plugin: str,
        hook_name: str,
        kind: type,
        items: dict[str, Any],
        owners: dict[str, str],
    ) -> None:
        staged: list[Any] = []
        called, _ = self._call(
            plugin, hook_name, register=staged.append, context=self._contexts[plugin]
        )
        if not called:
            return
        what = kind.__name__.lower()
        for item in staged:
            if not isinstance(item, kind):
                self._fail(plugin, hook_name, f"registered {item!r}, not a {kind.__name__}")
                continue
            key: str = item.uri if isinstance(item, Resource) else getattr(item, "name", "")
            owner = owners.get(key)
            if owner is not None:
                source = "the built-in" if self._sources.get(owner) == "builtin" else "plugin"
                self._fail(
                    plugin,
                    hook_name,
                    f"{what} {key!r} of plugin {plugin!r} is already registered by {source} "
                    f"{owner!r}; it was not registered (names are unique across plugins)",
                )
                continue
            items[key] = item
            owners[key] = plugin

    def _returned(self, plugin: str, hook_name: str, into: list[tuple[str, Any]]) -> None:
        called, result = self._call(plugin, hook_name, context=self._contexts[plugin])
        if not called or result is None:
            return
        if not callable(result):
            self._fail(plugin, hook_name, f"returned {result!r}, not an async function")
            return
        into.append((plugin, result))

    def context(self, plugin: str) -> PluginContext:
        """The plugin's name and validated configuration."""
        return self._contexts[plugin]

    def startups(self) -> list[tuple[str, StartupTask]]:
        """(plugin, async function) for each ``qsysd_startup`` that returned one."""
        return list(self._startups)

    def change_observers(self) -> list[tuple[str, ChangeObserver]]:
        return list(self._change_observers)

    def write_observers(self) -> list[tuple[str, WriteObserver]]:
        return list(self._write_observers)

    def resources(self) -> list[Resource]:
        return list(self._resources.values())

    def resource(self, uri: str) -> tuple[str, Resource] | None:
        """(owning plugin, resource) for a plugin resource URI, or None."""
        resource = self._resources.get(uri)
        return None if resource is None else (self._resource_owner[uri], resource)

    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    def has_tool(self, name: str) -> bool:
        return name in self._tools

    def tool(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._tools, n=3, cutoff=0.5)
            raise LookupFailed(
                f"unknown tool {name!r}", close, hint="The tool listing names them."
            ) from None

    def prompts(self) -> list[Prompt]:
        return list(self._prompts.values())

    def prompt(self, name: str) -> Prompt:
        try:
            return self._prompts[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._prompts, n=3, cutoff=0.5)
            raise LookupFailed(
                f"unknown prompt {name!r}", close, hint="The prompt listing names them."
            ) from None

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
                    resources=tuple(r for r, o in self._resource_owner.items() if o == name),
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
        config = self._contexts[self._tool_owner[name]].config
        if config is not None:
            ctx = ctx.for_plugin(self._tool_owner[name], config)
        return await tool.call(ctx, arguments)

    def statistics(self) -> dict[str, int]:
        return {
            "plugins": len(self.pm.list_name_plugin()),
            "tools": len(self._tools),
            "prompts": len(self._prompts),
            "resources": len(self._resources),
            "load_errors": len(self.load_errors),
        }
