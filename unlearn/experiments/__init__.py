"""Experiments: many runs at once (grid, sweep) and speed benchmarks."""
