"""Built-in stages: validate, data_checks, guardrails, bench, report."""
