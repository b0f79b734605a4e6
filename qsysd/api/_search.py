"""Ranked fuzzy search over control names, component types, synonyms and aliases.

Everything here is pure: it needs no Core and no store (the index over a store is
:mod:`qsysd.api._index`).
"""

from __future__ import annotations

import difflib
import fnmatch
import heapq
import re
from collections.abc import Iterable, Mapping, Sequence

import attrs

from qsysd.state import ControlRef

# A word an operator says -> the words a Q-SYS designer names things with.
SYNONYMS: dict[str, frozenset[str]] = {
    k: frozenset(v)
    for k, v in {
        "volume": {"gain", "level", "vol", "lvl"},
        "level": {"gain", "volume", "lvl"},
        "loudness": {"gain", "volume", "level"},
        "gain": {"volume", "level", "vol"},
        "music": {"bgm", "background", "playback"},
        "bgm": {"music", "background"},
        "background": {"bgm", "music"},
        "mic": {"microphone", "mics", "wireless", "lectern"},
        "microphone": {"mic", "mics"},
        "mute": {"muted", "silence", "off"},
        "silence": {"mute"},
        "quiet": {"mute"},
        "unmute": {"mute"},
        "off": {"mute"},
        # Spoken requests say which way a level goes; they mean the gain.
        "down": {"gain", "volume", "level"},
        "up": {"gain", "volume", "level"},
        "louder": {"gain", "volume", "level"},
        "quieter": {"gain", "volume", "level"},
        "softer": {"gain", "volume", "level"},
        "lower": {"gain", "volume", "level"},
        "raise": {"gain", "volume", "level"},
        "increase": {"gain", "volume", "level"},
        "decrease": {"gain", "volume", "level"},
        "reduce": {"gain", "volume", "level"},
        "speaker": {"spk", "speakers", "amp", "output", "loudspeaker"},
        "speakers": {"spk", "speaker", "amp", "output"},
        "amp": {"amplifier", "speaker"},
        "room": {"zone", "area", "rm"},
        "zone": {"room", "area"},
        "area": {"zone", "room"},
        "input": {"in", "inputs"},
        "output": {"out", "outputs"},
        "paging": {"page", "pa", "announcement"},
        "page": {"paging", "pa"},
        "lobby": {"foyer", "reception", "entrance"},
        "meeting": {"conference", "boardroom", "mtg"},
        "conference": {"meeting", "boardroom", "conf"},
        "bar": {"lounge", "pub"},
        "restaurant": {"dining", "restaurant"},
    }.items()
}
_TOKEN = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# "lobby music" means the zone's level first, then its mute, not its bass or its bypass.
MAIN_CONTROLS = {"gain": 0.05, "mute": 0.04}
MAIN_BONUS = max(MAIN_CONTROLS.values())
# Words of a spoken request that name nothing in a design.
STOP_WORDS = frozenset(
    {
        "a", "an", "the", "please", "turn", "set", "make", "it", "its", "to", "in", "of", "on",
        "at", "for", "is", "be", "can", "could", "you", "would", "my", "our", "this", "that",
        "and", "all", "bit", "little", "lot", "much", "too", "now", "just",
    }
)  # fmt: skip


def tokens(text: str) -> list[str]:
    """Lower-case words of a name, split at case changes, digits and punctuation."""
    return [t.lower() for t in _TOKEN.findall(text)]


def close_names(name: str, names: Iterable[str]) -> list[str]:
    """Up to three of ``names`` close to ``name`` (case-insensitive), for suggestions."""
    pool = list(names)
    lowered = {n.lower(): n for n in pool}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
    return [lowered[c] for c in close]


def name_matches(name: str, pattern: str) -> bool:
    """Whether ``name`` matches a glob, or else contains ``pattern``; case-insensitive."""
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatch(name.lower(), pattern.lower())
    return pattern.lower() in name.lower()


@attrs.frozen
class SearchEntry:
    """One control as the search sees it: its ref and the tokens of its names."""

    ref: ControlRef
    type: str
    component_type: str | None
    component_tokens: tuple[str, ...]
    control_tokens: tuple[str, ...]
    type_tokens: tuple[str, ...]


