#!/usr/bin/env bash
# tests/compose/test_compose.sh ROOT - static checks of the deployment files.
#
# docker-compose.yaml must pass `docker-compose config -q` (Debian's
# docker-compose 1.29, installed by scripts/deps; no Docker engine needed),
# the worker service must log to the file on the host volume (the file
# logging plan), and the Dockerfile must be multi-stage, run as a non-root
# user, and have a HEALTHCHECK and an ENTRYPOINT.
#
# A compose deployment that starts every time: PostgreSQL's healthcheck over
# TCP, migrate waiting for it and restarted on failure, the encryption key
# required (no fallback), the ICMP sysctl on the worker, Redis persisted on
# a volume, and apt's caches cleaned in every stage of the Dockerfile.
set -uo pipefail

root=${1:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)}
compose=$root/docker-compose.yaml
dockerfile=$root/Dockerfile

passed=0
failed=0
ok()   { echo "ok   - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "FAIL - docker-compose is not installed (scripts/deps installs it)"
  exit 1
fi
[[ -f $compose ]] || { echo "FAIL - $compose is missing"; exit 1; }
[[ -f $dockerfile ]] || { echo "FAIL - $dockerfile is missing"; exit 1; }

# docker-compose reads .env and the environment: keep both out of the check.
unset NETRAVEN_ENCRYPTION_KEY COMPOSE_FILE COMPOSE_PROJECT_NAME
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------- compose
# Without the key compose must refuse, and say which variable is missing.
if docker-compose --project-directory "$root" -f "$compose" config -q 2>"$tmp/err"; then
  fail "docker-compose config without NETRAVEN_ENCRYPTION_KEY must fail (no fallback key)"
else
  check "docker-compose config without NETRAVEN_ENCRYPTION_KEY fails naming it" \
    grep -q 'NETRAVEN_ENCRYPTION_KEY' "$tmp/err"
fi
export NETRAVEN_ENCRYPTION_KEY=compose-test-key

if docker-compose --project-directory "$root" -f "$compose" config -q 2>"$tmp/err"; then
  ok "docker-compose config -q"
else
  fail "docker-compose config -q: $(cat "$tmp/err")"
fi

docker-compose --project-directory "$root" -f "$compose" config >"$tmp/config" 2>"$tmp/err" ||
  fail "docker-compose config: $(cat "$tmp/err")"

# A service's block of the normalised config (services are at two spaces of
# indentation, their keys at four).
service_block() {  # service_block NAME
  awk -v name="$1" '
    /^services:/ { in_services = 1; next }
    in_services && /^[^ ]/ { in_services = 0 }
    in_services && /^  [^ ]/ { in_svc = ($0 == "  " name ":") ; next }
    in_svc { print }
  ' "$tmp/config"
}
service_block netraven-worker >"$tmp/worker"
service_block netraven-worker-migrate >"$tmp/migrate"
service_block postgres >"$tmp/postgres"
service_block redis >"$tmp/redis"

check "service netraven-worker exists" test -s "$tmp/worker"
check "netraven-worker: NETRAVEN_LOGGING__FILE=/var/log/netraven/worker.log" \
  grep -Eq '^ +NETRAVEN_LOGGING__FILE: /var/log/netraven/worker\.log$' "$tmp/worker"
check "netraven-worker: host volume on /var/log/netraven" \
  grep -Eq '^ +- [^ ]*host-logs/netraven:/var/log/netraven(:rw)?$' "$tmp/worker"
check "netraven-worker: NETRAVEN_ENV=prod" \
  grep -Eq '^ +NETRAVEN_ENV: prod$' "$tmp/worker"
check "netraven-worker: database URL points at the postgres service" \
  grep -Eq '^ +NETRAVEN_DATABASE__URL: postgresql(\+psycopg2)?://[^ ]*@postgres:5432/netraven$' "$tmp/worker"
check "netraven-worker: Redis URL points at the redis service" \
  grep -Eq '^ +NETRAVEN_SCHEDULER__REDIS_URL: redis://redis:6379/' "$tmp/worker"
check "netraven-worker: encryption key from NETRAVEN_ENCRYPTION_KEY" \
  grep -Eq '^ +NETRAVEN_SECURITY__ENCRYPTION_KEY: compose-test-key$' "$tmp/worker"
# ICMP ping sockets as uid/gid 10001: the range must hold 10001.
range=$(sed -n 's/^ *net\.ipv4\.ping_group_range: *//p' "$tmp/worker" | tr -d "'\"")
in_range() { [[ $1 =~ ^([0-9]+)[[:space:]]+([0-9]+)$ ]] &&
             ((BASH_REMATCH[1] <= 10001 && 10001 <= BASH_REMATCH[2])); }
check "netraven-worker: sysctl net.ipv4.ping_group_range holds gid 10001 ('$range')" in_range "$range"

check "postgres: healthcheck pg_isready over TCP (-h 127.0.0.1)" \
  grep -Eq 'pg_isready .*-h 127\.0\.0\.1' "$tmp/postgres"
check "netraven-worker-migrate: waits for PostgreSQL (migrate --wait N)" \
  grep -Ezq -- '- migrate[[:space:]]+- --wait[[:space:]]+- .?[1-9][0-9]*' "$tmp/migrate"
check "netraven-worker-migrate: restarted on failure" \
  grep -Eq '^ +restart: on-failure' "$tmp/migrate"
check "netraven-worker: waits for migrate to complete successfully" \
  grep -Ezq 'netraven-worker-migrate:[[:space:]]+condition: service_completed_successfully' "$tmp/worker"
check "redis: append-only persistence" \
  grep -Ezq -- '- --appendonly[[:space:]]+- .?yes' "$tmp/redis"
check "redis: a volume on /data" grep -Eq '^ +- [^ ]+:/data(:rw)?$' "$tmp/redis"

# ---------------------------------------------------------------- Dockerfile
# Instructions only: no comments, continuation lines joined.
sed -e 's/^[[:space:]]*//' "$dockerfile" | grep -v '^#' |
  sed -e ':a' -e '/\\$/N; s/\\\n//; ta' >"$tmp/dockerfile"

nfrom=$(grep -Eci '^FROM[[:space:]]' "$tmp/dockerfile")
check "Dockerfile: two stages (two FROM lines, found $nfrom)" test "$nfrom" -eq 2

user=$(grep -Ei '^USER[[:space:]]' "$tmp/dockerfile" | tail -n 1 | awk '{print $2}')
not_root() { [[ -n $1 && ! $1 =~ ^(root|0)(:.*)?$ ]]; }
check "Dockerfile: final USER is not root (USER ${user:-none})" not_root "$user"

check "Dockerfile: HEALTHCHECK" \
  grep -Eqi '^HEALTHCHECK[[:space:]]+(--[^ ]+[[:space:]]+)*CMD[[:space:]]' "$tmp/dockerfile"
check "Dockerfile: ENTRYPOINT" grep -Eqi '^ENTRYPOINT[[:space:]]' "$tmp/dockerfile"

# Every RUN that installs packages cleans apt's caches in the same layer,
# and every stage has such a RUN (both install their packages).
napt=$(grep -Eci '^RUN .*apt-get (-[^ ]+ )*install' "$tmp/dockerfile")
nclean=$(grep -Ei '^RUN .*apt-get (-[^ ]+ )*install' "$tmp/dockerfile" |
         grep -E 'apt-get clean' | grep -Ec 'rm -rf [^&]*/var/lib/apt/lists')
check "Dockerfile: apt caches cleaned in every stage ($nclean of $napt installs, $nfrom stages)" \
  test "$napt" -eq "$nfrom" -a "$nclean" -eq "$napt"

echo "$passed passed, $failed failed"
((failed == 0))
