"""Benchmarks and load generators: `python -m engram.bench.core`, `engram bench http`."""
