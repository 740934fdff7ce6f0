"""Benchmarks behind `python -m core bench NAME`: each prints what it measured and the machine it ran on."""
