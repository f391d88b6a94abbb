#!/usr/bin/env bash
# bench/intake.sh - intake overhead: jobs per second through the native
# stream and through python-rq, with jobs that have no devices (so the
# figure is the queue, the run's life cycle and its PostgreSQL writes).
#
#   bench/intake.sh [JOBS] [MAX_CONCURRENT_JOBS]       (10000 4)
#
# Each queue is filled before the worker starts; the clock runs from the
# worker's start to the moment the last entry is acknowledged (stream) or
# the last RQ job is finished.  PostgreSQL and Redis run on loopback in a
# scratch folder, removed afterwards.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
jobs=${1:-10000}
slots=${2:-4}

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_setup intake netraven-worker
export NETRAVEN_WORKER__SPOOL_DIR="$scratch/spool"
export NETRAVEN_WORKER__MAX_CONCURRENT_JOBS=$slots
psql -qAtX "$NR_TEST_DATABASE_URL" -c "INSERT INTO jobs (name, job_type, status, is_enabled,
  schedule_type) SELECT format('intake-%s', i), 'reachability', 'PENDING', true, 'onetime'
  FROM generate_series(1, 100) AS i" >/dev/null

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

worker=""
start_worker() {
  "$build/netraven-worker" run > "$scratch/worker-$1.log" 2>&1 &
  worker=$!
  bench_pids+=("$worker")
}
stop_worker() {
  kill "$worker"
  wait "$worker" || true
  worker=""
}

# --- native stream --------------------------------------------------------
"$NR_PYTHON" - "$jobs" <<'PY'
import os, sys, redis
r = redis.Redis.from_url(os.environ["NR_TEST_REDIS_URL"])
r.xgroup_create("netraven:jobs", "netraven-workers", id="0", mkstream=True)
p = r.pipeline(transaction=False)
for i in range(int(sys.argv[1])):
    p.xadd("netraven:jobs", {"payload": '{"job_id": %d}' % (i % 100 + 1)})
    if i % 1000 == 999:
        p.execute()
p.execute()
PY
t0=$(now)
start_worker stream
"$NR_PYTHON" - "$jobs" <<'PY'
import os, sys, time, redis
r = redis.Redis.from_url(os.environ["NR_TEST_REDIS_URL"])
n = int(sys.argv[1])
while True:
    g = r.xinfo_groups("netraven:jobs")[0]
    if g["pending"] == 0 and g.get("lag", 1) == 0 and g["entries-read"] >= n:
        break
    time.sleep(0.02)
PY
t1=$(now)
stop_worker
stream_runs=$(psql -qAtX "$NR_TEST_DATABASE_URL" -c \
  "SELECT count(*) FROM logs WHERE message LIKE 'Executing job%'")

# --- python-rq ------------------------------------------------------------
"$NR_PYTHON" - "$jobs" <<'PY'
import os, sys, redis
from rq import Queue
r = redis.Redis.from_url(os.environ["NR_TEST_REDIS_URL"])
q = Queue("default", connection=r)
for i in range(int(sys.argv[1])):
    q.enqueue("netraven.worker.runner.run_job", i % 100 + 1)
PY
t2=$(now)
start_worker rq
"$NR_PYTHON" - "$jobs" <<'PY'
import os, sys, time, redis
from rq import Queue
from rq.registry import FinishedJobRegistry
r = redis.Redis.from_url(os.environ["NR_TEST_REDIS_URL"])
q = Queue("default", connection=r)
n = int(sys.argv[1])
while len(FinishedJobRegistry(queue=q)) < n:
    time.sleep(0.05)
PY
t3=$(now)
stop_worker
all_runs=$(psql -qAtX "$NR_TEST_DATABASE_URL" -c \
  "SELECT count(*) FROM logs WHERE message LIKE 'Executing job%'")

printf 'jobs %s per queue, max_concurrent_jobs %s, %s cores\n' "$jobs" "$slots" "$(nproc)"
printf '%-14s %10s %10s %8s\n' queue seconds 'jobs/s' runs
printf '%-14s %10s %10s %8s\n' native-stream "$(elapsed "$t0" "$t1")" "$(rate "$jobs" "$t0" "$t1")" "$stream_runs"
printf '%-14s %10s %10s %8s\n' python-rq "$(elapsed "$t2" "$t3")" "$(rate "$jobs" "$t2" "$t3")" \
  "$((all_runs - stream_runs))"
