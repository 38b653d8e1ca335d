#!/usr/bin/env bash
# Reads from each region of `tardigrade demo --global` (bench/global.md):
# starts the demo, keeps a table's lease (and the system range's) in
# us-east1, then times a point read with psql's \timing from a node of each
# region, as implicit transactions and inside one explicit transaction, and
# a one-row UPSERT.
#
# Usage: bench/global.sh [path/to/tardigrade] [first SQL port]
set -euo pipefail

BIN=${1:-target/release/tardigrade}
PORT=${2:-26257}
READS=21
WORK=$(mktemp -d)

"$BIN" demo --global --sql-port "$PORT" </dev/null >"$WORK/demo.out" 2>"$WORK/demo.err" &
DEMO=$!
trap 'kill -TERM $DEMO 2>/dev/null; wait $DEMO 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 300); do
    grep -q '^# Serving' "$WORK/demo.out" && break
    sleep 0.2
done
cat "$WORK/demo.out"
mapfile -t URLS < <(grep '^postgresql://' "$WORK/demo.out")
RPC=$(grep -o 'RPC [0-9.:]*' "$WORK/demo.out" | head -1 | cut -d' ' -f2)

psql -q -v ON_ERROR_STOP=1 "${URLS[0]}" <<'SQL'
CREATE TABLE kv (k INT PRIMARY KEY, v STRING);
ALTER TABLE kv CONFIGURE ZONE USING lease_preferences = '[[+region=us-east1]]';
ALTER RANGE system CONFIGURE ZONE USING lease_preferences = '[[+region=us-east1]]';
INSERT INTO kv VALUES (1, 'one');
SQL

# Until the table has its own range, replicated 3 ways, and the system range
# 5 ways, both with their leaseholder (or, for an idle range, their Raft
# leader) on n1-n3, i.e. in us-east1.
placed() {
    "$BIN" debug ranges --host="$RPC" | awk '
        $4 ~ /^n[123]($|\()/ && $2 == "/System" && split($NF, r, ",") >= 5 { sys_ok = 1 }
        $4 ~ /^n[123]($|\()/ && $2 == "/Table/101" && $3 == "/Table/102" && split($NF, r, ",") >= 3 { table_ok = 1 }
        END { exit !(sys_ok && table_ok) }'
}
for _ in $(seq 180); do
    placed && break
    sleep 1
done
"$BIN" debug ranges --host="$RPC"

# The median of the \timing figures psql prints for $READS statements,
# the first (which warms caches and may renew a lapsed lease) left out.
median() {
    grep '^Time:' | tail -n +2 | awk '{ print $2 }' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
reads() {
    for _ in $(seq "$READS"); do echo 'SELECT v FROM kv WHERE k = 1;'; done
}
# Each UPSERT changes the row (one that writes what is there already
# writes nothing).
writes() {
    for n in $(seq "$READS"); do echo "UPSERT INTO kv VALUES ($1, 'v$n');"; done
}

printf '\n| gateway | read, implicit transaction (median ms) | read in BEGIN…COMMIT, after the first (median ms) | UPSERT of one row (median ms) |\n|---|---|---|---|\n'
for i in 0 1 2; do
    region=$(grep -B1 -F "${URLS[$i]}" "$WORK/demo.out" | head -1 | sed 's/^# //; s/:$//')
    implicit=$({ echo '\timing on'; reads; } | psql -q "${URLS[$i]}" | median)
    explicit=$({ echo '\timing on'; echo 'BEGIN;'; reads; echo 'COMMIT;'; } | psql -q "${URLS[$i]}" | grep '^Time:' | sed '1d;$d' | median)
    upsert=$({ echo '\timing on'; writes $((i + 2)); } | psql -q "${URLS[$i]}" | median)
    echo "| $region | $implicit | $explicit | $upsert |"
done
