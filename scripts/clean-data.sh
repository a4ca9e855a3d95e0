#!/usr/bin/env bash
# `make clean-data`: stop the private PostgreSQL cluster started by ensure-postgres.sh (if
# any), then delete data/ (the cluster, artifacts, the admin password and the JWT secret).
# A system PostgreSQL (a Debian cluster, say) is never touched.
set -euo pipefail

JC_SCRIPT=clean-data
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

dir="$(jc_private_cluster_dir)"
if [[ -n "$dir" && -f "$dir/PG_VERSION" ]]; then
    version="$(<"$dir/PG_VERSION")"
    if pg_ctl="$(jc_pg_versioned_bin pg_ctl "$version")" &&
        jc_as_pg_user "$pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        jc_say "stopping the private PostgreSQL cluster in $dir..."
        jc_as_pg_user "$pg_ctl" -D "$dir" -m fast -w -t 30 stop >/dev/null ||
            jc_die "could not stop the private cluster in $dir: stop it, then retry"
    fi
fi
if [[ -L "$JC_PG_LINK" && -n "$dir" && "$dir" == /var/tmp/jobcenter-pg-* ]]; then
    jc_say "removing $dir"
    rm -rf -- "$dir"
fi
if [[ -e "$JC_DATA" ]]; then
    jc_say "removing $JC_DATA"
    rm -rf -- "$JC_DATA"
fi
