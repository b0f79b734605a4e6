"""qsysd.testing's pytest fixtures, loaded through its pytest11 entry point, in a few lines."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from mcp import Client

from qsysd.emulator import ComponentSpec, ControlSpec, Design, EmulatorServer
from qsysd.testing import QsysdStack

EXAMPLE = (
    Path(__file__).parents[2] / "plugins/qsysd-example-plugin/src/qsysd_example_plugin/__init__.py"
)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_under_test", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def qsysd_design() -> Design:
    zone = ComponentSpec("Patio", "gain", {"min_gain": "-100", "max_gain": "20"})
    knob = ComponentSpec("Knob", "custom_controls", controls=(ControlSpec("level", min=0, max=10),))
    return Design(name="Tiny", components=(zone, knob))


@pytest.fixture
def qsysd_plugins() -> dict[str, ModuleType]:
    return {"example": load_example()}


async def test_fixtures_give_a_chosen_design_the_plugins_and_a_client(
    qsysd_client: Client, qsysd_stack: QsysdStack, qsysd_emulator: EmulatorServer
) -> None:
    assert [c.name for c in qsysd_stack.api.all_components()] == ["Patio", "Knob"]
    result = await qsysd_client.call_tool("qsys_mute_zones", {"pattern": "Pat*"})
    assert result.structured_content == {"zones": ["Patio.mute: muted"]}
    assert qsysd_emulator.get_value("Patio", "mute") in (1, True)
    assert (await qsysd_stack.call("qsys_get", {"controls": ["Knob.level"]}))["values"]
