"""Bad plans: each error names the file, the line, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbudget import ConfigError
from llmbudget.plans import PlanError, load_plan, parse_plan

TEAM = """
    phases:
      strategy: [architect]
"""


def bad(text: str) -> PlanError:
    with pytest.raises(PlanError) as info:
        parse_plan(text, "plan.yaml")
    return info.value


def test_extends_cycle_is_named() -> None:
    e = bad(
        """
projects:
  a:
    complexity: medium
    extends: b
  b:
    extends: c
  c:
    extends: a
"""
    )
    assert "cycle: a → b → c → a" in str(e)
    assert e.line == 9
    assert e.path == "projects.c.extends"


def test_self_extension_is_a_cycle() -> None:
    e = bad("projects:\n  a:\n    complexity: medium\n    extends: a\n")
    assert "cycle: a → a" in str(e)


def test_extends_unknown_project() -> None:
    e = bad("projects:\n  a:\n    complexity: medium\n    extends: nope\n")
    assert "extends unknown project 'nope'; the projects are a" in str(e)
    assert e.line == 4


def test_unknown_phase_lists_the_known_ones() -> None:
    e = bad("projects:\n  a:\n    complexity: medium\n    phases:\n      testing: [architect]\n")
    assert e.path == "projects.a.phases.testing"
    assert e.line == 5
    assert "unknown phase 'testing'; the phases are input, strategy, development, qa" in str(e)


def test_unknown_role() -> None:
    e = bad(
        "projects:\n  a:\n    complexity: medium\n    phases:\n"
        "      strategy: [architect, wizard]\n"
    )
    assert e.path == "projects.a.phases.strategy[1]"
    assert "unknown role 'wizard'; the roles are business_strategist" in str(e)
    assert e.line == 5


def test_unknown_complexity() -> None:
    e = bad("projects:\n  a:\n    complexity: galactic\n")
    assert e.path == "projects.a.complexity"
    assert "unknown complexity 'galactic'; use simple, medium, complex, expert" in str(e)


def test_missing_complexity() -> None:
    e = bad("projects:\n  a:" + TEAM)
    assert "no complexity" in str(e)
    assert e.path == "projects.a"


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        ("phases: {development: 0}", "", "must be greater than 0"),
        ("phases: {development: -3}", "", "must be greater than 0"),
        ("roles: {dev_lead: -5k}", "", "expected a positive number"),
        ("complexity: {expert: .nan}", "", "finite"),
        ("roles: {dev_lead: true}", "", "expected a positive number, got True"),
        ("roles: {dev_lead: [1]}", "", "expected a positive number, got list"),
    ],
)
def test_bad_table_values(section: str, value: str, expected: str) -> None:
    e = bad(f"tables:\n  {section}\nprojects:\n  a:\n    complexity: medium\n")
    assert expected in str(e)
    assert e.path.startswith("tables.")
    assert e.line == 2


def test_zero_multiplier_in_a_project_override() -> None:
    e = bad("projects:\n  a:\n    complexity: medium\n    tables:\n      phases: {qa: 0x}\n")
    assert e.path == "projects.a.tables.phases.qa"
    assert "greater than 0" in str(e)


@pytest.mark.parametrize(
    ("project", "path", "expected"),
    [
        ("complexity: [1]", "projects.a.complexity", "expected a complexity name"),
        ("complexity: 0", "projects.a.complexity", "greater than 0"),
        ("complexity: -1.5", "projects.a.complexity", "greater than 0"),
        ("complexity: medium\n    phases: [architect]", "projects.a.phases", "dictionary"),
        (
            "complexity: medium\n    phases: {strategy: architect}",
            "projects.a.phases.strategy",
            "valid list",
        ),
        (
            "complexity: medium\n    phases: {strategy: [3]}",
            "projects.a.phases.strategy[0]",
            "valid dictionary",
        ),
        (
            "complexity: medium\n    phases: {strategy: [{role: architect, count: '2'}]}",
            "projects.a.phases.strategy[0].count",
            "integer",
        ),
        (
            "complexity: medium\n    phases: {strategy: [{role: architect, count: 0}]}",
            "projects.a.phases.strategy[0].count",
            "greater than or equal to 1",
        ),
        ("complexity: medium\n    template: yes please", "projects.a.template", "boolean"),
        ("complexity: medium\n    colour: red", "projects.a.colour", "Extra inputs"),
    ],
)
def test_wrong_types(project: str, path: str, expected: str) -> None:
    e = bad(f"projects:\n  a:\n    {project}\n")
    assert e.path == path
    assert expected in str(e)
    assert e.line is not None and e.line >= 3


def test_allocation_must_add_up_to_100() -> None:
    e = bad(
        "allocation:\n  phases: {strategy: 20%, development: 50%}\n"
        "projects:\n  a:\n    complexity: medium\n"
    )
    assert "add up to 82.5 %, not 100 %" in str(e)
    assert e.line == 1


def test_allocation_unknown_phase() -> None:
    e = bad("allocation:\n  phases: {build: 87.5}\nprojects:\n  a:\n    complexity: medium\n")
    assert "unknown phase 'build'" in str(e)


def test_allocation_share_out_of_range() -> None:
    e = bad("allocation:\n  orchestrator: 120%\nprojects:\n  a:\n    complexity: medium\n")
    assert "between 0 and 100" in str(e)
    assert e.path == "allocation.orchestrator"


def test_duplicate_keys_are_refused() -> None:
    e = bad("projects:\n  a:\n    complexity: medium\n  a:\n    complexity: simple\n")
    assert "duplicate key 'a' (first on line 2)" in str(e)
    assert e.line == 4


def test_bad_project_name() -> None:
    e = bad("projects:\n  My Project!:\n    complexity: medium\n")
    assert "project name 'My Project!'" in str(e)
    assert "title" in str(e)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "expected a mapping with `projects:`"),
        ("projects: {}\n", "at least 1 item"),
        ("version: 2\nprojects:\n  a: {complexity: medium}\n", "version"),
        ("projects: [\n", "not valid YAML"),
        ("projects:\n  t: {template: true, complexity: medium}\n", "every project is a template"),
        ("project:\n  a: {complexity: medium}\n", "Field required"),
    ],
)
def test_bad_files(text: str, expected: str) -> None:
    assert expected in str(bad(text))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="plan file .* not found"):
        load_plan(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_plan(tmp_path)
    p = tmp_path / "latin1.yaml"
    p.write_bytes(b"projects:\n  a: {title: caf\xe9}\n")
    with pytest.raises(PlanError, match="not UTF-8"):
        load_plan(p)


def test_error_message_shape() -> None:
    e = bad("projects:\n  a:\n    complexity: galactic\n")
    assert str(e).startswith("plan.yaml:3: projects.a.complexity: unknown complexity")
    assert isinstance(e, ConfigError)
