"""Instances to run: :class:`InstanceSpec`, and the ``--config`` file (JSON or YAML).

::

    # agents.yaml
    overall_token_budget: 20000          # optional; the flags win
    command_budgets: {/test: 5000}       # optional; merged with --command-budget (flags win)
    budget_enforcement_mode: block       # optional; the flag wins
    instances:
      - name: test_runner
        command: /test --real-services   # what the agent is asked to do; /test is its budget key
        program: [claude, -p, "/test --real-services", --output-format, stream-json, --verbose]
      - name: analyzer
        command: /analyze
        # no program: claude -p "<command>" --output-format stream-json --verbose
        cwd: ../service                  # optional, relative to this file
        env: {ANTHROPIC_MODEL: claude-sonnet-4}   # optional, added to the environment
        labels: {team: platform}         # optional extra ledger labels

Every error is a :class:`~llmbudget.ConfigError` naming the file, the line and the key.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._errors import ConfigError, InvalidUsage
from ..core.policy import LABEL_NAME
from .commands import base_command, parse_command_budget, parse_limit

__all__ = ["InstanceSpec", "RunConfig", "check_program", "default_program", "load_config"]

_NAME = re.compile(r"^[A-Za-z0-9_.:@/+-]{1,128}$")
_RESERVED_LABELS = {"run", "instance", "command", "model"}
_INSTANCE_KEYS = {"name", "command", "program", "cwd", "env", "labels", "description"}
_TOP_KEYS = {
    "instances",
    "overall_token_budget",
    "command_budgets",
    "budget_enforcement_mode",
    "status_report_interval",
}


def default_program(command: str) -> list[str]:
    """The program an instance without ``program`` runs: Claude Code, printing stream-json."""
    return ["claude", "-p", command, "--output-format", "stream-json", "--verbose"]


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """One agent process: its ``name`` (the ``instance`` label), the ``command`` it was given
    (its first word is the ``command`` label), the ``argv`` to run, and where/how."""

    name: str
    argv: tuple[str, ...]
    command: str | None = None
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def base_command(self) -> str | None:
        """The command's first word (``/test --real-services`` → ``/test``)."""
        return base_command(self.command)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """What a config file holds: instances and optional defaults for the flags."""

    instances: tuple[InstanceSpec, ...]
    overall_token_budget: int | None = None
    command_budgets: Mapping[str, int] = field(default_factory=dict)
    budget_enforcement_mode: str | None = None
    status_report_interval: float | None = None


def check_program(spec: InstanceSpec) -> None:
    """Raise :class:`InvalidUsage` when ``spec``'s program cannot be found or run."""
    prog = spec.argv[0]
    if os.sep in prog or (os.altsep and os.altsep in prog):
        path = Path(spec.cwd or ".") / prog
        if not path.exists():
            raise InvalidUsage(f"instance {spec.name!r}: program {prog!r} does not exist")
        if path.is_dir() or not os.access(path, os.X_OK):
            raise InvalidUsage(f"instance {spec.name!r}: program {prog!r} is not executable")
        return
    if shutil.which(prog, path=spec.env.get("PATH")) is None:
        hint = (
            " (install Claude Code, or give each instance a `program`)" if prog == "claude" else ""
        )
        raise InvalidUsage(f"instance {spec.name!r}: program {prog!r} was not found on PATH{hint}")


# -- the file -----------------------------------------------------------------------------------
Key = tuple[str | int, ...]


def _fmt(path: Key) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _lines(
    node: yaml.Node | None, path: Key = (), out: dict[Key, int] | None = None
) -> dict[Key, int]:
    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            out[(*path, key)] = k.start_mark.line + 1
            _lines(v, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*path, i), out)
    return out


