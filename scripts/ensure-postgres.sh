#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 (or $JOBCENTER_PG_PORT) and that
# user `postgres` can connect to it over TCP without a password.
#
# Quiet when that already holds. Otherwise, in this order:
#   a. start the Debian cluster configured for that port, if one exists (pg_ctlcluster);
#   b. if the PostgreSQL server is not installed: apt-get install postgresql, then (a) again;
#   c. initialise and start a private cluster under data/postgres (trust auth, user postgres,
#      listening on 127.0.0.1 only, log in data/postgres.log). When the `postgres` OS user
#      cannot reach data/ (a parent folder such as /root is closed to others), the cluster
#      lives in /var/tmp/jobcenter-pg-<hash of the repository path> instead and
#      data/postgres is a symlink to it. `make clean-data` stops and removes it.
# Exits non-zero with a message saying why when it cannot get there.
set -euo pipefail

JC_SCRIPT=ensure-postgres
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

WAIT_SECONDS=30
INSTALLED_NOW=0

# Success: the server answers and lets postgres in. Anything else ends in die.
finish() {
    local acted="$1" err
    if jc_pg_trust_ok; then
        if [[ "$acted" == 1 ]]; then
            jc_say "PostgreSQL is ready on $JC_PG_HOST:$JC_PG_PORT (user postgres, no password)."
        fi
        exit 0
    fi
    if [[ "$INSTALLED_NOW" == 1 ]] && allow_postgres_without_password; then
        jc_say "PostgreSQL is ready on $JC_PG_HOST:$JC_PG_PORT (user postgres, no password)."
        exit 0
    fi
    err="$(env -u PGPASSWORD -u PGSERVICE PGPASSFILE=/nonexistent/jobcenter-no-pgpass PGCONNECT_TIMEOUT=5 \
        "$(jc_pg_bin psql)" -w -X -q -At -h "$JC_PG_HOST" -p "$JC_PG_PORT" -U postgres \
        -d postgres -c 'select 1' 2>&1 >/dev/null || true)"
    jc_die "a PostgreSQL server answers on $JC_PG_HOST:$JC_PG_PORT, but user postgres cannot connect to it without a password:
    ${err:-(no message)}
  jobcenter's development set-up needs passwordless access for user postgres over TCP.
  Either allow it (first line of that server's pg_hba.conf:
      host all postgres 127.0.0.1/32 trust
  then reload the server), or stop that server, or set JOBCENTER_PG_PORT to a free port
  to get a private cluster there."
}

# Only for the cluster this script has just installed with apt-get: Debian's default
# pg_hba.conf asks for a password over TCP. Put a trust rule for postgres on loopback first.
allow_postgres_without_password() {
    local ver name port status _rest hba
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    while read -r ver name port status _rest; do
        [[ "$port" == "$JC_PG_PORT" ]] || continue
        hba="/etc/postgresql/$ver/$name/pg_hba.conf"
        [[ -f "$hba" ]] || return 1
        jc_say "allowing user postgres without password on loopback in $hba (cluster installed just now)"
        {
            printf '# added by jobcenter scripts/ensure-postgres.sh: development access\n'
            printf 'host all postgres 127.0.0.1/32 trust\n'
            printf 'host all postgres ::1/128 trust\n'
            cat -- "$hba"
        } >"$hba.jobcenter-new"
        chown --reference="$hba" -- "$hba.jobcenter-new"
        chmod --reference="$hba" -- "$hba.jobcenter-new"
        mv -f -- "$hba.jobcenter-new" "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload </dev/null >&2 || return 1
        sleep 1
        jc_pg_trust_ok
        return
    done < <(pg_lsclusters --no-header 2>/dev/null)
    return 1
}

# (a) Start the Debian cluster set to our port, if there is one. 0 if it now answers.
try_debian_cluster() {
    local ver name port status _rest
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    while read -r ver name port status _rest; do
        [[ "$port" == "$JC_PG_PORT" ]] || continue
        if [[ "$status" == online* ]]; then
            jc_say "Debian cluster $ver/$name is online on port $port but does not answer on $JC_PG_HOST (check listen_addresses)"
            return 1
        fi
        jc_say "starting PostgreSQL cluster $ver/$name (pg_ctlcluster)..."
        if ! pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start </dev/null >&2; then
            jc_say "could not start cluster $ver/$name; see /var/log/postgresql/postgresql-$ver-$name.log"
            return 1
        fi
        if jc_pg_wait_ready "$WAIT_SECONDS"; then
            return 0
        fi
        jc_say "cluster $ver/$name started but does not answer on $JC_PG_HOST:$JC_PG_PORT after ${WAIT_SECONDS}s"
        return 1
    done < <(pg_lsclusters --no-header 2>/dev/null)
    return 1
}

