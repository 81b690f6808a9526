"""Build examples/usage-log.jsonl from the strategy seed's historical table.

The seed (shared/seeds/004_…, "Historical Token Costs (Actual Data)") lists seven tasks with
their input and output tokens. Each task becomes one run of calls, spread over the phases of
the seed's formula (strategy, development, QA, deployment) and their agents, on the dates of
February 2026. Per task the prompt and completion tokens add up exactly to the seed's numbers.
Deterministic: run it again and the file is identical.

    python examples/make_usage_log.py > examples/usage-log.jsonl
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

# task, size, tokens in, tokens out (the seed's table)
TASKS = [
    ("governance-v3", "xlarge", 45_000, 12_000),
    ("M-001-infrastructure", "large", 18_000, 15_000),
    ("M-002-coocook-api", "medium", 12_000, 8_000),
    ("M-002-payment-review", "medium", 14_000, 10_000),
    ("M-004-jarvis-dashboard", "large", 22_000, 18_000),
    ("M-005-sonolbot-v2", "medium", 15_000, 12_000),
    ("M-006-experience-mvp", "medium", 16_000, 10_000),
]
# phase → (share of the task's tokens, agents and their models); shares follow the seed's
# phase multipliers (1.0 : 3.0 : 1.5 : 0.5 over a strategy/architect + dev + QA + devops mix)
PHASES = [
    (
        "phase-1-strategy",
        0.20,
        [("business-strategist", "gpt-4o-mini", "openai"), ("architect", "gpt-4o", "openai")],
    ),
    (
        "phase-2-development",
        0.55,
        [("dev-lead", "llama-3.3-70b-versatile", "groq"), ("dev-lead", "gpt-4o", "openai")],
    ),
    (
        "phase-3-qa",
        0.18,
        [
            ("qa-engineer", "llama-3.1-8b-instant", "groq"),
            ("security-auditor", "gpt-4o-mini", "openai"),
        ],
    ),
    ("phase-4-deployment", 0.07, [("devops", "gpt-3.5-turbo", "openai")]),
]


def split(total: int, parts: int, rng: random.Random) -> list[int]:
    """``total`` into ``parts`` positive integers that add up exactly."""
    weights = [rng.uniform(0.6, 1.4) for _ in range(parts)]
    raw = [int(total * w / sum(weights)) for w in weights]
    raw[-1] += total - sum(raw)
    return raw


def main() -> None:
    rng = random.Random(20260225)
    start = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    for day, (task, size, tin, tout) in enumerate(TASKS):
        t = start + timedelta(days=3 * day)
        # the seed's phase shares (rounding goes to the last phase)
        phase_in = [int(tin * share) for _, share, _ in PHASES]
        phase_in[-1] += tin - sum(phase_in)
        phase_out = [int(tout * share) for _, share, _ in PHASES]
        phase_out[-1] += tout - sum(phase_out)
        for (phase, _, agents), pin, pout in zip(PHASES, phase_in, phase_out, strict=True):
            calls = max(2, round((pin + pout) / 2500))
            ins, outs = split(pin, calls, rng), split(pout, calls, rng)
            for i in range(calls):
                agent, model, provider = agents[i % len(agents)]
                t += timedelta(minutes=rng.randint(2, 9))
                print(
                    json.dumps(
                        {
                            "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "labels": {
                                "project": task,
                                "size": size,
                                "phase": phase,
                                "agent": agent,
                                "model": model,
                                "provider": provider,
                                "run": task,
                            },
                            "prompt_tokens": ins[i],
                            "completion_tokens": outs[i],
                        }
                    )
                )


if __name__ == "__main__":
    main()
