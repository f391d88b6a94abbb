#!/usr/bin/env bash
# tests/compose/test_compose.sh ROOT - static checks of the deployment files.
#
# docker-compose.yaml must pass `docker-compose config -q` (Debian's
# docker-compose 1.29, installed by scripts/deps; no Docker engine needed),
# the worker service must log to the file on the host volume (the file
# logging plan), and the Dockerfile must be multi-stage, run as a non-root
# user, and have a HEALTHCHECK and an ENTRYPOINT.
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
if docker-compose --project-directory "$root" -f "$compose" config -q 2>"$tmp/err"; then
  ok "docker-compose config -q"
else
  fail "docker-compose config -q: $(cat "$tmp/err")"
fi

docker-compose --project-directory "$root" -f "$compose" config >"$tmp/config" 2>"$tmp/err" ||
  fail "docker-compose config: $(cat "$tmp/err")"

# The netraven-worker service's block of the normalised config (services are
# at two spaces of indentation, their keys at four).
awk '
  /^services:/ { in_services = 1; next }
  in_services && /^[^ ]/ { in_services = 0 }
  in_services && /^  [^ ]/ { in_worker = ($0 ~ /^  netraven-worker:[[:space:]]*$/) ; next }
  in_worker { print }
' "$tmp/config" >"$tmp/worker"

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
check "netraven-worker: encryption key set" \
  grep -Eq '^ +NETRAVEN_SECURITY__ENCRYPTION_KEY: .+' "$tmp/worker"

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

echo "$passed passed, $failed failed"
((failed == 0))
