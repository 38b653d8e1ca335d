#!/usr/bin/env bash
# Analytic queries over pgbench_accounts (scale 5: 500,000 rows) on one
# Tardigrade node per binary given, and on PostgreSQL 15, on this machine:
# each query runs 3 times, the median wall time (psql \timing) is printed.
# Measures the executor (scans, filters, aggregation, sort, joins, results
# streamed to the client) rather than KV writes.
#
#   bench/queries.sh path/to/tardigrade [path/to/other-tardigrade ...]
#   SCALE=5 bench/queries.sh ...                                  # the default
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 TARDIGRADE_BIN [TARDIGRADE_BIN ...]"; exit 1; }
SCALE=${SCALE:-5}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGPORT=${PGPORT:-55433}
TG_SQL_PORT=${TG_SQL_PORT:-36357}
TG_KV_PORT=${TG_KV_PORT:-36358}
WORK=$(mktemp -d /tmp/queries.XXXXXX)
chmod 755 "$WORK"
echo "work directory: $WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    if [ -d "$WORK/pg" ]; then $RUNAS "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1; fi
    wait 2>/dev/null
}
trap cleanup EXIT
RUNAS=""
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd -r -m postgres
    RUNAS="runuser -u postgres --"
fi

QUERIES=(
    "SELECT count(*) FROM pgbench_accounts"
    "SELECT sum(abalance), max(filler) FROM pgbench_accounts WHERE aid % 7 = 0"
    "SELECT bid, count(*), avg(abalance) FROM pgbench_accounts GROUP BY bid"
    "SELECT aid % 50000 AS g, count(*) FROM pgbench_accounts GROUP BY g ORDER BY g LIMIT 3"
    "SELECT aid, abalance FROM pgbench_accounts ORDER BY abalance DESC, aid LIMIT 10"
    "SELECT count(*) FROM pgbench_accounts a JOIN pgbench_branches b ON a.bid = b.bid WHERE b.bbalance = 0"
    "SELECT * FROM pgbench_accounts WHERE aid <= 200000"
)

# median_ms URL SQL: the median of 3 runs, in milliseconds.
median_ms() {
    local url=$1 sql=$2
    for _ in 1 2 3; do
        psql -X -q -d "$url" -o /dev/null -c '\timing on' -c "$sql" 2>&1 \
            | awk '/^Time: /{print $2}'
    done | sort -n | sed -n 2p
}

# bench NAME URL: loads pgbench tables, then times each query.
bench() {
    local name=$1 url=$2
    pgbench -i -I dtgp -s "$SCALE" "$url" >"$WORK/$name-init.log" 2>&1 || { echo "$name: init failed"; tail -3 "$WORK/$name-init.log"; return; }
    for q in "${QUERIES[@]}"; do
        echo "$name|$q|$(median_ms "$url" "$q")"
    done
}

mkdir -p "$WORK/pg" && chown "$( [ -n "$RUNAS" ] && echo postgres || id -un )" "$WORK/pg"
$RUNAS "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; exit 1; }
$RUNAS "$PGBIN/pg_ctl" -D "$WORK/pg" -w -l "$WORK/pg/server.log" \
    -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null || exit 1
bench postgres "postgresql://postgres@127.0.0.1:$PGPORT/postgres?sslmode=disable" | tee -a "$WORK/results"
$RUNAS "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1

i=0
for bin in "$@"; do
    i=$((i + 1))
    "$bin" start-single-node --insecure --store="$WORK/tg$i" --listen-addr="127.0.0.1:$TG_KV_PORT" \
        --sql-addr="127.0.0.1:$TG_SQL_PORT" >"$WORK/tg$i.log" 2>&1 &
    pid=$!
    url="postgresql://root@127.0.0.1:$TG_SQL_PORT/defaultdb?sslmode=disable"
    for _ in $(seq 1 100); do
        psql -X -q -d "$url" -c "SELECT 1" >/dev/null 2>&1 && break
        sleep 0.2
    done
    bench "tardigrade-$i" "$url" | tee -a "$WORK/results"
    kill "$pid"; wait "$pid" 2>/dev/null
done
echo
echo "| query (ms, median of 3) | PostgreSQL 15 | $(for i in $(seq 1 $#); do printf 'tardigrade-%s | ' "$i"; done)"
echo "|---|---:|$(for _ in $(seq 1 $#); do printf -- '---:|'; done)"
for q in "${QUERIES[@]}"; do
    row="| \`$q\` |"
    for name in postgres $(for i in $(seq 1 $#); do echo "tardigrade-$i"; done); do
        row="$row $(awk -F'|' -v n="$name" -v q="$q" '$1==n && $2==q {print $3}' "$WORK/results") |"
    done
    echo "$row"
done
