#!/usr/bin/env bash
# make bench: build in release mode, start a private PostgreSQL with production-like
# durability (fsync=on, synchronous_commit=on) on a free port, run jobcenter-bench against
# it (which starts the jobcenter components as separate processes), print one table, and
# tear everything down. Never part of make test: it measures, it asserts nothing.
#
# Environment:
#   BENCH_QUICK=1       smaller counts and shorter windows (a smoke run of the harness)
#   BENCH_ONLY=a,b      only these scenarios (spawn,pgbench,burndown,httpburn,latency,steady,api,
#                       schedule,logs,upload,history)
#   BENCH_HISTORY=1000000     finished-run levels of the history scenario (each beside an empty table)
#   BENCH_KEEP=1        keep the scratch directory (component logs, pgbench logs)
#   BENCH_STATEMENTS=1  load pg_stat_statements and print the costliest statements at the
#                       end (a diagnosis: it adds a little to every statement)
#   BENCH_PG_OPTS='-c log_min_duration_statement=4'   more server settings (a diagnosis;
#                       with BENCH_KEEP=1 the server log stays in the scratch directory)
# The table is also written to target/bench/table.md.
set -euo pipefail

JC_SCRIPT=bench
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd -- "$JC_ROOT"

# The run sandbox's outbound filter (the bench measures runs with the sandbox on and off).
[[ "$(id -u)" -ne 0 ]] || jc_apt_install nftables /usr/sbin/nft

SCRATCH=""
PG_CTL=""
PGDATA_DIR=""
DRIVER_PID=""

