"""Log templates ("patterns"): group similar log lines under templates such as ``GET <*> <*> <*>``.

A Drain-like miner (after He et al., "Drain: An Online Log Parsing Approach with Fixed Depth Tree", 2017),
written for logpond. For each line:

1. **Mask** obvious variables, each becoming ``<*>``: UUIDs, hex ids (8+ hex digits with a digit, or
   ``0x…``), IPv4/IPv6 addresses with an optional port, numbers (``-1.5``, ``1e-9``, ``12ms``, ``3.5s``,
   ``200KB``, ``99%``), ISO dates and times, e-mail addresses and URL query strings. Masks work inside a
   token, so ``status=200`` becomes ``status=<*>`` and ``/users/42/orders`` becomes ``/users/<*>/orders``.
2. **Tokenise** on whitespace: at most ``max_tokens`` tokens, then one trailing ``<*>`` for the rest.
3. **Cluster**: lines with the same token count and the same first two tokens (a token containing a digit
   counts as ``<*>``) share a leaf of a small tree. A line joins the leaf's most similar cluster when the
   fraction of positions where they agree (a ``<*>`` in the template agrees with anything) is at least
   ``similarity`` (ties go to the oldest cluster); the positions that differ become ``<*>`` in the template.
   Otherwise the line starts a new cluster or, once ``max_templates`` clusters exist, goes to one overflow
   pattern ``<*>``.

The output depends only on the lines and their order. Memory is bounded: at most ``max_templates`` clusters,
and the caches that make repeated tokens and repeated (masked) lines cheap have a fixed size; the caches
never change a result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import eq, itemgetter

WILDCARD = "<*>"
ERROR_SEVERITIES = frozenset({"error", "fatal"})

# A tree node with this many children sends further distinct tokens to its <*> child, as Drain does, so a
# leading word that varies (a user name) cannot fan the tree out without end.
_MAX_CHILDREN = 100
# raw token -> masked token; tokens longer than this are masked every time (they rarely repeat)
_TOKEN_CACHE_SIZE = 65_536
_TOKEN_CACHE_MAX_CHARS = 128
# masked line -> cluster; lines longer than this are not remembered
_LINE_MEMO_SIZE = 65_536
_LINE_MEMO_MAX_CHARS = 2_048

_HEX = "[0-9a-fA-F]"
_END = r"(?![^\W_])"  # no letter or digit just after ("_" and punctuation separate)
_UNITS = "ns|us|µs|μs|ms|secs?|s|mins?|m|hrs?|h|days?|d|[kmgt]i?b|b|k|%"
# Variables that contain a digit, in one pass; at each position the first alternative that matches wins.
# Every one starts where no letter or digit precedes, with "-", ":" or a hex digit: the lookahead that
# checks this first lets the regex engine skip most positions cheaply.
_VARIABLE = re.compile(
    r"(?=[-:0-9a-fA-F])(?<![^\W_])(?:"
    + "|".join(
        (
            # UUID
            rf"{_HEX}{{8}}-(?:{_HEX}{{4}}-){{3}}{_HEX}{{12}}{_END}",
            # ISO date, optionally with time and zone: 2026-03-02, 2026-03-02T12:30:00.123+02:00
            r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?" + _END,
            # time of day: 12:30:00, 12:30:00,123
            r"(?<!:)\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?" + _END,
            # MAC address: 00:1a:2b:3c:4d:5e
            rf"{_HEX}{{2}}(?:[:-]{_HEX}{{2}}){{5}}{_END}",
            # IPv4 with an optional port
            r"(?<!\.)(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![^\W_]|\.\d)",
            # IPv6, full or compressed, with at least one digit (so that "dead::beef" stays)
            rf"(?<![_:.])(?=[0-9a-fA-F:]*\d)(?:(?:{_HEX}{{1,4}}:){{7}}{_HEX}{{1,4}}"
            rf"|(?:(?:{_HEX}{{1,4}}:){{1,7}}|:):(?:{_HEX}{{1,4}}(?::{_HEX}{{1,4}}){{0,6}})?)(?![\w:]|\.\d)",
            # number, optionally with a unit: 42, -1.5, 1e-9, 12ms, 3.5s, 200KB, 99% (not parts of 1.2.3)
            rf"(?<!\.)-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?i:{_UNITS})?(?![^\W_]|\.\d)",
            # hex id: 8+ hex digits including a digit, or a 0x literal
            rf"(?:0[xX]{_HEX}+|(?={_HEX}*\d){_HEX}{{8,}}){_END}",
        )
    )
    + ")"
)
# Variables marked by "@" or "?", masked before the others.
_ADDRESS = re.compile(
    # e-mail address
    r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    # URL query string: /search?q=shoes&page=2 -> /search?<*> (stops at the next "?", so no rescans)
    r"|(?<=[\w/.-]\?)[^\s\"'#<>?]*=[^\s\"'#<>]*"
)
_HAS_DIGIT = re.compile(r"\d").search
_SHARED_TOKEN_CACHE: dict[str, str] = {}


def _mask(token: str) -> str:
    if token.isdecimal():
        return WILDCARD
    if "@" in token or "?" in token:
        token = _ADDRESS.sub(WILDCARD, token)
    if _HAS_DIGIT(token):
        token = _VARIABLE.sub(WILDCARD, token)
    return token


@dataclass(frozen=True)
class Pattern:
    """One template and the lines it covers."""

    template: str  # tokens joined by single spaces, variables shown as "<*>"
    count: int  # sum of the weights of the lines assigned to it
    error_count: int  # sum of the weights of those lines whose severity is "error" or "fatal"
    example: str  # the first line assigned to it, as given (not masked)
    example_severity: str


def _picker(positions: Sequence[int]) -> Callable[[Sequence[str]], tuple[str, ...]]:
    """A function returning the tokens at `positions` as a tuple (operator.itemgetter, minus its quirks)."""
    if not positions:
        return lambda tokens: ()
    if len(positions) == 1:
        (position,) = positions
        return lambda tokens: (tokens[position],)
    pick: Callable[[Sequence[str]], tuple[str, ...]] = itemgetter(*positions)
    return pick


class _Cluster:
    __slots__ = ("id", "tokens", "wildcards", "fixed", "pick", "count", "error_count", "example", "severity")

    def __init__(self, cluster_id: int, tokens: list[str], example: str, severity: str) -> None:
        self.id = cluster_id
        self.tokens = tokens
        self.count = 0
        self.error_count = 0
        self.example = example
        self.severity = severity
        self.wildcards = 0
        self.fixed: tuple[str, ...] = ()
        self.pick = _picker(())
        self._index()

    def _index(self) -> None:
        # The non-wildcard positions and their tokens, so that comparing a line is a few C-level calls.
        positions = [i for i, token in enumerate(self.tokens) if token != WILDCARD]
        self.wildcards = len(self.tokens) - len(positions)
        self.fixed = tuple(self.tokens[i] for i in positions)
        self.pick = _picker(positions)

    def generalise(self, tokens: Sequence[str]) -> bool:
        """Turn the positions where `tokens` differs into wildcards; say whether anything changed."""
        changed = False
        for i, (ours, theirs) in enumerate(zip(self.tokens, tokens, strict=True)):
            if ours != theirs and ours != WILDCARD:
                self.tokens[i] = WILDCARD
                changed = True
        if changed:
            self._index()
        return changed


class _Node:
    __slots__ = ("children", "clusters")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.clusters: list[_Cluster] = []  # in creation order; non-empty only in leaves


def _tree_key(token: str) -> str:
    return WILDCARD if _HAS_DIGIT(token) else token


class TemplateMiner:
    """Feed lines with `add`, then read the templates with `patterns`; see the module docstring."""

    def __init__(self, *, similarity: float = 0.5, max_templates: int = 1000, max_tokens: int = 64) -> None:
        if not 0.0 <= similarity <= 1.0:
            raise ValueError(f"similarity must be between 0 and 1, got {similarity!r}")
        if max_templates < 1:
            raise ValueError(f"max_templates must be at least 1, got {max_templates!r}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens!r}")
        self._max_templates = max_templates
        self._max_tokens = max_tokens
        # the fewest agreeing positions a line of n tokens needs: the least k with k / n >= similarity
        self._needed = [_least_agreement(similarity, n) for n in range(max_tokens + 2)]
        self._roots: dict[int, _Node] = {}  # by token count
        self._clusters: list[_Cluster] = []
        self._overflow: _Cluster | None = None
        # masking is a pure function of the token, so every miner of the process shares one bounded cache:
        # the next request over similar logs finds most of its tokens already masked
        self._token_cache = _SHARED_TOKEN_CACHE
        # Masked line -> the cluster it joined, which accepts it completely. A fresh search would choose the
        # same cluster until the line's route through the tree changes or an older cluster of its leaf
        # gains a wildcard (and could win the tie); both clear the memo, so it never changes a result.
        self._memo: dict[tuple[str, ...], _Cluster] = {}

    def add(self, body: str, severity: str = "info", weight: int = 1) -> int:
        """Assign one line (`weight` occurrences of it) to a template, and return the template's id.

        Ids are 0, 1, 2… in creation order; the overflow pattern's id is `max_templates`. A template can
        still gain wildcards later, so read the texts with `templates` once every line is in.
        """
        if weight < 1:
            raise ValueError(f"weight must be at least 1, got {weight!r}")
        tokens = self._tokenise(body)
        key = tuple(tokens) if len(body) <= _LINE_MEMO_MAX_CHARS else None
        cluster = None if key is None else self._memo.get(key)
        if cluster is None:
            cluster = self._assign(tokens, body, severity)
            if key is not None and cluster is not self._overflow:
                if len(self._memo) >= _LINE_MEMO_SIZE:
                    self._memo.clear()
                self._memo[key] = cluster
        cluster.count += weight
        if severity in ERROR_SEVERITIES:
            cluster.error_count += weight
        return cluster.id

    def patterns(self) -> list[Pattern]:
        """The templates so far, by count (descending) then template; each template appears once."""
        # Clusters never share a template (a leaf's older cluster would have taken the line that made a
        # newer one equal to it), but the overflow "<*>" can meet a one-token cluster such as "42": merge.
        merged: dict[str, Pattern] = {}
        clusters = self._clusters if self._overflow is None else [*self._clusters, self._overflow]
        for cluster in clusters:  # creation order, the overflow last: the first example seen wins
            template = " ".join(cluster.tokens)
            seen = merged.get(template)
            if seen is None:
                merged[template] = Pattern(
                    template, cluster.count, cluster.error_count, cluster.example, cluster.severity
                )
            else:
                merged[template] = Pattern(
                    template,
                    seen.count + cluster.count,
                    seen.error_count + cluster.error_count,
                    seen.example,
                    seen.example_severity,
                )
        return sorted(merged.values(), key=lambda p: (-p.count, p.template))

    def templates(self) -> dict[int, str]:
        """The current template of every id `add` has returned, the overflow's being "<*>".

        Unlike `patterns`, this does not merge the overflow with a one-token template "<*>" (a line "42").
        """
        clusters = self._clusters if self._overflow is None else [*self._clusters, self._overflow]
        return {cluster.id: " ".join(cluster.tokens) for cluster in clusters}

    def _tokenise(self, body: str) -> list[str]:
        raw = body.split(None, self._max_tokens)
        if len(raw) > self._max_tokens:
            raw[-1] = WILDCARD
        cached = self._token_cache.get
        # a masked token is never empty, so `or` only falls through on a cache miss
        return [cached(token) or self._mask_and_cache(token) for token in raw]

    def _mask_and_cache(self, token: str) -> str:
        masked = _mask(token)
        if len(token) <= _TOKEN_CACHE_MAX_CHARS:
            if len(self._token_cache) >= _TOKEN_CACHE_SIZE:
                self._token_cache.clear()
            self._token_cache[token] = masked
        return masked

    def _assign(self, tokens: list[str], body: str, severity: str) -> _Cluster:
        leaf = self._find_leaf(tokens)
        if leaf is not None:
            cluster = self._most_similar(leaf.clusters, tokens)
            if cluster is not None:
                if cluster.generalise(tokens) and cluster is not leaf.clusters[-1]:
                    self._memo.clear()
                return cluster
        if len(self._clusters) < self._max_templates:
            cluster = _Cluster(len(self._clusters), list(tokens), body, severity)
            self._clusters.append(cluster)
            self._make_leaf(tokens).clusters.append(cluster)
            return cluster
        if self._overflow is None:
            self._overflow = _Cluster(self._max_templates, [WILDCARD], body, severity)
        return self._overflow

    def _find_leaf(self, tokens: list[str]) -> _Node | None:
        node = self._roots.get(len(tokens))
        for token in tokens[:2]:
            if node is None:
                return None
            children = node.children
            node = children.get(_tree_key(token)) or children.get(WILDCARD)
        return node

    def _make_leaf(self, tokens: list[str]) -> _Node:
        node = self._roots.get(len(tokens))
        if node is None:
            node = self._roots[len(tokens)] = _Node()
        for token in tokens[:2]:
            children = node.children
            key = _tree_key(token)
            if key not in children:
                if len(children) >= _MAX_CHILDREN:
                    key = WILDCARD
                elif WILDCARD in children:
                    # lines with this token used to go down the <*> child and now will not
                    self._memo.clear()
            child = children.get(key)
            if child is None:
                child = children[key] = _Node()
            node = child
        return node

    def _most_similar(self, clusters: list[_Cluster], tokens: list[str]) -> _Cluster | None:
        """The cluster accepting most positions of `tokens` (enough of them), the oldest on a tie."""
        best = None
        best_agreement = self._needed[len(tokens)] - 1
        for cluster in clusters:
            picked = cluster.pick(tokens)
            if picked == cluster.fixed:
                return cluster  # accepts every position: nothing can beat it, and older clusters come first
            agreement = cluster.wildcards + sum(map(eq, cluster.fixed, picked))
            if agreement > best_agreement:
                best, best_agreement = cluster, agreement
        return best


def _least_agreement(similarity: float, n: int) -> int:
    """The least k with k / n >= similarity, computed as the comparison itself would be (no rounding surprises)."""
    k = min(n, math.ceil(similarity * n))
    while k > 0 and (k - 1) / n >= similarity:
        k -= 1
    while k < n and k / n < similarity:
        k += 1
    return k


def mine(
    lines: Iterable[tuple[str, str, int]],
    *,
    similarity: float = 0.5,
    max_templates: int = 1000,
    max_tokens: int = 64,
) -> list[Pattern]:
    """Templates of `lines`, given as (body, severity_text, weight), in the order of `TemplateMiner.patterns`."""
    miner = TemplateMiner(similarity=similarity, max_templates=max_templates, max_tokens=max_tokens)
    for body, severity, weight in lines:
        miner.add(body, severity, weight)
    return miner.patterns()
