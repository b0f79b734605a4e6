"""qsysd-scenes against qsysd's emulator, through the MCP client of qsysd.testing."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import qsysd_scenes
import trio
from mcp import Client

from qsysd.config import PolicyConfig
from qsysd.emulator import ComponentSpec, ControlSpec, Design, EmulatorServer, demo_design
from qsysd.testing import QsysdStack

WAIT = 10.0
PRESENTATION = {
    "description": "Lights down, mics on, program at -20 dB",
    "changes": [
        {"control": "Lights.cue", "value": 3},
        {"control": "Ballroom_Mics.input.1.mute", "value": False},
        {"control": "Ballroom.gain", "value": -20, "ramp": 3},
    ],
}


@pytest.fixture
def qsysd_design() -> Design:
    """The demo venue plus a lighting bridge whose cue number the scene sets."""
    lights = ComponentSpec(
        "Lights",
        "custom_controls",
        controls=(ControlSpec("cue", type="Integer", min=0, max=99, value=1),),
    )
    demo = demo_design()
    return attrs.evolve(demo, components=(*demo.components, lights))


@pytest.fixture
def qsysd_plugins() -> dict[str, Any]:
    return {"scenes": qsysd_scenes}


@pytest.fixture
def qsysd_plugin_config() -> dict[str, Any]:
    return {
        "scenes": {
            "scenes": {
                "presentation": PRESENTATION,
                "closing": {"snapshot": {"bank": "Scenes", "number": 2}},
                "too_loud": {"changes": [{"control": "Bar.gain", "value": 10}]},
            }
        }
    }


@pytest.fixture
def qsysd_policy() -> PolicyConfig:
    return PolicyConfig(max_gain_step_db=None)


def data(result: Any) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


async def test_presentation_sets_everything_in_one_call_and_is_audited(
    qsysd_client: Client, qsysd_emulator: EmulatorServer, qsysd_stack: QsysdStack
) -> None:
    with trio.fail_after(WAIT):
        out = data(await qsysd_client.call_tool("scene_recall", {"name": "presentation"}))
    assert out["ok"] and not out["dry_run"]
    assert [r["control"] for r in out["results"]] == [
        "Lights.cue",
        "Ballroom_Mics.input.1.mute",
        "Ballroom.gain",
    ]
    assert qsysd_emulator.get_value("Lights", "cue") == 3
    assert qsysd_emulator.get_value("Ballroom_Mics", "input.1.mute") in (0, False)
    audit = await qsysd_stack.context().history(kind="write")
    assert {(str(e.ref), e.principal, e.outcome) for e in audit} >= {
        ("Lights.cue", "stdio", "ok"),
        ("Ballroom.gain", "stdio", "ok"),
    }


async def test_dry_run_writes_nothing(qsysd_client: Client, qsysd_emulator: EmulatorServer) -> None:
    before = qsysd_emulator.get_value("Lights", "cue")
    with trio.fail_after(WAIT):
        args = {"name": "presentation", "dry_run": True}
        out = data(await qsysd_client.call_tool("scene_recall", args))
    assert out["dry_run"] and out["ok"]
    assert qsysd_emulator.get_value("Lights", "cue") == before


async def test_policy_refuses_a_change_and_the_scene_says_so(
    qsysd_client: Client, qsysd_emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        out = data(await qsysd_client.call_tool("scene_recall", {"name": "too_loud"}))
    assert not out["ok"]
    assert "max_gain" in out["results"][0]["error"]
    assert qsysd_emulator.get_value("Bar", "gain") != 10


async def test_a_snapshot_scene_recalls_the_snapshot(
    qsysd_client: Client, qsysd_emulator: EmulatorServer
) -> None:
    with trio.fail_after(WAIT):
        out = data(await qsysd_client.call_tool("scene_recall", {"name": "closing"}))
    assert out["ok"] and "Snapshot.Load of snapshot 2 on Scenes" in out["snapshot"]


async def test_unknown_scene_lists_the_configured_ones(qsysd_client: Client) -> None:
    with trio.fail_after(WAIT):
        result = await qsysd_client.call_tool("scene_recall", {"name": "presentaton"})
        listed = data(await qsysd_client.call_tool("scene_list", {}))
        resource = await qsysd_client.read_resource("scenes://list")
    assert result.is_error and "presentation" in str(result.content)
    assert [s["name"] for s in listed["scenes"]] == ["closing", "presentation", "too_loud"]
    assert "presentation" in resource.contents[0].text  # type: ignore[union-attr]


def test_an_invalid_scene_config_is_refused_naming_the_key() -> None:
    from qsysd.plugins import Registry

    config = {"scenes": {"scenes": {"x": {"changes": [{"control": "Bar.gain", "ramp": -1}]}}}}
    registry = Registry(entry_points=False, plugins={"scenes": qsysd_scenes}, config=config)
    (error,) = registry.load_errors
    assert "plugins.config.scenes" in error.error and "ramp" in error.error
    assert "scene_recall" not in {t.name for t in registry.tools()}
