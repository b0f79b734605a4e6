"""The MCP SDK's package initialisers, run when first needed instead of at import.

``import mcp.server.lowlevel`` runs ``mcp/__init__.py`` (the SDK's client, session groups,
httpx) and ``mcp/server/__init__.py`` (the high-level ``MCPServer``) first, though the
server uses none of it: about 0.3 s of CPU and 12 MB at every start on the bench machine.
:func:`defer_package_inits` puts each package in ``sys.modules`` without running its
``__init__`` (the same module a normal import makes, with ``__path__`` and ``__spec__``,
so its submodules import as usual); the first attribute the package itself lacks (``mcp.Client``,
``mcp.server.MCPServer``) runs the real ``__init__`` into it then (PEP 562), so every
``from mcp import ...`` still works, later and unchanged.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

__all__ = ["defer_package_inits"]

#: Parents first: a submodule import needs its parent in ``sys.modules``.
PACKAGES = ("mcp", "mcp.server")


def defer_package_inits(names: tuple[str, ...] = PACKAGES) -> None:
    """Register ``names`` unexecuted; each runs its ``__init__`` on first missing attribute."""
    for name in names:
        if name in sys.modules:
            continue  # already imported (or deferred): nothing to save
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            continue
        module = importlib.util.module_from_spec(spec)
        module.__getattr__ = _loader(module)  # type: ignore[method-assign]
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)


def _loader(module: ModuleType) -> Any:
    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):  # probes such as __file__ or __wrapped__ never load it
            raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}")
        module.__dict__.pop("__getattr__", None)
        spec = module.__spec__
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(module)
        return getattr(module, attr)

    return __getattr__
