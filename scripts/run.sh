#!/usr/bin/env bash
# `make run`: everything needed for a local jobcenter, then `jobcenter all` in the foreground.
#
# - a PostgreSQL on 127.0.0.1:5432 (scripts/ensure-postgres.sh) and its database `jobcenter`
# - data/artifacts for the local artifact store
# - a bootstrap admin password (data/admin-password) and a JWT secret (data/jwt-secret),
#   generated once, mode 600, kept across runs
#
# Every JOBCENTER_* variable already set in the environment wins over these defaults.
# When JOBCENTER_DATABASE_URL is set, the local PostgreSQL is left alone.
# Extra arguments are passed to `jobcenter all`.
set -euo pipefail

JC_SCRIPT=run
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd -- "$JC_ROOT"

# N random characters from [A-Za-z0-9].
random_alnum() {
    local want="$1" out="" chunk
    while ((${#out} < want)); do
        chunk="$(LC_ALL=C tr -dc 'A-Za-z0-9' < <(head -c 256 /dev/urandom))"
        out+="$chunk"
    done
    printf '%s\n' "${out:0:want}"
}

# Print the content of a secret file, creating it first (mode 600) when missing or empty.
secret_file() {
    local file="$1" length="$2" value tmp
    if [[ -s "$file" ]]; then
        value="$(<"$file")"
        [[ -n "$value" ]] || jc_die "$file is empty: delete it to get a new one"
        printf '%s\n' "$value"
        return 0
    fi
    value="$(random_alnum "$length")"
    tmp="$(mktemp "$file.XXXXXX")"
    chmod 600 -- "$tmp"
    printf '%s\n' "$value" >"$tmp"
    mv -f -- "$tmp" "$file"
    jc_say "generated $file"
    printf '%s\n' "$value"
}

mkdir -p -- "$JC_DATA/artifacts"

if [[ -z "${JOBCENTER_DATABASE_URL:-}" ]]; then
    "$JC_ROOT/scripts/ensure-postgres.sh"
    createdb_bin="$(jc_pg_bin createdb)" || jc_die "createdb not found (PostgreSQL client programs missing)"
    if ! out="$(env -u PGPASSWORD PGPASSFILE=/nonexistent/jobcenter-no-pgpass "$createdb_bin" -w \
        -h "$JC_PG_HOST" -p "$JC_PG_PORT" -U postgres jobcenter 2>&1)"; then
        if [[ "$out" != *"already exists"* ]]; then
            jc_die "could not create the database jobcenter: $out"
        fi
    else
        jc_say "created the database jobcenter on $JC_PG_HOST:$JC_PG_PORT"
    fi
    export JOBCENTER_DATABASE_URL="postgres://postgres@$JC_PG_HOST:$JC_PG_PORT/jobcenter"
    db_note="$JOBCENTER_DATABASE_URL"
else
    db_note="$JOBCENTER_DATABASE_URL (from your environment; local PostgreSQL not managed)"
    # Do not print credentials that may be in the user's URL.
    db_note="$(printf '%s' "$db_note" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#')"
fi

if [[ -z "${JOBCENTER_BOOTSTRAP_ADMIN:-}" ]]; then
    admin_password="$(secret_file "$JC_DATA/admin-password" 24)"
    export JOBCENTER_BOOTSTRAP_ADMIN="admin:$admin_password"
    admin_note="username: admin
    password: $admin_password   (kept in data/admin-password)"
else
    admin_note="username: ${JOBCENTER_BOOTSTRAP_ADMIN%%:*}
    password: the one in your JOBCENTER_BOOTSTRAP_ADMIN"
fi

if [[ -z "${JOBCENTER_JWT_SECRET:-}" ]]; then
    JOBCENTER_JWT_SECRET="$(secret_file "$JC_DATA/jwt-secret" 64)"
    export JOBCENTER_JWT_SECRET
fi

export JOBCENTER_ARTIFACTS="${JOBCENTER_ARTIFACTS:-file://$JC_DATA/artifacts}"
export JOBCENTER_LISTEN="${JOBCENTER_LISTEN:-127.0.0.1:8080}"
url="http://$JOBCENTER_LISTEN"

# nft, for the run sandbox's outbound filter (as root; another user's worker reports at
# start what it cannot enforce).
if [[ "$(id -u)" -eq 0 ]]; then
    jc_apt_install nftables /usr/sbin/nft
fi

# Build first, so that the banner is the last thing shown before the server starts.
cargo build --release --bin jobcenter

cat >&2 <<EOF

==========================================================================
 jobcenter is starting (all components in one process)

   API:       $url
   API docs:  $url/docs
   OpenAPI:   $url/openapi.json

 Bootstrap admin (created on first start only, when the database has no user):
    $admin_note

 Database:   $db_note
 Artifacts:  $JOBCENTER_ARTIFACTS
 Stop with Ctrl-C.
==========================================================================

EOF

exec cargo run --release --bin jobcenter -- all "$@"
