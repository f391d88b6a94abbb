#!/usr/bin/env bash
# bench/backup.sh - config backup of 1,000 devsim devices, then of one slow device.
#
#   bench/backup.sh [DEVICES] [THREADS] [ROUNDS]      (1000 100 3)
#
# Part 1: devsim serves DEVICES cisco_ios devices, each on its own address
# (127.3.0.1 ... with --vary address, port 22), 20 KB running config, 50 ms
# before every answer, login password and enable secret (so a backup is
# four answers: paging off, enable, the secret, the config).  The devices
# go into the database from `devsim --dump`; one credential (a Fernet token
# made with NetRaven's key derivation by Debian's python3-cryptography);
# one config_backup job over all of them.  The worker runs with
# thread_pool_size THREADS and the default logging (job and connection
# rows to PostgreSQL, session records to Redis).  Each round enqueues the
# job and waits for its final status.  Round 1 also learns 1,000 host keys
# and stores 1,000 snapshots; later rounds find them known and unchanged.
# Reported per round: the run's own time (jobs.completed_at - started_at),
# devices/second over it, wall time from enqueue to final status, per-device
# p50 / p99 / max of job_results.details.duration_ms, successes, the
# worker's CPU time per device over the round (ms, all threads) and the CPU
# seconds PostgreSQL spent in it; at the end the worker's peak RSS (VmHWM
# of /proc/PID/status).
#
# Part 2: one device with 200 ms before every answer (same 20 KB config,
# same four answers): ROUNDS backups, each one job run; reported: the
# handler's duration_ms, the run's time and the wall time.
#
# Release build in build-bench (as bench/reachability.sh).  Everything runs
# on loopback; PostgreSQL, Redis and devsim are started in a scratch folder
# and removed afterwards.  Needs root for port 22 on 127.3.x.x (or set
# NR_BENCH_PORT to a port above 1023).  NR_BENCH_LATENCY_MS sets part 1's
# time before each answer (default 50).  NR_BENCH_WATCH=1 keeps a live-view
# subscriber on the stream channel (redis-cli SUBSCRIBE netraven-logs, as
# the UI's live log does) through part 1, so that every session record is
# rendered and sent; reported: the messages it received and the session
# records the job log says were dropped.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
devices=${1:-1000}
threads=${2:-100}
rounds=${3:-3}
port=${NR_BENCH_PORT:-22}
latency=${NR_BENCH_LATENCY_MS:-50}

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
# devsim: 1,000 listeners plus the sessions; the worker: 100 sessions.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bench_setup backup netraven-worker tools/devsim/devsim

verdicts=()
batches=()
hwms=()
pw='bench-Login.pw7'
es='bench-Enable.es3'
master='bench-master-key.91x'
psql_q() { psql -qAtX "$NR_TEST_DATABASE_URL" -v ON_ERROR_STOP=1 "$@"; }

# start_devsim NAME ARGS...: devsim in the background, waits for its ready line.
start_devsim() {
  local name=$1
  shift
  "$build/tools/devsim/devsim" --state-dir "$scratch/devsim" --pid-file "$scratch/$name.pid" \
    --user admin --password "$pw" --enable-secret "$es" --type cisco_ios --config-kb 20 \
    --vary address -q "$@" > "$scratch/$name.out" 2> "$scratch/$name.err" &
  bench_pids+=($!)
  for _ in $(seq 300); do
    grep -q 'devsim ready' "$scratch/$name.out" && return 0
    kill -0 "${bench_pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$scratch/$name.err" >&2
  echo "devsim ($name) did not start" >&2
  exit 1
}
common=(--listen 127.3.0.1 --port "$port" --count "$devices" --latency-ms "$latency" --name-prefix bench)
slow=(--listen 127.4.0.1 --port "$port" --count 1 --latency-ms 200 --name-prefix slow)
start_devsim fleet "${common[@]}"
start_devsim slow "${slow[@]}"
devsim_pid=${bench_pids[0]}

# the devices, from devsim's own list
{
  "$build/tools/devsim/devsim" "${common[@]}" --type cisco_ios --config-kb 20 --vary address --dump
  "$build/tools/devsim/devsim" "${slow[@]}" --type cisco_ios --config-kb 20 --vary address --dump |
    tail -n +2
} | awk -F'\t' 'NR > 1 { print $2 "\t" $4 "\t" $3 "\t" $5 }' > "$scratch/devices.tsv"
token=$("$NR_PYTHON" - "$master" "$pw" <<'PY'
import sys, base64
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"netraven_salt", iterations=100000)
print(Fernet(base64.urlsafe_b64encode(kdf.derive(sys.argv[1].encode()))).encrypt(sys.argv[2].encode()).decode())
PY
)
psql_q -v token="$token" >/dev/null <<SQL
\copy devices (hostname, ip_address, device_type, port) FROM '$scratch/devices.tsv'
INSERT INTO tags (name, type) VALUES ('bench', 'device'), ('slow', 'device');
INSERT INTO device_tag_association
  SELECT d.id, t.id FROM devices d JOIN tags t
    ON t.name = CASE WHEN d.hostname LIKE 'slow%' THEN 'slow' ELSE 'bench' END;
