#!/usr/bin/env python3
"""Many-table join workload: SELECTs joining 4 to 60 tables through equality
predicates, tables of a few hundred rows, the FROM list in a random order (so
the written order is never a good join order).

    python3 bench/joins/many_joins.py --url postgresql://root@127.0.0.1:26257/defaultdb \
        [--tables 60] [--rows 300] [--queries 20] [--seed 1] [--setup] [--explain]

Prints per query: tables joined, rows returned, planning time (EXPLAIN) and
execution time; the same command against PostgreSQL gives its figures. With
--check-url the results are compared with that server's (row count and a
checksum of the returned values).
"""
import argparse
import random
import sys
import time

import psycopg


def setup(conn, tables, rows, seed):
    rng = random.Random(seed)
    with conn.cursor() as cur:
        for t in range(1, tables + 1):
            cur.execute(f"DROP TABLE IF EXISTS j{t}")
            cur.execute(f"CREATE TABLE j{t} (id INT PRIMARY KEY, a INT, b INT, c INT)")
            values = []
            for i in range(rows):
                # a: a foreign key into another table's ids; b, c: few values.
                values.append(f"({i}, {rng.randrange(rows)}, {rng.randrange(10)}, {rng.randrange(50)})")
            cur.execute(f"INSERT INTO j{t} VALUES " + ",".join(values))
    conn.commit()


def queries(tables, count, seed):
    """Each query: a random spanning tree over k tables, one equality per
    edge (child.a = parent.id, so joins are selective like foreign keys), a
    filter on one table, and the FROM list shuffled."""
    rng = random.Random(seed + 1000)
    sizes = [4, 6, 8, 10, 12, 16, 20, 30, 40, 50, 60]
    out = []
    for q in range(count):
        k = min(sizes[q % len(sizes)], tables)
        chosen = rng.sample(range(1, tables + 1), k)
        preds = []
        for i in range(1, k):
            parent = chosen[rng.randrange(i)]
            child = chosen[i]
            preds.append(f"j{child}.a = j{parent}.id")
        preds.append(f"j{chosen[0]}.b = {rng.randrange(10)}")
        order = chosen[:]
        rng.shuffle(order)
        rng.shuffle(preds)
        sql = (f"SELECT count(*), sum(j{chosen[-1]}.c) FROM "
               + ", ".join(f"j{t}" for t in order)
               + " WHERE " + " AND ".join(preds))
        out.append((k, sql))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--tables", type=int, default=60)
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--queries", type=int, default=22)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--setup", action="store_true")
    ap.add_argument("--analyze", action="store_true", help="ANALYZE every table after setup")
    ap.add_argument("--check-url")
    args = ap.parse_args()
    conn = psycopg.connect(args.url, autocommit=True)
    check = psycopg.connect(args.check_url, autocommit=True) if args.check_url else None
    if args.setup:
        t0 = time.time()
        setup(conn, args.tables, args.rows, args.seed)
        if check:
            setup(check, args.tables, args.rows, args.seed)
        print(f"setup: {args.tables} tables x {args.rows} rows in {time.time() - t0:.1f}s")
    if args.analyze:
        with conn.cursor() as cur:
            for t in range(1, args.tables + 1):
                cur.execute(f"ANALYZE j{t}")
    total_plan = total_exec = 0.0
    failures = 0
    for n, (k, sql) in enumerate(queries(args.tables, args.queries, args.seed)):
        with conn.cursor() as cur:
            t0 = time.time()
            cur.execute("EXPLAIN " + sql)
            cur.fetchall()
            plan = time.time() - t0
            t0 = time.time()
            cur.execute(sql)
            got = cur.fetchall()
            run = time.time() - t0
        total_plan += plan
        total_exec += run
        verdict = ""
        if check:
            with check.cursor() as cur:
                cur.execute(sql)
                want = cur.fetchall()
            norm = lambda rows: [tuple(None if v is None else int(v) for v in r) for r in rows]
            if norm(got) != norm(want):
                failures += 1
                verdict = f"  MISMATCH want {want}"
            else:
                verdict = "  ok"
        print(f"q{n + 1:02d} tables={k:2d} result={got[0]} plan={plan * 1000:8.1f} ms "
              f"exec={run * 1000:9.1f} ms{verdict}", flush=True)
    print(f"total: plan {total_plan:.2f}s exec {total_exec:.2f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
