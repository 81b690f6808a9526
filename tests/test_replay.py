"""Backtesting: usage logs in JSONL and CSV, errors that name the line, and the outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbudget import ConfigError, InvalidUsage
from llmbudget.policy import policy_from_mapping
from llmbudget.replay import read_usage_log, replay

POLICY = policy_from_mapping(
    {
        "budgets": [
            {
                "name": "run",
                "per": ["run"],
                "limit": 1000,
                "levels": [
                    {"at": 500, "action": "warn"},
                    {"at": 800, "action": "flag"},
                    {"at": 1000, "action": "approve"},
                ],
            },
            {"name": "day", "window": "day", "limit": 1500},
        ]
    }
)


def test_jsonl_and_csv_give_the_same_records(tmp_path: Path) -> None:
    j = tmp_path / "log.jsonl"
    j.write_text(
        '{"time": "2026-02-01T10:00:00Z", "labels": {"run": "a"}, "prompt_tokens": 300, '
        '"completion_tokens": 100}\n'
        "# comments and blank lines are skipped\n\n"
        '{"time": "2026-02-01T10:05:00+01:00", "run": "a", "prompt_tokens": "200", '
        '"completion_tokens": 50}\n'
    )
    c = tmp_path / "log.csv"
    c.write_text(
        "time,run,prompt_tokens,completion_tokens\n"
        "2026-02-01T10:00:00Z,a,300,100\n2026-02-01T10:05:00+01:00,a,200,50\n"
    )
    a, b = read_usage_log(j), read_usage_log(c)
    assert [(r.time, r.labels, r.prompt_tokens, r.completion_tokens) for r in a] == [
        (r.time, r.labels, r.prompt_tokens, r.completion_tokens) for r in b
    ]
    assert a[1].line == 4 and b[1].line == 3


def test_replay_reports_warn_flag_approval_and_does_not_record_refused(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    rows = [("a", 400, 200), ("a", 200, 50), ("a", 300, 0), ("b", 300, 0), ("b", 400, 0)]
    log.write_text(
        "".join(
            f'{{"time": "2026-02-01T10:0{i}:00Z", "run": "{run}", "prompt_tokens": {p}, '
            f'"completion_tokens": {c}}}\n'
            for i, (run, p, c) in enumerate(rows)
        )
    )
    rep = replay(POLICY, read_usage_log(log))
    assert (rep.records, rep.allowed, rep.approvals, rep.blocked) == (5, 3, 1, 1)
    assert rep.budgets["run"].events["warn"] == 1
    assert rep.budgets["run"].events["flag"] == 1
    assert rep.budgets["run"].events["approval"] == 1
    assert rep.budgets["day"].events["blocked"] == 1  # 1150 + 400 > 1500
    assert rep.budgets["day"].tokens == 1150
    assert [i["line"] for i in rep.incidents] == [1, 2, 3, 5]
    js = rep.to_json()
    assert js["budgets"]["run"]["peak_percent"] == 85.0


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            '{"time": "2026-02-01T10:00:00Z", "prompt_tokens": 1}\n',
            ":1: missing 'completion_tokens'",
        ),
        ('{"time": "yesterday", "prompt_tokens": 1, "completion_tokens": 1}\n', "not ISO 8601"),
        (
            '{"time": "2026-02-01T10:00:00Z", "prompt_tokens": -1, "completion_tokens": 1}\n',
            "must not be negative",
        ),
        (
            '{"time": "2026-02-01T10:00:00Z", "prompt_tokens": 1.5, "completion_tokens": 1}\n',
            "whole number",
        ),
        (
            '{"time": "2026-02-01T10:00:00Z", "prompt_tokens": "many", "completion_tokens": 1}\n',
            "whole number",
        ),
        ("\n\nnot json\n", ":3: not valid JSON"),
        ("[1, 2]\n", "expected a JSON object"),
        (
            '{"time": "2026-02-01T10:00:00Z", "prompt_tokens": 1, "completion_tokens": 1, '
            '"labels": []}\n',
            "'labels' must be an object",
        ),
    ],
)
def test_malformed_logs_name_the_line(tmp_path: Path, content: str, needle: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(InvalidUsage, match=needle.replace("(", r"\(")) as ei:
        read_usage_log(p)
    assert "bad.jsonl:" in str(ei.value)


def test_malformed_csv(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("time,prompt_tokens\n2026-02-01T10:00:00Z,1\n")
    with pytest.raises(InvalidUsage, match="bad.csv:1: the CSV header lacks completion_tokens"):
        read_usage_log(p)
    p.write_text("time,prompt_tokens,completion_tokens\n2026-02-01T10:00:00Z,1,2,3\n")
    with pytest.raises(InvalidUsage, match="bad.csv:2: more fields"):
        read_usage_log(p)
    p.write_bytes(b"time,prompt_tokens,completion_tokens\n\xff\xfe\n")
    with pytest.raises(InvalidUsage, match="not UTF-8"):
        read_usage_log(p)
    with pytest.raises(ConfigError, match="not found"):
        read_usage_log(tmp_path / "nope.csv")


def test_example_log_matches_the_strategy_seed_table() -> None:
    log = Path(__file__).resolve().parents[1] / "examples" / "usage-log.jsonl"
    recs = read_usage_log(log)
    by_project: dict[str, list[int]] = {}
    for r in recs:
        t = by_project.setdefault(r.labels["project"], [0, 0])
        t[0] += r.prompt_tokens
        t[1] += r.completion_tokens
    assert by_project == {
        "governance-v3": [45_000, 12_000],
        "M-001-infrastructure": [18_000, 15_000],
        "M-002-coocook-api": [12_000, 8_000],
        "M-002-payment-review": [14_000, 10_000],
        "M-004-jarvis-dashboard": [22_000, 18_000],
        "M-005-sonolbot-v2": [15_000, 12_000],
        "M-006-experience-mvp": [16_000, 10_000],
    }


def test_cached_tokens_are_replayed_and_checked(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(
        "time,model,prompt_tokens,completion_tokens,cached_tokens\n"
        "2026-02-01T10:00:00Z,gpt-4o,300,10,200\n"
    )
    (rec,) = read_usage_log(log)
    assert rec.cached_tokens == 200
    assert replay(POLICY, [rec]).allowed == 1
    log.write_text(
        "time,prompt_tokens,completion_tokens,cached_tokens\n2026-02-01T10:00:00Z,10,1,50\n"
    )
    with pytest.raises(InvalidUsage, match=r"log.csv:2: cached_tokens \(50\) cannot exceed"):
        read_usage_log(log)
