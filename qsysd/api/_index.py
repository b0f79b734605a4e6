"""The search index of each Core: find_controls at a cost per group of alike components."""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

import attrs

from qsysd.api._results import Match, string_of
from qsysd.api._search import (
    MAIN_BONUS,
    MAIN_CONTROLS,
    Part,
    SearchEntry,
    aliased,
    combine,
    query_words,
    rank,
    token_score,
    tokens,
)
from qsysd.errors import LookupFailed
from qsysd.state import ControlRef, StateStore

__all__ = ["SearchIndex"]


@attrs.frozen
class _Group:
    """Components of one type with the same controls (names and types, in order)."""

    component_type: str
    type_tokens: tuple[str, ...]
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    control_tokens: tuple[tuple[str, ...], ...]
    words: frozenset[str]  # every token of every control name
    # each name's letter tokens and digit tokens apart: a word only scores against its kind
    letters: tuple[tuple[str, ...], ...]
    digits: tuple[tuple[str, ...], ...]
    # names alike in their letter tokens and their bonus: (letters, a name, its indexes)
    shapes: tuple[tuple[tuple[str, ...], str, tuple[int, ...]], ...]


@attrs.frozen
class _Cluster:
    """Components of one group whose names have the same word tokens (not digits)."""

    group: int
    words: tuple[str, ...]
    members: list[int]
    # members are in the order of their rendered "Component.control" for every control name
    # (sorted by "Component." once), unless one's "Component." starts another's ("Gym." and
    # "Gym.1."): then the order depends on the control name and a query sorts the strings
    ordered: bool = False


_ZERO: Part = (0.0, None)


def _best(word: str, toks: Sequence[str], scores: Mapping[str, float]) -> Part:
    """token_score(word, toks) from each token's own score (first best token wins)."""
    best: Part = (0.0, None)
    for token in toks:
        if token == word:
            return 1.0, token
        score = scores.get(token, 0.0)
        if score > best[0]:
            best = (score, token)
    return best


