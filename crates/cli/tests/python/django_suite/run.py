#!/usr/bin/env python3
"""Runs Django's own test suite (the `tests/` directory of Django's source
distribution) for a fixed list of apps against a Tardigrade node (issue 13),
and compares the outcome with expected_failures.txt.

    python3 run.py HOST:PORT --tests-dir DIR            # every app of FULL
    python3 run.py HOST:PORT --tests-dir DIR --subset   # the apps CI runs
    python3 run.py HOST:PORT --tests-dir DIR --apps basic,lookup
    python3 run.py HOST:PORT --tests-dir DIR --update   # rewrite the list

DIR is `django-<version>/tests` of the sdist of the installed Django
(`.ci/run` fetches it). Each app runs on its own (`runtests.py APP`), so an
app whose test database cannot be set up (a model field type Tardigrade
lacks) is one entry, `APP (setup)`, and the others still run.

Exits non-zero when a test fails or errors that is not listed, or when a
listed test that ran did not fail (it passed or was skipped); prints the
lines to add or remove. Listed tests that did not run (apps outside the
selection) are ignored. Prints per-app and total counts either way.

Each line of expected_failures.txt is a test id (`app.tests.Class.test`),
then `  # TODO(issue 13): cause`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = os.path.join(HERE, "expected_failures.txt")

# The apps the issue names. SUBSET: those `cargo test` runs (a few seconds
# each in a debug build).
FULL = [
    "basic",
    "queries",
    "expressions",
    "aggregation",
    "annotations",
    "lookup",
    "model_fields",
    "transactions",
    "migrations",
    "schema",
    "backends",
]
SUBSET = ["basic", "transactions", "lookup", "annotations", "aggregation", "expressions", "backends"]

FAILING = ("fail", "error", "xpass")


def read_expected():
    out = {}
    if not os.path.exists(EXPECTED):
        return out
    with open(EXPECTED) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            test, _, cause = line.partition("  # ")
            out[test.strip()] = cause.strip()
    return out


def run_app(app, args, env):
    """Runs one app; returns {id: (status, message)} and the seconds taken."""
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    os.unlink(path)
    env = dict(env, DJANGO_SUITE_OUTCOMES=path)
    cmd = [
        sys.executable,
        "runtests.py",
        "--settings=settings_tardigrade",
        "--parallel=1",
        "--noinput",
        "-v",
        "0",
        app,
    ]
    start = time.time()
    try:
        proc = subprocess.run(
            cmd,
            cwd=args.tests_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
        tail = [l for l in (proc.stderr or "").splitlines() if l.strip()]
        last = tail[-1].strip() if tail else "exit %d" % proc.returncode
    except subprocess.TimeoutExpired:
        last = "timed out after %ds" % args.timeout
    took = time.time() - start
    if not os.path.exists(path):
        return {"%s (setup)" % app: ("error", " ".join(last.split())[:200])}, took
    with open(path) as f:
        outcomes = {k: tuple(v) for k, v in json.load(f).items()}
    os.unlink(path)
    return outcomes, took


def main():
    p = argparse.ArgumentParser()
    p.add_argument("addr", help="HOST:PORT of a Tardigrade node's SQL port")
    p.add_argument("--tests-dir", required=True)
    p.add_argument("--subset", action="store_true")
    p.add_argument("--apps")
    p.add_argument("--update", action="store_true")
    p.add_argument("--timeout", type=int, default=900, help="seconds per app")
    args = p.parse_args()
    host, _, port = args.addr.rpartition(":")
    apps = args.apps.split(",") if args.apps else (SUBSET if args.subset else FULL)
    env = dict(
        os.environ,
        PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""),
        TARDIGRADE_HOST=host or "127.0.0.1",
        TARDIGRADE_PORT=port,
    )
    expected = read_expected()
    outcomes = {}
    counts = []
    for app in apps:
        got, took = run_app(app, args, env)
        outcomes.update(got)
        n = {s: sum(1 for v in got.values() if v[0] == s) for s in ("ok", "fail", "error", "skip", "xfail", "xpass")}
        counts.append((app, len(got), n, took))
    total = {s: sum(c[2][s] for c in counts) for s in ("ok", "fail", "error", "skip", "xfail", "xpass")}
    print(
        "Django test suite (%s, %ds): %d tests, passed %d, failed %d, errored %d, skipped %d, expected failures %d"
        % (
            "subset" if args.subset else ",".join(apps) if args.apps else "full",
            sum(c[3] for c in counts),
            sum(c[1] for c in counts),
            total["ok"],
            total["fail"] + total["xpass"],
            total["error"],
            total["skip"],
            total["xfail"],
        )
    )
    for app, n_tests, n, took in counts:
        print(
            "  %-14s %5d tests  %5d ok  %4d failed  %4d errors  %4d skipped  (%.0fs)"
            % (app, n_tests, n["ok"], n["fail"] + n["xpass"], n["error"], n["skip"], took)
        )
    failing = {k: v for k, v in outcomes.items() if v[0] in FAILING}
    new = sorted(k for k in failing if k not in expected)
    fixed = sorted(k for k in expected if k in outcomes and k not in failing)
    if args.update:
        kept = {k: c for k, c in expected.items() if k not in outcomes}
        for k, v in failing.items():
            kept[k] = expected.get(k) or "TODO(issue 13): %s" % v[1]
        with open(EXPECTED, "w") as f:
            f.write(
                "# Django test-suite tests that fail on Tardigrade (run.py), each with\n"
                "# its cause. The run fails when this list and the outcome differ.\n"
            )
            for k in sorted(kept):
                f.write("%s  # %s\n" % (k, kept[k]))
        print("rewrote %s: %d entries" % (EXPECTED, len(kept)))
        return 0
    ok = True
    if new:
        ok = False
        print("\n%d test(s) fail that are not in expected_failures.txt:" % len(new))
        for k in new:
            print("%s  # TODO(issue 13): %s" % (k, failing[k][1]))
    if fixed:
        ok = False
        print("\n%d listed test(s) no longer fail; remove from expected_failures.txt:" % len(fixed))
        for k in fixed:
            print("%s  # %s    [now %s]" % (k, expected[k], outcomes[k][0]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
