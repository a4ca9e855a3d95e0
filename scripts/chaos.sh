#!/usr/bin/env bash
# `make chaos`: the chaos measurement (tests/e2e/chaos.rs, #[ignore]d, not part of
# `make test`): 10,000 runs triggered while a worker is SIGKILLed every 10 s and the
# leading scheduler every 30 s; prints runs lost, runs executed twice, and the longest
# recovery. Same debug profile and database set-up as `make test` (no Garage needed).
#
# JOBCENTER_CHAOS_RUNS (default 10000), JOBCENTER_CHAOS_RATE (runs triggered per second,
# default 40), JOBCENTER_TEST_DATABASE_URL (as for scripts/test.sh).
set -euo pipefail

JC_SCRIPT="chaos"
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd -- "$JC_ROOT"
jc_test_database

export JOBCENTER_CHAOS_RUNS="${JOBCENTER_CHAOS_RUNS:-10000}"
jc_say "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $JOBCENTER_CHAOS_RUNS runs"
cargo test --test e2e chaos -- --ignored --nocapture
