#!/usr/bin/env bash
# TPC-H on one Tardigrade node (start-single-node, on disk) and on PostgreSQL
# 15 loaded with the same generated data, on this machine: loads both, then
# `workload run tpch --expected-url` runs each query on both and compares the
# results (per query: rows, Tardigrade ms, PostgreSQL ms, OK/FAIL/ERROR).
#
#   bench/tpch.sh path/to/tardigrade                 # scale factor 0.01
#   SF=0.1 TIMEOUT=5m QUERIES=1-22 bench/tpch.sh path/to/tardigrade
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: $0 TARDIGRADE_BIN"; exit 1; }
BIN=$(realpath "$1")
SF=${SF:-0.01}
TIMEOUT=${TIMEOUT:-5m}
QUERIES=${QUERIES:-1-22}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGPORT=${PGPORT:-55434}
TG_SQL_PORT=${TG_SQL_PORT:-36367}
TG_KV_PORT=${TG_KV_PORT:-36368}
WORK=$(mktemp -d /tmp/tpch.XXXXXX)
chmod 755 "$WORK"
echo "work directory: $WORK"
PIDS=()
RUNAS=""
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd -r -m postgres
    RUNAS="runuser -u postgres --"
fi
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    if [ -d "$WORK/pg" ]; then $RUNAS "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1; fi
    wait 2>/dev/null
}
trap cleanup EXIT

# PostgreSQL, loaded from the generated CSV files.
mkdir -p "$WORK/pg" && chown "$( [ -n "$RUNAS" ] && echo postgres || id -un )" "$WORK/pg"
$RUNAS "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; exit 1; }
$RUNAS "$PGBIN/pg_ctl" -D "$WORK/pg" -w -l "$WORK/pg/server.log" \
    -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c shared_buffers=1GB" start >/dev/null || exit 1
PGURL="postgresql://postgres@127.0.0.1:$PGPORT/postgres?sslmode=disable"
"$BIN" workload init tpch --scale-factor "$SF" --csv-dir "$WORK/csv" || exit 1
start=$(date +%s.%N)
(cd "$WORK/csv" && psql -X -q -d "$PGURL" -f load.sql) || exit 1
echo "postgres: loaded (with indexes and ANALYZE) in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $start}") s"

# Tardigrade.
"$BIN" start-single-node --insecure --store="$WORK/tg" --listen-addr="127.0.0.1:$TG_KV_PORT" \
    --sql-addr="127.0.0.1:$TG_SQL_PORT" >"$WORK/tg.log" 2>&1 &
PIDS+=($!)
TGURL="postgresql://root@127.0.0.1:$TG_SQL_PORT/defaultdb?sslmode=disable"
for _ in $(seq 1 100); do
    psql -X -q -d "$TGURL" -c "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.2
done
"$BIN" workload init tpch --scale-factor "$SF" --url "$TGURL" || exit 1
"$BIN" workload run tpch --url "$TGURL" --expected-url "$PGURL" \
    --queries "$QUERIES" --query-timeout "$TIMEOUT" | tee "$WORK/run.txt"
