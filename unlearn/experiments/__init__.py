"""Experiments: many runs at once (sweep, reproduce) and speed benchmarks."""
