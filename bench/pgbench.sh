#!/usr/bin/env bash
# pgbench against Tardigrade and against PostgreSQL 15, on this machine, same
# scale and clients, fsync on for both. Prints a table of tps and ratios.
#
#   bench/pgbench.sh                 # Tardigrade single node (on-disk store)
#   NODES=3 bench/pgbench.sh         # a 3-node Tardigrade cluster (3 stores, one machine)
#   SCALE=10 CLIENTS=8 DURATION=30 bench/pgbench.sh   # the defaults
#   TG_BIN=path/to/tardigrade bench/pgbench.sh        # skip the release build
#
# Each system gets `pgbench -i -I dtgp -s $SCALE` (drop, create tables, generate
# data client-side with COPY, primary keys), then `pgbench -n -c $CLIENTS -T
# $DURATION` (TPC-B-like) and `pgbench -n -S -c $CLIENTS -T $DURATION`
# (select-only). PostgreSQL runs from a fresh initdb in a temporary directory
# (as the `postgres` user when run as root). Logs stay in $WORK (printed).
set -uo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-8}
DURATION=${DURATION:-30}
NODES=${NODES:-1}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGPORT=${PGPORT:-55432}
TG_SQL_PORT=${TG_SQL_PORT:-36257}
TG_KV_PORT=${TG_KV_PORT:-36258}

command -v pgbench >/dev/null || { echo "pgbench not found (apt-get install postgresql-client postgresql-15)"; exit 1; }
[ -x "$PGBIN/initdb" ] || { echo "$PGBIN/initdb not found (apt-get install postgresql-15)"; exit 1; }

WORK=$(mktemp -d /tmp/pgbench.XXXXXX)
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

if [ -n "${TG_BIN:-}" ]; then
    TG=$TG_BIN   # e.g. a debug build, to check the script quickly
else
    echo "== building tardigrade (release)"
    cargo build --release -q -p tardigrade || exit 1
    TG=target/release/tardigrade
fi

# --- PostgreSQL 15
mkdir -p "$WORK/pg" && chown "$( [ -n "$RUNAS" ] && echo postgres || id -un )" "$WORK/pg"
$RUNAS "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; exit 1; }
$RUNAS "$PGBIN/pg_ctl" -D "$WORK/pg" -w -l "$WORK/pg/server.log" \
    -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=100" start >/dev/null || exit 1
PG_URL="postgresql://postgres@127.0.0.1:$PGPORT/postgres?sslmode=disable"

# --- Tardigrade
if [ "$NODES" -eq 1 ]; then
    $TG start-single-node --insecure --store="$WORK/tg1" --listen-addr="127.0.0.1:$TG_KV_PORT" \
        --sql-addr="127.0.0.1:$TG_SQL_PORT" >"$WORK/tg1.log" 2>&1 &
    PIDS+=($!)
else
    for i in $(seq 1 "$NODES"); do
        $TG start --insecure --store="$WORK/tg$i" --listen-addr="127.0.0.1:$((TG_KV_PORT + 10 * i))" \
            --http-addr="127.0.0.1:$((TG_KV_PORT + 10 * i + 1))" --sql-addr="127.0.0.1:$((TG_SQL_PORT + i - 1))" \
            --join="127.0.0.1:$((TG_KV_PORT + 10))" >"$WORK/tg$i.log" 2>&1 &
        PIDS+=($!)
    done
    sleep 1
    $TG init --host="127.0.0.1:$((TG_KV_PORT + 10))" >"$WORK/init.log" 2>&1
fi
TG_URL="postgresql://root@127.0.0.1:$TG_SQL_PORT/defaultdb?sslmode=disable"
for _ in $(seq 1 100); do
    psql -X -q -d "$TG_URL" -c "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.2
done

# run NAME URL: prints "init_seconds tpcb_tps select_tps" (or "failed")
run() {
    local name=$1 url=$2 t0 t1 tpcb sel
    t0=$(date +%s.%N)
    if ! pgbench -i -I dtgp -s "$SCALE" "$url" >"$WORK/$name-init.log" 2>&1; then
        echo "failed failed failed"
        return
    fi
    t1=$(date +%s.%N)
    tpcb=$(pgbench -n -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" "$url" 2>"$WORK/$name-tpcb.err" | tee "$WORK/$name-tpcb.log" | awk '/^tps = /{print $3; exit}')
    sel=$(pgbench -n -S -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" "$url" 2>"$WORK/$name-select.err" | tee "$WORK/$name-select.log" | awk '/^tps = /{print $3; exit}')
    echo "$(echo "$t1 - $t0" | bc) ${tpcb:-failed} ${sel:-failed}"
}

echo "== PostgreSQL 15 (scale $SCALE, $CLIENTS clients, ${DURATION}s)"
read -r pg_init pg_tpcb pg_sel < <(run postgres "$PG_URL")
echo "== Tardigrade ($NODES node(s))"
read -r tg_init tg_tpcb tg_sel < <(run tardigrade "$TG_URL")

ratio() { if [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]]; then echo "scale=3; $2 / $1" | bc; else echo "-"; fi; }
echo
echo "| pgbench (scale $SCALE, $CLIENTS clients, ${DURATION}s) | PostgreSQL 15 | Tardigrade ($NODES node) | Tardigrade / PostgreSQL |"
echo "|---|---:|---:|---:|"
echo "| init -I dtgp (seconds) | $pg_init | $tg_init | $(ratio "$pg_init" "$tg_init") |"
echo "| TPC-B-like (tps) | $pg_tpcb | $tg_tpcb | $(ratio "$pg_tpcb" "$tg_tpcb") |"
echo "| select-only -S (tps) | $pg_sel | $tg_sel | $(ratio "$pg_sel" "$tg_sel") |"
if [ "$tg_init" = failed ]; then
    echo; echo "Tardigrade pgbench -i failed:"; tail -5 "$WORK/tardigrade-init.log"
fi
