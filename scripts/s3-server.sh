#!/usr/bin/env bash
# A real S3-compatible server for the tests: a single-node Garage (a production
# self-hosted S3 store) on loopback, with a throw-away layout, key and bucket.
#
#   scripts/s3-server.sh start   install Garage if missing (cargo install, 20-30 min once),
#                                start it under data/garage, print the variables to export
#   scripts/s3-server.sh stop    stop it
#
# Ports (loopback): S3 JOBCENTER_GARAGE_PORT (default 3900, or the next free block), RPC +1,
# admin +3.
set -euo pipefail

JC_SCRIPT=s3-server # read by lib.sh
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

dir="$JC_DATA/garage"
config="$dir/garage.toml"
pidfile="$dir/garage.pid"
bucket="jobcenter-test"

garage_bin() {
    local found
    found="$(command -v garage 2>/dev/null || true)"
    [[ -z "$found" && -x "$HOME/.cargo/bin/garage" ]] && found="$HOME/.cargo/bin/garage"
    printf '%s' "$found"
}

install_garage() {
    jc_say "installing Garage from crates.io (cargo install garage --locked); this takes 20-30 minutes once"
    cargo install garage --locked >"$JC_DATA/garage-install.log" 2>&1 ||
        jc_die "cargo install garage failed; see $JC_DATA/garage-install.log"
}

running() {
    [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

g() { "$(garage_bin)" -c "$config" "$@"; }

write_config() {
    mkdir -p "$dir/meta" "$dir/data"
    [[ -f "$dir/rpc-secret" ]] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/rpc-secret"
    cat >"$config" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$((port + 1))"
rpc_public_addr = "127.0.0.1:$((port + 1))"
rpc_secret = "$(cat "$dir/rpc-secret")"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((port + 3))"
TOML
}

# The key the tests sign with, generated once: Garage key ids are GK + 24 hex digits.
ensure_key_files() {
    [[ -f "$dir/key-id" ]] || printf 'GK%s' "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/key-id"
    [[ -f "$dir/key-secret" ]] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/key-secret"
}

# The S3 port: the one this instance used before, else JOBCENTER_GARAGE_PORT (default
# 3900) when it and the three above it are free, else the first free such block.
choose_port() {
    if [[ -f "$dir/port" ]] && running; then
        cat "$dir/port"
        return
    fi
    local base="${JOBCENTER_GARAGE_PORT:-3900}" candidate
    for candidate in $(seq "$base" 4 $((base + 400))); do
        if ! ss -ltn | awk '{print $4}' | grep -qE ":($candidate|$((candidate + 1))|$((candidate + 3)))\$"; then
            printf '%s' "$candidate"
            return
        fi
    done
    jc_die "no free port block for Garage from $base"
}

start() {
    mkdir -p "$JC_DATA" "$dir"
    port="$(choose_port)"
    printf '%s' "$port" >"$dir/port"
    [[ -n "$(garage_bin)" ]] || install_garage
    [[ -n "$(garage_bin)" ]] || jc_die "garage is still not on PATH nor in ~/.cargo/bin"
    if ! running; then
        write_config
        jc_say "starting Garage on 127.0.0.1:$port ($dir)"
        setsid "$(garage_bin)" -c "$config" server >"$dir/garage.log" 2>&1 </dev/null &
        echo $! >"$pidfile"
        local ok=""
        for _ in $(seq 1 60); do
            if g status >/dev/null 2>&1; then ok=1; break; fi
            running || { tail -20 "$dir/garage.log" >&2; jc_die "Garage exited"; }
            sleep 0.5
        done
        [[ -n "$ok" ]] || jc_die "Garage did not answer within 30 s; see $dir/garage.log"
    fi
    if ! g layout show 2>/dev/null | grep -q "Current cluster layout version: [1-9]"; then
        local node
        node="$(g node id -q 2>/dev/null || g node id)"
        g layout assign -z local -c 1G "${node:0:64}" >/dev/null
        g layout apply --version 1 >/dev/null
    fi
    ensure_key_files
    if ! g key info "$(cat "$dir/key-id")" >/dev/null 2>&1; then
        g key import -n jobcenter-tests --yes "$(cat "$dir/key-id")" "$(cat "$dir/key-secret")" >/dev/null
    fi
    if ! g bucket info "$bucket" >/dev/null 2>&1; then
        g bucket create "$bucket" >/dev/null
    fi
    g bucket allow --read --write --owner "$bucket" --key "$(cat "$dir/key-id")" >/dev/null
    # Wait until the S3 endpoint answers (the layout takes a moment to settle).
    for _ in $(seq 1 40); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.25
    done
    cat <<ENV
export JOBCENTER_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export JOBCENTER_TEST_S3_BUCKET=$bucket
export AWS_ACCESS_KEY_ID=$(cat "$dir/key-id")
export AWS_SECRET_ACCESS_KEY=$(cat "$dir/key-secret")
ENV
}

stop() {
    if running; then
        port="$(cat "$dir/port" 2>/dev/null || true)"
        kill "$(cat "$pidfile")" && rm -f "$pidfile"
        jc_say "stopped Garage"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) jc_die "usage: $0 start|stop" ;;
esac
