"""The command line, run as a real child process (the installed console script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = Path(sys.executable).with_name("llmbudget")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def cli(tmp_path: Path, *args: str, policy: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LLMBUDGET_LEDGER": f"sqlite:///{tmp_path}/ledger.db",
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "COLUMNS": "160",
    }
    env.pop("LLMBUDGET_POLICY", None)
    pre = ["--policy", str(policy)] if policy else []
    return subprocess.run(
        [str(EXE), *pre, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(
        "budgets:\n"
        "  - {name: run, per: [run], limit: 1000,\n"
        "     levels: [{at: 50%, action: warn}, {at: 100%, action: approve}]}\n"
        "  - {name: gpt-4o, match: {model: gpt-4o}, window: day, limit: 600}\n"
    )
    return p


def test_init_writes_a_valid_starter_policy(tmp_path: Path) -> None:
    r = cli(tmp_path, "init")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "llmbudget.yaml").read_text()
    assert "limit: 100_000" in text and "mode: block" in text
    again = cli(tmp_path, "init")
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    warn = cli(tmp_path, "init", "--force", "--mode", "warn", "--timezone", "Europe/Paris")
    assert warn.returncode == 0
    text = (tmp_path / "llmbudget.yaml").read_text()
    assert "\nmode: warn " in text and "\ntimezone: Europe/Paris " in text
    # ./llmbudget.yaml is found without --policy
    assert cli(tmp_path, "status").returncode == 0
    bad = cli(tmp_path, "init", "x.yaml", "--mode", "loud")
    assert bad.returncode == 2 and "block or warn" in bad.stderr


def test_record_status_json_and_check_exit_codes(tmp_path: Path, policy: Path) -> None:
    r = cli(
        tmp_path,
        "record",
        "-m",
        "gpt-4o",
        "-l",
        "run=a",
        "--prompt-tokens",
        "400",
        "--completion-tokens",
        "150",
        policy=policy,
    )
    assert r.returncode == 0, r.stderr
    assert "warn: run[run=a]" in r.stderr  # the warn level is logged once
    st = json.loads(cli(tmp_path, "status", "--json", policy=policy).stdout)
    by = {c["budget"]: c for c in st["counters"]}
    assert by["run"]["used"] == 550 and by["run"]["level"] == "warn"
    assert by["gpt-4o"]["resets_at"].endswith("+00:00")
    table = cli(tmp_path, "status", policy=policy)
    assert "run [run=a]" in table.stdout and "550 / 1.0K" in table.stdout
    ok = cli(
        tmp_path,
        "check",
        "-m",
        "gpt-4o",
        "-l",
        "run=a",
        "--prompt-tokens",
        "10",
        "--max-completion-tokens",
        "10",
        policy=policy,
    )
    assert ok.returncode == 0 and "allowed" in ok.stdout
    blocked = cli(
        tmp_path,
        "check",
        "-m",
        "gpt-4o",
        "-l",
        "run=b",
        "--prompt-tokens",
        "100",
        "--max-completion-tokens",
        "0",
        policy=policy,
    )
    assert blocked.returncode == 3 and "refused by gpt-4o" in blocked.stdout
    approval = cli(
        tmp_path,
        "check",
        "-l",
        "run=a",
        "--prompt-tokens",
        "500",
        "--max-completion-tokens",
        "0",
        policy=policy,
    )
    assert approval.returncode == 4
    js = json.loads(
        cli(
            tmp_path,
            "check",
            "-l",
            "run=a",
            "--prompt-tokens",
            "500",
            "--json",
            "--max-completion-tokens",
            "0",
            policy=policy,
        ).stdout
    )
    assert js["allowed"] is False and js["budgets"][0]["refused"] is True


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path: Path, policy: Path) -> None:
    for args, needle in [
        (("record", "--prompt-tokens", "-5", "--completion-tokens", "1"), "must not be negative"),
        (("record", "--prompt-tokens", "x", "--completion-tokens", "1"), "prompt-tokens"),
        (
            ("record", "-l", "agent", "--prompt-tokens", "1", "--completion-tokens", "1"),
            "expected key=value",
        ),
        (
            ("record", "-l", "Agent=x", "--prompt-tokens", "1", "--completion-tokens", "1"),
            "label name",
        ),
        (("approve", "nope"), "no approval request 'nope'"),
        (("replay", "missing.jsonl"), "not found"),
    ]:
        r = cli(tmp_path, *args, policy=policy)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    missing = cli(tmp_path, "status", policy=tmp_path / "nope.yaml")
    assert missing.returncode == 2 and "llmbudget init" in missing.stderr
    none = cli(tmp_path, "status")
    assert none.returncode == 2 and "no policy file found" in none.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("budgets:\n  - name: x\n    limit: lots\n")
    r = cli(tmp_path, "status", policy=broken)
    assert r.returncode == 2 and "broken.yaml:3: budgets[0].limit" in r.stderr


def test_approval_round_trip(tmp_path: Path, policy: Path) -> None:
    cli(
        tmp_path,
        "record",
        "-l",
        "run=a",
        "--prompt-tokens",
        "990",
        "--completion-tokens",
        "0",
        policy=policy,
    )
    # a governed call from Python asks for approval; the CLI approves it
    env_code = (
        "import sys\n"
        "from llmbudget import Governor, ApprovalRequired\n"
        f"g = Governor({str(policy)!r}, 'sqlite:///{tmp_path}/ledger.db')\n"
        "try:\n"
        "    g.reserve(run='a', prompt_tokens=100, max_completion_tokens=0)\n"
        "except ApprovalRequired as e:\n"
        "    print(e.request_id)\n"
    )
    rid = subprocess.run(
        [sys.executable, "-c", env_code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert rid
    listing = cli(tmp_path, "approvals", "--json", policy=policy)
    assert [a["id"] for a in json.loads(listing.stdout)["approvals"]] == [rid]
    assert rid in cli(tmp_path, "approvals", policy=policy).stdout
    ok = cli(tmp_path, "approve", rid, "--tokens", "500", "--note", "ship it", policy=policy)
    assert ok.returncode == 0 and "+500" in ok.stdout
    again = cli(tmp_path, "approve", rid, policy=policy)
    assert again.returncode == 2 and "already approved" in again.stderr
    st = json.loads(cli(tmp_path, "status", "--json", policy=policy).stdout)
    assert st["counters"][0]["limit"] == 1500
    done = json.loads(cli(tmp_path, "approvals", "--all", "--json", policy=policy).stdout)
    assert done["approvals"][0]["state"] == "approved"
    assert done["approvals"][0]["note"] == "ship it"


def test_deny(tmp_path: Path, policy: Path) -> None:
    code = (
        "from llmbudget import Governor, ApprovalRequired\n"
        f"g = Governor({str(policy)!r}, 'sqlite:///{tmp_path}/ledger.db')\n"
        "try:\n"
        "    g.reserve(run='z', prompt_tokens=2000, max_completion_tokens=0)\n"
        "except ApprovalRequired as e:\n"
        "    print(e.request_id)\n"
    )
    rid = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    r = cli(tmp_path, "deny", rid, "--note", "too big", policy=policy)
    assert r.returncode == 0 and "denied" in r.stdout
    assert cli(tmp_path, "approvals", policy=policy).stdout.startswith("No pending")


def test_replay_the_example_log_against_the_starter_policy(tmp_path: Path) -> None:
    assert cli(tmp_path, "init").returncode == 0
    r = cli(tmp_path, "replay", str(EXAMPLES / "usage-log.jsonl"), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["records"] == 100 and rep["allowed"] == 100
    assert rep["budgets"]["monthly"]["tokens"] == 227_000  # the seed's total
    assert rep["budgets"]["run"]["flag"] == 1  # governance-v3 passed 50k in one run
    human = cli(tmp_path, "replay", str(EXAMPLES / "usage-log.jsonl"))
    assert (
        "Replayed 100 calls" in human.stdout and "What the policy would have done" in human.stdout
    )
    # the ledger was not touched
    assert json.loads(cli(tmp_path, "status", "--json").stdout)["counters"] == []


def test_main_module_help(tmp_path: Path) -> None:
    r = cli(tmp_path, "--help")
    assert r.returncode == 0
    for cmd in ("init", "status", "record", "check", "approvals", "approve", "deny", "replay"):
        assert cmd in r.stdout


def test_calibration_reads_estimates_and_actuals_from_the_ledger(
    tmp_path: Path, policy: Path
) -> None:
    from llmbudget import Governor

    gov = Governor(policy, f"sqlite:///{tmp_path}/ledger.db")
    for i in range(30):
        r = gov.reserve(
            model="gpt-4o-mini",
            operation="chat",
            run=f"r{i}",
            prompt_tokens=50,
            max_completion_tokens=100,
        )
        r.commit(prompt_tokens=50, completion_tokens=40 + i)
    gov.close()
    r = cli(tmp_path, "calibration", "--json", policy=policy)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["model"], x["operation"], x["samples"]) for x in rows] == [
        ("gpt-4o-mini", "chat", 30)
    ]
    assert rows[0]["under_share"] == 0.0


def test_status_shows_pool_transfers_and_closed_gates(tmp_path: Path) -> None:
    from llmbudget import Governor

    p = tmp_path / "team.yaml"
    p.write_text(
        "budgets:\n"
        "  - {name: researcher, match: {agent: researcher}, limit: 400, pool: team,"
        " priority: 3, confidence_threshold: 0.9}\n"
        "  - {name: critic, match: {agent: critic}, limit: 200, pool: team, priority: 1}\n"
    )
    gov = Governor(p, f"sqlite:///{tmp_path}/ledger.db")
    gov.reserve(agent="researcher", prompt_tokens=450, max_completion_tokens=0).commit(
        confidence=0.95
    )
    gov.close()
    st = {
        c["budget"]: c
        for c in json.loads(cli(tmp_path, "status", "--json", policy=p).stdout)["counters"]
    }
    assert (st["researcher"]["borrowed"], st["critic"]["lent"]) == (50, 50)
    assert (st["researcher"]["limit"], st["researcher"]["remaining"]) == (450, 0)
    assert (st["critic"]["limit"], st["critic"]["remaining"]) == (150, 150)
    assert st["researcher"]["closed"] is True
    table = cli(tmp_path, "status", policy=p).stdout
    assert "borrowed 50" in table
    assert "lent 50" in table
    assert "closed (confident)" in table


def test_cli_runs_share_one_run_label_and_unknown_budget_is_named(
    tmp_path: Path, policy: Path
) -> None:
    for _ in range(2):
        assert (
            cli(
                tmp_path,
                "record",
                "--prompt-tokens",
                "100",
                "--completion-tokens",
                "0",
                policy=policy,
            ).returncode
            == 0
        )
    st = json.loads(cli(tmp_path, "status", "--json", policy=policy).stdout)["counters"]
    assert [(c["partition"], c["used"]) for c in st if c["budget"] == "run"] == [
        ({"run": "cli"}, 200)
    ]
    r = cli(tmp_path, "status", "--budget", "nosuch", policy=policy)
    assert r.returncode == 2
    assert "no budget 'nosuch'" in r.stderr


def test_status_watch_refreshes_until_interrupted(tmp_path: Path, policy: Path) -> None:
    import signal
    import time

    cli(tmp_path, "record", "--prompt-tokens", "10", "--completion-tokens", "0", policy=policy)
    env = {**os.environ, "LLMBUDGET_LEDGER": f"sqlite:///{tmp_path}/ledger.db", "COLUMNS": "160"}
    with subprocess.Popen(
        [str(EXE), "--policy", str(policy), "status", "--watch", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    ) as proc:
        time.sleep(2.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Budgets" in out
    assert "Traceback" not in err
