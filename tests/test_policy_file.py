"""Policy files: the starter policy reproduces the policy seed, malformed files get errors that
name the file, the line, the key path and what was expected, and the policy file is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbudget import Governor
from llmbudget._errors import ConfigError, PolicyError
from llmbudget.core.policy import Action, Budget, Mode, Policy, Unit
from llmbudget.core.windows import Window
from llmbudget.policy import (
    ENV_POLICY,
    STARTER_POLICY,
    find_policy,
    load_policy,
    parse_policy,
    policy_from_mapping,
)

# -- the starter policy reproduces the policy seed --------------------------------------------


@pytest.fixture(scope="module")
def starter() -> Policy:
    return parse_policy(STARTER_POLICY, "llmbudget.yaml")


def levels(b: Budget) -> list[tuple[int, Action]]:
    return [(lv.threshold(b.limit), lv.action) for lv in b.levels]


def test_starter_settings(starter: Policy):
    assert starter.mode is Mode.BLOCK  # the orchestrator seed's block mode (warn: observe)
    assert starter.timezone == "UTC"
    assert starter.source == "llmbudget.yaml"
    assert all(b.unit is Unit.TOKENS for b in starter.budgets)


@pytest.mark.parametrize(
    ("name", "window", "per", "warn", "flag", "approve"),
    [
        # seed: <10k continue; 10k-50k warn; 50k-100k flag; >100k stop, require approval
        ("run", Window.RUN, ("run",), 10_000, 50_000, 100_000),
        ("daily", Window.DAY, (), 50_000, 200_000, 500_000),
        ("monthly", Window.MONTH, (), 1_500_000, 6_000_000, 15_000_000),
    ],
)
def test_starter_four_levels(
    starter: Policy,
    name: str,
    window: Window,
    per: tuple[str, ...],
    warn: int,
    flag: int,
    approve: int,
):
    b = starter.budget(name)
    assert (b.window, b.per, b.limit) == (window, per, approve)
    assert levels(b) == [(warn, Action.WARN), (flag, Action.FLAG), (approve, Action.APPROVE)]
    assert b.applies_to({"model": "anything", "run": "r1"})  # every call
    # level 1 (continue) is "below the first threshold": nothing fires at exactly 10k, 50k...
    from llmbudget.core.decide import level_of

    assert level_of(b, warn, 0) == (0, None)
    assert level_of(b, warn + 1, 0)[1].action is Action.WARN  # type: ignore[union-attr]
    assert level_of(b, approve + 1, 0)[1].action is Action.APPROVE  # type: ignore[union-attr]
    assert b.cap == approve


SEED_MODELS = {
    # seed per-model budgets: per run, per day, per month
    "llama-3.3-70b-versatile": (50_000, 200_000, 6_000_000),
    "llama-3.1-8b-instant": (20_000, 100_000, 3_000_000),
    "groq-other": (30_000, 150_000, 4_500_000),
    "gpt-4o-mini": (30_000, 150_000, 4_500_000),
    "gpt-4o": (20_000, 100_000, 3_000_000),
    "gpt-3.5-turbo": (40_000, 200_000, 6_000_000),
}


@pytest.mark.parametrize("model", list(SEED_MODELS))
def test_starter_per_model_budgets(starter: Policy, model: str):
    for window, limit in zip(
        (Window.RUN, Window.DAY, Window.MONTH), SEED_MODELS[model], strict=True
    ):
        b = starter.budget(f"{model}/{window.value}")
        assert (b.window, b.limit) == (window, limit)
        assert "model" in b.per
        assert ("run" in b.per) == (window is Window.RUN)
        # the seed's "alert on budget threshold (80%)" and "stop on budget exceeded"
        assert levels(b) == [(limit * 8 // 10, Action.ALERT), (limit, Action.BLOCK)]


def names(p: Policy, **labels: str) -> set[str]:
    return {b.name for b in p.matching(labels)}


def test_gpt_4o_is_not_gpt_4o_mini(starter: Policy):
    got = names(starter, model="gpt-4o", provider="openai", run="r1")
    assert got == {"run", "daily", "monthly", "gpt-4o/run", "gpt-4o/day", "gpt-4o/month"}
    mini = names(starter, model="gpt-4o-mini", provider="openai", run="r1")
    assert {"gpt-4o-mini/run", "gpt-4o-mini/day", "gpt-4o-mini/month"} <= mini
    assert not any(n.startswith("gpt-4o/") for n in mini)
    dated = names(starter, model="gpt-4o-2024-08-06")
    assert "gpt-4o/day" in dated
    assert "gpt-4o-mini/day" not in dated


def test_other_groq_models_match_groq_other(starter: Policy):
    got = names(starter, provider="groq", model="mixtral-8x7b", run="r1")
    assert got == {
        "run", "daily", "monthly", "groq-other/run", "groq-other/day", "groq-other/month",
    }  # fmt: skip
    llama = names(starter, provider="groq", model="llama-3.1-8b-instant")
    assert "llama-3.1-8b-instant/day" in llama
    assert not any(n.startswith("groq-other") for n in llama)


def test_starter_counts_per_model_per_run(starter: Policy):
    b = starter.budget("groq-other/run")
    assert b.partition({"run": "r1", "model": "mixtral-8x7b"}) == ("r1", "mixtral-8x7b")


def test_starter_runs_through_a_governor(starter: Policy):
    with Governor(starter, store="memory://", labels={"run": "r1"}, log_events=False) as gov:
        d = gov.record(prompt_tokens=15_000, completion_tokens=0, model="gpt-4o")
        by_name = {c.budget.name: c.action for c in d.checks}
        assert by_name["run"] is Action.WARN  # past 10k per run
        assert by_name["gpt-4o/run"] is Action.CONTINUE  # 15k of 20k: below the 80 % alert


# -- malformed files --------------------------------------------------------------------------


def write(tmp_path: Path, text: str | bytes, name: str = "policy.yaml") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


BUDGET = "budgets:\n  - name: a\n    limit: 1000\n"


@pytest.mark.parametrize(
    ("text", "line", "path", "expected"),
    [
        ("mode: strict\n", 1, "mode", "'warn' or 'block'"),
        ("version: 2\n", 1, "version", "Input should be 1"),
        ("lease_seconds: soon\n", 1, "lease_seconds", "valid number"),
        ("colour: red\n", 1, "colour", "Extra inputs are not permitted"),
        ("budgets: {a: 1}\n", 1, "budgets", "valid list"),
        (BUDGET + "    colour: red\n", 4, "budgets[0].colour", "Extra inputs"),
        (BUDGET + "    window: fortnight\n", 4, "budgets[0].window", "'day', 'week' or 'month'"),
        (BUDGET + "    unit: words\n", 4, "budgets[0].unit", "'prompt_tokens'"),
        (BUDGET + "    mode: strict\n", 4, "budgets[0].mode", "'warn' or 'block'"),
        (BUDGET + "    match: [model]\n", 4, "budgets[0].match", "valid dictionary"),
        (
            BUDGET + "    levels:\n      - {at: 10, action: shout}\n",
            5,
            "budgets[0].levels[0].action",
            "'continue', 'warn', 'alert', 'flag', 'approve' or 'block'",
        ),
        (
            BUDGET + "    levels:\n      - {at: 10, action: warn}\n      - {at: 5, action: flag}\n",
            6,
            "budgets[0].levels[1].at",
            "must be above the previous level's",
        ),
        (
            BUDGET + "    levels:\n      - {at: -5, action: warn}\n",
            5,
            "budgets[0].levels[0].at",
            "must not be negative",
        ),
        (
            BUDGET + "    levels:\n      - {action: warn}\n",
            5,
            "budgets[0].levels[0].at",
            "Field required",
        ),
        ("budgets:\n  - name: a\n    limit: -10\n", 3, "budgets[0].limit", "between 1 and"),
        ("budgets:\n  - name: a\n    limit: .nan\n", 3, "budgets[0].limit", "finite number"),
        ("budgets:\n  - name: a\n    limit: 10.5\n", 3, "budgets[0].limit", "whole number"),
        ("budgets:\n  - name: a\n    limit: lots\n", 3, "budgets[0].limit", "'10k' or '1.5M'"),
        ("budgets:\n  - name: a\n    limit: true\n", 3, "budgets[0].limit", "expected a number"),
        ("budgets:\n  - name: a\n", 2, "budgets[0].limit", "Field required"),
        ("budgets:\n  - name: a b\n    limit: 10\n", 2, "budgets[0].name", "letters, digits"),
        (BUDGET + "    per: [Run]\n", 4, "budgets[0].per", "not a label name"),
        (
            BUDGET + "  - name: b\n    limit: 5\n  - name: a\n    limit: 7\n",
            6,
            "budgets[2].name",
            "duplicate budget name 'a'",
        ),
    ],
)
def test_malformed_policy_names_file_line_and_key(
    tmp_path: Path, text: str, line: int, path: str, expected: str
):
    f = write(tmp_path, text)
    with pytest.raises(PolicyError) as exc:
        load_policy(f)
    e = exc.value
    assert (e.source, e.line, e.path) == (str(f), line, path)
    assert expected in e.reason
    assert str(e).startswith(f"{f}:{line}: {path}: ")


@pytest.mark.parametrize(
    ("limit", "at", "expect_limit", "expect_threshold"),
    [
        ("10k", "80%", 10_000, 8_000),
        ("1.5M", "10%", 1_500_000, 150_000),
        ("10_000", 2500, 10_000, 2_500),
        ("'10,000'", "'5k'", 10_000, 5_000),
        ("2g", "50%", 2 * 10**9, 10**9),
    ],
)
def test_amounts_with_suffixes_and_percents(
    limit: str, at: str | int, expect_limit: int, expect_threshold: int
):
    p = parse_policy(
        f"budgets:\n  - name: a\n    limit: {limit}\n    levels:\n"
        f"      - {{at: {at}, action: warn}}\n"
    )
    b = p.budget("a")
    assert b.limit == expect_limit
    assert b.levels[0].threshold(b.limit) == expect_threshold


def test_yaml_syntax_error_reports_its_line(tmp_path: Path):
    f = write(tmp_path, "version: 1\nbudgets:\n  - name: a\n    limit: [1000\n  - name: b\n")
    with pytest.raises(PolicyError) as exc:
        load_policy(f)
    assert exc.value.source == str(f)
    assert exc.value.line == 5
    assert "not valid YAML" in str(exc.value)


def test_empty_file(tmp_path: Path):
    f = write(tmp_path, "# only a comment\n")
    with pytest.raises(PolicyError, match="empty; start from `llmbudget init`") as exc:
        load_policy(f)
    assert exc.value.source == str(f)


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str):
    f = write(tmp_path, text)
    with pytest.raises(
        PolicyError, match=f"expected a mapping of settings at the top, got a {kind}"
    ):
        load_policy(f)


def test_missing_file_names_it_and_the_fix(tmp_path: Path):
    f = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml not found; create one with `llmbudget init"):
        load_policy(f)


def test_folder_instead_of_a_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="is a folder, expected a YAML file"):
        load_policy(tmp_path)


def test_non_utf8_bytes(tmp_path: Path):
    f = write(tmp_path, b"version: 1\n# caf\xe9\n")
    with pytest.raises(PolicyError, match=r"not UTF-8 text \(byte 16\)") as exc:
        load_policy(f)
    assert (exc.value.source, exc.value.line) == (str(f), 2)


def test_unknown_timezone_via_governor(tmp_path: Path):
    f = write(tmp_path, "timezone: Mars/Olympus_Mons\n" + BUDGET)
    # caught when the file is read, with its line
    with pytest.raises(ConfigError, match="'Mars/Olympus_Mons' is not an IANA time zone") as exc:
        Governor(f, store="memory://")
    assert f"{f}:1: timezone" in str(exc.value)


def test_x_keys_hold_anchors_and_are_ignored():
    p = parse_policy(
        "x-levels: &lv\n  - {at: '50%', action: warn}\n"
        "budgets:\n  - name: a\n    limit: 100\n    levels: *lv\n"
        "  - name: b\n    limit: 10\n    levels: *lv\n"
    )
    assert [b.levels[0].threshold(b.limit) for b in p.budgets] == [50, 5]


def test_policy_from_mapping_and_defaults():
    p = policy_from_mapping(
        {"budgets": [{"name": "a", "limit": "1k", "per": "agent", "match": {"model": "gpt-*"}}]}
    )
    a = p.budget("a")
    assert (a.limit, a.per, a.window, a.unit) == (1_000, ("agent",), Window.RUN, Unit.TOKENS)
    assert a.applies_to({"model": "gpt-4o"})
    assert (p.mode, p.timezone, p.lease_seconds, p.default_completion_tokens) == (
        Mode.BLOCK,
        "UTC",
        600.0,
        1024,
    )
    assert p.source == "<policy>"
    with pytest.raises(PolicyError, match=r"<policy>: budgets\[0\]\.limit: Field required"):
        policy_from_mapping({"budgets": [{"name": "a"}]})


def test_usd_budget_counts_micro_dollars():
    p = policy_from_mapping(
        {
            "budgets": [
                {
                    "name": "a",
                    "unit": "usd",
                    "limit": "$50",
                    "levels": [{"at": 40, "action": "warn"}],
                }
            ]
        }
    )
    a = p.budget("a")
    assert a.limit == 50_000_000
    assert a.levels[0].threshold(a.limit) == 40_000_000


# -- finding the policy file ------------------------------------------------------------------


def test_find_policy_prefers_explicit_then_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_POLICY, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user policy
    assert find_policy() is None
    local = write(tmp_path, STARTER_POLICY, "llmbudget.yaml")
    assert find_policy() == Path("llmbudget.yaml")
    assert load_policy(find_policy()).budget("run").limit == 100_000  # type: ignore[arg-type]
    env = write(tmp_path, BUDGET, "elsewhere.yaml")
    monkeypatch.setenv(ENV_POLICY, str(env))
    assert find_policy() == env
    assert find_policy(local) == local
    monkeypatch.setenv(ENV_POLICY, str(tmp_path / "missing.yaml"))
    assert find_policy() == tmp_path / "missing.yaml"  # returned, so the error can name it
