"""Benchmark probe agent (bench/ only)."""
