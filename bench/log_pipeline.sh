#!/usr/bin/env bash
# bench/log_pipeline.sh - job log records from the call site into
# PostgreSQL (bench/log_pipeline.c): median emit cost and rows/s.
#
#   bench/log_pipeline.sh [RECORDS] [DB_BATCH]           (500000 2000)
#
# Release build; PostgreSQL on loopback in a scratch folder, removed after.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)

"$root/scripts/deps"
build="$root/build-bench"
[[ -d $build ]] || meson setup "$build" "$root" --buildtype=release -Dtests=disabled >/dev/null
ninja -C "$build" netraven-worker bench/log_pipeline >/dev/null

scratch=$(mktemp -d /tmp/nr-bench-log.XXXXXX)
chmod 755 "$scratch"
cleanup() {
  "$root/scripts/services" stop "$scratch" >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT INT TERM

"$root/scripts/services" start "$scratch" >/dev/null
# shellcheck disable=SC1091
source "$scratch/env"
NETRAVEN_CONFIG_DIR="$root/config" "$build/netraven-worker" migrate >/dev/null
"$build/bench/log_pipeline" "$NR_TEST_DATABASE_URL" "${1:-500000}" "${2:-2000}"
