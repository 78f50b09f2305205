"""Benchmarks: run as modules (`python -m bench.sandbox`); separate from the tests."""
