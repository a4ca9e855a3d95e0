#!/usr/bin/env bash
# `make test`: the services the tests need, then `cargo test --workspace --all-targets`.
# Extra arguments are passed to cargo test (e.g. scripts/test.sh -- --nocapture).
#
# JOBCENTER_TEST_DATABASE_URL: a database URL the tests connect to (as a superuser: they
# create their own databases). Defaults to the local PostgreSQL, which is then set up by
# scripts/ensure-postgres.sh; when you set it, the local PostgreSQL is left alone.
set -euo pipefail

JC_SCRIPT="test"
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd -- "$JC_ROOT"
jc_test_database

# PgBouncer, which the leadership test puts in front of a test database (it starts its own).
jc_apt_install pgbouncer /usr/sbin/pgbouncer

# nftables for the run sandbox's outbound filter, iproute2 for the test network namespaces.
jc_apt_install nftables /usr/sbin/nft
jc_apt_install iproute2 /usr/sbin/ip

# An ordinary user with a subordinate uid range, for the test of a worker that is not root.
jc_apt_install uidmap /usr/bin/newuidmap
if [[ "$(id -u)" -eq 0 ]]; then
    id jobcenter-rootless >/dev/null 2>&1 ||
        useradd --system --no-create-home --shell /usr/sbin/nologin jobcenter-rootless
    for file in /etc/subuid /etc/subgid; do
        grep -q '^jobcenter-rootless:' "$file" 2>/dev/null ||
            echo "jobcenter-rootless:1500000000:65536" >>"$file"
    done
fi

# A real S3-compatible server (Garage) for the artifact tests' S3 variants. Installs it
# once when missing (cargo install, 20-30 minutes), starts it if it is not running.
eval "$("$JC_ROOT/scripts/s3-server.sh" start)"

cargo test --workspace --all-targets "$@"

# The sandbox tests once more as an ordinary user (they run either way; as root the suite
# above took the root path): the worker is then that user, in a namespace of its own.
if [[ "$(id -u)" -eq 0 && $# -eq 0 ]]; then
    e2e="$(cargo test --test e2e --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("executable") and m["target"]["name"] == "e2e": print(m["executable"])')"
    jc_say "the sandbox tests as the ordinary user jobcenter-rootless..."
    (cd /tmp && runuser -u jobcenter-rootless -- env USER=jobcenter-rootless HOME=/tmp \
        JOBCENTER_TEST_DATABASE_URL="$JOBCENTER_TEST_DATABASE_URL" "$e2e" isolation::)
fi

# The API fuzzed against its own OpenAPI document (Schemathesis).
"$JC_ROOT/scripts/fuzz.sh"
