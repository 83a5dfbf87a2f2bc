"""Run daphne or ``manage.py runworker`` with cProfile switched by signals (PROFILE.md, session 6).

SIGUSR1 starts cProfile in the main thread and in every thread started afterwards;
SIGUSR2 stops it, writes the merged pstats to ``$PROF_OUT``, then ``$PROF_OUT.done``.
Usage (in the bench app's directory): ``python profiled.py daphne ARGS...`` or
``python profiled.py worker runworker ARGS...``.
"""

import cProfile
import os
import pstats
import runpy
import signal
import sys
import threading

profiles: list[cProfile.Profile] = []
state = {"on": False}


def _thread_started(*_args):
    sys.setprofile(None)
    if state["on"]:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()


def start(_signo, _frame):
    if state["on"]:
        return
    state["on"] = True
    profile = cProfile.Profile()
    profiles.append(profile)
    profile.enable()
    threading.setprofile(_thread_started)


def stop(_signo, _frame):
    state["on"] = False
    threading.setprofile(None)
    stats = None
    for profile in profiles:
        profile.disable()
        profile.create_stats()
        if stats is None:
            stats = pstats.Stats(profile)
        else:
            stats.add(profile)
    if stats is not None:
        stats.dump_stats(os.environ["PROF_OUT"])
    with open(os.environ["PROF_OUT"] + ".done", "w") as done:
        done.write(str(len(profiles)))


signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
sys.path.insert(0, os.getcwd())
if sys.argv[1] == "daphne":
    sys.argv = ["daphne", *sys.argv[2:]]
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()
else:
    sys.argv = ["manage.py", *sys.argv[2:]]
    runpy.run_path("manage.py", run_name="__main__")
