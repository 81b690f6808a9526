"""The starter policy ``llmbudget init`` writes.

It reproduces the policy seed ("Token Budget", docs/policy.md cites it): four levels per run,
per day and per month with the seed's numbers and actions, and the seed's per-model budgets for
its Groq and OpenAI models (with the seed's 80 % alert threshold); enforcement mode ``block``
as in the orchestrator seed (switch to ``warn`` to observe without refusing).
"""

STARTER_POLICY = """\
# llmbudget policy: every LLM call is checked against every budget whose `match` fits its
# labels (model, provider, agent, project, phase, command, run, ...), before it runs.
# Reference: docs/policy.md.   Validate with: llmbudget status   (any error names the line)
version: 1
timezone: UTC            # calendar windows (hour/day/week/month) follow this IANA zone
mode: block              # block: refuse at block/approve levels; warn: never refuse, only log
lease_seconds: 600       # a reservation not committed by then is charged at its estimate
default_completion_tokens: 1024   # reserved for a call that gives no max_tokens

# Levels fire when a counter passes their threshold (absolute, or "NN%" of the limit):
#   continue < warn (log) < alert (notify) < flag (notify + mark for review)
#   < approve (refuse until `llmbudget approve ID`) < block (refuse).
x-seed-model-levels: &model_levels
  - {at: "80%", action: alert, name: threshold-80}
  - {at: "100%", action: block, name: exceeded}

budgets:
  # --- The four levels, per run (one counter per `run` label) -------------------------------
  - name: run
    description: "Per-run budget (policy seed: levels 1-4 per run)"
    per: [run]
    window: run
    limit: 100_000
    levels:
      - {at: 10_000, action: warn, name: moderate}      # 10k-50k: continue with warning
      - {at: 50_000, action: flag, name: high}          # 50k-100k: flag for review, alert admin
      - {at: 100_000, action: approve, name: critical}  # >100k: stop, require approval

  # --- The four levels, per day -----------------------------------------------------------
  - name: daily
    description: "Daily budget (policy seed: levels 1-4 per day)"
    window: day
    limit: 500_000
    levels:
      - {at: 50_000, action: warn, name: moderate}
      - {at: 200_000, action: flag, name: high}
      - {at: 500_000, action: approve, name: critical}

  # --- The four levels, per month ---------------------------------------------------------
  - name: monthly
    description: "Monthly budget (policy seed: levels 1-4 per month)"
    window: month
    limit: 15_000_000
    levels:
      - {at: 1_500_000, action: warn, name: moderate}
      - {at: 6_000_000, action: flag, name: high}
      - {at: 15_000_000, action: approve, name: critical}

  # --- Per-model budgets (policy seed: Groq and OpenAI models) -----------------------------
  - name: llama-3.3-70b-versatile/run
    match: {model: [llama-3.3-70b-versatile]}
    per: [run, model]
    window: run
    limit: 50_000
    levels: *model_levels
  - name: llama-3.3-70b-versatile/day
    match: {model: [llama-3.3-70b-versatile]}
    per: [model]
    window: day
    limit: 200_000
    levels: *model_levels
  - name: llama-3.3-70b-versatile/month
    match: {model: [llama-3.3-70b-versatile]}
    per: [model]
    window: month
    limit: 6_000_000
    levels: *model_levels

  - name: llama-3.1-8b-instant/run
    match: {model: [llama-3.1-8b-instant]}
    per: [run, model]
    window: run
    limit: 20_000
    levels: *model_levels
  - name: llama-3.1-8b-instant/day
    match: {model: [llama-3.1-8b-instant]}
    per: [model]
    window: day
    limit: 100_000
    levels: *model_levels
  - name: llama-3.1-8b-instant/month
    match: {model: [llama-3.1-8b-instant]}
    per: [model]
    window: month
    limit: 3_000_000
    levels: *model_levels

  - name: groq-other/run
    match: {provider: [groq]}
    exclude: {model: [llama-3.3-70b-versatile, llama-3.1-8b-instant]}
    per: [run, model]
    window: run
    limit: 30_000
    levels: *model_levels
  - name: groq-other/day
    match: {provider: [groq]}
    exclude: {model: [llama-3.3-70b-versatile, llama-3.1-8b-instant]}
    per: [model]
    window: day
    limit: 150_000
    levels: *model_levels
  - name: groq-other/month
    match: {provider: [groq]}
    exclude: {model: [llama-3.3-70b-versatile, llama-3.1-8b-instant]}
    per: [model]
    window: month
    limit: 4_500_000
    levels: *model_levels

  - name: gpt-4o-mini/run
    match: {model: [gpt-4o-mini, gpt-4o-mini-*]}
    per: [run, model]
    window: run
    limit: 30_000
    levels: *model_levels
  - name: gpt-4o-mini/day
    match: {model: [gpt-4o-mini, gpt-4o-mini-*]}
    per: [model]
    window: day
    limit: 150_000
    levels: *model_levels
  - name: gpt-4o-mini/month
    match: {model: [gpt-4o-mini, gpt-4o-mini-*]}
    per: [model]
    window: month
    limit: 4_500_000
    levels: *model_levels

  - name: gpt-4o/run
    match: {model: [gpt-4o, gpt-4o-20*]}
    per: [run, model]
    window: run
    limit: 20_000
    levels: *model_levels
  - name: gpt-4o/day
    match: {model: [gpt-4o, gpt-4o-20*]}
    per: [model]
    window: day
    limit: 100_000
    levels: *model_levels
  - name: gpt-4o/month
    match: {model: [gpt-4o, gpt-4o-20*]}
    per: [model]
    window: month
    limit: 3_000_000
    levels: *model_levels

  - name: gpt-3.5-turbo/run
    match: {model: [gpt-3.5-turbo, gpt-3.5-turbo-*]}
    per: [run, model]
    window: run
    limit: 40_000
    levels: *model_levels
  - name: gpt-3.5-turbo/day
    match: {model: [gpt-3.5-turbo, gpt-3.5-turbo-*]}
    per: [model]
    window: day
    limit: 200_000
    levels: *model_levels
  - name: gpt-3.5-turbo/month
    match: {model: [gpt-3.5-turbo, gpt-3.5-turbo-*]}
    per: [model]
    window: month
    limit: 6_000_000
    levels: *model_levels
"""