INSERT INTO credentials (username, password, priority, description, is_system)
  VALUES ('admin', :'token', 10, 'bench', false);
INSERT INTO credential_tag_association SELECT c.id, t.id FROM credentials c, tags t;
INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type)
  VALUES ('bench-backup', 'config_backup', 'PENDING', true, 'onetime'),
         ('bench-slow', 'config_backup', 'PENDING', true, 'onetime');
INSERT INTO job_tags SELECT j.id, t.id FROM jobs j JOIN tags t
  ON t.name = CASE WHEN j.name = 'bench-slow' THEN 'slow' ELSE 'bench' END;
SQL
loaded=$(psql_q -c "SELECT count(*) FROM devices WHERE hostname LIKE 'bench-%'")
[[ $loaded == "$devices" ]] || { echo "loaded $loaded devices, expected $devices" >&2; exit 1; }

# CPU seconds (user + system) of a process and all its threads; of the
# PostgreSQL server and its backends.
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
pg_cpu_s() {
  local pm
  pm=$(head -n 1 "$scratch/pg/data/postmaster.pid")
  { cpu_s "$pm"; echo; for c in $(pgrep -P "$pm"); do cpu_s "$c" 2>/dev/null; echo; done; } |
    awk '{ s += $1 } END { printf "%.2f", s }'
}

NETRAVEN_WORKER__THREAD_POOL_SIZE=$threads \
NETRAVEN_SECURITY__ENCRYPTION_KEY=$master NETRAVEN_SSH__ENABLE_SECRET=$es \
NETRAVEN_WORKER__SPOOL_DIR="$scratch/spool" \
  "$build/netraven-worker" run > "$scratch/worker.log" 2>&1 &
worker_pid=$!
bench_pids+=("$worker_pid")
for _ in $(seq 100); do grep -q 'Polling stream' "$scratch/worker.log" && break; sleep 0.1; done

if [[ ${NR_BENCH_WATCH:-0} == 1 ]]; then
  redis-cli -u "$NR_TEST_REDIS_URL" SUBSCRIBE netraven-logs | wc -l > "$scratch/watch.lines" &
  for _ in $(seq 50); do
    [[ $(redis-cli -u "$NR_TEST_REDIS_URL" PUBSUB NUMSUB netraven-logs | tail -n 1) == 1 ]] && break
    sleep 0.1
  done
fi

job=$(psql_q -c "SELECT id FROM jobs WHERE name = 'bench-backup'")
slow_job=$(psql_q -c "SELECT id FROM jobs WHERE name = 'bench-slow'")
model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
printf 'machine: %s cores, %s\n' "$(nproc)" "$model"
printf 'part 1: %s devices (cisco_ios, 20 KB config, %s ms per answer), thread_pool_size %s\n' \
  "$devices" "$latency" "$threads"
printf '%-6s %-26s %8s %10s %8s %8s %8s %8s %6s %10s %8s\n' \
  round status run_s dev_per_s wall_s p50_ms p99_ms max_ms ok cpu_ms_dev pg_cpu_s
