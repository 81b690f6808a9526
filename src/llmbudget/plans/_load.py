"""Reading plan files: YAML in, a validated :class:`~llmbudget.plans.Plan` out.

Every error is a :class:`~llmbudget.plans.PlanError` naming the file, the line, the key path
(``projects.M-006.phases.development[0]``) and what was expected. YAML (PyYAML) and Pydantic
are imported when a plan is read, not when :mod:`llmbudget.plans` is.

The file's shape (``docs/plans.md`` has the full reference)::

    version: 1
    tables:            # optional: replace or add entries of the seed's tables
      roles: {dev_lead: 18k}
      phases: {development: 2.5x}
      complexity: {expert: 2.2}
    allocation:        # optional: the seed's shares are the default
      orchestrator: 5%
      emergency: 7.5%
      phases: {strategy: 15%, development: 50%, qa: 15%, deployment: 7.5%}
    projects:
      M-006:
        title: MVP
        complexity: medium          # simple | medium | complex | expert | a number
        phases:
          strategy: [business_strategist, architect]
          development: [{role: dev_lead, count: 2, name: backend}]
      M-007:
        extends: M-006              # inherit complexity, tables and phases; override some
        complexity: complex
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ._errors import PlanError
from ._model import Agent, Plan, Project
from ._tables import DEFAULT_ALLOCATION, DEFAULT_TABLES, Allocation, Tables, normalise

if TYPE_CHECKING:
    import yaml

__all__ = ["load_plan", "parse_plan", "plan_from_mapping"]

Path_ = tuple[str | int, ...]
PROJECT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def _fmt(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_UNION_TAGS = {"str", "int", "float", "list", "bool", "dict", "AgentModel", "none"}


def _lines(
    node: yaml.Node | None, source: str, path: Path_ = (), out: dict[Path_, int] | None = None
) -> dict[Path_, int]:
    """Key path → line, refusing duplicate keys (which YAML would silently merge)."""
    import yaml

    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            line = k.start_mark.line + 1
            if key in seen:
                raise PlanError(
                    f"duplicate key {key!r} (first on line {seen[key]})",
                    source=source,
                    path=_fmt((*path, key)),
                    line=line,
                )
            seen[key] = line
            _lines(v, source, (*path, key), out)
            out[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, source, (*path, i), out)
    return out


class _Ctx:
    def __init__(self, source: str, lines: Mapping[Path_, int]) -> None:
        self.source = source
        self.lines = lines

    def line(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def error(self, message: str, path: Path_) -> PlanError:
        return PlanError(message, source=self.source, path=_fmt(path), line=self.line(path))


def _known(table: Mapping[str, float]) -> str:
    return ", ".join(table)


def _overrides(
    tables: Tables, model: Any, ctx: _Ctx, path: Path_
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """An override section's entries keyed by the names they replace (or new names)."""
    out: list[dict[str, float]] = []
    for kind in ("roles", "phases", "complexity"):
        entries: dict[str, float] = {}
        for key, value in getattr(model, kind).items():
            name = tables.resolve(kind, key) or normalise(key)
            if not name or not re.match(r"^[a-z0-9_.:]+$", name):
                raise ctx.error(
                    f"{key!r} is not a usable name (letters, digits, '_', '.', ':')",
                    (*path, kind, key),
                )
            entries[name] = value
        out.append(entries)
    return out[0], out[1], out[2]