class _Reader:
    def __init__(self, source: str, lines: Mapping[Key, int]) -> None:
        self.source = source
        self.lines = lines

    def error(self, path: Key, message: str) -> ConfigError:
        p = path
        while p and p not in self.lines:
            p = p[:-1]
        line = self.lines.get(p)
        where = self.source + (f":{line}" if line else "")
        key = _fmt(path)
        return ConfigError(f"{where}: {key + ': ' if key else ''}{message}")

    def string(self, obj: object, path: Key, *, empty: bool = False) -> str:
        if not isinstance(obj, str) or (not empty and not obj.strip()):
            raise self.error(path, f"expected a non-empty string, got {obj!r}")
        return obj

    def mapping(self, obj: object, path: Key) -> Mapping[str, str]:
        if not isinstance(obj, dict):
            raise self.error(path, f"expected a mapping of names to strings, got {obj!r}")
        out = {}
        for k, v in obj.items():
            if (
                not isinstance(k, str)
                or not isinstance(v, str | int | float)
                or isinstance(v, bool)
            ):
                raise self.error((*path, str(k)), f"expected a string value, got {v!r}")
            out[k] = str(v)
        return out


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read and validate a config file of instances (JSON or YAML)."""
    p = Path(path)
    src = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {src} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {src} is a folder, expected a JSON or YAML file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{src}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {src}: {e.strerror}") from None
    data: Any
    node: yaml.Node | None = None
    if p.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"{src}:{e.lineno}: not valid JSON: {e.msg} (column {e.colno})"
            ) from None
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            node = None  # JSON that YAML cannot read: errors lose their line numbers
    else:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            problem = getattr(e, "problem", None) or str(e)
            line = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{src}{line}: not valid YAML: {problem}") from None
    base = p.parent
    return parse_config(data, src, _lines(node), base)


def parse_config(
    data: object,
    source: str = "<config>",
    lines: Mapping[Key, int] | None = None,
    base: Path | None = None,
) -> RunConfig:
    """Validate already-parsed config data (a mapping with ``instances``, or a list)."""
    r = _Reader(source, lines or {})
    if data is None:
        raise r.error((), "the file is empty; it needs a list of `instances`")
    if isinstance(data, list):
        data = {"instances": data}
        r.lines = {(("instances", *k) if k else ()): v for k, v in r.lines.items()}
    if not isinstance(data, dict):
        raise r.error((), f"expected a mapping with `instances`, got a {type(data).__name__}")
    for k in data:
        if k not in _TOP_KEYS:
            raise r.error((str(k),), f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}")
    raw = data.get("instances")
    if not isinstance(raw, list) or not raw:
        raise r.error(("instances",), "expected a non-empty list of instances")
    instances: list[InstanceSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        at: Key = ("instances", i)
        if not isinstance(item, dict):
            raise r.error(at, f"expected a mapping with name, command and program, got {item!r}")
        for k in item:
            if k not in _INSTANCE_KEYS:
                raise r.error(
                    (*at, str(k)),
                    f"unknown key; expected one of {', '.join(sorted(_INSTANCE_KEYS))}",
                )
        if "name" not in item:
            raise r.error(at, "`name` is required")
        name = r.string(item["name"], (*at, "name"))
        if not _NAME.match(name):
            raise r.error(
                (*at, "name"), f"{name!r}: use letters, digits and '_.-:@/+' (at most 128)"
            )
        if name in seen:
            raise r.error(
                (*at, "name"), f"duplicate instance name {name!r} (also instances[{seen[name]}])"
            )
        seen[name] = i
        command = r.string(item["command"], (*at, "command")) if "command" in item else None
        if command is not None and len(base_command(command) or "") > 200:
            raise r.error((*at, "command"), "the command's first word is too long")
        prog = item.get("program")
        argv: list[str]
        if prog is None:
            if command is None:
                raise r.error(at, "give a `program` to run (or a `command` for Claude Code)")
            argv = default_program(command)
        elif isinstance(prog, str):
            try:
                argv = shlex.split(prog)
            except ValueError as e:
                raise r.error((*at, "program"), f"cannot split {prog!r}: {e}") from None
        elif isinstance(prog, list) and all(
            isinstance(a, str | int | float) and not isinstance(a, bool) for a in prog
        ):
            argv = [str(a) for a in prog]
        else:
            raise r.error(
                (*at, "program"), f"expected a list of arguments or a string, got {prog!r}"
            )
        if not argv or not argv[0]:
            raise r.error((*at, "program"), "the program is empty")
        cwd = None
        if "cwd" in item:
            c = Path(r.string(item["cwd"], (*at, "cwd")))
            cwd = str(c if c.is_absolute() or base is None else base / c)
            if not Path(cwd).is_dir():
                raise r.error((*at, "cwd"), f"{cwd} is not a folder")
        env = dict(r.mapping(item["env"], (*at, "env"))) if "env" in item else {}
        labels = dict(r.mapping(item["labels"], (*at, "labels"))) if "labels" in item else {}
        for k, v in labels.items():
            if not LABEL_NAME.match(k) or k in _RESERVED_LABELS:
                raise r.error(
                    (*at, "labels", k),
                    "label names are lowercase letters, digits and '_' (and not run, instance, "
                    "command or model, which llmbudget sets)",
                )
            if not v or len(v) > 256:
                raise r.error((*at, "labels", k), "label values are 1 to 256 characters")
        instances.append(InstanceSpec(name, tuple(argv), command, cwd, env, labels))

    overall = None
    if data.get("overall_token_budget") is not None:
        try:
            overall = parse_limit(data["overall_token_budget"], "overall_token_budget")
        except InvalidUsage as e:
            raise r.error(("overall_token_budget",), str(e).split(": ", 1)[-1]) from None
    commands: dict[str, int] = {}
    cb = data.get("command_budgets")
    if cb is not None:
        if not isinstance(cb, dict):
            raise r.error(("command_budgets",), 'expected a mapping such as {"/test": 1000}')
        for k, v in cb.items():
            try:
                cmd, limit = parse_command_budget(f"{k}={v}")
            except InvalidUsage as e:
                raise r.error(("command_budgets", str(k)), str(e).split(": ", 1)[-1]) from None
            commands[cmd] = limit
    mode = data.get("budget_enforcement_mode")
    if mode is not None and mode not in ("warn", "block"):
        raise r.error(("budget_enforcement_mode",), f"expected warn or block, got {mode!r}")
    interval = data.get("status_report_interval")
    if interval is not None and (
        isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0
    ):
        raise r.error(("status_report_interval",), f"expected seconds (>= 0), got {interval!r}")
    return RunConfig(
        tuple(instances),
        overall,
        commands,
        mode,
        float(interval) if interval is not None else None,
    )
