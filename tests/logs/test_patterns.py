"""The log template miner: masking, clustering, counts, ordering, bounds and determinism."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from unittest import mock

import pytest

from logpond.logs import patterns
from logpond.logs.patterns import Pattern, TemplateMiner, mine


def templates(*bodies: str, similarity: float = 0.5) -> list[tuple[str, int]]:
    return [(p.template, p.count) for p in mine(((body, "info", 1) for body in bodies), similarity=similarity)]


@pytest.mark.parametrize(
    ("body", "template"),
    [
        ("GET /api/v1/users/42/orders 200 12ms", "GET /api/v1/users/<*>/orders <*> <*>"),
        ("took 3.5s to copy 200KB (99%) at -1.5 drift 1e-9", "took <*> to copy <*> (<*>) at <*> drift <*>"),
        ("request 550e8400-e29b-41d4-a716-446655440000 done", "request <*> done"),
        ("trace fdf3fba49e5677f8 session cs_e87407e10c68bd00 addr=0x7ffd", "trace <*> session cs_<*> addr=<*>"),
        ("from 10.0.0.1:8080 and 2001:db8::1 and [::1]:443", "from <*> and <*> and [<*>]:<*>"),
        ("nic 00:1a:2b:3c:4d:5e up", "nic <*> up"),
        ("at 2026-03-02T12:30:00.123Z (12:30:00,123) on 2026-03-02", "at <*> (<*>) on <*>"),
        ("mail to bob.smith+tag@example.co.uk sent", "mail to <*> sent"),
        ("GET https://shop.example.com/items/7?q=shoes&page=2 200", "GET https://shop.example.com/items/<*>?<*> <*>"),
        ("status=200 retries=3 mode=fast key=ratelimit:10.1.2.3", "status=<*> retries=<*> mode=fast key=ratelimit:<*>"),
        ('{"time":1795354901341,"user_id":"63543","ok":true}', '{"time":<*>,"user_id":"<*>","ok":true}'),
        ('search query="running shoes" returned 5 hits', 'search query="running shoes" returned <*> hits'),
        ("using std::vector and Foo::bar from v1.2.3, v12, deadbeef", None),
    ],
)
def test_obvious_variables_are_masked(body: str, template: str | None) -> None:
    """Numbers, ids, addresses, times, e-mails and query strings become <*>; words, versions and quotes stay."""
    assert templates(body) == [(body if template is None else template, 1)]


def test_lines_differing_only_in_variables_share_a_template() -> None:
    """Lines that differ only in numbers, ids, IPs and durations end up under one template."""
    assert templates(
        "user 42 logged in from 10.0.0.1 in 12ms (session 550e8400-e29b-41d4-a716-446655440000)",
        "user 7 logged in from 192.168.1.20 in 3.5s (session 6ba7b810-9dad-11d1-80b4-00c04fd430c8)",
        "user 1234567 logged in from fe80::1ff:fe23:4567:890a in 250us (session 00000000-0000-0000-0000-000000000000)",
    ) == [("user <*> logged in from <*> in <*> (session <*>)", 3)]


def test_different_messages_get_different_templates() -> None:
    """Unrelated messages, including ones with the same length and first word, stay apart."""
    assert templates(
        "disk full on /dev/sda1",
        "connection refused by upstream",
        "order 42 shipped to Berlin today",
        "order 43 cancelled by customer request",
    ) == [
        ("connection refused by upstream", 1),
        ("disk full on /dev/sda1", 1),
        ("order <*> cancelled by customer request", 1),
        ("order <*> shipped to Berlin today", 1),
    ]


def test_a_varying_word_becomes_a_wildcard() -> None:
    """A word that changes between otherwise equal lines (a user name) becomes <*> once both are seen."""
    result = mine(
        [
            ("login succeeded for alice from 10.0.0.1", "info", 1),
            ("login succeeded for bob from 10.0.0.2", "info", 1),
            ("login succeeded for carol from 10.0.0.3", "info", 1),
        ]
    )
    assert result == [
        Pattern("login succeeded for <*> from <*>", 3, 0, "login succeeded for alice from 10.0.0.1", "info")
    ]


def test_counts_and_error_counts_add_up_weights() -> None:
    """count sums the weights of a template's lines; error_count sums those with severity error or fatal."""
    result = mine(
        [
            ("GET /cart 200 12ms", "info", 3),
            ("GET /cart 500 40ms", "error", 2),
            ("GET /cart 503 1ms", "fatal", 4),
            ("GET /cart 404 2ms", "warn", 1),
            ("payment declined for order 9", "error", 5),
        ]
    )
    assert [(p.template, p.count, p.error_count) for p in result] == [
        ("GET /cart <*> <*>", 10, 6),
        ("payment declined for order <*>", 5, 5),
    ]


