"""Crosschecks: a method's official code and ours on the same inputs, side by side
(``python -m benchmarks.crosscheck METHOD --official DIR``; :mod:`benchmarks.crosscheck.harness`)."""
