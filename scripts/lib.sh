# shellcheck shell=bash
# Helpers shared by the scripts in this folder. Source it; do not run it.
#
# Script-only knob (not read by the jobcenter binary):
#   JOBCENTER_PG_PORT   TCP port of the development PostgreSQL on 127.0.0.1 (default 5432)

# Used by the scripts that source this file.
# shellcheck disable=SC2034
{
# Repository root: the parent of the folder holding this file.
JC_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
JC_PG_HOST=127.0.0.1
JC_PG_PORT="${JOBCENTER_PG_PORT:-5432}"
JC_DATA="$JC_ROOT/data"
# The private cluster (only used when no other PostgreSQL is available). Either a
# directory, or a symlink to /var/tmp/jobcenter-pg-<hash> when the postgres user cannot
# reach the repository (see ensure-postgres.sh).
JC_PG_LINK="$JC_DATA/postgres"
JC_PG_LOG="$JC_DATA/postgres.log"
}

jc_say() { printf '%s: %s\n' "${JC_SCRIPT:-jobcenter}" "$*" >&2; }
jc_die() {
    printf '%s: error: %s\n' "${JC_SCRIPT:-jobcenter}" "$*" >&2
    exit 1
}

# Print the path of a PostgreSQL program: from PATH, else the newest
# /usr/lib/postgresql/<ver>/bin/<name>. Fails (status 1, no output) if absent.
jc_pg_bin() {
    local name="$1" found
    if found="$(command -v -- "$name" 2>/dev/null)" && [[ -n "$found" ]]; then
        printf '%s\n' "$found"
        return 0
    fi
    found="$(jc_pg_versioned_bin "$name")" || return 1
    printf '%s\n' "$found"
}

# Like jc_pg_bin but only looks under /usr/lib/postgresql (server-side tools such as
# initdb, pg_ctl and postgres are not on PATH with Debian's packages).
# With a second argument, only that major version.
jc_pg_versioned_bin() {
    local name="$1" version="${2:-}" dir best=""
    if [[ -n "$version" ]]; then
        [[ -x "/usr/lib/postgresql/$version/bin/$name" ]] || return 1
        printf '%s\n' "/usr/lib/postgresql/$version/bin/$name"
        return 0
    fi
    while IFS= read -r dir; do
        [[ -x "$dir/$name" ]] && best="$dir/$name"
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V)
    [[ -n "$best" ]] || return 1
    printf '%s\n' "$best"
}

# Run a command as the OS user that owns the private cluster: `postgres` when we are
# root (initdb and postgres refuse to run as root), ourselves otherwise.
jc_as_pg_user() {
    if [[ "$(id -u)" -eq 0 ]]; then
        # From /: postgres may not be allowed into the current directory.
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# 0 when a server on 127.0.0.1:$JC_PG_PORT accepts connections.
jc_pg_ready() {
    local isready
    isready="$(jc_pg_bin pg_isready)" || return 1
    "$isready" -q -h "$JC_PG_HOST" -p "$JC_PG_PORT" -t 3
}

# 0 when user postgres can connect over TCP without any password (a password from the
# environment or a ~/.pgpass file does not count: the app's URL carries none).
jc_pg_trust_ok() {
    local psql
    psql="$(jc_pg_bin psql)" || return 1
    env -u PGPASSWORD -u PGSERVICE PGPASSFILE=/nonexistent/jobcenter-no-pgpass PGCONNECT_TIMEOUT=5 \
        "$psql" -w -X -q -At -h "$JC_PG_HOST" -p "$JC_PG_PORT" -U postgres -d postgres \
        -c 'select 1' >/dev/null 2>&1
}

# Poll until the server answers on the port, for at most $1 seconds (default 30).
jc_pg_wait_ready() {
    local limit="${1:-30}" waited=0
    while ((waited < limit)); do
        jc_pg_ready && return 0
        sleep 1
        waited=$((waited + 1))
    done
    jc_pg_ready
}

# The private cluster's real directory (symlink resolved), or nothing.
jc_private_cluster_dir() {
    if [[ -L "$JC_PG_LINK" ]]; then
        readlink -f -- "$JC_PG_LINK"
    elif [[ -d "$JC_PG_LINK" ]]; then
        printf '%s\n' "$JC_PG_LINK"
    fi
}

# Install Debian package $1 with apt-get unless program $2 is already there; dies when
# that cannot be done (not root, no apt-get, no network).
jc_apt_install() {
    local package="$1" program="$2"
    if [[ -x "$program" ]] || command -v -- "$program" >/dev/null 2>&1; then
        return 0
    fi
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null; then
        jc_die "$program is missing: apt-get install $package"
    fi
    jc_say "installing $package (apt-get)..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$package" >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y "$package" >/dev/null; } ||
        jc_die "could not install $package"
}

# The database the tests connect to: JOBCENTER_TEST_DATABASE_URL if set (the local
# PostgreSQL is then left alone), else the local PostgreSQL, set up first by
# scripts/ensure-postgres.sh. Exports the variable for cargo test.
jc_test_database() {
    if [[ -z "${JOBCENTER_TEST_DATABASE_URL:-}" ]]; then
        "$JC_ROOT/scripts/ensure-postgres.sh"
        JOBCENTER_TEST_DATABASE_URL="postgres://postgres@$JC_PG_HOST:$JC_PG_PORT/postgres"
    fi
    export JOBCENTER_TEST_DATABASE_URL
}
