"""The conformance suite leaves Twisted's reactor runnable for twisted.trial (A-98, issue 13).

asgi_redis 1.4's test module puts a ``twisted.trial`` test case next to its conformance
class; trial runs the reactor itself and fails if it is already running in a thread.
"""

from __future__ import annotations

import unittest

import pytest
import twisted.trial.unittest
from twisted.internet import defer, reactor, task

from channels.layers.conformance import call_in_reactor


class _TrialCase(twisted.trial.unittest.TestCase):
    __test__ = False  # run by the test below, after call_in_reactor; not collected alone

    @defer.inlineCallbacks
    def test_runs_the_reactor(self):
        value = yield task.deferLater(reactor, 0.01, lambda: "late")
        self.assertEqual(value, "late")


def test_call_in_reactor_then_a_trial_test_case():
    """A-98: `call_in_reactor` returns the Deferred's result and leaves the reactor stopped,
    so a twisted.trial test case run afterwards in the same process passes."""
    if reactor.running:
        pytest.skip("an earlier test left the reactor running in a thread")
    assert call_in_reactor(lambda: task.deferLater(reactor, 0.01, lambda: 42)) == 42
    assert call_in_reactor(lambda value: value + 1, 1) == 2
    assert not reactor.running
    with pytest.raises(ZeroDivisionError):
        call_in_reactor(lambda: 1 / 0)
    result = unittest.TestResult()
    _TrialCase("test_runs_the_reactor").run(result)
    assert (result.errors, result.failures, result.testsRun) == ([], [], 1)
    assert not reactor.running
