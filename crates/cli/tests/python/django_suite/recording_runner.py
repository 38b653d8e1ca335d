"""A DiscoverRunner that writes each test's outcome to the JSON file named
by DJANGO_SUITE_OUTCOMES: {test id: [ok | fail | error | skip | xfail |
xpass, the error's last line]}. A class or module whose set-up fails is
one entry, its id being unittest's (`setUpClass (app.tests.Class)`)."""

import json
import os
import unittest

from django.test.runner import DiscoverRunner

OUTCOMES = {}


def _message(err):
    """The last line of an exception: its type and message."""
    exc = err[1]
    text = "%s: %s" % (type(exc).__name__, exc)
    return " ".join(text.split())[:200]


class RecordingResult(unittest.TextTestResult):
    def addSuccess(self, test):
        super().addSuccess(test)
        OUTCOMES.setdefault(test.id(), ["ok", ""])

    def addError(self, test, err):
        super().addError(test, err)
        OUTCOMES[test.id()] = ["error", _message(err)]

    def addFailure(self, test, err):
        super().addFailure(test, err)
        OUTCOMES[test.id()] = ["fail", _message(err)]

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        OUTCOMES[test.id()] = ["skip", reason]

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        OUTCOMES[test.id()] = ["xfail", ""]

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        OUTCOMES[test.id()] = ["xpass", "unexpected success"]

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            OUTCOMES[test.id()] = ["fail", _message(err)]


class RecordingRunner(DiscoverRunner):
    def get_resultclass(self):
        return RecordingResult

    def suite_result(self, suite, result, **kwargs):
        path = os.environ.get("DJANGO_SUITE_OUTCOMES")
        if path:
            with open(path, "w") as f:
                json.dump(OUTCOMES, f, indent=0, sort_keys=True)
        return super().suite_result(suite, result, **kwargs)
