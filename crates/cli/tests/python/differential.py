#!/usr/bin/env python3
"""Differential test harness: runs a corpus of SQL statements against
PostgreSQL 15 and Tardigrade and compares the results statement by statement
(issue 13). Run by `crates/cli/tests/differential.rs`; by hand:

    python3 differential.py PG_URL TARDIGRADE_URL [--corpus DIR]
        [--intentional FILE] [--known FILE] [--only STEM[,STEM...]]
        [--suggest] [--verbose]

The defaults for --corpus, --intentional and --known are
`../differential/corpus`, `../differential/intentional.txt` and
`../differential/known-failures.txt` next to this script.

Corpus format (`corpus/NN_feature.sql`): statements separated by a `;` at the
end of a line (a statement may span several lines); lines starting with `--`
are comments and skipped; blank lines are ignored. Each file runs in a fresh
database `diff_<stem>` on each server (PostgreSQL's with the C collation:
Tardigrade compares strings byte by byte), on one autocommit connection (so
explicit BEGIN / COMMIT / SAVEPOINT in the corpus work, and a statement after
an error inside a transaction runs in the aborted transaction), with
TimeZone=UTC.

Compared per statement: on success the column names, the rows (every value
fetched as text, so 1 and 1.0 differ; float4/float8 columns within a relative
tolerance of 1e-9) and, for statements other than SELECT/SHOW, the command
status tag (`INSERT 0 3`, `UPDATE 2`, ...); on error the SQLSTATE only. An
error on one side and success on the other is a difference.

Expectations files (intentional.txt, known-failures.txt): entries of the form

    FILE.sql: STATEMENT TEXT
      reason, one or more indented lines

keyed by the corpus file name and the statement's text with whitespace
collapsed to single spaces (a key ending in `...` matches every statement
starting with the text before it); `#` lines are comments. An entry matches
every statement of that file with that text. The run fails (exit 1) when a
difference is not listed in either file, and when a listed entry no longer
differs (the lists must not drift); it prints which entries to add or remove.
`--suggest` prints ready-made entries for the unlisted differences.
"""

import argparse
import math
import os
import re
import sys
import time

import psycopg
from psycopg.adapt import Loader
from psycopg.conninfo import make_conninfo

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "differential")
FLOAT_OIDS = {700, 701}
TOLERANCE = 1e-9


class RawText(Loader):
    """Loads every value as the text the server sent."""

    def load(self, data):
        if isinstance(data, memoryview):
            data = bytes(data)
        return data.decode("utf-8", "replace")


def text_oids():
    oids = set()
    for t in psycopg.postgres.types:
        oids.add(t.oid)
        if getattr(t, "array_oid", 0):
            oids.add(t.array_oid)
    return oids


TEXT_OIDS = text_oids()


def split_statements(path):
    """The statements of a corpus file: (line number, text) pairs."""
    stmts = []
    cur = []
    start = 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            stripped = line.strip()
            if not cur and (not stripped or stripped.startswith("--")):
                continue
            if stripped.startswith("--"):
                continue
            if not cur:
                start = n
            cur.append(line.rstrip("\n"))
            if stripped.endswith(";"):
                text = "\n".join(cur).strip()
                stmts.append((start, text[:-1].rstrip()))
                cur = []
    if cur:
        stmts.append((start, "\n".join(cur).strip()))
    return stmts


def normalize(sql):
    return " ".join(sql.split())


class Server:
    """One side of the comparison: an admin connection and the per-file
    database's connection."""

    def __init__(self, name, url, create_options=()):
        self.name = name
        self.url = url
        self.conn = None
        # Alternatives tried in turn after CREATE DATABASE name.
        self.create_options = list(create_options) or [""]

    def connect(self, dbname):
        conn = psycopg.connect(
            make_conninfo(self.url, dbname=dbname, options="-c TimeZone=UTC"),
            autocommit=True,
            connect_timeout=10,
        )
        for oid in TEXT_OIDS:
            conn.adapters.register_loader(oid, RawText)
        return conn

    @staticmethod
    def drop(admin, dbname):
        try:
            admin.execute(f"DROP DATABASE IF EXISTS {dbname}")
        except psycopg.errors.DependentObjectsStillExist:
            # Tardigrade (like CockroachDB) drops a non-empty database only
            # with CASCADE, which PostgreSQL does not accept.
            admin.execute(f"DROP DATABASE IF EXISTS {dbname} CASCADE")

    def fresh_db(self, dbname):
        with self.connect(None) as admin:
            self.drop(admin, dbname)
            for i, options in enumerate(self.create_options):
                try:
                    admin.execute(f"CREATE DATABASE {dbname}{options}")
                    break
                except psycopg.Error:
                    if i + 1 == len(self.create_options):
                        raise
        self.close()
        self.dbname = dbname
        self.conn = self.connect(dbname)

    def drop_db(self, dbname):
        self.close()
        try:
            with self.connect(None) as admin:
                self.drop(admin, dbname)
        except psycopg.Error:
            pass

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg.Error:
                pass
            self.conn = None

    def run(self, sql):
        """('ok', columns, rows, status, float columns) or ('error', sqlstate)."""
        if self.conn is None or self.conn.closed:
            try:
                self.conn = self.connect(self.dbname)
            except psycopg.Error as e:
                return ("error", f"connect failed: {e}")
        try:
            cur = self.conn.cursor()
            cur.execute(sql.encode("utf-8"), prepare=False)
            if cur.description is None:
                return ("ok", None, None, cur.statusmessage, set())
            cols = [d.name for d in cur.description]
            floats = {i for i, d in enumerate(cur.description) if d.type_code in FLOAT_OIDS}
            rows = [tuple(r) for r in cur.fetchall()]
            return ("ok", cols, rows, cur.statusmessage, floats)
        except psycopg.Error as e:
            state = getattr(e, "sqlstate", None)
            if state is None:
                # Lost connection or a client-side failure: reconnect next time.
                self.close()
                return ("error", f"client error {type(e).__name__}: {e}")
            return ("error", state)


