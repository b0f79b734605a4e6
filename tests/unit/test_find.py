"""find_controls: ranked fuzzy search over names, types, synonyms and aliases."""

from __future__ import annotations

import pytest

from qsysd.api import QsysApi
from qsysd.config import PolicyConfig
from qsysd.policy import Policy
from qsysd.state import ComponentInfo, ControlInfo, ControlRef, ControlValue, StateStore

DESIGN = {
    "Lobby_BGM": ("gain", ["gain", "mute", "invert", "bypass"]),
    "Restaurant": ("gain", ["gain", "mute"]),
    "Lobby_Source": ("custom_controls", ["source", "playlist"]),
    "Boardroom_Mics": ("mixer", ["input.1.gain", "input.1.mute", "output.1.gain"]),
    "Boardroom_EQ": ("eq_parametric", ["bypass", "band.1.gain"]),
    "Zone3Speakers": ("gain", ["gain", "mute"]),
}


def make_store() -> StateStore:
    store = StateStore()
    components, controls, values = [], [], []
    for name, (kind, names) in DESIGN.items():
        components.append(ComponentInfo("main", name, kind, name))
        for ctl in names:
            ref = ControlRef("main", name, ctl)
            is_bool = ctl.endswith(("mute", "bypass", "invert"))
            controls.append(ControlInfo(ref, "Boolean" if is_bool else "Float", "Read/Write"))
            values.append(ControlValue(ref, False if is_bool else -10.0, "x"))
    named = ControlRef("main", None, "MainGain")
    controls.append(ControlInfo(named, "Float", "Read/Write"))
    store.replace_design("main", "code", components, controls, values)
    return store


def api(aliases: dict[str, str] | None = None) -> QsysApi:
    return QsysApi({}, make_store(), Policy(PolicyConfig(aliases=aliases or {})))


def top(query: str, **kw: object) -> str:
    return api(**kw).find_controls(query)[0].control  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lobby music volume", "Lobby_BGM.gain"),
        ("Lobby BGM gain", "Lobby_BGM.gain"),
        ("lobby music mute", "Lobby_BGM.mute"),
        ("boardroom mic mute", "Boardroom_Mics.input.1.mute"),
        ("restaurant level", "Restaurant.gain"),
        ("zone 3 speakers", "Zone3Speakers.gain"),
        ("main gain", "MainGain"),
        ("lobby playlist", "Lobby_Source.playlist"),
    ],
)
def test_plain_words_find_the_control(query: str, expected: str) -> None:
    assert top(query) == expected


def test_a_typo_still_finds_the_component() -> None:
    assert top("restaurnt volume") == "Restaurant.gain"


def test_configured_alias_ranks_first_and_says_so() -> None:
    found = api({"background music": "Restaurant.gain"}).find_controls("background music")
    assert found[0].control == "Restaurant.gain"
    assert "alias" in found[0].why and found[0].score == 2.0


def test_results_are_ranked_and_limited() -> None:
    found = api().find_controls("lobby", limit=3)
    assert len(found) == 3
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
    assert found[0].control.startswith("Lobby_BGM.")


def test_a_query_matching_nothing_finds_nothing() -> None:
    assert api().find_controls("xylophone quartz") == []
