"""The count / models / calibration commands, through a throwaway Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from llmbudget.cli._tokens_cmds import register


@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_count_text_from_stdin(app: typer.Typer, runner: CliRunner) -> None:
    r = runner.invoke(app, ["count", "--model", "gpt-4o", "-"], input="hello world")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "2\tquicktok:o200k_base\texact"


def test_count_json_from_file(app: typer.Typer, runner: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("お誕生日おめでとう", encoding="utf-8")
    r = runner.invoke(app, ["count", "-m", "gpt-4", str(f), "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert obj == {
        "tokens": 9,
        "tokenizer": "quicktok:cl100k_base",
        "exact": True,
        "model": "gpt-4",
    }


def test_count_chat(app: typer.Typer, runner: CliRunner) -> None:
    chat = json.dumps([{"role": "user", "content": "hi"}])
    r = runner.invoke(app, ["count", "-m", "gpt-4o", "--chat", "--json"], input=chat)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tokens"] == 3 + 3 + 1 + 1  # priming, per message, role, text


def test_unknown_model_warns_on_stderr_json_stays_clean(
    app: typer.Typer, runner: CliRunner
) -> None:
    r = runner.invoke(app, ["count", "-m", "cli-mystery-model", "--json"], input="abc")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == {
        "tokens": 5,
        "tokenizer": "fallback:bytes+10%",
        "exact": False,
        "model": "cli-mystery-model",
    }
    assert "warning: model 'cli-mystery-model'" in r.stderr


def test_strict_unknown_model_is_exit_2(app: typer.Typer, runner: CliRunner) -> None:
    r = runner.invoke(app, ["count", "-m", "cli-nope", "--strict"], input="abc")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: no tokenizer is known for model 'cli-nope'")
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    ("stdin", "extra", "fragment"),
    [
        ('[{"role": "user"', ["--chat"], "not valid JSON (line 1"),
        ('[{"role": "user", "content": 3}]', ["--chat"], "messages[0].content"),
        ('{"nope": 1}', ["--chat"], "expected a list of messages"),
        ("abc", ["--max-bytes", "2"], "larger than --max-bytes"),
        ("abc", ["--errors", "ignore"], "--errors must be"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    app: typer.Typer, runner: CliRunner, stdin: str, extra: list[str], fragment: str
) -> None:
    r = runner.invoke(app, ["count", "-m", "gpt-4o", *extra], input=stdin)
    assert r.exit_code == 2, r.output
    assert fragment in r.stderr
    assert r.stderr.count("\n") == 1
    assert r.stdout == ""


def test_invalid_utf8_refused_or_replaced(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    f = tmp_path / "bad.bin"
    f.write_bytes(b"ok \xff\xfe then text")
    r = runner.invoke(app, ["count", "-m", "gpt-4o", str(f)])
    assert r.exit_code == 2
    assert "not valid UTF-8 at byte offset 3" in r.stderr
    r = runner.invoke(app, ["count", "-m", "gpt-4o", str(f), "--errors", "replace", "--json"])
    assert r.exit_code == 0
    assert "2 invalid UTF-8 sequence(s) replaced" in r.stderr
    assert json.loads(r.stdout)["tokens"] > 0


def test_missing_file_and_directory(app: typer.Typer, runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(app, ["count", "-m", "gpt-4o", str(tmp_path / "nope.txt")])
    assert (r.exit_code, r.stderr.strip()) == (2, f"error: no such file: {tmp_path / 'nope.txt'}")
    r = runner.invoke(app, ["count", "-m", "gpt-4o", str(tmp_path)])
    assert r.exit_code == 2
    assert "is a directory" in r.stderr


def test_empty_input_is_zero(app: typer.Typer, runner: CliRunner) -> None:
    r = runner.invoke(app, ["count", "-m", "llama-3.1-8b-instant", "--json"], input="")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["tokens"] == 0


def test_models_lists_prices(app: typer.Typer, runner: CliRunner) -> None:
    r = runner.invoke(app, ["models", "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    names = {m["model"] for m in doc["models"]}
    assert {"gpt-4o", "llama-3.3-70b-versatile", "claude-sonnet-4-5", "open-mistral-nemo"} <= names
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0
    assert "o200k_base" in r.stdout
    assert "estimate" in r.stdout


def test_calibration_from_jsonl(app: typer.Typer, runner: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "samples.jsonl"
    rows = [
        {
            "model": "gpt-4o",
            "operation": "chat",
            "estimated_prompt": 100,
            "actual_prompt": 100,
            "estimated_completion": 50,
            "actual_completion": 40 + i % 20,
            "at": 1.0,
        }
        for i in range(40)
    ]
    f.write_text("\n".join(json.dumps(x) for x in rows) + "\n", encoding="utf-8")
    r = runner.invoke(app, ["calibration", "--samples", str(f), "--json"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["samples"] == 40
    assert row["recommended_margin"] == pytest.approx(0.06)  # worst: 159 / 150 - 1
    r = runner.invoke(app, ["calibration", "--samples", str(f)])
    assert r.exit_code == 0
    assert "gpt-4o" in r.stdout


def test_calibration_bad_samples(
    app: typer.Typer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text('{"model": "m", "operation": "o", "estimated_prompt": -1}\n', encoding="utf-8")
    r = runner.invoke(app, ["calibration", "--samples", str(f)])
    assert r.exit_code == 2
    assert f"{f}:1: field 'estimated_prompt'" in r.stderr
    # without --samples it reads the ledger: an empty one has nothing to calibrate
    monkeypatch.setenv("LLMBUDGET_LEDGER", f"sqlite:///{tmp_path}/empty.db")
    r = runner.invoke(app, ["calibration"])
    assert r.exit_code == 0
    assert "no samples" in r.stdout