def same_value(a, b, is_float):
    if a == b:
        return True
    if a is None or b is None or not is_float:
        return False
    try:
        fa, fb = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(fa) and math.isnan(fb):
        return True
    return math.isclose(fa, fb, rel_tol=TOLERANCE, abs_tol=1e-300)


def same_result(pg, tg):
    if pg[0] != tg[0]:
        return False
    if pg[0] == "error":
        return pg[1] == tg[1]
    _, pcols, prows, pstatus, pfloats = pg
    _, tcols, trows, tstatus, _ = tg
    if pcols != tcols:
        return False
    tag = (pstatus or "").split(" ")[0]
    if tag not in ("SELECT", "SHOW") and pstatus != tstatus:
        return False
    if prows is None or trows is None:
        return prows is None and trows is None
    if len(prows) != len(trows):
        return False
    for pr, tr in zip(prows, trows):
        if len(pr) != len(tr):
            return False
        for i, (a, b) in enumerate(zip(pr, tr)):
            if not same_value(a, b, i in pfloats):
                return False
    return True


def describe(pg, tg):
    """A one-line summary of how two results differ."""
    if pg[0] == "error" and tg[0] == "error":
        return f"SQLSTATE {pg[1]} here {tg[1]}"
    if pg[0] == "error":
        return f"postgres fails with {pg[1]}, tardigrade succeeds"
    if tg[0] == "error":
        return f"tardigrade fails with {tg[1]}"
    _, pcols, prows, pstatus, pfloats = pg
    _, tcols, trows, tstatus, _ = tg
    if pcols != tcols:
        return f"columns {pcols} here {tcols}"
    tag = (pstatus or "").split(" ")[0]
    if tag not in ("SELECT", "SHOW") and pstatus != tstatus:
        return f"status {pstatus!r} here {tstatus!r}"
    if prows is None or trows is None or len(prows) != len(trows):
        n = lambda rows: "no" if rows is None else len(rows)
        return f"{n(prows)} rows here {n(trows)}"
    for r, (pr, tr) in enumerate(zip(prows, trows), 1):
        for i, (a, b) in enumerate(zip(pr, tr)):
            if not same_value(a, b, i in pfloats):
                return f"row {r} {pcols[i]}: {a!r} here {b!r}"
    return "differs"


def show(result, limit=12):
    if result[0] == "error":
        return f"ERROR {result[1]}"
    _, cols, rows, status, _ = result
    if cols is None:
        return status or "(no status)"
    lines = [" | ".join(cols)]
    for r in rows[:limit]:
        lines.append(" | ".join("NULL" if v is None else v for v in r))
    if len(rows) > limit:
        lines.append(f"... ({len(rows)} rows)")
    lines.append(status or "")
    return "\n".join(lines)


