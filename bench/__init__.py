"""Switchyard's hot-path benchmark (``python -m bench``); see ``bench/run.py`` and docs/benchmark.md."""
