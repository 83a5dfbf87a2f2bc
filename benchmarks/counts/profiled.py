"""Run daphne or ``manage.py runworker`` with cProfile switched by signals (PROFILE.md, session 6).

SIGUSR1 starts cProfile in the main thread and in every thread started afterwards;
SIGUSR2 stops it, writes the merged pstats to ``$PROF_OUT``, then ``$PROF_OUT.done``.
Usage (in the bench app's directory): ``python profiled.py daphne ARGS...`` or
``python profiled.py worker runworker ARGS...``.

``$PROF_REGION=module:Qualified.name`` (run_counts.py --region) runs that function
inside ``functools.reduce``, so that callgrind with ``--toggle-collect=functools_reduce``
counts the instructions of its calls alone (inclusive); nothing else calls reduce on
the hot paths.
"""

import cProfile
import functools
import importlib
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


def wrap_region(spec: str) -> None:
    import django

    django.setup()
    module_name, qualname = spec.split(":")
    owner = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    if isinstance(original, (staticmethod, classmethod)):
        raise SystemExit(f"{spec}: wrap the function a static or class method calls instead")
    reduce = functools.reduce

    @functools.wraps(original)
    def region(*args, **kwargs):
        return reduce(lambda _a, _b: original(*args, **kwargs), (None,), None)

    setattr(owner, name, region)


if os.environ.get("PROF_REGION"):
    sys.path.insert(0, os.getcwd())
    for spec in os.environ["PROF_REGION"].split(","):
        wrap_region(spec)

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