def test_example_is_the_first_original_line() -> None:
    """The example is the first line assigned to the template, unmasked, with its own severity."""
    miner = TemplateMiner()
    miner.add("cache miss key=user:42 after 3ms", "warn")
    miner.add("cache miss key=user:43 after 9ms", "error")
    assert miner.patterns() == [
        Pattern("cache miss key=user:<*> after <*>", 2, 1, "cache miss key=user:42 after 3ms", "warn")
    ]


def test_patterns_are_ordered_by_count_then_template() -> None:
    """Templates come by count, largest first, and alphabetically among equal counts."""
    assert templates("beta job ran", "alpha job ran", "gamma job ran", "beta job ran", "alpha job ran") == [
        ("alpha job ran", 2),
        ("beta job ran", 2),
        ("gamma job ran", 1),
    ]


def test_similarity_threshold_is_respected() -> None:
    """Lines sharing fewer than `similarity` of their positions stay apart; at the threshold they merge."""
    assert templates("job export started by scheduler", "job export failed with timeout") == [
        ("job export failed with timeout", 1),
        ("job export started by scheduler", 1),
    ]
    assert templates("job export started now", "job export failed again") == [("job export <*> <*>", 2)]
    assert templates("job export started now", "job export started again", similarity=0.9) == [
        ("job export started again", 1),
        ("job export started now", 1),
    ]


def test_lines_beyond_max_templates_go_to_the_overflow_pattern() -> None:
    """Once max_templates exist, lines that match none count under one "<*>"; matching lines still join theirs."""
    result = mine(
        [
            ("alpha job ran", "info", 1),
            ("beta task failed", "error", 1),
            ("gamma thing happened", "error", 2),
            ("delta other event", "info", 1),
            ("alpha job ran", "info", 1),
        ],
        max_templates=2,
    )
    assert result == [
        Pattern("<*>", 3, 2, "gamma thing happened", "error"),
        Pattern("alpha job ran", 2, 0, "alpha job ran", "info"),
        Pattern("beta task failed", 1, 1, "beta task failed", "error"),
    ]


def test_overflow_merges_with_a_one_token_variable_template() -> None:
    """A line that is only a variable ("42") and the overflow share the template "<*>", reported once."""
    assert mine([("42", "info", 1), ("hello world", "info", 2)], max_templates=1) == [
        Pattern("<*>", 3, 0, "42", "info")
    ]


def test_empty_and_blank_bodies_have_the_empty_template() -> None:
    """An empty or whitespace-only body has the template "", and keeps its original text as the example."""
    assert mine([("", "info", 1), ("  \t ", "error", 2)]) == [Pattern("", 3, 2, "", "info")]


def test_unicode_lines() -> None:
    """Non-ASCII words are kept as they are; variables around them are masked."""
    assert templates("ユーザー 42 がログインしました", "ユーザー 7 がログインしました", "🚀 deployed café in 12ms") == [
        ("ユーザー <*> がログインしました", 2),
        ("🚀 deployed café in <*>", 1),
    ]


def test_long_lines_are_truncated_after_max_tokens() -> None:
    """Tokens after max_tokens become one trailing <*>; lines differing only there share the template."""
    first = " ".join(["word"] * 10_000)
    second = " ".join(["word"] * 64 + ["other"] * 500)
    result = mine([(first, "info", 1), (second, "info", 1)])
    assert result == [Pattern(" ".join(["word"] * 64 + ["<*>"]), 2, 0, first, "info")]
    assert templates("a b c d e", "a b c") == [("a b c", 1), ("a b c d e", 1)]
    assert mine([("a b c d e", "info", 1)], max_tokens=3)[0].template == "a b c <*>"


@pytest.mark.parametrize(
    "body",
    ["a?" * 100_000, "a?b=" * 50_000, "1." * 100_000, "a@b." * 50_000, "-1" * 100_000, "f" * 200_000 + "1"]
    + [":" * 200_000 + "1", "/a:1:" * 50_000, "0x" * 100_000, "aaaaaaaa-aaaa-" * 20_000],
    ids=lambda body: repr(body[:6]),
)
def test_huge_tokens_are_mined(body: str) -> None:
    """A single token of hundreds of kilobytes built to provoke regex backtracking is masked in linear time."""
    [pattern] = mine([(body, "info", 1)])
    assert pattern.count == 1
    assert pattern.example == body


def test_a_line_joins_the_oldest_cluster_that_accepts_it() -> None:
    """A repeated line goes to the oldest cluster that has since grown to accept it, not where it went before."""
    assert templates("k p a b", "k p c d", "k p a d", "k p c b", "k p c d", similarity=0.75) == [
        ("k p <*> <*>", 4),
        ("k p c d", 1),
    ]


