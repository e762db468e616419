"""Benchmarks: each prints ours against a baseline measured side by side in one run."""
