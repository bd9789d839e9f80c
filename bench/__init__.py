"""Benchmark scripts (each prints JSON, one line per figure; see each module's docstring).

A package so that the scripts share helpers (``bench.postgres_admin``) and each has one module
name whether it runs as ``python bench/NAME.py`` or ``python -m bench.NAME``.
"""
