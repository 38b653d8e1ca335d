"""Loads SQLAlchemy's pytest plugin, which reads setup.cfg's [sqla_testing]
and [db] sections and the --dburi / --requirements options (issue 13).

Two additions for Tardigrade:

* the PostgreSQL provisioning hook runs `CREATE EXTENSION IF NOT EXISTS
  citext` and `hstore` on the test engine; Tardigrade has no extensions, so
  the hook here runs them but tolerates their failure (the tests using those
  types then fail on their own and are listed in expected_failures.txt);
* a per-test timeout ($SQLA_SUITE_TEST_TIMEOUT seconds, default 60), so a
  hung test is named instead of stalling the run; tests whose cause in
  expected_failures.txt starts with "HANGS" are deselected.
"""

import faulthandler
import os
import re
import sys
import tempfile

import pytest

# requirements.py lives next to this file; the plugin imports it by name.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

pytest.register_assert_rewrite("sqlalchemy.testing.assertions")

from sqlalchemy.testing.plugin.pytestplugin import *  # noqa: E402,F401,F403

from sqlalchemy import text  # noqa: E402
from sqlalchemy.dialects.postgresql import provision as _pg_provision  # noqa: E402
from sqlalchemy.testing.provision import post_configure_engine  # noqa: E402


@post_configure_engine.for_db("postgresql")
def _tolerant_extensions(url, engine, follower_ident):
    # TODO(issue 13): Tardigrade rejects CREATE EXTENSION (citext, hstore).
    for extension, _min_version in _pg_provision._extensions:
        try:
            with engine.connect() as conn:
                conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {extension}"))
                conn.commit()
        except Exception as err:  # noqa: BLE001
            print(f"note: CREATE EXTENSION {extension} failed: {err.__class__.__name__}")


TEST_TIMEOUT = int(os.environ.get("SQLA_SUITE_TEST_TIMEOUT", "60"))

# Tests listed in expected_failures.txt with a cause starting "HANGS" are
# deselected: a hung test holds Tardigrade's catalog and stalls every later
# test, so it cannot just fail.
_HERE = os.path.dirname(os.path.abspath(__file__))
_SUFFIX = re.compile(r"_postgresql\+[a-z0-9]+(?:_\d+)+$")


def _hanging():
    ids = set()
    path = os.path.join(_HERE, "expected_failures.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                body, _, cause = line.partition("  #")
                if "TODO(issue 13): HANGS" in cause and body.strip():
                    ids.add(body.strip())
    return ids


def _short_id(item):
    cls = item.cls.__name__ if item.cls else ""
    return f"{_SUFFIX.sub('', cls)}::{item.name}"


def pytest_collection_modifyitems(session, config, items):
    hanging = _hanging()
    if not hanging:
        return
    keep, drop = [], []
    for item in items:
        tid = _short_id(item)
        hangs = tid in hanging or tid.split("[", 1)[0] in hanging
        (drop if hangs else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# pytest captures fd 2 while a test runs, so the running test's id goes to
# _HANG_FILE and the stacks to _HANG_FILE.stacks (run.py reads them when
# pytest dies).
_HANG_FILE = os.environ.get(
    "SQLA_SUITE_HANG_FILE", os.path.join(tempfile.gettempdir(), "sqla_suite_hang.txt")
)
_hang_log = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if TEST_TIMEOUT <= 0:
        yield
        return
    # A test still running after TEST_TIMEOUT s is most likely blocked inside
    # psycopg's C wait loop, where no Python exception can reach it (and a
    # hung statement can leave Tardigrade's catalog unavailable to every
    # later test). So faulthandler prints the stacks and ends the run, and
    # the line below names the test; run.py reports it as HANGS.
    sys.stderr.write(f"\nSQLA_SUITE_RUNNING {_short_id(item)}\n")
    sys.stderr.flush()
    global _hang_log
    if _hang_log is None:
        _hang_log = open(_HANG_FILE + ".stacks", "w", encoding="utf-8")
    with open(_HANG_FILE, "w", encoding="utf-8") as f:
        f.write(f"{_short_id(item)}\n")
    faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True, file=_hang_log)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
