"""Benchmarks of mc_tasks against baselines measured in the same run; see docs/benchmarks.md."""
