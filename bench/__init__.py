"""Benchmarks for archiver: `python -m bench.run` measures it against plain tools on loopback.

Speed is measured here, side by side with curl, sqlite3 and `python -c pass`, never in timed unit
tests; the runner writes docs/performance.md. See bench/run.py for the items and options.
"""
