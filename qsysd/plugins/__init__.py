"""Plugin machinery: hookspecs, tool and prompt declarations, and the pluggy-based Registry.

A plugin is a module (or object) with functions marked ``@hookimpl``, found through the
``qsysd`` entry point group, a plugin folder, or passed directly. See docs/plugins.md.
"""

from qsysd.plugins._context import ToolContext as ToolContext
from qsysd.plugins._hookspecs import (
    ChangeObserver as ChangeObserver,
    StartupTask as StartupTask,
    WriteObserver as WriteObserver,
    hookimpl as hookimpl,
    hookspec as hookspec,
)
from qsysd.plugins._listing import print_plugins as print_plugins
from qsysd.plugins._registry import (
    DEFAULT_PLUGINS as DEFAULT_PLUGINS,
    ENTRY_POINT_GROUP as ENTRY_POINT_GROUP,
    PluginInfo as PluginInfo,
    PluginLoadError as PluginLoadError,
    Registry as Registry,
)
from qsysd.plugins._runtime import (
    ObserverStatistics as ObserverStatistics,
    PluginRuntime as PluginRuntime,
    running_plugins as running_plugins,
)
from qsysd.plugins._scaffold import new_plugin as new_plugin
from qsysd.plugins._schema import (
    NOT_BLANK as NOT_BLANK,
    SchemaError as SchemaError,
    doc as doc,
    json_schema as json_schema,
    structure_arguments as structure_arguments,
    unstructure_output as unstructure_output,
    validate_arguments as validate_arguments,
)
from qsysd.plugins._tool import (
    PERMISSIONS as PERMISSIONS,
    Permission as Permission,
    PermissionDenied as PermissionDenied,
    PluginContext as PluginContext,
    Prompt as Prompt,
    PromptArgument as PromptArgument,
    Resource as Resource,
    Tool as Tool,
    ValueChange as ValueChange,
)

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "NOT_BLANK",
    "PERMISSIONS",
    "ChangeObserver",
    "ObserverStatistics",
    "Permission",
    "PermissionDenied",
    "PluginContext",
    "PluginInfo",
    "PluginLoadError",
    "PluginRuntime",
    "Prompt",
    "PromptArgument",
    "Registry",
    "Resource",
    "SchemaError",
    "StartupTask",
    "Tool",
    "ToolContext",
    "ValueChange",
    "WriteObserver",
    "doc",
    "hookimpl",
    "hookspec",
    "json_schema",
    "new_plugin",
    "print_plugins",
    "running_plugins",
    "structure_arguments",
    "unstructure_output",
    "validate_arguments",
]
