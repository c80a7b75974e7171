"""Benchmarks: speed goals measured against a baseline in the same run."""