for r in $(seq "$rounds"); do
  last=$(psql_q -c "SELECT coalesce(max(id), 0) FROM job_results")
  c0=$(cpu_s "$worker_pid")
  p0=$(pg_cpu_s)
  t0=$(date +%s.%N)
  out=$("$build/netraven-worker" enqueue "$job" --wait --timeout 900 | tail -n 1)
  t1=$(date +%s.%N)
  c1=$(cpu_s "$worker_pid")
  p1=$(pg_cpu_s)
  run_s=$(psql_q -c \
    "SELECT round(extract(epoch FROM completed_at - started_at)::numeric, 3) FROM jobs WHERE id = $job")
  read -r p50 p99 pmax ok < <(psql_q -F ' ' -c "
    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY (details->>'duration_ms')::float)::numeric, 1),
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY (details->>'duration_ms')::float)::numeric, 1),
           round(max((details->>'duration_ms')::float)::numeric, 1),
           count(*) FILTER (WHERE status = 'success')
    FROM job_results WHERE job_id = $job AND id > $last")
  # results per write transaction (rows of one transaction share created_at)
  batch=$(psql_q -c "SELECT round(count(*)::numeric / greatest(count(DISTINCT created_at), 1), 1)
    FROM job_results WHERE job_id = $job AND id > $last")
  batches+=("$batch")
  hwms+=("$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$worker_pid/status")")
  rate=$(awk -v n="$devices" -v s="$run_s" 'BEGIN { printf "%.1f", n / s }')
  printf '%-6s %-26s %8s %10s %8.3f %8s %8s %8s %6s %10s %8s\n' "$r" "${out##*: }" "$run_s" "$rate" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$p50" "$p99" "$pmax" "$ok" \
    "$(awk -v a="$c0" -v b="$c1" -v n="$devices" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }')" \
    "$(awk -v a="$p0" -v b="$p1" 'BEGIN { printf "%.1f", b - a }')"
  [[ $ok == "$devices" ]] || verdicts+=("round $r: $ok of $devices devices backed up")
  min_rate=$(awk -v a="${min_rate:-}" -v b="$rate" 'BEGIN { print (a == "" || b < a) ? b : a }')
done
printf 'results per write transaction, by round: %s\n' "${batches[*]}"
printf 'worker peak RSS (MB) at the end of each round: %s\n' "${hwms[*]}"
snapshots=$(psql_q -c "SELECT count(*) FROM device_configurations")
failures=$(psql_q -c "SELECT coalesce(string_agg(DISTINCT details->>'class', ', '), 'none') FROM job_results WHERE job_id = $job AND status = 'failure'")
printf 'snapshots stored: %s (dedup after round 1); failure classes: %s\n' "$snapshots" "$failures"
hwm_mb=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$worker_pid/status")
printf 'worker peak RSS (VmHWM): %s MB\n' "$hwm_mb"
printf 'devsim CPU: %s s\n' "$(awk '{ printf "%.1f", ($14 + $15) / 100 }' "/proc/$devsim_pid/stat")"
printf 'worker CPU: %s s\n' "$(awk '{ printf "%.1f", ($14 + $15) / 100 }' "/proc/$worker_pid/stat")"
if [[ ${NR_BENCH_WATCH:-0} == 1 ]]; then
  pkill -f "redis-cli -u $NR_TEST_REDIS_URL SUBSCRIBE" || true
  for _ in $(seq 50); do [[ -s $scratch/watch.lines ]] && break; sleep 0.1; done
  printf 'live view watched: %s messages received; session records dropped (job log): %s\n' \
    "$(awk '{ printf "%d", ($1 - 3) / 3 }' "$scratch/watch.lines")" \
    "$(sed -n "s/.* \([0-9][0-9]*\) session events of job 'bench-backup'.*/\1/p" "$scratch/worker.log" |
       awk '{ s += $1 } END { print s + 0 }')"
fi

echo
printf 'part 2: one device, 200 ms per answer (4 answers), 20 KB config\n'
printf '%-6s %-22s %12s %8s %8s\n' round status duration_ms run_s wall_s
for r in $(seq "$rounds"); do
  last=$(psql_q -c "SELECT coalesce(max(id), 0) FROM job_results")
  t0=$(date +%s.%N)
  out=$("$build/netraven-worker" enqueue "$slow_job" --wait --timeout 60 | tail -n 1)
  t1=$(date +%s.%N)
  dur=$(psql_q -c "SELECT round((details->>'duration_ms')::numeric, 1) FROM job_results WHERE job_id = $slow_job AND id > $last")
  run_s=$(psql_q -c \
    "SELECT round(extract(epoch FROM completed_at - started_at)::numeric, 3) FROM jobs WHERE id = $slow_job")
  printf '%-6s %-22s %12s %8s %8.3f\n' "$r" "${out##*: }" "$dur" "$run_s" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
  max_slow=$(awk -v a="${max_slow:-0}" -v b="${dur:-999999}" 'BEGIN { print (b > a) ? b : a }')
done

echo
awk -v r="$min_rate" 'BEGIN { exit !(r >= 150) }' || verdicts+=("devices/second $min_rate < 150")
awk -v m="$hwm_mb" 'BEGIN { exit !(m < 150) }' || verdicts+=("peak RSS $hwm_mb MB >= 150 MB")
awk -v d="$max_slow" 'BEGIN { exit !(d < 1200) }' || verdicts+=("slow backup $max_slow ms >= 1200 ms")
printf 'slowest round: %s devices/s (>= 150); peak RSS %s MB (< 150); slowest 200 ms backup %s ms (< 1200)\n' \
  "$min_rate" "$hwm_mb" "$max_slow"
if ((${#verdicts[@]})); then
  printf 'FAIL: %s\n' "${verdicts[@]}"
  exit 1
fi
echo "PASS"