have_server_binaries() {
    jc_pg_versioned_bin postgres >/dev/null && jc_pg_versioned_bin initdb >/dev/null &&
        jc_pg_bin pg_isready >/dev/null && jc_pg_bin psql >/dev/null
}

# (b) apt-get install postgresql.
install_postgresql() {
    local log="$JC_DATA/apt-postgresql.log"
    [[ "$(id -u)" -eq 0 ]] ||
        jc_die "PostgreSQL is not installed and this script is not root: run 'sudo apt-get install postgresql' (or start a PostgreSQL on $JC_PG_HOST:$JC_PG_PORT), then retry"
    command -v apt-get >/dev/null 2>&1 ||
        jc_die "PostgreSQL is not installed and apt-get is not available: install PostgreSQL (server and client) yourself, then retry"
    jc_say "PostgreSQL is not installed: installing the Debian package 'postgresql' (log: $log)..."
    export DEBIAN_FRONTEND=noninteractive
    : >"$log"
    if ! apt-cache show postgresql >/dev/null 2>&1; then
        apt-get update >>"$log" 2>&1 </dev/null || true
    fi
    if ! apt-get install -y postgresql >>"$log" 2>&1 </dev/null; then
        jc_say "install failed; refreshing package lists and retrying..."
        apt-get update >>"$log" 2>&1 </dev/null || true
        if ! apt-get install -y postgresql >>"$log" 2>&1 </dev/null; then
            tail -n 20 -- "$log" >&2 || true
            jc_die "apt-get install postgresql failed (full log: $log)"
        fi
    fi
    INSTALLED_NOW=1
    have_server_binaries || jc_die "apt-get installed postgresql but its programs are not under /usr/lib/postgresql/*/bin"
}

ensure_postgres_os_user() {
    [[ "$(id -u)" -eq 0 ]] || return 0
    id -u postgres >/dev/null 2>&1 && return 0
    jc_say "creating the system user 'postgres' (initdb refuses to run as root)"
    useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
        --shell /bin/sh postgres ||
        jc_die "could not create the system user 'postgres'"
}

# Where the private cluster lives: data/postgres if the cluster's OS user can reach it,
# else /var/tmp/jobcenter-pg-<hash> with data/postgres a symlink to it.
choose_private_cluster_dir() {
    local existing hash alt owner
    existing="$(jc_private_cluster_dir)"
    if [[ -n "$existing" ]]; then
        printf '%s\n' "$existing"
        return 0
    fi
    if [[ "$(id -u)" -ne 0 ]] || runuser -u postgres -- test -x "$JC_DATA" 2>/dev/null; then
        printf '%s\n' "$JC_PG_LINK"
        return 0
    fi
    hash="$(printf '%s' "$JC_ROOT" | sha256sum | cut -c1-12)"
    alt="/var/tmp/jobcenter-pg-$hash"
    jc_say "user postgres cannot reach $JC_DATA (a parent folder is closed to other users);"
    jc_say "putting the private cluster in $alt instead (symlinked from $JC_PG_LINK)"
    if [[ -e "$alt" || -L "$alt" ]]; then
        [[ -d "$alt" && ! -L "$alt" ]] || jc_die "$alt exists and is not a directory: remove it and retry"
        owner="$(stat -c %U -- "$alt")"
        [[ "$owner" == postgres ]] || jc_die "$alt exists but belongs to '$owner', not postgres: remove it and retry"
    fi
    ln -sfn -- "$alt" "$JC_PG_LINK"
    printf '%s\n' "$alt"
}

