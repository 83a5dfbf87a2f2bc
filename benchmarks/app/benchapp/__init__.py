"""A small Channels 1.x-style project for the end-to-end benchmarks (issue 9).

No database and no middleware: what is measured is daphne, the channel layer and the worker.
"""
