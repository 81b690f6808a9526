"""A synthetic usage history with known true tables, for tests, docs and demos.

Each project draws a complexity and a team (roles cross phases, so every table entry can be
told apart); each (phase, role) spends ``count × true formula × exp(N(0, noise))`` tokens,
split into a few calls labelled ``project``, ``phase``, ``agent`` (the role) and
``complexity``. Deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from ._tables import Tables

__all__ = ["TRUE_TABLES", "synthetic_history"]

#: The "real" tables the synthetic history is drawn from: the seed's, corrected where
#: history disagrees (development and QA cost differently, dev leads are cheaper ...).
#: The anchors (phase ``strategy``, complexity ``medium``) stay at 1.0.
TRUE_TABLES = Tables(
    roles={
        "business_strategist": 4_000.0,
        "architect": 12_000.0,
        "dev_lead": 14_000.0,
        "qa_engineer": 8_000.0,
        "devops": 6_000.0,
        "security_auditor": 7_000.0,
        "support": 2_000.0,
    },
    phases={"input": 0.4, "strategy": 1.0, "development": 2.2, "qa": 1.8, "deployment": 0.7},
    complexity={"simple": 0.7, "medium": 1.0, "complex": 1.8, "expert": 2.6},
)

_TEAMS: dict[str, list[tuple[str, float]]] = {
    # phase -> (role, probability it takes part)
    "input": [("support", 0.5)],
    "strategy": [("business_strategist", 1.0), ("architect", 1.0), ("support", 0.3)],
    "development": [("dev_lead", 1.0), ("architect", 0.4), ("support", 0.3)],
    "qa": [("qa_engineer", 1.0), ("security_auditor", 0.7), ("dev_lead", 0.4)],
    "deployment": [("devops", 1.0), ("qa_engineer", 0.3)],
}


def synthetic_history(
    projects: int = 40,
    *,
    tables: Tables = TRUE_TABLES,
    noise: float = 0.15,
    seed: int = 7,
    start: datetime = datetime(2026, 1, 5, 9, tzinfo=UTC),
) -> list[dict[str, Any]]:
    """Usage records (``time``, ``labels``, ``prompt_tokens``, ``completion_tokens``), one
    project after another, as :func:`llmbudget.replay.read_usage_log` reads them."""
    rng = random.Random(seed)
    complexities = list(tables.complexity)
    out: list[dict[str, Any]] = []
    t = start
    for n in range(projects):
        project = f"P-{n + 1:03d}"
        complexity = rng.choice(complexities)
        factor = tables.complexity[complexity]
        for phase, team in _TEAMS.items():
            for role, p in team:
                if rng.random() >= p:
                    continue
                count = (
                    2 if role == "dev_lead" and phase == "development" and rng.random() < 0.3 else 1
                )
                total = count * tables.roles[role] * tables.phases[phase] * factor
                total *= math.exp(rng.gauss(0.0, noise))
                calls = max(count, rng.randint(1, 5))
                left = round(total)
                for c in range(calls):
                    part = left if c == calls - 1 else round(left / (calls - c))
                    left -= part
                    prompt = round(part * 0.6)
                    agent = role if count == 1 else f"{role}-{c % count + 1}"
                    out.append(
                        {
                            "time": t.isoformat().replace("+00:00", "Z"),
                            "labels": {
                                "project": project,
                                "phase": phase,
                                "agent": agent,
                                "role": role,
                                "complexity": complexity,
                                "model": "gpt-4o",
                            },
                            "prompt_tokens": prompt,
                            "completion_tokens": part - prompt,
                        }
                    )
                    t += timedelta(minutes=3)
        t += timedelta(hours=6)
    return out
