"""Benchmarks for jaxsnn: simulation cost (P1), PyTorch comparison (P2), training (P3), memory.

Run from the repository root with ``python -m bench [--quick] [--out bench/results.json]``.
Every figure is a ratio of two things timed side by side (interleaved repetitions, medians).
"""
