#!/usr/bin/env bash
# bench/credentials.sh - a config_backup run over a degraded fleet against
# the same run over a healthy one: dead devices, credential fallback,
# retries with backoff and circuit breakers must not slow the run down
# much, because the backoff holds no thread and open breakers fail fast.
#
#   bench/credentials.sh [DEVICES] [DEAD] [SECOND] [THREADS] [ROUNDS] [LATENCY_MS]
#                        (1000 300 100 100 3 50)
#
# devsim serves DEVICES cisco_ios devices, each on its own address
# (127.5.0.1 ... with --vary address, one port), 16 KB config, LATENCY_MS
# before every answer.  Two scenarios, each with a fresh database content
# and a fresh worker (fresh breakers), ROUNDS runs of one config_backup job:
#
#   healthy   every device served, one credential (admin, a Fernet token
#             made by Debian's python3-cryptography with NetRaven's key
#             derivation);
#   degraded  DEAD devices point at addresses nobody listens on (127.6.x.x:
#             a closed port on loopback refuses at once), spread evenly
#             over the fleet; SECOND devices also share a tag with a
#             better-priority credential the devices refuse, so they need
#             the second one; the rest as healthy.
#
# Worker: thread_pool_size THREADS, retry_attempts 2, retry_backoff 0.5 s,
# circuit_breaker.failure_threshold 3 (a dead device's three attempts of
# its first run open its breaker), reset_timeout 60, logging as default
# (job and connection rows to PostgreSQL, session records to Redis).
#
# Reported per round and scenario: the run's own time (jobs.completed_at -
# started_at), the wall time from enqueue to the final status, successes,
# and for the degraded runs the ratio to the healthy run of the same round.
# The verdict (PASS/FAIL, exit status): every round of the degraded
# scenario within 1.5 times the healthy one, by the run's own time, with
# the expected number of successes.
#
# Release build in ${NR_BENCH_BUILD:-build-bench}.  Everything runs on
# loopback; PostgreSQL, Redis and devsim are started in a scratch folder
# and removed afterwards.  Port ${NR_BENCH_PORT:-22} needs root (or set
# NR_BENCH_PORT above 1023).
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
devices=${1:-1000}
dead=${2:-300}
second=${3:-100}
threads=${4:-100}
rounds=${5:-3}
latency=${6:-50}
port=${NR_BENCH_PORT:-22}
((dead + second <= devices)) || { echo "DEAD + SECOND > DEVICES" >&2; exit 2; }

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
# devsim: 1,000 listeners plus the sessions; the worker: 100 sessions.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bench_setup cred netraven-worker tools/devsim/devsim
q() { psql -qAtX "$NR_TEST_DATABASE_URL" -v ON_ERROR_STOP=1 "$@"; }

pw='bench-cred.Login7'
stale_pw='bench-cred.Stale3'
master='bench-cred-master.k44'

# ---- devsim: the whole fleet, served
fleet=(--listen 127.5.0.1 --port "$port" --vary address --count "$devices" --type cisco_ios
       --config-kb 16 --latency-ms "$latency" --name-prefix cb --user admin --password "$pw")
"$build/tools/devsim/devsim" "${fleet[@]}" --state-dir "$scratch/devsim" -q \
  > "$scratch/devsim.out" 2> "$scratch/devsim.err" &
bench_pids+=($!)
devsim_pid=$!
for _ in $(seq 300); do
  grep -q 'devsim ready' "$scratch/devsim.out" && break
  kill -0 "$devsim_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q 'devsim ready' "$scratch/devsim.out" || { cat "$scratch/devsim.err" >&2; exit 1; }
# hostname, address, in devsim's order (index 0 .. DEVICES-1)
"$build/tools/devsim/devsim" "${fleet[@]}" --dump |
  awk -F'\t' 'NR > 1 { print NR - 2 "\t" $2 "\t" $4 }' > "$scratch/fleet.tsv"

# ---- credentials: Fernet tokens as NetRaven's API makes them
mapfile -t tok < <(/usr/bin/python3 - "$master" "$pw" "$stale_pw" <<'PY'
import sys, base64
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"netraven_salt", iterations=100000)
f = Fernet(base64.urlsafe_b64encode(kdf.derive(sys.argv[1].encode())))
for p in sys.argv[2:]:
    print(f.encrypt(p.encode()).decode())
PY
)

# load SCENARIO: the devices, tags, credentials and the job, from scratch.
# Device i is dead when it is one of DEAD spread evenly (i * DEAD / DEVICES
# steps), needs the second credential when one of SECOND spread likewise
# among the others.
load() {
  local scenario=$1
  q >/dev/null <<'SQL'
TRUNCATE logs, job_results, device_configurations, job_tags, device_tag_association,
         credential_tag_association, credentials, jobs, devices, tags RESTART IDENTITY CASCADE;
SQL
  awk -F'\t' -v s="$scenario" -v n="$devices" -v d="$dead" -v k="$second" -v port="$port" '
    BEGIN { OFS = "\t" }
    {
      i = $1; ip = $3; kind = "ok"
      if (s == "degraded") {
        if (int((i + 1) * d / n) > int(i * d / n)) {
          kind = "dead"; ip = sprintf("127.6.%d.%d", int(i / 250), i % 250 + 1)
        } else {
          j = i - int(i * d / n)                      # index among the live ones
          if (int((j + 1) * k / (n - d)) > int(j * k / (n - d))) kind = "second"
        }
      }
      print $2, ip, "cisco_ios", port, kind
    }' "$scratch/fleet.tsv" > "$scratch/devices-$scenario.tsv"
  q -v good="${tok[0]}" -v stale="${tok[1]}" >/dev/null <<SQL
CREATE TEMP TABLE load (hostname text, ip text, type text, port int, kind text);
\copy load FROM '$scratch/devices-$scenario.tsv'
INSERT INTO devices (hostname, ip_address, device_type, port, description)
  SELECT hostname, ip, type, port, kind FROM load;
INSERT INTO tags (name, type) VALUES ('fleet', 'device'), ('stale', 'device');
INSERT INTO device_tag_association SELECT d.id, t.id FROM devices d, tags t WHERE t.name = 'fleet';
INSERT INTO device_tag_association SELECT d.id, t.id FROM devices d, tags t
  WHERE t.name = 'stale' AND d.description = 'second';
INSERT INTO credentials (username, password, priority, description, is_system) VALUES
  ('admin', :'good', 20, 'bench: the right one', false),
  ('netops', :'stale', 10, 'bench: refused everywhere', false);
INSERT INTO credential_tag_association SELECT c.id, t.id FROM credentials c JOIN tags t
  ON t.name = CASE c.username WHEN 'admin' THEN 'fleet' ELSE 'stale' END;
INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type)
  VALUES ('bench-credentials', 'config_backup', 'PENDING', true, 'onetime');
