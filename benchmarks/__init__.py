"""The benchmark of `scripts/bench` (run it as `python -m benchmarks`)."""