class _CoreIndex:
    """One Core's controls for search, grouped so that a query costs per group, not per control.

    A control's score depends only on its component's name tokens, its component's type and
    its own name, and a word scores above 0 only against tokens of its kind (letters or
    digits). So components are clustered by group (type and controls) and by the letter
    tokens of their names; a query scores each cluster once, then only the components whose
    digits match a digit word apart. A cluster whose best possible score cannot reach the
    results so far is skipped. The result is exactly :func:`rank`'s over every control.
    """

    def __init__(self, store: StateStore, core: str) -> None:
        self.core = core
        self.names: list[str] = []
        self.digit_tokens: list[tuple[str, ...]] = []
        self.cluster_of: list[int] = []
        self.groups: list[_Group] = []
        self.clusters: list[_Cluster] = []
        self.digit_postings: dict[str, list[int]] = {}
        self.named: list[SearchEntry] = []
        self.by_name: dict[str, SearchEntry] = {}
        groups: dict[tuple[str, tuple[str, ...], tuple[str, ...]], int] = {}
        clusters: dict[tuple[int, tuple[str, ...]], int] = {}
        infos = store.control_infos(core)
        for comp in store.components(core):
            index = len(self.names)
            comp_tokens = tokens(comp.name)
            self.names.append(comp.name)
            digits = tuple(t for t in comp_tokens if t.isdigit())
            self.digit_tokens.append(digits)
            for token in dict.fromkeys(digits):
                self.digit_postings.setdefault(token, []).append(index)
            controls = infos.get(comp.name, [])
            names = tuple(i.ref.name for i in controls)
            kinds = tuple(i.type for i in controls)
            key = (comp.type, names, kinds)
            g = groups.get(key)
            if g is None:
                g = groups[key] = len(self.groups)
                control_tokens = tuple(tuple(tokens(n)) for n in names)
                letters = tuple(tuple(t for t in ct if not t.isdigit()) for ct in control_tokens)
                shapes: dict[tuple[tuple[str, ...], float], tuple[str, list[int]]] = {}
                for j, name in enumerate(names):
                    shape = (letters[j], MAIN_CONTROLS.get(name, 0.0))
                    shapes.setdefault(shape, (name, []))[1].append(j)
                self.groups.append(
                    _Group(
                        comp.type, tuple(tokens(comp.type)), names, kinds, control_tokens,
                        frozenset(t for ct in control_tokens for t in ct), letters,
                        tuple(tuple(t for t in ct if t.isdigit()) for ct in control_tokens),
                        tuple((k[0], name, tuple(js)) for k, (name, js) in shapes.items()),
                    )
                )  # fmt: skip
            words = tuple(t for t in comp_tokens if not t.isdigit())
            c = clusters.get((g, words))
            if c is None:
                c = clusters[(g, words)] = len(self.clusters)
                self.clusters.append(_Cluster(g, words, []))
            self.clusters[c].members.append(index)
            self.cluster_of.append(c)
        self.position = [0] * len(self.names)  # a component's place in its cluster's order
        for c, cluster in enumerate(self.clusters):
            keys = sorted((self.names[i] + ".", i) for i in cluster.members)
            self.clusters[c] = cluster = attrs.evolve(
                cluster,
                members=[i for _, i in keys],
                # sorted, a prefix comes just before what extends it: neighbours suffice
                ordered=not any(b.startswith(a) for (a, _), (b, _) in pairwise(keys)),
            )
            for place, i in enumerate(cluster.members):
                self.position[i] = place
        for info in infos.get(None, []):
            entry = SearchEntry(info.ref, info.type, None, (), tuple(tokens(info.ref.name)), ())
            self.named.append(entry)
            self.by_name[info.ref.name] = entry
        every = {t for g in self.groups for t in g.words | set(g.type_tokens)}
        self.digits = sorted(set(self.digit_postings) | {t for t in every if t.isdigit()})
        self._word_scores: dict[str, dict[str, float]] = {}
        self._word_clusters: dict[str, tuple[list[Part], list[float], list[float]]] = {}
        self.vocabulary = sorted(
            {t for c in self.clusters for t in c.words} | {t for t in every if not t.isdigit()}
        )

    def tokens_of(self, index: int) -> tuple[str, ...]:
        return tuple(tokens(self.names[index]))

    def entry(self, text: str) -> SearchEntry | None:
        """The entry of ``"Component.control"`` or a named control (for aliases)."""
        found = self.by_name.get(text)
        if found is not None:
            return found
        parts = text.split(".")
        for i in range(1, len(parts)):
            comp, name = ".".join(parts[:i]), ".".join(parts[i:])
            try:
                index = self.names.index(comp)
            except ValueError:
                continue
            group = self.groups[self.clusters[self.cluster_of[index]].group]
            if name in group.names:
                return self._entry(index, group, group.names.index(name))
        return None

    def _entry(self, index: int, group: _Group, j: int) -> SearchEntry:
        ref = ControlRef(self.core, self.names[index], group.names[j])
        return SearchEntry(
            ref, group.kinds[j], group.component_type, self.tokens_of(index),
            group.control_tokens[j], group.type_tokens,
        )  # fmt: skip

    def _scores(self, word: str) -> dict[str, float]:
        """Every token of this Core's names that ``word`` scores above 0 against (cached)."""
        found = self._word_scores.get(word)
        if found is None:
            if len(self._word_scores) >= 4096:  # bounded: queries are free text
                self._word_scores.clear()
            found = self._word_scores[word] = self._score_tokens(word)
        return found

    def _score_tokens(self, word: str) -> dict[str, float]:
        if word.isdigit():
            long = len(word) >= 3
            pool: Iterable[str] = (
                t
                for t in self.digits
                if t == word
                or (long and len(t) >= 3 and (t.startswith(word) or word.startswith(t)))
            )
        else:
            pool = self.vocabulary
        out = {}
        for token in pool:
            score = token_score(word, (token,))[0]
            if score > 0:
                out[token] = score
        return out

    def _cluster_parts(self, word: str) -> tuple[list[Part], list[float], list[float]]:
        """Per cluster, ``word``'s result against its name's words, and the most it can add
        to a control's score there; per group, the most it can add (cached per word)."""
        found = self._word_clusters.get(word)
        if found is None:
            if len(self._word_clusters) >= 256:  # bounded: a list per word of every cluster
                self._word_clusters.clear()
            scores = self._scores(word)
            group_best = [
                max(
                    1.0 if word in group.words else 0.0,
                    max((scores.get(t, 0.0) for t in group.words), default=0.0),
                    _best(word, group.type_tokens, scores)[0] * 0.6,
                )
                for group in self.groups
            ]
            digit = word.isdigit()
            parts = [_ZERO if digit else _best(word, c.words, scores) for c in self.clusters]
            tops = [
                max(part[0], group_best[c.group])
                for part, c in zip(parts, self.clusters, strict=True)
            ]
            found = self._word_clusters[word] = (parts, tops, group_best)
        return found

    def rank(
        self, words: list[str], alias_targets: Mapping[str, str], limit: int
    ) -> list[tuple[SearchEntry, float, str]]:
        """The same ranking as :func:`rank` over this Core's component controls."""
        n = len(words)
        scores = [self._scores(w) for w in words]
        is_digit = [w.isdigit() for w in words]
        zero: Part = (0.0, None)
        # components whose digits match a digit word, with their digit words' results
        apart: dict[int, list[Part]] = {}
        for i in range(n):
            if is_digit[i]:
                for token in scores[i]:
                    for index in self.digit_postings.get(token, ()):
                        apart.setdefault(index, [zero] * n)
        for index, results in apart.items():
            for i, word in enumerate(words):
                if is_digit[i]:
                    results[i] = _best(word, self.digit_tokens[index], scores[i])
        # buckets: (cluster, per-word results of the component name) -> members (None: all
        # members of the cluster not scored apart), each with an upper bound of its scores
        per_word = [self._cluster_parts(w) for w in words]
        bases = list(zip(*(p[0] for p in per_word), strict=True))
        tops = map(sum, zip(*(p[1] for p in per_word), strict=True))
        ordered: list[tuple[float, tuple[int, tuple[Part, ...]], list[int] | None]] = [
            (top / n + MAIN_BONUS, (c, base), None)
            for c, (top, base) in enumerate(zip(tops, bases, strict=True))
        ]
        buckets: dict[tuple[int, tuple[Part, ...]], list[int]] = {}
        for index, results in apart.items():
            c = self.cluster_of[index]
            base = bases[c]
            full = tuple(results[i] if is_digit[i] else base[i] for i in range(n))
            buckets.setdefault((c, full), []).append(index)
        for key, indexes in buckets.items():
            indexes.sort(key=self.position.__getitem__)  # in the cluster's order
            group_best = [p[2][self.clusters[key[0]].group] for p in per_word]
            total = sum(max(comp[0], best) for comp, best in zip(key[1], group_best, strict=True))
            ordered.append((total / n + MAIN_BONUS, key, indexes))
        memo: dict[tuple[int, tuple[str, ...]], Part] = {}

        def part(i: int, toks: tuple[str, ...]) -> Part:
            found = memo.get((i, toks))
            if found is None:
                found = memo[(i, toks)] = _best(words[i], toks, scores[i])
            return found

        # Per group, its control names alike in their letters, their digits' results and
        # their bonus ("input.1.gain", "input.2.gain" for a word "gain") score alike for
        # any component name: sorted into alike sets once per query, from the shapes of the
        # index (alike in letters and bonus), each set then scored once per component name's
        # results.
        digit_words = [i for i in range(n) if is_digit[i]]
        alike_of: dict[int, tuple[list[Part], list[tuple[Any, ...]]]] = {}

        def alike(g: int) -> tuple[list[Part], list[tuple[Any, ...]]]:
            found = alike_of.get(g)
            if found is None:
                group = self.groups[g]
                sets: list[tuple[Any, ...]] = []
                for letters, name, js in group.shapes:
                    ctls = [zero if is_digit[i] else part(i, letters) for i in range(n)]
                    if not digit_words:
                        sets.append((tuple(ctls), letters, name, js))
                        continue
                    split: dict[tuple[Part, ...], list[int]] = {}
                    for j in js:
                        for i in digit_words:
                            ctls[i] = part(i, group.digits[j])
                        split.setdefault(tuple(ctls), []).append(j)
                    sets += [(key, letters, name, same) for key, same in split.items()]
                types = [part(i, group.type_tokens) for i in range(n)]
                found = alike_of[g] = (types, sets)
            return found

        by_vector: dict[tuple[int, tuple[Part, ...]], list[tuple[float, str, list[int]]]] = {}

        def scored(g: int, comps: tuple[Part, ...]) -> list[tuple[float, str, list[int]]]:
            # clusters of one group whose names score alike score alike
            out = by_vector.get((g, comps))
            if out is None:
                types, sets = alike(g)
                out = by_vector[(g, comps)] = []
                for ctls, letters, name, js in sets:
                    result = combine(words, comps, ctls, types, letters, name)
                    if result is not None:
                        out.append((*result, js))
            return out

        # best first by the upper bound, so most buckets are never scored
        ordered.sort(key=lambda item: -item[0])
        found: list[tuple[float, str, int, int, list[int]]] = []
        counted: list[tuple[float, int]] = []
        cutoff = 0.3
        for top, (c, comps), members in ordered:
            if top < cutoff:
                break
            cluster = self.clusters[c]
            if members is None:
                members = [i for i in cluster.members if i not in apart]
            if not members:
                continue
            for score, why, js in scored(cluster.group, comps):
                if score >= cutoff:
                    found += [(score, why, cluster.group, j, members) for j in js]
                    counted.append((score, len(members) * len(js)))
            counted.sort(key=lambda item: -item[0])
            seen = 0
            for score, count in counted:
                seen += count
                if seen >= limit + len(alias_targets):
                    cutoff = max(cutoff, score)
                    break
        best: list[tuple[float, str, int, int, str]] = []
        want = limit + len(alias_targets)
        for score, why, g, j, members in found:
            if score < cutoff:
                continue
            name = self.groups[g].names[j]
            if self.clusters[self.cluster_of[members[0]]].ordered:
                refs = [(f"{self.names[i]}.{name}", i) for i in members[:want]]
            else:
                refs = heapq.nsmallest(want, [(f"{self.names[i]}.{name}", i) for i in members])
            best += [(-score, text, i, j, why) for text, i in refs if text not in alias_targets]
        best.sort()
        return [
            (self._entry(i, self.groups[self.clusters[self.cluster_of[i]].group], j), -neg, why)
            for neg, _, i, j, why in best[:limit]
        ]


