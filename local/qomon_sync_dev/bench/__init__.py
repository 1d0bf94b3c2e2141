"""Benchmarks and the soak: measured, repeatable figures (dev-only)."""
