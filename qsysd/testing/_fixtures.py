"""The pytest plugin (entry point ``pytest11``): fixtures for testing qsysd plugins.

Override ``qsysd_design``, ``qsysd_plugins``, ``qsysd_plugin_config`` or ``qsysd_policy`` in
your ``conftest.py`` (or a test module) to choose what the stack runs. Fixture names start
with ``qsysd_`` so they never clash with a project's own. Needs pytest-trio (``trio_mode``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mcp import Client

    from qsysd.config import PolicyConfig
    from qsysd.emulator import Design, EmulatorServer
    from qsysd.testing._stack import QsysdStack


@pytest.fixture
def qsysd_design() -> Design | str | None:
    """The emulator's design: a Design, a design file path, or None for the demo venue."""
    return None


@pytest.fixture
def qsysd_plugins() -> list[object]:
    """The plugin objects (modules) the stack loads besides the built-ins."""
    return []


@pytest.fixture
def qsysd_plugin_config() -> dict[str, dict[str, Any]]:
    """``[plugins.config.NAME]`` tables by plugin name."""
    return {}


@pytest.fixture
def qsysd_policy() -> PolicyConfig | None:
    """The safety policy (None: the defaults)."""
    return None


@pytest.fixture
async def qsysd_emulator(qsysd_design: Design | str | None) -> AsyncIterator[EmulatorServer]:
    """An emulated Core on 127.0.0.1 with ``qsysd_design``."""
    from qsysd.testing._stack import running_emulator

    async with running_emulator(qsysd_design) as emulator:
        yield emulator


@pytest.fixture
async def qsysd_stack(
    qsysd_emulator: EmulatorServer,
    qsysd_plugins: list[object],
    qsysd_plugin_config: dict[str, dict[str, Any]],
    qsysd_policy: PolicyConfig | None,
) -> AsyncIterator[QsysdStack]:
    """qsysd connected to ``qsysd_emulator`` with ``qsysd_plugins`` loaded and running."""
    from qsysd.testing._stack import running_stack

    async with running_stack(
        qsysd_emulator,
        plugins=qsysd_plugins,
        plugin_config=qsysd_plugin_config,
        policy=qsysd_policy,
    ) as stack:
        yield stack


@pytest.fixture
async def qsysd_client(qsysd_stack: QsysdStack) -> AsyncIterator[Client]:
    """An MCP client connected to ``qsysd_stack``'s server."""
    from qsysd.testing._stack import connected_client

    async with connected_client(qsysd_stack) as client:
        yield client
