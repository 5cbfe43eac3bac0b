"""The charter verification: what a deployment looks like from outside, the checks'
evaluation logic (pure functions, unit-tested on broken inputs), and the report."""
