#!/usr/bin/env bash
# bench/log_pipeline.sh - job log records from the call site into
# PostgreSQL (bench/log_pipeline.c): median emit cost and rows/s.
#
#   bench/log_pipeline.sh [RECORDS] [DB_BATCH]           (500000 2000)
#
# Release build; PostgreSQL on loopback in a scratch folder, removed after.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_setup log netraven-worker bench/log_pipeline
"$build/bench/log_pipeline" "$NR_TEST_DATABASE_URL" "${1:-500000}" "${2:-2000}"