def plan_from_mapping(
    data: Mapping[str, Any], source: str = "<plan>", lines: Mapping[Path_, int] | None = None
) -> Plan:
    """Validate a mapping shaped like the plan file (see the module docstring)."""
    from pydantic import ValidationError

    from ._schema import PlanModel

    ctx = _Ctx(source, lines or {})
    try:
        model = PlanModel.model_validate(data)
    except ValidationError as e:
        errs = e.errors(include_url=False)

        def loc(err: Any) -> Path_:
            return tuple(
                p
                for p in err["loc"]
                if isinstance(p, int)
                or not ("[" in p or p in _UNION_TAGS or p.startswith("function-"))
            )

        def what(err: Any) -> str:
            msg = str(err["msg"]).removeprefix("Value error, ")
            got = "" if err["type"] == "missing" or "got" in msg else f" (got {err.get('input')!r})"
            return f"{msg}{got}"

        first = loc(errs[0])
        msg = what(errs[0])
        others = [f"{_fmt(loc(x))}: {what(x)}" for x in errs[1:4]]
        if others:
            msg += "; also " + "; ".join(others)
        raise ctx.error(msg, first) from None

    # plan-wide tables
    try:
        tables = DEFAULT_TABLES.merged(*_overrides(DEFAULT_TABLES, model.tables, ctx, ("tables",)))
    except ValueError as e:
        raise ctx.error(str(e), ("tables",)) from None

    # allocation shares
    am = model.allocation
    phases_share = dict(DEFAULT_ALLOCATION.phases)
    if am.phases is not None:
        phases_share = {}
        for key, share in am.phases.items():
            name = tables.resolve("phases", key)
            if name is None:
                raise ctx.error(
                    f"unknown phase {key!r}; the phases are {_known(tables.phases)}",
                    ("allocation", "phases", key),
                )
            phases_share[name] = share
    try:
        allocation = Allocation(am.orchestrator, am.emergency, phases_share)
    except ValueError as e:
        raise ctx.error(str(e), ("allocation",)) from None

    # projects, with `extends` resolved (cycles refused)
    raw = model.projects
    for name in raw:
        if not PROJECT_NAME.match(name):
            raise ctx.error(
                f"project name {name!r}: use letters, digits, '_', '.', ':' or '-' "
                "(it becomes a label value and part of budget names; put prose in `title`)",
                ("projects", name),
            )

    def chain(name: str) -> list[str]:
        """``name`` and its ancestors, nearest first."""
        seen = [name]
        cur = raw[name]
        while cur.extends is not None:
            parent = cur.extends
            if parent not in raw:
                raise ctx.error(
                    f"extends unknown project {parent!r}; the projects are {', '.join(raw)}",
                    ("projects", seen[-1], "extends"),
                )
            if parent in seen:
                cycle = " → ".join([*seen[seen.index(parent) :], parent])
                raise ctx.error(
                    f"extends forms a cycle: {cycle}", ("projects", seen[-1], "extends")
                )
            seen.append(parent)
            cur = raw[parent]
        return seen

    projects = []
    for name, pm in raw.items():
        ancestors = chain(name)
        ptables = tables
        for anc in reversed(ancestors):
            try:
                ptables = ptables.merged(
                    *_overrides(ptables, raw[anc].tables, ctx, ("projects", anc, "tables"))
                )
            except ValueError as e:
                raise ctx.error(str(e), ("projects", anc, "tables")) from None
        complexity = next(
            (raw[a].complexity for a in ancestors if raw[a].complexity is not None), None
        )
        title = next((raw[a].title for a in ancestors if raw[a].title), "")
        phases: dict[str, tuple[Agent, ...]] = {}
        for anc in reversed(ancestors):
            for pkey, entries in raw[anc].phases.items():
                ppath: Path_ = ("projects", anc, "phases", pkey)
                phase = ptables.resolve("phases", pkey)
                if phase is None:
                    raise ctx.error(
                        f"unknown phase {pkey!r}; the phases are {_known(ptables.phases)} "
                        "(add one under tables.phases)",
                        ppath,
                    )
                agents = []
                for i, entry in enumerate(entries):
                    role_key = entry.role
                    role = ptables.resolve("roles", role_key)
                    if role is None:
                        raise ctx.error(
                            f"unknown role {role_key!r}; the roles are {_known(ptables.roles)} "
                            "(add one under tables.roles)",
                            (*ppath, i),
                        )
                    agents.append(Agent(role, entry.count, entry.name))
                phases[phase] = tuple(agents)
        if pm.template:
            continue
        if complexity is None:
            raise ctx.error(
                "no complexity: give simple, medium, complex, expert (or a table entry) or a "
                "positive number, here or in a project it extends",
                ("projects", name),
            )
        if isinstance(complexity, str):
            resolved = ptables.resolve("complexity", complexity)
            if resolved is None:
                where = next(a for a in ancestors if raw[a].complexity is not None)
                raise ctx.error(
                    f"unknown complexity {complexity!r}; use {_known(ptables.complexity)} "
                    "or a positive number",
                    ("projects", where, "complexity"),
                )
            complexity = resolved
        projects.append(Project(name, complexity, phases, ptables, title))
    if not projects:
        raise ctx.error("every project is a template: nothing to estimate", ("projects",))
    return Plan(tuple(projects), tables, allocation, source)


def parse_plan(text: str, source: str = "<plan>") -> Plan:
    """Parse and validate plan YAML text."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise PlanError(
            f"not valid YAML: {problem}", source=source, line=mark.line + 1 if mark else None
        ) from None
    if data is None:
        raise PlanError("the file is empty; see examples/plan.yaml", source=source)
    if not isinstance(data, dict):
        raise PlanError(
            f"expected a mapping with `projects:` at the top, got a {type(data).__name__}",
            source=source,
            line=1,
        )
    return plan_from_mapping(data, source, _lines(node, source))


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and validate the plan file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"plan file {p} not found (see examples/plan.yaml)") from None
    except IsADirectoryError:
        raise ConfigError(f"plan path {p} is a folder, expected a YAML file") from None
    except UnicodeDecodeError as e:
        raise PlanError(f"not UTF-8 text (byte {e.start})", source=str(p)) from None
    except OSError as e:
        raise ConfigError(f"cannot read plan file {p}: {e.strerror}") from None
    return parse_plan(text, str(p))
