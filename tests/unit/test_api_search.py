"""The pure parts of find_controls: tokenizing, word scores, ranking, name matching."""

from __future__ import annotations

import attrs
import pytest

from qsysd.api._index import SearchIndex
from qsysd.api._search import (
    SearchEntry,
    close_names,
    name_matches,
    rank,
    token_score,
    tokens,
)
from qsysd.emulator import generate_design
from qsysd.state import ComponentInfo, ControlInfo, ControlRef, StateStore


def entry(component: str | None, control: str, component_type: str = "gain") -> SearchEntry:
    comp_tokens = tuple(tokens(component)) if component else ()
    type_tokens = tuple(tokens(component_type)) if component else ()
    return SearchEntry(
        ControlRef("main", component, control),
        "Float",
        component_type if component else None,
        comp_tokens,
        tuple(tokens(control)),
        type_tokens,
    )


ENTRIES = [
    entry("Lobby_BGM", "gain"),
    entry("Lobby_BGM", "mute"),
    entry("Lobby_BGM", "bypass"),
    entry("Lobby_BGM", "high.shelf.gain"),
    entry("Lobby_Page", "gain"),
    entry("Bar", "gain"),
    entry("Stage", "input.1.gain", "mixer"),
    entry(None, "MainGain"),
]


def ranked(query: str, aliases: dict[str, str] | None = None, limit: int = 10) -> list[str]:
    return [str(e.ref) for e, _, _ in rank(query, ENTRIES, aliases=aliases or {}, limit=limit)]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Lobby_BGM", ["lobby", "bgm"]),
        ("Zone3Speakers", ["zone", "3", "speakers"]),
        ("input.1.gain", ["input", "1", "gain"]),
        ("HDMIInput", ["hdmi", "input"]),
        ("MainGain", ["main", "gain"]),
        ("--", []),
    ],
)
def test_tokens_split_at_case_digits_and_punctuation(text: str, words: list[str]) -> None:
    assert tokens(text) == words


@pytest.mark.parametrize(
    ("word", "candidates", "score", "hit"),
    [
        ("gain", ["level", "gain"], 1.0, "gain"),
        ("volume", ["gain"], 0.9, "gain"),
        ("speak", ["speakers"], 0.8, "speakers"),
        ("ab", ["abc"], 0.0, None),
        ("12", ["13"], 0.0, None),
        ("xylophone", ["gain", "mute"], 0.0, None),
    ],
)
def test_token_score_prefers_exact_then_synonym_then_prefix(
    word: str, candidates: list[str], score: float, hit: str | None
) -> None:
    assert token_score(word, candidates) == (score, hit)


def test_token_score_tolerates_a_typo_at_a_discount() -> None:
    score, hit = token_score("restaurnt", ["bar", "restaurant"])
    assert hit == "restaurant"
    assert 0.5 < score < 0.8


def test_rank_of_an_empty_or_wordless_query_is_empty() -> None:
    assert ranked("") == []
    assert ranked("--- !!") == []


def test_rank_finds_nothing_for_unrelated_words() -> None:
    assert ranked("xylophone quartz") == []


def test_rank_puts_the_main_control_of_the_matching_component_first() -> None:
    found = ranked("lobby music volume")
    assert found[0] == "Lobby_BGM.gain"
    assert found.index("Lobby_BGM.gain") < found.index("Lobby_BGM.bypass")


def test_rank_says_which_synonym_matched() -> None:
    (_, _, why), *_ = rank("lobby music", ENTRIES, aliases={}, limit=1)
    assert why == "matched lobby, music~bgm"


def test_rank_penalizes_control_words_the_query_did_not_name() -> None:
    found = ranked("lobby music gain")
    assert found.index("Lobby_BGM.gain") < found.index("Lobby_BGM.high.shelf.gain")


def test_rank_matches_the_component_type_when_names_do_not() -> None:
    [(match, score, why)] = rank("mixer", ENTRIES, aliases={}, limit=10)
    assert str(match.ref) == "Stage.input.1.gain"
    assert why == "matched mixer"
    assert score < 1.0


def test_rank_finds_named_controls() -> None:
    assert ranked("main gain")[0] == "MainGain"


def test_rank_puts_levels_before_mutes_then_breaks_ties_by_name_and_honours_the_limit() -> None:
    found = ranked("lobby", limit=3)
    assert found == ["Lobby_BGM.gain", "Lobby_Page.gain", "Lobby_BGM.mute"]


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("turn the lobby music down", "Lobby_BGM.gain"),
        ("please make the bar louder", "Bar.gain"),
        ("turn off the lobby music", "Lobby_BGM.mute"),
    ],
)
def test_spoken_requests_rank_the_control_they_mean_first(query: str, first: str) -> None:
    assert ranked(query)[0] == first


