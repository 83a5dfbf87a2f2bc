"""Helpers the tests and the benchmarks share (not shipped): real redis-server processes."""