class Expectations:
    """Entries of intentional.txt or known-failures.txt."""

    def __init__(self, path):
        self.path = path
        self.entries = []  # [file, key, reason, prefix, line, hits, diffs]
        if not path or not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
        for n, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t":
                if self.entries:
                    self.entries[-1]["reason"] += " " + line.strip()
                continue
            m = re.match(r"^([\w.-]+\.sql):\s*(.*)$", line.rstrip("\n"))
            if not m:
                sys.exit(f"{path}:{n}: expected 'FILE.sql: STATEMENT', got {line!r}")
            key = normalize(m.group(2))
            prefix = key.endswith("...")
            if prefix:
                key = key[:-3].rstrip()
            self.entries.append(
                {"file": m.group(1), "key": key, "prefix": prefix, "reason": "",
                 "line": n, "seen": 0, "differs": 0}
            )
        for e in self.entries:
            if not e["reason"].strip():
                sys.exit(f"{path}:{e['line']}: entry without a reason")

    def find(self, file, sql):
        norm = normalize(sql)
        for e in self.entries:
            if e["file"] != file:
                continue
            if norm == e["key"] or (e["prefix"] and norm.startswith(e["key"])):
                return e
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pg_url")
    ap.add_argument("tg_url")
    ap.add_argument("--corpus", default=os.path.join(DEFAULT_DIR, "corpus"))
    ap.add_argument("--intentional", default=os.path.join(DEFAULT_DIR, "intentional.txt"))
    ap.add_argument("--known", default=os.path.join(DEFAULT_DIR, "known-failures.txt"))
    ap.add_argument("--only", help="comma-separated corpus file stems to run")
    ap.add_argument("--suggest", action="store_true",
                    help="print expectation entries for the unlisted differences")
    ap.add_argument("--verbose", action="store_true",
                    help="also print the listed differences")
    args = ap.parse_args()

    intentional = Expectations(args.intentional)
    known = Expectations(args.known)
    files = sorted(f for f in os.listdir(args.corpus) if f.endswith(".sql"))
    if args.only:
        wanted = set(args.only.split(","))
        files = [f for f in files if f[:-4] in wanted or f in wanted]
    # Tardigrade compares strings byte by byte: PostgreSQL's databases use
    # the C collation (with UTF-8 case mapping where the system has it).
    pg = Server("postgres", args.pg_url, [
        " TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.UTF-8'",
        " TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
    ])
    tg = Server("tardigrade", args.tg_url)

    totals = [0, 0, 0, 0, 0]  # statements, match, intentional, known, unexpected
    unexpected = []
    started = time.time()
    for file in files:
        stem = file[:-4]
        dbname = "diff_" + re.sub(r"[^a-z0-9_]", "_", stem.lower())
        stmts = split_statements(os.path.join(args.corpus, file))
        pg.fresh_db(dbname)
        tg.fresh_db(dbname)
        counts = [len(stmts), 0, 0, 0, 0]
        for i, (line, sql) in enumerate(stmts, 1):
            rp = pg.run(sql)
            rt = tg.run(sql)
            same = same_result(rp, rt)
            entry = intentional.find(file, sql)
            which = 2
            if entry is None:
                entry = known.find(file, sql)
                which = 3
            if entry is not None:
                entry["seen"] += 1
            if same:
                counts[1] += 1
                continue
            if entry is not None:
                entry["differs"] += 1
                counts[which] += 1
                if args.verbose:
                    print(f"--- listed: {file} #{i} (line {line}): {describe(rp, rt)}")
                    print(f"    reason: {entry['reason'].strip()}")
                    print(sql)
                    print(f"postgres:\n{show(rp)}\ntardigrade:\n{show(rt)}\n")
                continue
            counts[4] += 1
            unexpected.append((file, i, line, sql, rp, rt))
        pg.drop_db(dbname)
        tg.drop_db(dbname)
        for k in range(5):
            totals[k] += counts[k]
        print(f"{file}: {counts[0]} statements, {counts[1]} match, {counts[2]} intentional, "
              f"{counts[3]} known failures, {counts[4]} unexpected", flush=True)
    print(f"TOTAL: {totals[0]} statements, {totals[1]} match, {totals[2]} intentional, "
          f"{totals[3]} known failures, {totals[4]} unexpected "
          f"({time.time() - started:.1f} s)")

    failed = False
    for file, i, line, sql, rp, rt in unexpected:
        failed = True
        print(f"\n=== UNEXPECTED DIFFERENCE: {file} statement #{i} (line {line}): "
              f"{describe(rp, rt)}")
        print(sql)
        print(f"--- postgres:\n{show(rp)}")
        print(f"--- tardigrade:\n{show(rt)}")
    ran = set(files)
    for exp in (intentional, known):
        for e in exp.entries:
            if e["file"] not in ran:
                continue
            if e["seen"] == 0:
                failed = True
                print(f"\n=== STALE ENTRY (no such statement; remove it): "
                      f"{exp.path}:{e['line']}: {e['file']}: {e['key']}")
            elif e["differs"] == 0:
                failed = True
                print(f"\n=== NOW MATCHES (remove the entry): "
                      f"{exp.path}:{e['line']}: {e['file']}: {e['key']}")
    if args.suggest and unexpected:
        print("\n# Suggested entries:")
        seen = set()
        for file, i, line, sql, rp, rt in unexpected:
            key = (file, normalize(sql))
            if key in seen:
                continue
            seen.add(key)
            print(f"{file}: {normalize(sql)}")
            print(f"  TODO(issue 13): {describe(rp, rt)}")
    if failed:
        print("\nFAILED: the differences above are not listed in "
              f"{os.path.basename(args.intentional)} / {os.path.basename(args.known)}, "
              "or listed entries no longer differ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
