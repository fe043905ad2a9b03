"""Benchmarks of comfy-trickle: ``bench/run.py`` (suite), ``bench_trickle.py``, ``bench_codec.py``."""
