"""The budgets of one ``llmbudget run``, built in code from its flags.

* ``--overall-token-budget N`` → budget ``run-overall``: ``per: [run]``, window ``run``,
  ``N`` tokens (prompt, cache and output tokens all count);
* ``--command-budget "/test=N"`` → budget ``run-command:/test``: calls labelled
  ``command: /test`` (the instance's base command), ``per: [run]``.

Each warns at 90 % and refuses past 100 %; their mode is ``--budget-enforcement-mode``. They
are *added* to the policy file's budgets (when a policy file is given or found), so a daily or
per-model budget from the file also governs the agents, in that budget's own mode.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._errors import InvalidUsage
from ..core.policy import Action, Budget, Level, Mode, Policy, Selector

__all__ = ["OVERALL", "RunBudgets", "glob_literal", "run_policy"]

OVERALL = "run-overall"
_BAD_NAME = re.compile(r"[^A-Za-z0-9_.:/-]")


def glob_literal(text: str) -> str:
    """``text`` as a glob that matches only itself (``*``, ``?`` and ``[`` escaped)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


@dataclass(frozen=True, slots=True)
class RunBudgets:
    """Which budgets came from the flags: the overall one (or ``None``) and, per command,
    its budget name."""

    overall: str | None
    commands: Mapping[str, str]
    mode: Mode

    def describe(self, budget: str, partition: Sequence[tuple[str, str]] = ()) -> str:
        """A budget for people: ``overall session``, ``/test command`` or the policy name."""
        if budget == self.overall:
            return "overall session"
        for cmd, name in self.commands.items():
            if name == budget:
                return f"{cmd} command"
        part = ",".join(f"{k}={v}" for k, v in partition)
        return f"policy budget {budget}" + (f"[{part}]" if part else "")


def run_policy(
    *,
    overall: int | None,
    commands: Mapping[str, int],
    mode: Mode | str = Mode.WARN,
    base: Policy | None = None,
) -> tuple[Policy, RunBudgets]:
    """The policy for a run: ``base``'s budgets (if any) plus one per flag."""
    mode = Mode(mode)
    levels = (Level(90, Action.WARN, percent=True, name="warning"),)
    ours: list[Budget] = []
    names: dict[str, str] = {}
    if overall is not None:
        ours.append(
            Budget(
                OVERALL,
                overall,
                per=("run",),
                levels=levels,
                mode=mode,
                description="llmbudget run: --overall-token-budget",
            )
        )
    taken = {OVERALL}
    for cmd, limit in commands.items():
        stem = name = "run-command:" + _BAD_NAME.sub("_", cmd)
        i = 2
        while name in taken:  # two commands that differ only in unusual characters
            name, i = f"{stem}.{i}", i + 1
        taken.add(name)
        names[cmd] = name
        ours.append(
            Budget(
                name,
                limit,
                match=Selector({"command": (glob_literal(cmd),)}),
                per=("run",),
                levels=levels,
                mode=mode,
                description=f"llmbudget run: --command-budget {cmd}",
            )
        )
    base = base or Policy(mode=mode, source="<llmbudget run flags>")
    clash = {b.name for b in base.budgets} & {b.name for b in ours}
    if clash:
        raise InvalidUsage(
            f"{base.source} already has a budget named {sorted(clash)[0]!r}, a name "
            "`llmbudget run` uses for its flag budgets; rename it in the policy file"
        )
    policy = dataclasses.replace(base, budgets=(*base.budgets, *ours))
    return policy, RunBudgets(OVERALL if overall is not None else None, names, mode)