# (c) A private cluster: initdb (once) and pg_ctl start.
start_private_cluster() {
    local dir version initdb pg_ctl
    ensure_postgres_os_user
    if [[ "$(id -u)" -eq 0 ]]; then
        # data/ is ours: let the postgres user traverse it (it holds no secret readable by
        # others: the secret files in it are mode 600).
        chmod o+x -- "$JC_DATA"
    fi
    dir="$(choose_private_cluster_dir)"

    if [[ -f "$dir/PG_VERSION" ]]; then
        version="$(<"$dir/PG_VERSION")"
        initdb="$(jc_pg_versioned_bin initdb "$version")" ||
            jc_die "the private cluster in $dir is PostgreSQL $version, whose programs are not installed (/usr/lib/postgresql/$version/bin); install postgresql-$version or run 'make clean-data'"
    else
        initdb="$(jc_pg_versioned_bin initdb)" ||
            jc_die "no initdb under /usr/lib/postgresql/*/bin: cannot create a private cluster"
        if [[ -d "$dir" ]] && [[ -n "$(ls -A -- "$dir")" ]]; then
            jc_die "$dir is not empty but holds no cluster (an interrupted initdb?): remove it ('make clean-data') and retry"
        fi
        mkdir -p -- "$dir"
        if [[ "$(id -u)" -eq 0 ]]; then
            chown postgres:postgres -- "$dir"
        fi
        chmod 700 -- "$dir"
        jc_say "initialising a private PostgreSQL cluster in $dir (trust auth, superuser postgres)..."
        if ! jc_as_pg_user "$initdb" -D "$dir" -A trust -U postgres -E UTF8 --no-locale \
            </dev/null >>"$JC_PG_LOG" 2>&1; then
            tail -n 20 -- "$JC_PG_LOG" >&2 || true
            jc_die "initdb failed (log: $JC_PG_LOG); remove $dir ('make clean-data') before retrying"
        fi
    fi
    pg_ctl="$(dirname -- "$initdb")/pg_ctl"

    if jc_as_pg_user "$pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        jc_pg_wait_ready 5 && return 0
        jc_die "the private cluster in $dir is running but does not answer on $JC_PG_HOST:$JC_PG_PORT (started with another JOBCENTER_PG_PORT?); stop it with 'make clean-data' or '$pg_ctl -D $dir stop'"
    fi

    jc_say "starting the private PostgreSQL cluster on $JC_PG_HOST:$JC_PG_PORT (log: $JC_PG_LOG)..."
    # In a subshell with every inherited descriptor above 2 closed: the server must not
    # keep our lock, make's job server or a CI pipe open after we exit.
    (
        for fd_path in /proc/"$BASHPID"/fd/*; do
            fd="${fd_path##*/}"
            if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then
                eval "exec $fd>&-" 2>/dev/null || true
            fi
        done
        exec </dev/null >>"$JC_PG_LOG" 2>&1
        # -W: do not wait here; we poll pg_isready below with our own bound.
        jc_as_pg_user "$pg_ctl" -D "$dir" -W \
            -o "-c listen_addresses=$JC_PG_HOST -c port=$JC_PG_PORT -c unix_socket_directories=''" \
            start
    ) || {
        tail -n 20 -- "$JC_PG_LOG" >&2 || true
        jc_die "pg_ctl start failed (log: $JC_PG_LOG)"
    }
    if ! jc_pg_wait_ready "$WAIT_SECONDS"; then
        tail -n 20 -- "$JC_PG_LOG" >&2 || true
        jc_die "the private cluster did not answer on $JC_PG_HOST:$JC_PG_PORT within ${WAIT_SECONDS}s (log: $JC_PG_LOG)"
    fi
}

main() {
    # Fast path: nothing to do, say nothing.
    if jc_pg_ready; then
        finish 0
    fi

    mkdir -p -- "$JC_DATA"
    # One set-up at a time (make run and make test started together, say).
    if command -v flock >/dev/null 2>&1; then
        exec 9>>"$JC_DATA/.ensure-postgres.lock"
        flock -w 600 9 || jc_die "timed out waiting for another ensure-postgres.sh to finish"
        if jc_pg_ready; then
            finish 0
        fi
    fi

    jc_say "no PostgreSQL answers on $JC_PG_HOST:$JC_PG_PORT; setting one up"
    if try_debian_cluster; then
        finish 1
    fi
    if ! have_server_binaries; then
        install_postgresql
        if jc_pg_ready || try_debian_cluster; then
            finish 1
        fi
    fi
    start_private_cluster
    finish 1
}

main "$@"