cleanup() {
    local status=$?
    if [[ -n "$DRIVER_PID" ]]; then
        # The driver leads its own process group, with the components it started.
        kill -TERM -- "-$DRIVER_PID" 2>/dev/null || true
    fi
    if [[ -n "$PG_CTL" && -n "$PGDATA_DIR" && -f "$PGDATA_DIR/postmaster.pid" ]]; then
        jc_as_pg_user "$PG_CTL" -D "$PGDATA_DIR" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [[ -n "$SCRATCH" ]]; then
        if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
            jc_say "kept $SCRATCH"
        else
            rm -rf -- "$SCRATCH"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    local port
    for _ in $(seq 1 50); do
        # Below Linux's ephemeral range (32768-60999), where a client socket's local port
        # cannot be bound by a listener even though nothing accepts on it.
        port=$((20000 + RANDOM % 12000))
        if ! (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    jc_die "no free port found"
}

ensure_tools() {
    if [[ "$(id -u)" -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
        jc_say "creating the system user 'postgres' (initdb refuses to run as root)"
        useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
            --shell /bin/sh postgres
    fi
    if ! jc_pg_versioned_bin initdb >/dev/null; then
        [[ "$(id -u)" -eq 0 ]] || jc_die "PostgreSQL server programs are missing: apt-get install postgresql"
        jc_say "installing PostgreSQL (apt-get)..."
        apt-get install -y postgresql >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y postgresql >/dev/null; }
    fi
    if ! command -v wrk >/dev/null 2>&1 && [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        jc_say "installing wrk, the HTTP load generator (apt-get)..."
        apt-get install -y wrk >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } ||
            jc_say "could not install wrk: the API scenario will be skipped"
    fi
}

machine() {
    local cpu mem
    cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    mem="$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    printf 'machine: %s cores, %s, %s RAM; load average at start: %s\n' \
        "$(nproc)" "${cpu:-unknown CPU}" "$mem" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

start_postgres() {
    local initdb port
    initdb="$(jc_pg_versioned_bin initdb)"
    PG_CTL="$(dirname -- "$initdb")/pg_ctl"
    PGBENCH="$(dirname -- "$initdb")/pgbench"
    PSQL="$(dirname -- "$initdb")/psql"
    PGDATA_DIR="$SCRATCH/pg"
    mkdir -p -- "$PGDATA_DIR"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown postgres:postgres -- "$PGDATA_DIR"
    fi
    chmod 700 -- "$PGDATA_DIR"
    jc_as_pg_user "$initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 --no-locale \
        >"$SCRATCH/initdb.log" 2>&1 || {
        cat -- "$SCRATCH/initdb.log" >&2
        jc_die "initdb failed"
    }
    # A port found free can be taken before the server binds it: try another one.
    local attempt preload=""
    [[ "${BENCH_STATEMENTS:-0}" == 1 ]] && preload="-c shared_preload_libraries=pg_stat_statements"
    for attempt in 1 2 3; do
        port="$(free_port)"
        PG_PORT="$port"
        # Durable commits as in production; memory settings of a small dedicated server;
        # checkpoints and autovacuum runs in the server log, to match against a slow figure.
        jc_as_pg_user "$PG_CTL" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=''" \
            -o "-c fsync=on -c synchronous_commit=on -c full_page_writes=on" \
            -o "-c shared_buffers=512MB -c max_wal_size=4GB -c max_connections=200 -c log_autovacuum_min_duration=0 -c log_checkpoints=on $preload ${BENCH_PG_OPTS:-}" \
            start >/dev/null && break
        if [[ "$attempt" == 3 ]]; then
            tail -n 20 -- "$PGDATA_DIR/server.log" >&2 || true
            jc_die "the bench PostgreSQL did not start"
        fi
        jc_say "PostgreSQL could not start on port $port; trying another"
    done
    if [[ -n "$preload" ]]; then
        "$PSQL" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE EXTENSION pg_stat_statements"
    fi
    jc_say "PostgreSQL $(cat -- "$PGDATA_DIR/PG_VERSION") on 127.0.0.1:$port (fsync=on, synchronous_commit=on), data in $PGDATA_DIR"
}

# BENCH_STATEMENTS=1: the 25 statements that took the most server time, over all scenarios.
costliest_statements() {
    "$PSQL" -h 127.0.0.1 -p "$PG_PORT" -U postgres -P pager=off -c "
        SELECT calls, round(total_exec_time) AS total_ms,
               round(mean_exec_time::numeric, 3) AS mean_ms, rows,
               left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25" >&2
}

main() {
    local started=$SECONDS table_out="$JC_ROOT/target/bench/table.md"
    ensure_tools
    jc_say "building in release mode..."
    cargo build --release --quiet -p jobcenter -p jobcenter-bench
    local built=$SECONDS
    # The build leaves hundreds of MB to write back: flushed now, not during the figures
    # (the bench PostgreSQL's commits wait for the same disk).
    sync
    SCRATCH="$(mktemp -d /var/tmp/jobcenter-bench.XXXXXX)"
    chmod 755 -- "$SCRATCH" # postgres must reach its data directory inside
    start_postgres
    mkdir -p -- "$(dirname -- "$table_out")" "$SCRATCH/work"
    machine | tee "$table_out.machine" >&2
    BENCH_PG_PORT="$PG_PORT" \
        BENCH_JOBCENTER="${BENCH_JOBCENTER:-$JC_ROOT/target/release/jobcenter}" \
        BENCH_PGBENCH="$PGBENCH" \
        BENCH_WRK="$(command -v wrk || true)" \
        BENCH_WORKDIR="$SCRATCH/work" \
        BENCH_TABLE_OUT="$table_out" \
        setsid "$JC_ROOT/target/release/jobcenter-bench" &
    DRIVER_PID=$!
    wait "$DRIVER_PID"
    DRIVER_PID=""
    [[ "${BENCH_STATEMENTS:-0}" == 1 ]] && costliest_statements
    {
        cat -- "$table_out.machine"
        printf 'command: %smake bench; took %d s: the release build %d s, the measurement %d s\n' \
            "$([[ "${BENCH_QUICK:-0}" == 1 ]] && echo 'BENCH_QUICK=1 ')" $((SECONDS - started)) \
            $((built - started)) $((SECONDS - built))
    } | tee -a "$table_out" >&2
    rm -f -- "$table_out.machine"
}

main "$@"