@pytest.mark.parametrize("target", ["Bar.gain", "main:Bar.gain"])
def test_an_alias_in_the_query_ranks_its_target_first(target: str) -> None:
    aliases = {"background music": target}
    [(first, score, why), *_] = rank("play the background music", ENTRIES, aliases=aliases, limit=3)
    assert str(first.ref) == "Bar.gain"
    assert score == 2.0
    assert why == "configured alias 'background music'"


def test_an_alias_needs_all_its_words_in_the_query() -> None:
    assert ranked("background", {"background music": "Bar.gain"})[0] != "Bar.gain"


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("Lobby_BGM", "bgm", True),
        ("Lobby_BGM", "Lobby*", True),
        ("Lobby_BGM", "*bgm", True),
        ("Lobby_BGM", "Bar*", False),
        ("input.1.gain", "input.?.gain", True),
        ("input.12.gain", "input.?.gain", False),
        ("Lobby_BGM", "page", False),
    ],
)
def test_name_matches_globs_or_else_substrings_ignoring_case(
    name: str, pattern: str, expected: bool
) -> None:
    assert name_matches(name, pattern) is expected


def test_close_names_keep_their_case_and_are_at_most_three() -> None:
    names = ["Lobby_BGM", "Lobby_BGN", "Lobby_BGX", "Lobby_BGY", "Bar"]
    close = close_names("lobby_bgm", names)
    assert close[0] == "Lobby_BGM"
    assert len(close) == 3
    assert close_names("zzz", names) == []


def test_the_grouped_index_ranks_exactly_as_a_scan_of_every_control() -> None:
    design = generate_design(120)
    # alike components whose rendered names sort unlike their names: "Gym-1.gain" before
    # "Gym.gain", and "Gym.1." extending "Gym." (the order then depends on the control name)
    twin = design.components[0]
    # (discovered out of order: "Quad_1", "Quad-1", "Quad 1" score alike for a word "1")
    extra = ["Hall", "Hall.1", "Hall.2", "Quad_1", "Quad-1", "Quad 1", "Quad", "Gym-1", "Gym"]
    components = [*design.components, *(attrs.evolve(twin, name=n) for n in extra)]
    design = attrs.evolve(design, components=components)
    store = StateStore()
    infos = [
        ControlInfo(ControlRef("main", c.name, x.name), x.type, "Read/Write")
        for c in design.components
        for x in c.controls
    ] + [
        ControlInfo(ControlRef("main", None, n.name), n.type, "Read/Write")
        for n in design.named_controls
    ]
    store.replace_design(
        "main", "code", [ComponentInfo("main", c.name, c.type, c.name) for c in design.components],
        infos, [],
    )  # fmt: skip
    kinds = {c.name: c.type for c in design.components}
    scan = [
        SearchEntry(
            i.ref, i.type, kinds.get(i.ref.component or ""), tuple(tokens(i.ref.component or "")),
            tuple(tokens(i.ref.name)), tuple(tokens(kinds.get(i.ref.component or "", ""))),
        )
        for i in infos
    ]  # fmt: skip
    vocabulary = sorted({t for e in scan for t in e.component_tokens + e.control_tokens})
    queries = ["gym mixer gain", "lobby music volume", "restaurnt level", "gain", "7", "100"]
    queries += ["zone 3 level", "mixer 7 input 2 gain", "gym 12", "input 1 2 mute", "gain gain"]
    queries += [" ".join(vocabulary[i::37][:3]) for i in range(37)]
    for control in twin.controls[:4]:
        queries += [f"hall {control.name}", f"quad 1 {control.name}", f"gym {control.name}"]
    queries += ["hall", "quad 1", "gym", "quad"]
    aliases = {"house music": f"{design.components[3].name}.gain"}
    index = SearchIndex()
    # small limits cut through tied members, so the order they are taken in shows
    for query, limit in [(q, n) for q in [*queries, "house music"] for n in (10, 2, 1)]:
        expected = [
            (str(e.ref), round(score, 3), why)
            for e, score, why in rank(query, scan, aliases=aliases, limit=limit)
        ]
        found = index.find(store, ["main"], query, aliases=aliases, limit=limit)
        assert [(m.control, m.score, m.why) for m in found] == expected, (query, limit)
