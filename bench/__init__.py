"""Benchmarks: each ``bench/bench_*.py`` module has ``run() -> dict`` comparing our way with a
baseline in the same process (ratios, not absolute seconds)."""
