"""Runnable benchmarks; results as JSON in benchmarks/results/."""
