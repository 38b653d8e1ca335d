#!/usr/bin/env python3
"""Runs SQLAlchemy's dialect compliance suite against Tardigrade (issue 13)
and compares the outcome with expected_failures.txt.

    python3 run.py postgresql+psycopg://root@HOST:PORT/defaultdb?sslmode=disable
    python3 run.py URL --subset        # the subset CI runs (SUBSET below)
    python3 run.py URL -k EXPR         # any pytest -k selection
    python3 run.py URL --update        # rewrite expected_failures.txt

Exits non-zero when a test fails that is not listed in expected_failures.txt,
or when a listed test that ran did not fail (passed or was skipped); it
prints the lines to add or remove. Listed tests that did not run (outside the
selection) are ignored. Prints the total / passed / failed / errored /
skipped counts either way.

Each line of expected_failures.txt is a test id, `Class::test[params]`
(the class name without the `_postgresql+psycopg_15_0` suffix the plugin
appends), then `  # TODO(issue 13): cause`.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = os.path.join(HERE, "expected_failures.txt")

# The subset `cargo test` runs (crates/cli/tests/sqlalchemy_suite.rs): a
# pytest -k expression over suite classes, chosen to stay well under three
# minutes in a debug build. The full suite: run.py without --subset.
SUBSET = " or ".join(
    [
        "ExistsTest",
        "FetchLimitOffsetTest",
        "InsertBehaviorTest",
        "LastrowidTest",
        "ReturningTest",
        "RowFetchTest",
        "RowCountTest",
        "SimpleUpdateDeleteTest",
        "DateTest",
        "IntegerTest",
        "StringTest",
        "TextTest",
        "BooleanTest",
        "NumericTest",
        "CTETest",
        "CompoundSelectTest",
        "OrderByLabelTest",
        "LikeFunctionsTest",
        "HasTableTest",
        "TableNoColumnsTest",
    ]
)

_SUFFIX = re.compile(r"_postgresql\+[a-z0-9]+(?:_\d+)+$")


def test_id(classname, name):
    """`Class::test[params]` from a junit testcase."""
    cls = classname.rsplit(".", 1)[-1]
    return f"{_SUFFIX.sub('', cls)}::{name}"


def read_expected():
    """{test id: full line} from expected_failures.txt."""
    expected = {}
    if not os.path.exists(EXPECTED):
        return expected
    with open(EXPECTED, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            body = line.split("  #", 1)[0].strip()
            if not body or body.startswith("#"):
                continue
            expected[body] = line
    return expected


def first_line(text):
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            return line[:200]
    return "(no message)"


def run_pytest(url, selection, timeout, junit, hang_file):
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--rootdir",
        HERE,
        "-c",
        os.path.join(HERE, "setup.cfg"),
        "-q",
        "-rN",
        "--junitxml",
        junit,
        "--dburi",
        url,
        os.path.join(HERE, "test_suite.py"),
    ]
    if selection:
        cmd[-1:-1] = ["-k", selection]
    env = dict(os.environ, SQLA_SUITE_HANG_FILE=hang_file)
    started = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout
    )
    elapsed = time.monotonic() - started
    return proc, elapsed


def outcomes(junit):
    """{test id: (outcome, message)}; outcome is passed, failed, error or skipped."""
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        tid = test_id(case.get("classname", ""), case.get("name", ""))
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                message = child.get("message") or child.text or ""
                break
            if child.tag == "skipped":
                outcome, message = "skipped", child.get("message") or ""
        prev = result.get(tid)
        # A test that failed and also errored in teardown keeps the failure.
        if prev is None or prev[0] in ("passed", "skipped"):
            result[tid] = (outcome, message)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="postgresql+psycopg://… URL of a Tardigrade node")
    ap.add_argument("--subset", action="store_true", help="run the CI subset")
    ap.add_argument("-k", dest="expr", help="pytest -k expression")
    ap.add_argument("--timeout", type=int, default=3600, help="whole-run limit (s)")
    ap.add_argument(
        "--update",
        action="store_true",
        help="rewrite expected_failures.txt from this (full) run",
    )
    args = ap.parse_args()
    selection = SUBSET if args.subset else args.expr

    with tempfile.TemporaryDirectory() as tmp:
        junit = os.path.join(tmp, "junit.xml")
        hang_file = os.path.join(tmp, "running.txt")
        proc, elapsed = run_pytest(args.url, selection, args.timeout, junit, hang_file)
        if not os.path.exists(junit) and os.path.exists(hang_file + ".stacks"):
            with open(hang_file + ".stacks", encoding="utf-8") as f:
                stacks = f.read()
            if stacks:
                with open(hang_file, encoding="utf-8") as f:
                    hung = f.read().strip()
                print(stacks[-4000:])
                print(
                    f"\n{hung} did not finish within $SQLA_SUITE_TEST_TIMEOUT "
                    "(conftest.py); the run stopped there. Find the cause, then add:\n"
                    f"{hung}  # TODO(issue 13): HANGS: <cause>"
                )
                return 1
        # pytest: 0 all passed, 1 some failed; anything else is a broken run.
        if proc.returncode not in (0, 1) or not os.path.exists(junit):
            print(proc.stdout[-6000:])
            print(proc.stderr[-6000:], file=sys.stderr)
            print(f"pytest exited with {proc.returncode}", file=sys.stderr)
            return 2
        result = outcomes(junit)

    counts = {k: 0 for k in ("passed", "failed", "error", "skipped")}
    for outcome, _ in result.values():
        counts[outcome] += 1
    print(
        f"SQLAlchemy compliance suite ({'subset' if selection else 'full'}, "
        f"{elapsed:.0f}s): total {len(result)}, passed {counts['passed']}, "
        f"failed {counts['failed']}, errored {counts['error']}, "
        f"skipped {counts['skipped']}"
    )

    expected = read_expected()
    failing = {t: m for t, (o, m) in result.items() if o in ("failed", "error")}

    if args.update:
        write_expected(failing, expected)
        print(f"wrote {EXPECTED}: {len(failing)} lines")
        return 0

    expected = {t: line for t, line in expected.items() if "TODO(issue 13): HANGS" not in line}
    add = sorted(t for t in failing if t not in expected)
    remove = sorted(
        t for t in expected if t in result and result[t][0] not in ("failed", "error")
    )
    if add:
        print(f"\n{len(add)} test(s) fail but are not in expected_failures.txt; add:")
        for t in add:
            print(f"{t}  # TODO(issue 13): {cause_of(failing[t])}")
    if remove:
        print(f"\n{len(remove)} listed test(s) no longer fail; remove from expected_failures.txt:")
        for t in remove:
            print(f"{expected[t]}    [now {result[t][0]}]")
    if add or remove:
        return 1
    listed_run = sum(1 for t in expected if t in result)
    print(f"matches expected_failures.txt ({listed_run} listed failures ran)")
    return 0


def cause_of(message):
    """A short cause from an error message, so equal causes group."""
    text = first_line(message)
    setup = text.startswith('failed on setup with "')
    if setup:
        text = text[len('failed on setup with "') :]
    text = re.sub(r"^sqlalchemy\.exc\.\w+: ", "", text)
    text = re.sub(r"^\(psycopg\.errors\.(\w+)\) ", r"\1: ", text)
    text = re.sub(r"(unsupported statement: [A-Z]+(?: [A-Z]+)?(?: [A-Z]+)?) .*", r"\1", text)
    text = re.sub(r'relation "\d+"', 'relation "<n>"', text)
    text = text.rstrip('"')[:120]
    return ("in setup: " if setup else "") + text


def write_expected(failing, expected):
    """Keeps the cause of lines already listed; new lines get the first line
    of their error. Grouped by cause, then sorted by id."""
    rows = []
    for t, message in failing.items():
        old = expected.get(t)
        if old and "# TODO(issue 13):" in old:
            cause = old.split("# TODO(issue 13):", 1)[1].strip()
        else:
            cause = cause_of(message)
        rows.append((cause, t))
    # HANGS lines are deselected, so never among the failures: keep them.
    for t, line in expected.items():
        if "TODO(issue 13): HANGS" in line:
            rows.append((line.split("# TODO(issue 13):", 1)[1].strip(), t))
    rows.sort()
    with open(EXPECTED, "w", encoding="utf-8") as f:
        f.write(
            "# SQLAlchemy compliance-suite tests that fail against Tardigrade\n"
            "# (issue 13). run.py fails when this list drifts either way.\n"
            "# One test id per line, then its cause; grouped by cause.\n"
        )
        previous = None
        for cause, t in rows:
            if cause != previous:
                f.write("\n")
                previous = cause
            f.write(f"{t}  # TODO(issue 13): {cause}\n")


if __name__ == "__main__":
    sys.exit(main())