INSERT INTO job_tags SELECT j.id, t.id FROM jobs j, tags t WHERE t.name = 'fleet';
SQL
}

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
printf 'machine: %s cores, %s, %s MB RAM\n' "$(nproc)" "$model" \
  "$(awk '/^MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)"
printf 'fleet: %s devices (cisco_ios, 16 KB config, %s ms per answer); degraded: %s dead, %s need the second credential\n' \
  "$devices" "$latency" "$dead" "$second"
printf 'worker: thread_pool_size %s, retry_attempts 2, retry_backoff 0.5 s, failure_threshold 3, reset_timeout 60 s\n' \
  "$threads"
printf '%-9s %-6s %-26s %8s %8s %6s %7s  %s\n' scenario round status run_s wall_s ok ratio details
declare -A base
verdicts=()
for scenario in healthy degraded; do
  load "$scenario"
  NETRAVEN_WORKER__THREAD_POOL_SIZE=$threads NETRAVEN_WORKER__RETRY_ATTEMPTS=2 \
  NETRAVEN_WORKER__RETRY_BACKOFF=0.5 NETRAVEN_WORKER__CIRCUIT_BREAKER__FAILURE_THRESHOLD=3 \
  NETRAVEN_WORKER__CIRCUIT_BREAKER__RESET_TIMEOUT=60 NETRAVEN_WORKER__MAX_CONCURRENT_JOBS=1 \
  NETRAVEN_SECURITY__ENCRYPTION_KEY=$master NETRAVEN_WORKER__SPOOL_DIR="$scratch/spool-$scenario" \
    "$build/netraven-worker" run > "$scratch/worker-$scenario.log" 2>&1 &
  wpid=$!
  bench_pids+=("$wpid")
  for _ in $(seq 100); do grep -q 'Polling stream' "$scratch/worker-$scenario.log" && break; sleep 0.1; done
  job=$(q -c "SELECT id FROM jobs WHERE name = 'bench-credentials'")
  want_ok=$devices
  [[ $scenario == degraded ]] && want_ok=$((devices - dead))
  for r in $(seq "$rounds"); do
    last=$(q -c "SELECT coalesce(max(id), 0) FROM job_results")
    t0=$(date +%s.%N)
    out=$("$build/netraven-worker" enqueue "$job" --wait --timeout 600 | tail -n 1)
    t1=$(date +%s.%N)
    run_s=$(q -c "SELECT round(extract(epoch FROM completed_at - started_at)::numeric, 3)
                  FROM jobs WHERE id = $job")
    read -r ok open retried fallback < <(q -F ' ' -c "
      SELECT count(*) FILTER (WHERE status = 'success'),
             count(*) FILTER (WHERE details->>'class' = 'circuit open'),
             count(*) FILTER (WHERE (details->>'retries')::int > 0),
             count(*) FILTER (WHERE status = 'success' AND (details->>'credentials_tried')::int = 2)
      FROM job_results WHERE job_id = $job AND id > $last")
    ratio=-
    if [[ $scenario == healthy ]]; then
      base[$r]=$run_s
    else
      ratio=$(awk -v a="$run_s" -v b="${base[$r]}" 'BEGIN { printf "%.2f", a / b }')
      awk -v x="$ratio" 'BEGIN { exit !(x <= 1.5) }' ||
        verdicts+=("round $r: degraded run ${run_s}s is ${ratio}x the healthy ${base[$r]}s")
    fi
    [[ $ok == "$want_ok" ]] || verdicts+=("$scenario round $r: $ok successes, expected $want_ok")
    printf '%-9s %-6s %-26s %8s %8.3f %6s %7s  circuit-open %s, retried %s, second credential %s\n' \
      "$scenario" "$r" "${out##*: }" "$run_s" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
      "$ok" "$ratio" "$open" "$retried" "$fallback"
  done
  rates=$(q -c "SELECT string_agg(username || ' ' || round(success_rate::numeric, 4) || ' (last_used ' ||
                  CASE WHEN last_used IS NULL THEN 'never' ELSE 'set' END || ')', ', ' ORDER BY id)
                FROM credentials")
  printf '%-9s credentials after the runs: %s; worker peak RSS %s MB\n' "$scenario" "$rates" \
    "$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$wpid/status")"
  kill "$wpid"
  wait "$wpid" 2>/dev/null || true
done

if ((${#verdicts[@]})); then
  printf 'FAIL: %s\n' "${verdicts[@]}"
  exit 1
fi
echo "PASS: every degraded round within 1.5x the healthy one"
