"""The Channels 4.3 control of issue 20: the bench app's semantics on the in-process design.

Served by daphne 4.2 from its own venv (benchmarks/.venv-channels4) against channels-redis
4.3 on the workload's private Redis. Measurement only: nothing in the project imports it,
and it cannot run in the project's environment (it needs Channels 4, not this Channels 1.x).
"""
