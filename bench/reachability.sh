#!/usr/bin/env bash
# bench/reachability.sh - one reachability run over 1,000 loopback devices.
#
#   bench/reachability.sh [DEVICES] [THREADS] [ROUNDS]     (1000 64 3)
#
# Devices are 127.1.x.y; every second one has a TCP listener on port 22
# (opened by this script), the rest answer ICMP only.  The worker runs with
# thread_pool_size THREADS; each round enqueues the job and waits for its
# final status.  Reported: the run's own time (jobs.completed_at -
# started_at) and the wall time from enqueue to the final status.
# Everything runs on loopback; PostgreSQL and Redis are started in a
# scratch folder and removed afterwards.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
devices=${1:-1000}
threads=${2:-64}
rounds=${3:-3}

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_setup reach netraven-worker

psql -qX "$NR_TEST_DATABASE_URL" -v ON_ERROR_STOP=1 -v n="$devices" >/dev/null <<'SQL'
INSERT INTO tags (name, type) VALUES ('bench', 'device');
INSERT INTO devices (hostname, ip_address, device_type, port)
  SELECT format('bench-%s', i), format('127.1.%s.%s', i / 250, i % 250 + 1), 'cisco_ios', 22
  FROM generate_series(0, :n - 1) AS i;
INSERT INTO device_tag_association SELECT d.id, t.id FROM devices d, tags t;
INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type)
  VALUES ('bench-reachability', 'reachability', 'PENDING', true, 'onetime');
INSERT INTO job_tags SELECT j.id, t.id FROM jobs j, tags t;
SQL

# listeners on port 22 of every second device
"$NR_PYTHON" - "$devices" > "$scratch/listeners.log" 2>&1 <<'PY' &
import socket, sys, time
n = int(sys.argv[1])
socks = []
for i in range(0, n, 2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((f"127.1.{i // 250}.{i % 250 + 1}", 22))
    s.listen(128)
    socks.append(s)
print("listening", len(socks), flush=True)
time.sleep(3600)
PY
bench_pids+=($!)
for _ in $(seq 100); do grep -q listening "$scratch/listeners.log" && break; sleep 0.1; done
grep -q listening "$scratch/listeners.log" || { cat "$scratch/listeners.log"; exit 1; }

NETRAVEN_WORKER__THREAD_POOL_SIZE=$threads NETRAVEN_WORKER__CONNECTION_TIMEOUT=1 \
NETRAVEN_WORKER__SPOOL_DIR="$scratch/spool" \
  "$build/netraven-worker" run > "$scratch/worker.log" 2>&1 &
bench_pids+=($!)
sleep 0.5

job=$(psql -qAtX "$NR_TEST_DATABASE_URL" -c "SELECT id FROM jobs WHERE name = 'bench-reachability'")
printf 'devices %s, thread_pool_size %s, %s cores\n' "$devices" "$threads" "$(nproc)"
printf '%-6s %-28s %12s %12s %9s\n' round status run_s wall_s ok
for r in $(seq "$rounds"); do
  t0=$(date +%s.%N)
  out=$("$build/netraven-worker" enqueue "$job" --wait --timeout 120 | tail -n 1)
  t1=$(date +%s.%N)
  run_s=$(psql -qAtX "$NR_TEST_DATABASE_URL" -c \
    "SELECT round(extract(epoch FROM completed_at - started_at)::numeric, 3) FROM jobs WHERE id = $job")
  ok=$(psql -qAtX "$NR_TEST_DATABASE_URL" -c \
    "SELECT count(*) FROM (SELECT DISTINCT ON (device_id) status FROM job_results WHERE job_id = $job
       ORDER BY device_id, id DESC) s WHERE status = 'success'")
  printf '%-6s %-28s %12s %12.3f %9s\n' "$r" "${out##*: }" "$run_s" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$ok"
done
tcp_ok=$(psql -qAtX "$NR_TEST_DATABASE_URL" -c \
  "SELECT count(*) FROM job_results WHERE job_id = $job AND details->'probes'->'tcp_22'->>'status' = 'ok'")
listeners=$(( (devices + 1) / 2 ))
echo "tcp/22 answered in $tcp_ok results (expected $(( listeners * rounds )))"
