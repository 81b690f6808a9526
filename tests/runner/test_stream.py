"""The stream-json reader: deltas only, nothing counted twice, anomalies reported by line."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from llmbudget import InvalidUsage
from llmbudget.runner import (
    StreamTracker,
    TokenUsage,
    UsageMode,
    base_command,
    parse_command_budget,
    parse_limit,
)


def assistant(mid: str, inp: int, out: int, cc: int = 0, cr: int = 0, **kw: Any) -> str:
    usage = {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_input_tokens": cc,
        "cache_read_input_tokens": cr,
    }
    msg = {"id": mid, "type": "message", "model": "claude-sonnet-4", "usage": usage}
    return json.dumps({"type": "assistant", "message": msg, **kw})


def result(inp: int, out: int, cc: int = 0, cr: int = 0, **kw: Any) -> str:
    usage = {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_input_tokens": cc,
        "cache_read_input_tokens": cr,
    }
    return json.dumps({"type": "result", "subtype": "success", "usage": usage, **kw})


def feed_all(t: StreamTracker, lines: list[str]) -> TokenUsage:
    got = TokenUsage()
    for line in lines:
        for d in t.feed(line):
            assert d.usage.total > 0
            got = got + d.usage
    assert got == t.total
    return got


def test_per_message_usage_is_summed_once_per_message_id() -> None:
    t = StreamTracker()
    lines = [
        json.dumps({"type": "system", "subtype": "init", "session_id": "s1", "model": "m"}),
        assistant("a", 10, 5, 100, 0, session_id="s1"),
        assistant("a", 10, 5, 100, 0, session_id="s1"),  # one line per content block
        assistant("b", 3, 20, 0, 110, session_id="s1"),
        result(13, 25, 100, 110, session_id="s1", total_cost_usd=0.0123),
    ]
    got = feed_all(t, lines)
    assert got == TokenUsage(13, 25, 100, 110)
    assert t.counts["duplicate"] == 1 and t.anomalies[0].line_no == 3
    assert t.messages == 2 and t.results == 1 and t.sessions == 1
    assert t.cost_usd == pytest.approx(0.0123)
    assert t.model == "claude-sonnet-4"


def test_a_result_reporting_more_than_the_messages_adds_exactly_the_difference() -> None:
    t = StreamTracker()
    got = feed_all(t, [assistant("a", 10, 5), result(12, 9)])
    assert got == TokenUsage(12, 9)


def test_message_mode_never_adds_a_results_totals() -> None:
    t = StreamTracker(mode=UsageMode.MESSAGE)
    assert feed_all(t, [assistant("a", 10, 5), result(12, 9)]) == TokenUsage(10, 5)


def test_growing_copies_of_a_message_add_the_growth_and_stale_ones_nothing() -> None:
    t = StreamTracker()
    got = feed_all(
        t,
        [
            assistant("a", 10, 1),
            assistant("a", 10, 7),
            assistant("a", 10, 3),  # stale copy arriving late
            assistant("a", 10, 7),
        ],
    )
    assert got == TokenUsage(10, 7)
    assert t.counts["out_of_order"] == 1 and t.counts["duplicate"] == 1
    assert [a.line_no for a in t.anomalies] == [3, 4]


def test_partial_stream_events_then_the_final_message_count_once() -> None:
    t = StreamTracker()
    start = {
        "type": "message_start",
        "message": {"id": "m1", "model": "claude-x", "usage": {"input_tokens": 50}},
    }
    lines = [
        json.dumps({"type": "stream_event", "event": start}),
        json.dumps(
            {
                "type": "stream_event",
                "event": {"type": "message_delta", "usage": {"output_tokens": 4}},
            }
        ),
        json.dumps(
            {
                "type": "stream_event",
                "event": {"type": "message_delta", "usage": {"output_tokens": 9}},
            }
        ),
        assistant("m1", 50, 9),
    ]
    assert feed_all(t, lines) == TokenUsage(50, 9)
    assert t.model == "claude-sonnet-4"


def test_cumulative_totals_record_growth_and_a_drop_is_a_restart() -> None:
    t = StreamTracker(mode=UsageMode.CUMULATIVE)
    lines = [
        assistant("a", 10, 5),
        assistant("b", 20, 10),  # running total
        assistant("b", 20, 10),  # repeated
        assistant("c", 4, 1),  # went down: the agent restarted
        assistant("d", 6, 2),
    ]
    got = feed_all(t, lines)
    assert got == TokenUsage(20 + 6, 10 + 2)
    assert t.counts["restart"] == 1 and t.counts["duplicate"] == 1
    assert [(a.kind, a.line_no) for a in t.anomalies] == [("duplicate", 3), ("restart", 4)]
    assert t.sessions == 2


def test_a_smaller_total_for_the_same_session_is_out_of_order_not_a_restart() -> None:
    t = StreamTracker()
    usage = lambda i, o: json.dumps(  # noqa: E731
        {"type": "usage", "session_id": "s", "usage": {"input_tokens": i, "output_tokens": o}}
    )
    got = feed_all(t, [usage(5, 5), usage(10, 10), usage(7, 7), usage(12, 12)])
    assert got == TokenUsage(12, 12)
    assert t.counts["out_of_order"] == 1 and t.counts["restart"] == 0


def test_a_new_session_id_is_a_restart_and_late_lines_of_the_old_one_stay_there() -> None:
    t = StreamTracker()
    lines = [
        assistant("a", 10, 5, session_id="s1"),
        result(10, 5, session_id="s1", total_cost_usd=0.5),
        json.dumps({"type": "system", "subtype": "init", "session_id": "s2"}),
        assistant("b", 3, 3, session_id="s2"),
        assistant("a", 10, 5, session_id="s1"),  # late duplicate of the first session
        result(3, 3, session_id="s2", total_cost_usd=0.25),
    ]
    assert feed_all(t, lines) == TokenUsage(13, 8)
    assert t.counts["restart"] == 1 and t.counts["duplicate"] == 1
    assert t.sessions == 2 and t.cost_usd == pytest.approx(0.75)


def test_lines_without_a_session_id_then_with_one_are_the_same_session() -> None:
    t = StreamTracker()
    assert feed_all(t, [assistant("a", 10, 5), result(10, 5, session_id="s")]) == TokenUsage(10, 5)
    assert t.counts["restart"] == 0


def test_garbage_is_skipped_and_reported_with_line_numbers() -> None:
    t = StreamTracker()
    lines = [
        "hello, not json",
        assistant("a", 1, 1),
        "[1, 2, 3]",
        "",
        '{"type": "assistant", "message": {"id": "x", "usage": {"input_tokens": -4}}}',
        '{"type": "assistant", "message": {"id": "y", "usage": {"output_tokens": "many"}}}',
        '{"type": "assistant", "message": {"id": "z", "usage": [1]}}',
        '{"truncated": ',
        b"\xff\xfe not utf-8".decode("latin-1"),
        '{"type": "assistant", "message": {"id": "w", "usage": {"output_tokens": 2.0}}}',
    ]
    assert feed_all(t, lines) == TokenUsage(1, 3)
    assert t.counts["garbage"] == 4 and t.counts["bad_usage"] == 3
    assert [a.line_no for a in t.anomalies if a.kind == "garbage"] == [1, 3, 8, 9]
    assert [a.line_no for a in t.anomalies if a.kind == "bad_usage"] == [5, 6, 7]
    s = t.summary()
    assert s["anomalies"] == {"garbage": 4, "bad_usage": 3}
    assert s["anomaly_lines"]["bad_usage"] == [5, 6, 7]


def test_openai_style_usage_names_are_understood() -> None:
    t = StreamTracker()
    line = json.dumps({"usage": {"prompt_tokens": 7, "completion_tokens": 3}})
    assert feed_all(t, [line]) == TokenUsage(7, 3)


def test_shuffled_duplicated_per_message_transcript_sums_exactly() -> None:
    rng = random.Random(7)
    truth = TokenUsage()
    lines = []
    for i in range(200):
        u = TokenUsage(
            rng.randrange(1, 500),
            rng.randrange(1, 900),
            rng.randrange(0, 50),
            rng.randrange(0, 2000),
        )
        truth = truth + u
        line = assistant(f"m{i}", u.input, u.output, u.cache_creation, u.cache_read)
        lines += [line] * rng.randrange(1, 4)
    rng.shuffle(lines)
    lines.insert(50, "garbage")
    t = StreamTracker()
    assert feed_all(t, lines) == truth
    assert t.counts["garbage"] == 1


def test_base_command_is_the_first_word() -> None:
    assert base_command("/test --real-services --category unit") == "/test"
    assert base_command("  /analyze  ") == "/analyze"
    assert base_command("") is None and base_command(None) is None and base_command("  ") is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/test=1000", ("/test", 1000)),
        (" /deploy = 5k ", ("/deploy", 5000)),
        ("/a=1_500", ("/a", 1500)),
    ],
)
def test_command_budgets_parse(spec: str, expected: tuple[str, int]) -> None:
    assert parse_command_budget(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/test", "expected COMMAND=TOKENS"),
        ("/test=abc", "not a number of tokens"),
        ("/test=-5", "cannot be negative"),
        ("/test=0", "between 1 and"),
        ("=100", "empty"),
        ("/test --x=100", "base command only"),
        ("/test=1.5", "whole number"),
    ],
)
def test_bad_command_budgets_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(InvalidUsage, match=message):
        parse_command_budget(spec)


def test_limits_accept_suffixes() -> None:
    assert parse_limit("1.5M") == 1_500_000 and parse_limit("10,000") == 10_000
    assert parse_limit(42) == 42
