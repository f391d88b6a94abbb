#!/usr/bin/env bash
# tests/image/test_image.sh ROOT BUILDDIR - build the Docker image from the
# Dockerfile and run it, offline, with Debian's podman (no Docker engine).
#
# The FROM lines name debian:12 and debian:12-slim.  No registry is used:
# a Debian 12 base is made with debootstrap from the Debian mirror this
# machine's apt is configured with (/etc/apt/sources.list*), and imported
# under both names.  The base is kept in BUILDDIR/image-cache (and podman's
# storage, with its layer cache, next to it), so a second run skips
# debootstrap and the apt steps that did not change.
#
# The image is built with `podman build --format docker` (the OCI format
# drops HEALTHCHECK) and run as its own user (uid 10001) against a
# PostgreSQL and a Redis this test starts on loopback (scripts/services):
# migrate (and its --wait giving up), run, a reachability job to 127.0.0.1
# enqueued and completed (its ICMP probe answered), health 0 with the daemon
# and 1 without, SIGTERM exits 0, an unwritable log file falls back to
# stdout with one warning, and a credential that the configured key cannot
# open is an ERROR line at start.
#
# Networking: the servers and the containers share one network namespace
# made for the test (`ip netns`), with its own loopback, and the containers
# join it (podman --network ns:PATH): host networking, in effect, without
# needing podman's network plugins, and without touching the machine's own
# loopback or sysctls.  In it net.ipv4.ping_group_range is set as
# docker-compose.yaml sets it on the worker service, so the reachability
# probe's ICMP socket works as uid 10001.
#
# Needs root (podman as root, debootstrap, ip netns) and Debian's podman,
# runc, debootstrap and iproute2 (scripts/deps).  A machine that cannot run it makes the test
# FAIL and say why; it is never skipped.
#
# podman here: runc (crun fails in this kind of VM), and ulimits set below
# the limits podman cannot raise without CAP_SYS_RESOURCE.
set -uo pipefail

root=${1:?usage: test_image.sh ROOT BUILDDIR}
build=${2:?usage: test_image.sh ROOT BUILDDIR}
root=$(readlink -f "$root")
build=$(readlink -f "$build")
cache=$build/image-cache
image=localhost/netraven/worker:test
tag=nr-image-$$

passed=0
failed=0
ok()   { echo "ok   - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
# cannot REASON: the machine cannot run the test; that is a failure.
cannot() { echo "FAIL - cannot run the image test: $*"; echo "$passed passed, $((failed + 1)) failed"; exit 1; }
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
t0=$SECONDS
note() { printf '# [%3ds] %s\n' "$((SECONDS - t0))" "$*"; }

# ---------------------------------------------------------------- machine
[[ $(id -u) -eq 0 ]] || cannot "needs root (rootful podman and debootstrap); run the test command as root"
for c in podman runc debootstrap ip; do
  command -v "$c" >/dev/null 2>&1 || cannot "'$c' is not installed (scripts/deps installs Debian's podman, runc, debootstrap and iproute2)"
done
# shellcheck source=/dev/null
. /etc/os-release
codename=${VERSION_CODENAME:-bookworm}
[[ $codename == bookworm ]] || cannot "the base is Debian 12 (bookworm), made from this machine's mirror; this machine is '$codename'"

# The Debian entries of apt's configuration, "URI SUITE COMPONENTS..." a
# line: one-line .list files and deb822 .sources files, suites of this
# release only (bookworm, bookworm-updates, bookworm-security).
apt_entries() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 4 { $1 = ""; print substr($0, 2) }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled !~ /^no$/)
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j], comps
        types = ""; enabled = ""; comps = ""; nu = 0; ns = 0
      }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      { key = tolower($1); sub(/:$/, "", key); $1 = ""; val = substr($0, 2) }
      key == "types"      { types = val }
      key == "enabled"    { enabled = tolower(val) }
      key == "uris"       { nu = split(val, u, " ") }
      key == "suites"     { ns = split(val, s, " ") }
      key == "components" { comps = val }
      END { flush() }
    ' "$f"
  done
}
entries=$(apt_entries | awk -v c="$codename" '$2 == c || index($2, c "-") == 1' | sort -u)
mirror=$(awk -v c="$codename" '$2 == c { print $1; exit }' <<<"$entries")
[[ -n $mirror ]] || cannot "no '$codename' entry in /etc/apt/sources.list* to make the Debian 12 base from"

