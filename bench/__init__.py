"""Benchmarks for the Kontor back office.

Each benchmark is a module here exposing DESCRIPTION, DEFAULT_SCALE and run(*, scale) -> dict.
Run one with `python -m bench NAME`, all of them with `python -m bench all`; every run uses a
throwaway database (see bench/_django.py). Figures from the last full run are in RESULTS.md.
"""
