# bench/lib.sh - what every benchmark script does first, sourced by them:
# Debian packages, a release build, PostgreSQL and Redis on loopback in a
# scratch folder, the schema; on exit the processes in bench_pids, the
# servers and the folder are removed.
#
#   root=...; source "$root/bench/lib.sh"
#   bench_setup NAME NINJA_TARGET...
#
# Afterwards: $build (NR_BENCH_BUILD or build-bench), $scratch, the env
# file's variables (NR_TEST_DATABASE_URL, NR_PYTHON, ...) and
# NETRAVEN_CONFIG_DIR are set.
# shellcheck shell=bash disable=SC2154  # root is set by the sourcing script

bench_pids=()

bench_cleanup() {
  local p
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$root/scripts/services" stop "$scratch" >/dev/null 2>&1 || true
  rm -rf "$scratch"
}

bench_setup() {
  local name=$1
  shift
  "$root/scripts/deps"
  build=${NR_BENCH_BUILD:-$root/build-bench}
  [[ -d $build ]] || meson setup "$build" "$root" --buildtype=release -Dtests=disabled >/dev/null
  ninja -C "$build" "$@" >/dev/null
  scratch=$(mktemp -d "/tmp/nr-bench-$name.XXXXXX")
  chmod 755 "$scratch"          # PostgreSQL runs as the postgres user
  trap bench_cleanup EXIT INT TERM
  "$root/scripts/services" start "$scratch" >/dev/null
  # shellcheck disable=SC1091
  source "$scratch/env"
  export NETRAVEN_CONFIG_DIR="$root/config"
  "$build/netraven-worker" migrate >/dev/null
}