# podman's own configuration and storage, in the build dir (nothing of the
# machine's is changed).  Limits: as low as a container needs, so that
# runc never has to raise one (that takes CAP_SYS_RESOURCE).
mkdir -p "$cache/storage" "$cache/run"
nofile=$(ulimit -Hn); [[ $nofile == unlimited || $nofile -gt 16384 ]] && nofile=16384
nproc=$(ulimit -Hu);  [[ $nproc == unlimited || $nproc -gt 16384 ]] && nproc=16384
cat >"$cache/containers.conf" <<EOF
# written by tests/image/test_image.sh
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
events_logger = "file"
EOF
cat >"$cache/storage.conf" <<EOF
# written by tests/image/test_image.sh
[storage]
driver = "overlay"
graphroot = "$cache/storage"
runroot = "$cache/run"
EOF
export CONTAINERS_CONF=$cache/containers.conf CONTAINERS_STORAGE_CONF=$cache/storage.conf
podman=(podman --cgroup-manager=cgroupfs)

scratch=$(mktemp -d /tmp/nr-image.XXXXXX)
chmod 755 "$scratch"
ns=$tag
nsx=(ip netns exec "$ns")
cleanup() {
  "${podman[@]}" rm -f -t 0 "$tag-run" >/dev/null 2>&1 || true
  "${nsx[@]}" "$root/scripts/services" stop "$scratch" >/dev/null 2>&1 || true
  ip netns delete "$ns" >/dev/null 2>&1 || true
  # podman may leave its overlay folder mounted on itself: unmounted, the
  # build dir can be removed with rm -rf (podman mounts it again).
  if mountpoint -q "$cache/storage/overlay" 2>/dev/null; then
    umount "$cache/storage/overlay" >/dev/null 2>&1 || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- base
# Made again when the mirror's entries change (or the cache is removed).
stamp=$(printf '%s\n' "debootstrap --variant=minbase $codename $mirror" "$entries" | sha256sum | cut -c1-16)
base_tar=$cache/debian-12-base-$stamp.tar
if [[ ! -s $base_tar ]]; then
  note "debootstrap $codename from $mirror"
  rm -f "$cache"/debian-12-base-*.tar
  rootfs=$cache/rootfs.tmp
  rm -rf "$rootfs"
  if ! debootstrap --variant=minbase "$codename" "$rootfs" "$mirror" >"$scratch/debootstrap.log" 2>&1; then
    tail -n 20 "$scratch/debootstrap.log"
    rm -rf "$rootfs"
    cannot "debootstrap from $mirror failed (is the mirror reachable?)"
  fi
  # apt in the image uses the same Debian entries as this machine.
  awk '{ printf "deb %s %s", $1, $2; for (i = 3; i <= NF; i++) printf " %s", $i; print "" }' \
    <<<"$entries" >"$rootfs/etc/apt/sources.list"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar" ||
    cannot "cannot write $base_tar"
  rm -rf "$rootfs"
else
  note "debootstrap base cached: $base_tar"
fi
# Imported once per base: the same image id keeps podman's layer cache valid.
if [[ $("${podman[@]}" image inspect --format '{{index .Labels "nr.base"}}' debian:12 2>/dev/null) != "$stamp" ]]; then
  note "importing the base as debian:12 and debian:12-slim"
  "${podman[@]}" import --change "LABEL nr.base=$stamp" --change 'CMD ["bash"]' \
      "$base_tar" docker.io/library/debian:12 >"$scratch/import.log" 2>&1 ||
    { cat "$scratch/import.log"; cannot "podman import failed"; }
  "${podman[@]}" tag docker.io/library/debian:12 docker.io/library/debian:12-slim ||
    cannot "podman tag failed"
fi

# The test's network namespace: loopback up, ping sockets for every group.
ip netns add "$ns" 2>"$scratch/netns.err" ||
  cannot "ip netns add failed: $(cat "$scratch/netns.err")"
"${nsx[@]}" ip link set lo up && "${nsx[@]}" sysctl -q -w net.ipv4.ping_group_range="0 2147483647" ||
  cannot "cannot set up the network namespace $ns"
net=(--network "ns:/run/netns/$ns")

# Can this machine run a container at all?
if ! out=$("${podman[@]}" run --rm --no-healthcheck "${net[@]}" docker.io/library/debian:12 true 2>&1); then
  echo "$out"
  cannot "podman cannot run a container here (runtime runc, ulimits nofile=$nofile nproc=$nproc)"
fi
ok "podman runs a container (runc, the test's network namespace)"

# ---------------------------------------------------------------- build
note "podman build --format docker"
if "${podman[@]}" build --format docker --network host --pull=never -t "$image" \
     -f "$root/Dockerfile" "$root" >"$scratch/build.log" 2>&1; then
  ok "podman build --format docker -f Dockerfile"
else
  tail -n 40 "$scratch/build.log"
  fail "podman build (log above)"
  echo "$passed passed, $failed failed"
  exit 1
fi
note "built"
"${podman[@]}" image prune -f >/dev/null 2>&1 || true

hc=$("${podman[@]}" image inspect --format '{{json .Config.Healthcheck}}' "$image" 2>&1)
check "image keeps HEALTHCHECK (netraven-worker health): $hc" grep -q 'netraven-worker.*health' <<<"$hc"
user=$("${podman[@]}" image inspect --format '{{.Config.User}}' "$image" 2>&1)
check "image runs as netraven (USER $user)" test "$user" = netraven
# The apt caches are cleaned in the runtime stage.
left=$("${podman[@]}" run --rm --no-healthcheck "${net[@]}" --entrypoint /bin/sh "$image" -c \
        'ls /var/lib/apt/lists /var/cache/apt/archives 2>/dev/null | grep -c "\.deb$\|_Packages" || true')
check "no apt lists or .debs left in the image ($left)" test "$left" = 0

# ---------------------------------------------------------------- services
"${nsx[@]}" "$root/scripts/services" start "$scratch" >"$scratch/services.log" 2>&1 ||
  { cat "$scratch/services.log"; cannot "scripts/services could not start PostgreSQL and Redis"; }
# shellcheck source=/dev/null
. "$scratch/env"
psql=("${nsx[@]}" "$NR_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$NR_TEST_DATABASE_URL")

key=image-test-key
env_args=(-e NETRAVEN_ENV=prod
          -e "NETRAVEN_DATABASE__URL=$NR_TEST_DATABASE_URL"
          -e "NETRAVEN_SCHEDULER__REDIS_URL=$NR_TEST_REDIS_URL"
          -e "NETRAVEN_SECURITY__ENCRYPTION_KEY=$key"
          -e NETRAVEN_WORKER__SHUTDOWN_GRACE_SECONDS=10)
run=("${podman[@]}" run --rm --no-healthcheck "${net[@]}" "${env_args[@]}" "$image")

# ---------------------------------------------------------------- migrate
start=$SECONDS
"${podman[@]}" run --rm --no-healthcheck "${net[@]}" "${env_args[@]}" \
    -e "NETRAVEN_DATABASE__URL=postgresql://netraven@127.0.0.1:1/netraven" "$image" \
    migrate --wait 3 >"$scratch/migrate-wait.log" 2>&1
rc=$?
took=$((SECONDS - start))
check "migrate --wait 3 with no PostgreSQL exits 1 (rc $rc) after 3-15 s ($took s)" \
  test "$rc" -eq 1 -a "$took" -ge 3 -a "$took" -le 15
check "migrate --wait says it gave up: $(tail -n 1 "$scratch/migrate-wait.log" | cut -c1-100)" \
  grep -q 'did not accept a connection within 3 s' "$scratch/migrate-wait.log"

# PostgreSQL comes up while migrate waits for it (as in docker-compose).
"${nsx[@]}" "$root/scripts/services" pg-stop "$scratch" >/dev/null 2>&1
"${run[@]}" migrate --wait 60 >"$scratch/migrate.log" 2>&1 &
mpid=$!
sleep 3
"${nsx[@]}" "$root/scripts/services" pg-start "$scratch" >>"$scratch/services.log" 2>&1 ||
  fail "PostgreSQL did not start again (scripts/services pg-start)"
wait "$mpid"
rc=$?
check "migrate --wait 60 with PostgreSQL starting late exits 0 (rc $rc)" test "$rc" -eq 0
check "migrate: waited (PostgreSQL not ready), then schema is up to date" \
  grep -Ezq 'PostgreSQL not ready.*schema is up to date' "$scratch/migrate.log"
((rc == 0)) || cat "$scratch/migrate.log"

# A device on 127.0.0.1 and a reachability job for it.
job_id=$("${psql[@]}" -tA <<'SQL' 2>"$scratch/seed.err"
BEGIN;
INSERT INTO devices (hostname, ip_address, device_type, description, port, source)
VALUES ('image-test', '127.0.0.1', 'linux', 'tests/image: the test host', 22, 'local');
INSERT INTO tags (name, type, description) VALUES ('image-test', 'group', 'tests/image');
INSERT INTO device_tag_association (device_id, tag_id)
SELECT d.id, t.id FROM devices d, tags t WHERE d.hostname = 'image-test' AND t.name = 'image-test';
INSERT INTO jobs (name, job_type, description, status, is_enabled, is_system_job, schedule_type)
VALUES ('image-test', 'reachability', 'tests/image', 'PENDING', true, false, 'onetime');
INSERT INTO job_tags (job_id, tag_id)
SELECT j.id, t.id FROM jobs j, tags t WHERE j.name = 'image-test' AND t.name = 'image-test';
COMMIT;
SELECT id FROM jobs WHERE name = 'image-test';
SQL
)
check "seeded a reachability job (id '$job_id') $(head -c 200 "$scratch/seed.err")" \
  grep -Eq '^[0-9]+$' <<<"$job_id"

# A credential encrypted (as NetRaven's API does: Fernet, key from
# PBKDF2-HMAC-SHA256 of the master key and salt) with another key than the
# container's: the daemon must say so at start, as an ERROR line.
token=$(python3 -c '
import base64, sys
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"netraven_salt", iterations=100000)
print(Fernet(base64.urlsafe_b64encode(kdf.derive(b"not-the-image-key"))).encrypt(b"s3cret-pw").decode())
' 2>&1)
"${psql[@]}" -v tok="$token" >/dev/null 2>&1 <<'SQL'
INSERT INTO credentials (username, password, priority, success_rate, description, is_system)
VALUES ('image-test', :'tok', 100, 1.0, 'tests/image: encrypted with another key', false);
SQL
check "seeded a credential encrypted with another key" test $? -eq 0

# ---------------------------------------------------------------- health without a daemon
"${run[@]}" health >"$scratch/health0.log" 2>&1
rc=$?
check "health without a daemon exits 1 (rc $rc)" test "$rc" -eq 1

# ---------------------------------------------------------------- run
# The log file's folder cannot be made by uid 10001 (/var/log is root's):
# the worker must go on with stdout and say so once.
# (This machine has no systemd: podman says it cannot start the healthcheck
# timer; `podman healthcheck run` below runs the check itself.)
"${podman[@]}" run -d --name "$tag-run" "${net[@]}" "${env_args[@]}" \
    -e NETRAVEN_LOGGING__FILE=/var/log/nope/worker.log "$image" run >"$scratch/run.id" 2>&1 ||
  { cat "$scratch/run.id"; fail "podman run -d ... run"; }
uid=$("${podman[@]}" exec "$tag-run" id -u 2>&1)
check "the daemon runs as uid 10001 ($uid)" test "$uid" = 10001

healthy=1
for ((i = 0; i < 60; i++)); do
  "${podman[@]}" exec "$tag-run" netraven-worker health >/dev/null 2>&1 && { healthy=0; break; }
  sleep 0.5
done
check "health with the daemon running exits 0" test "$healthy" -eq 0
hc_rc=0
"${podman[@]}" healthcheck run "$tag-run" >"$scratch/hc.log" 2>&1 || hc_rc=$?
check "podman healthcheck run (the image's HEALTHCHECK) says healthy (rc $hc_rc)" test "$hc_rc" -eq 0

note "enqueue $job_id --wait"
"${podman[@]}" exec "$tag-run" netraven-worker enqueue "$job_id" --wait --timeout 90 \
  >"$scratch/enqueue.log" 2>&1
rc=$?
status=$(sed -n "s/^job $job_id: //p" "$scratch/enqueue.log")
check "enqueue --wait: the reachability job completes (rc $rc, $status)" \
  test "$rc" -eq 0 -a "$status" = COMPLETED_SUCCESS
((rc == 0)) || cat "$scratch/enqueue.log"
db_status=$("${psql[@]}" -tA -c "SELECT status FROM jobs WHERE id = ${job_id:-0}" 2>&1)
check "jobs.status in PostgreSQL is COMPLETED_SUCCESS ($db_status)" test "$db_status" = COMPLETED_SUCCESS
icmp=$("${psql[@]}" -tA -c "SELECT details->'probes'->'icmp'->>'status' FROM job_results
                             WHERE job_id = ${job_id:-0}" 2>&1)
check "the ICMP probe to 127.0.0.1 as uid 10001 answered (ping_group_range): '$icmp'" \
  test "$icmp" = ok

# SIGTERM: the image's STOPSIGNAL, as `docker stop` sends it.
"${podman[@]}" kill --signal TERM "$tag-run" >/dev/null 2>&1
code=$(timeout 60 "${podman[@]}" wait "$tag-run" 2>&1)
check "SIGTERM: the daemon exits 0 ($code)" test "$code" = 0

"${podman[@]}" logs "$tag-run" >"$scratch/run.log" 2>&1
nwarn=$(grep -c 'Cannot write log file /var/log/nope/worker.log' "$scratch/run.log")
check "unwritable log file: exactly one warning ($nwarn)" test "$nwarn" -eq 1
check "unwritable log file: the warning is a WARNING line" \
  grep -Eiq '"level": ?"warning".*Cannot write log file|WARN.*Cannot write log file' "$scratch/run.log"
check "wrong encryption key: an ERROR line at start naming the credentials" \
  grep -Eiq '"level": ?"error".*does not open the passwords of 1 of 1' "$scratch/run.log"
check "neither the key nor the token is in the output" \
  bash -c '! grep -Fq -e "$1" -e "$2" -e s3cret-pw "$3"' _ "$key" "${token:-none}" "$scratch/run.log"
nlines=$(wc -l <"$scratch/run.log")
check "the daemon kept logging to stdout ($nlines lines)" test "$nlines" -ge 5
check "stdout shows the job's run" grep -q "$job_id" "$scratch/run.log"
if ((failed > 0)); then
  echo "--- daemon output (last 30 lines)"
  tail -n 30 "$scratch/run.log"
fi

note "done"
echo "$passed passed, $failed failed"
((failed == 0))