class SearchIndex:
    """Search indexes per Core, rebuilt when the Core's design changes."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[object, _CoreIndex]] = {}

    def index(self, store: StateStore, core: str) -> _CoreIndex:
        key = (store.design_code(core), len(store.components(core)))
        cached = self._cache.get(core)
        if cached is not None and cached[0] == key:
            return cached[1]
        index = _CoreIndex(store, core)
        self._cache[core] = (key, index)
        return index

    def find(
        self,
        store: StateStore,
        cores: Iterable[str],
        query: str,
        *,
        aliases: Mapping[str, str],
        limit: int,
    ) -> list[Match]:
        """Controls of ``cores`` ranked by :func:`rank`, with their current strings."""
        words = query_words(query)
        if not words:
            return []
        alias_targets = aliased(words, aliases)
        scored: list[tuple[SearchEntry, float, str]] = []
        for core in cores:
            index = self.index(store, core)
            for target, phrase in alias_targets.items():
                entry = index.entry(target)
                if entry is not None:
                    scored.append((entry, 2.0, f"configured alias {phrase!r}"))
            scored += index.rank(words, alias_targets, limit)
            named = [e for e in index.named if e.ref.name not in alias_targets]
            scored += rank(" ".join(words), named, aliases={}, limit=limit)
        scored.sort(key=lambda item: (-item[1], str(item[0].ref)))
        out = []
        for entry, score, why in scored[:limit]:
            reading = None
            with contextlib.suppress(LookupFailed):
                reading = store.read(entry.ref)
            out.append(
                Match(
                    control=str(entry.ref),
                    core=entry.ref.core,
                    component=entry.ref.component,
                    name=entry.ref.name,
                    type=entry.type,
                    component_type=entry.component_type,
                    score=round(score, 3),
                    string=string_of(reading),
                    why=why,
                )
            )
        return out
