"""Eval suites run through Stoker: suites, scorers, baselines, a gate and reports."""
