"""The pure domain: labels, budgets, windows, levels, decisions. No I/O, no imports of ours."""
