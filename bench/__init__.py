"""The benchmarks: throughput, CPU and memory of the plugins, each a ``python -m bench.<script>``.

Run from the repository root after ``make install`` (``make meltano`` too for the Meltano runs):
``.venv/bin/python -m bench.run_all`` is ``make bench``. See docs/performance.md.
"""