def token_score(word: str, candidates: Sequence[str]) -> tuple[float, str | None]:
    """How well ``word`` matches its best candidate token (0 to 1), and that token."""
    variants = {word} | SYNONYMS.get(word, frozenset())
    best, hit = 0.0, None
    for token in candidates:
        if token == word:
            return 1.0, token
        if token in variants:
            score = 0.9
        elif (
            len(word) >= 3
            and len(token) >= 3
            and (token.startswith(word) or word.startswith(token))
        ):
            score = 0.8
        elif not word.isdigit() and token[:1] == word[:1] and len(word) >= 4:
            ratio = difflib.SequenceMatcher(None, word, token).ratio()
            score = ratio * 0.75 if ratio >= 0.75 else 0.0
        else:
            score = 0.0
        if score > best:
            best, hit = score, token
    return best, hit


def query_words(query: str) -> list[str]:
    """The words of a query that count: its tokens less stop words (all, if only those)."""
    return [w for w in tokens(query) if w not in STOP_WORDS] or tokens(query)


def aliased(words: Sequence[str], aliases: Mapping[str, str]) -> dict[str, str]:
    """Control -> alias phrase, for each alias whose words are all in the query."""
    normalized = " ".join(words)
    targets: dict[str, str] = {}
    for phrase, target in aliases.items():
        phrase_words = tokens(phrase)
        if phrase_words and (
            " ".join(phrase_words) == normalized or set(phrase_words) <= set(words)
        ):
            targets[target.split(":", 1)[-1]] = phrase
    return targets


Part = tuple[float, str | None]


def combine(
    words: Sequence[str],
    comps: Sequence[Part],
    ctls: Sequence[Part],
    types: Sequence[Part],
    control_tokens: tuple[str, ...],
    name: str,
) -> tuple[float, str] | None:
    """One control's score and why, from each word's best token in its component's name, its
    own name and its component's type; None below the threshold (0.3)."""
    total = 0.0
    why = []
    for word, comp, ctl, typed in zip(words, comps, ctls, types, strict=True):
        score, hit = ctl if ctl[0] > comp[0] else comp
        type_score, type_hit = typed
        if type_score * 0.6 > score:
            score, hit = type_score * 0.6, type_hit
        if score > 0 and hit is not None:
            why.append(word if hit == word else f"{word}~{hit}")
        total += score
    if total <= 0:
        return None
    score = total / len(words)
    score += MAIN_CONTROLS.get(name, 0.0)
    if score < 0.3:  # the penalty below only lowers it
        return None
    unmatched = sum(1 for t in control_tokens if not t.isdigit() and all(t not in w for w in why))
    score -= 0.02 * unmatched
    if score < 0.3:
        return None
    return score, "matched " + ", ".join(why)


def rank(
    query: str, entries: Sequence[SearchEntry], *, aliases: Mapping[str, str], limit: int
) -> list[tuple[SearchEntry, float, str]]:
    """The best ``limit`` entries for ``query``, best first, with a score and why they match.

    A configured alias whose words are all in the query ranks its target first (score 2).
    """
    words = query_words(query)
    if not words:
        return []
    alias_targets = aliased(words, aliases)
    scored: list[tuple[SearchEntry, float, str]] = []
    memos: list[tuple[str, dict[tuple[str, ...], tuple[float, str | None]]]] = [
        (word, {}) for word in words
    ]

    def part(
        memo: dict[tuple[str, ...], tuple[float, str | None]], word: str, toks: tuple[str, ...]
    ) -> tuple[float, str | None]:
        # per-part results that entries share (a component's tokens, a control name's, a
        # type's): the same result as one call on the concatenation, without its cost
        found = memo.get(toks)
        if found is None:
            found = memo[toks] = token_score(word, toks)
        return found

    for entry in entries:
        if alias_targets and (name := str(entry.ref)) in alias_targets:
            scored.append((entry, 2.0, f"configured alias {alias_targets[name]!r}"))
            continue
        result = combine(
            words,
            [part(memo, word, entry.component_tokens) for word, memo in memos],
            [part(memo, word, entry.control_tokens) for word, memo in memos],
            [part(memo, word, entry.type_tokens) for word, memo in memos],
            entry.control_tokens,
            entry.ref.name,
        )
        if result is not None:
            scored.append((entry, *result))
    if len(scored) > limit:  # order only the contenders: str() of every ref is costly
        cutoff = heapq.nlargest(limit, (item[1] for item in scored))[-1]
        scored = [item for item in scored if item[1] >= cutoff]
    scored.sort(key=lambda item: (-item[1], str(item[0].ref)))
    return scored[:limit]