def test_a_line_follows_a_new_branch_of_the_tree() -> None:
    """A repeated line goes where the tree now routes it, even if an earlier identical line went elsewhere."""
    assert templates("7 x", "b x", "b y", "b x") == [("<*> x", 2), ("b x", 1), ("b y", 1)]


def test_caches_never_change_the_result() -> None:
    """Random lines mined with small caches and tree fan-out give what they give without the line memo."""

    def run(lines: list[tuple[str, str, int]], memo_size: int, similarity: float, max_templates: int) -> list[Pattern]:
        with (
            mock.patch.object(patterns, "_MAX_CHILDREN", 2),
            mock.patch.object(patterns, "_TOKEN_CACHE_SIZE", 3),
            mock.patch.object(patterns, "_LINE_MEMO_SIZE", memo_size),
            mock.patch.object(patterns, "_LINE_MEMO_MAX_CHARS", 2048 if memo_size else -1),
        ):
            return mine(lines, similarity=similarity, max_templates=max_templates)

    # Lines of a few shapes sharing their first tokens, so that leaves hold several competing clusters.
    for seed in range(1000):
        rnd = random.Random(seed)
        lines = []
        for _ in range(rnd.randint(1, 60)):
            head = rnd.choice(["k p", "k 7", "7 p", rnd.choice("kpq") + " " + rnd.choice("ab7")])
            tail = rnd.choices("abcd", k=rnd.choice([0, 1, 2, 2, 3]))
            lines.append((" ".join([head, *tail]), rnd.choice(["info", "error"]), rnd.randint(1, 3)))
        similarity = rnd.choice([0.0, 0.5, 0.6, 0.75, 1.0])
        max_templates = rnd.choice([4, 100])
        expected = run(lines, 0, similarity, max_templates)
        assert run(lines, rnd.choice([3, 1000]), similarity, max_templates) == expected, seed


DETERMINISM_SCRIPT = """
import json, sys
from datetime import UTC, datetime
from logpond.demo import generate_log_tables
from logpond.logs.patterns import mine
lines = []
for table in generate_log_tables(5000, team_id=1, end=datetime(2026, 1, 1, tzinfo=UTC)):
    lines += zip(table.column("body").to_pylist(), table.column("severity_text").to_pylist(), [1] * table.num_rows)
json.dump([vars(p) for p in mine(lines)], sys.stdout)
"""


def test_same_input_gives_the_same_output_in_any_process() -> None:
    """Mining the same demo lines in processes with different hash seeds gives identical patterns."""
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", DETERMINISM_SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) > 50
    assert sum(p["count"] for p in outputs[0]) == 5000


def test_incremental_and_batch_mining_agree() -> None:
    """Adding lines one by one to a TemplateMiner gives the same patterns as mine() over the same lines."""
    lines = [(f"worker {i % 7} processed {i} jobs in {i * 3}ms", "info", 1 + i % 3) for i in range(50)]
    lines += [(f"worker {i} crashed: out of memory", "fatal", 1) for i in range(5)]
    miner = TemplateMiner()
    for body, severity, weight in lines:
        miner.add(body, severity, weight)
    assert miner.patterns() == mine(lines)
    assert miner.patterns() == mine(lines)


def test_add_returns_template_ids_that_templates_resolves() -> None:
    """add returns the id of the line's template; templates maps ids (the overflow's too) to final texts."""
    miner = TemplateMiner(max_templates=2)
    ids = [
        miner.add(body)
        for body in ["login ok for alice", "disk full on sda", "login ok for bob", "something else", "x y z"]
    ]
    assert ids == [0, 1, 0, 2, 2]
    assert miner.templates() == {0: "login ok for <*>", 1: "disk full on sda", 2: "<*>"}
    assert {p.template: p.count for p in miner.patterns()} == {"login ok for <*>": 2, "disk full on sda": 1, "<*>": 2}


@pytest.mark.parametrize(
    "options", [{"similarity": 1.5}, {"similarity": -0.1}, {"max_templates": 0}, {"max_tokens": 0}]
)
def test_bad_options_are_refused(options: dict[str, float]) -> None:
    """Out-of-range options raise ValueError naming the option."""
    [name] = options
    with pytest.raises(ValueError, match=name):
        TemplateMiner(**options)  # type: ignore[arg-type]


def test_bad_weight_is_refused() -> None:
    """A weight below 1 raises ValueError and leaves the miner unchanged."""
    miner = TemplateMiner()
    with pytest.raises(ValueError, match="weight"):
        miner.add("hello", "info", 0)
    assert miner.patterns() == []
