"""Benchmarks: what batchtasks costs as a workload grows, beside one `create_task` per task.

Run `python -m bench.run` from the project root (or `python3 dev.py bench`); it writes
bench/results.md and bench/results.json. Figures only: nothing here fails a build.
"""
