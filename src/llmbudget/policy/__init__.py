"""Reading policy files: YAML in, a validated :class:`~llmbudget.core.policy.Policy` out.

Every error is a :class:`~llmbudget.PolicyError` naming the file, the line, the key path
(``budgets[2].levels[0].at``) and what was expected. The starter policy that ``llmbudget
init`` writes is :data:`STARTER_POLICY`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .._errors import ConfigError, PolicyError
from ..core.policy import Policy
from ._schema import PolicyModel, to_budget, to_policy
from ._starter import STARTER_POLICY

__all__ = [
    "ENV_POLICY",
    "STARTER_POLICY",
    "find_policy",
    "load_policy",
    "parse_policy",
    "policy_from_mapping",
]

ENV_POLICY = "LLMBUDGET_POLICY"
# libyaml's loader when PyYAML was built with it (10x faster on big policies)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str | int, ...]


def _fmt(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _lines(
    node: yaml.Node | None, path: Path_ = (), out: dict[Path_, int] | None = None
) -> dict[Path_, int]:
    out = {} if out is None else out
    if node is None:
        return out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            out[(*path, key)] = k.start_mark.line + 1
            _lines(v, (*path, key), out)
            out[(*path, key)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*path, i), out)
    return out


def _line_of(lines: Mapping[Path_, int], path: Path_) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def policy_from_mapping(
    data: Mapping[str, Any],
    source: str = "<policy>",
    lines: Mapping[Path_, int] | None = None,
) -> Policy:
    """Validate a mapping shaped like the policy file."""
    lines = lines or {}
    # keys starting with "x-" hold YAML anchors and notes (as in docker compose): ignored
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as e:
        errs = e.errors(include_url=False)

        def loc(err: Any) -> Path_:
            # drop Pydantic's union-branch tags such as 'str' or 'list[str]'
            return tuple(
                p
                for p in err["loc"]
                if isinstance(p, int) or ("[" not in p and p not in ("str", "int", "float", "list"))
            )

        def what(err: Any) -> str:
            text = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "missing" or " got " in text:
                return text
            return f"{text} (got {err.get('input')!r})"

        first = loc(errs[0])
        msg = what(errs[0])
        others = [f"{_fmt(loc(x))}: {what(x)}" for x in errs[1:4]]
        if others:
            msg += "; also " + "; ".join(others)
        raise PolicyError(
            msg, source=source, path=_fmt(first), line=_line_of(lines, first)
        ) from None
    budgets = []
    for i, b in enumerate(model.budgets):
        try:
            budgets.append(to_budget(b))
        except ValueError as e:
            # point at the key the core's rule names (limit, per, levels[N].at, name)
            sub = _rule_key(str(e))
            raise PolicyError(
                f"{e} (budget {b.name!r})",
                source=source,
                path=_fmt(("budgets", i, *sub)),
                line=_line_of(lines, ("budgets", i, *sub)),
            ) from None
    try:
        return to_policy(model, source, tuple(budgets))
    except ValueError as e:
        m = re.match(r"budgets\[(\d+)\]\.name: (.*)", str(e))
        at: Path_ = ("budgets", int(m.group(1)), "name") if m else ("budgets",)
        raise PolicyError(
            m.group(2) if m else str(e),
            source=source,
            path=_fmt(at) if m else "",
            line=_line_of(lines, at),
        ) from None


def _rule_key(message: str) -> Path_:
    """The key path, inside one budget, that a core rule's message starts with."""
    m = re.match(r"(limit|per|budget name|levels\[(\d+)\]\.at)\b", message)
    if not m:
        return ()
    if m.group(2) is not None:
        return ("levels", int(m.group(2)), "at")
    return ("name",) if m.group(1) == "budget name" else (m.group(1),)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate policy YAML text."""
    try:
        # one pass: compose the node tree (for line numbers), then construct from it
        node = yaml.compose(text, Loader=_Loader)
        data = _Loader(text).construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise PolicyError(
            f"not valid YAML: {problem}", source=source, line=mark.line + 1 if mark else None
        ) from None
    if data is None:
        raise PolicyError("the file is empty; start from `llmbudget init`", source=source)
    if not isinstance(data, dict):
        raise PolicyError(
            f"expected a mapping of settings at the top, got a {type(data).__name__}",
            source=source,
            line=1,
        )
    return policy_from_mapping(data, source, _lines(node))


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate the policy file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"policy file {p} not found; create one with `llmbudget init {p}` "
            "or point --policy / LLMBUDGET_POLICY at yours"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"policy path {p} is a folder, expected a YAML file") from None
    except UnicodeDecodeError as e:
        raise PolicyError(
            f"not UTF-8 text (byte {e.start}); save the file as UTF-8",
            source=str(p),
            line=e.object[: e.start].count(b"\n") + 1,
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read policy file {p}: {e.strerror}") from None
    return parse_policy(text, str(p))


def find_policy(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The policy file to use: ``explicit``, else ``$LLMBUDGET_POLICY``, else
    ``./llmbudget.yaml``, else the user config folder's ``policy.yaml``; ``None`` if none
    exists (an explicit or environment path is returned even if missing, so the error can
    name it)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_POLICY)
    if env:
        return Path(env)
    local = Path("llmbudget.yaml")
    if local.exists():
        return local
    from platformdirs import user_config_dir

    user = Path(user_config_dir("llmbudget")) / "policy.yaml"
    return user if user.exists() else None
