/*
 * log_pipeline.c - how fast job records go from a call site into PostgreSQL.
 *
 *   log_pipeline [DB_URL] [RECORDS] [DB_BATCH]
 *
 * DB_URL defaults to $NR_BENCH_DATABASE_URL (a database with the schema of
 * sql/ applied), RECORDS to 500000, DB_BATCH (logging.db_batch_size) to
 * 2000.  Two threads emit RECORDS job events between them with the DB sink
 * on (stdout sink to /dev/null), timing every nr_log_emit call with the
 * monotonic clock; then nr_log_flush waits until the last row is committed.
 *
 * Reports the median, p99 and max cost of one emit, and rows per second
 * from the first emit until nr_log_flush returned, checked against
 * count(*) in logs.  Targets: median emit < 5 us, >= 50,000 rows/s.
 * Exit status 0 when both are met and every row arrived exactly once.
 * The rows (and the job and device rows made for them) are removed after.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "netraven/log.h"

#define NR_BENCH_THREADS        2
#define NR_BENCH_TARGET_EMIT_US 5.0
#define NR_BENCH_TARGET_ROWS_S  50000.0

struct emitter {
    pthread_t  th;
    long long  job_id;
    long long  device_id;
    size_t     first;       /* sequence number of its first record */
    size_t     n;
    uint32_t  *ns;          /* cost of each call */
};

static void *emit_main(void *arg)
{
    struct emitter *e = arg;
    struct timespec a, b;

    for (size_t i = 0; i < e->n; i++) {
        clock_gettime(CLOCK_MONOTONIC, &a);
        NR_LOG(NR_EV_TASK_COMPLETED, e->job_id, e->device_id,
               NR_S("device_name", "bench-router-01"), NR_S("job_name", "log pipeline bench"),
               NR_I("seq", (long long)(e->first + i)));
        clock_gettime(CLOCK_MONOTONIC, &b);
        e->ns[i] = (uint32_t)((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec));
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static long long sql_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long long v = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = atoll(PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "log_pipeline: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return v;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("NR_BENCH_DATABASE_URL");
    size_t total = argc > 2 ? strtoul(argv[2], NULL, 10) : 500000;
    int batch = argc > 3 ? atoi(argv[3]) : 2000;
    struct emitter em[NR_BENCH_THREADS];
    struct nr_config cfg;
    struct nr_log_stats st;
    char sql[256];
    long long job_id, device_id, rows;
    uint32_t *all;
    uint64_t t0, t_emitted, t_flushed;
    int out_fd, null_fd, flush_rc;
    FILE *out;
    double median_us, p99_us, max_us, rows_s;
    bool ok;
    PGconn *pg;

    if (url == NULL || *url == '\0' || total < NR_BENCH_THREADS) {
        fprintf(stderr, "usage: log_pipeline [DB_URL] [RECORDS] [DB_BATCH]"
                        " (DB_URL or NR_BENCH_DATABASE_URL)\n");
        return 2;
    }
    pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "log_pipeline: cannot connect: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return 2;
    }
    snprintf(sql, sizeof(sql), "INSERT INTO jobs (name) VALUES ('log-bench-%d') RETURNING id",
             (int)getpid());
    job_id = sql_int(pg, sql);
    snprintf(sql, sizeof(sql), "INSERT INTO devices (hostname, ip_address, device_type)"
             " VALUES ('log-bench-%d', 'bench-%d', 'cisco_ios') RETURNING id",
             (int)getpid(), (int)getpid());
    device_id = sql_int(pg, sql);
    if (job_id <= 0 || device_id <= 0) {
        PQfinish(pg);
        return 2;
    }

    /* The stdout sink writes to /dev/null; results go to the real stdout. */
    fflush(stdout);
    out_fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
    null_fd = open("/dev/null", O_WRONLY);
    dup2(null_fd, 1);
    close(null_fd);
    out = fdopen(out_fd, "w");

    memset(&cfg, 0, sizeof(cfg));
    cfg.database.url = (char *)url;
    cfg.logging.level = NR_LOG_INFO;
    cfg.logging.db_level = NR_LOG_INFO;
    cfg.logging.queue_size = (int)(total + 4096);   /* the whole burst fits: nothing dropped */
    cfg.logging.db_batch_size = batch;
    if (nr_log_init(&cfg) < 0) {
        fprintf(out, "log_pipeline: nr_log_init failed\n");
        return 2;
    }

    all = nr_malloc(total * sizeof(*all));
    t0 = nr_mono_ns();
    for (int i = 0; i < NR_BENCH_THREADS; i++) {
        em[i].job_id = job_id;
        em[i].device_id = device_id;
        em[i].first = total / NR_BENCH_THREADS * (size_t)i;
        em[i].n = i == NR_BENCH_THREADS - 1 ? total - em[i].first : total / NR_BENCH_THREADS;
        em[i].ns = all + em[i].first;
        pthread_create(&em[i].th, NULL, emit_main, &em[i]);
    }
    for (int i = 0; i < NR_BENCH_THREADS; i++)
        pthread_join(em[i].th, NULL);
    t_emitted = nr_mono_ns();
    flush_rc = nr_log_flush(600);
    t_flushed = nr_mono_ns();
    nr_log_get_stats(&st);
    nr_log_shutdown();

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM logs WHERE job_id = %lld", job_id);
    rows = sql_int(pg, sql);
    snprintf(sql, sizeof(sql), "SELECT count(DISTINCT (meta->>'seq')::int) FROM logs"
             " WHERE job_id = %lld", job_id);
    ok = sql_int(pg, sql) == rows;

    qsort(all, total, sizeof(*all), cmp_u32);
    median_us = all[total / 2] / 1000.0;
    p99_us = all[total * 99 / 100] / 1000.0;
    max_us = all[total - 1] / 1000.0;
    rows_s = (double)rows / ((double)(t_flushed - t0) / 1e9);
    ok = ok && flush_rc == 0 && rows == (long long)total && st.db_dropped == 0 &&
         median_us < NR_BENCH_TARGET_EMIT_US && rows_s >= NR_BENCH_TARGET_ROWS_S;

    fprintf(out, "log pipeline: %zu job records, %d emitting threads, db_batch_size %d\n",
            total, NR_BENCH_THREADS, batch);
    fprintf(out, "  %-24s %12s   %s\n", "measure", "value", "target");
    fprintf(out, "  %-24s %9.2f us   < %.0f us\n", "emit median", median_us, NR_BENCH_TARGET_EMIT_US);
    fprintf(out, "  %-24s %9.2f us\n", "emit p99", p99_us);
    fprintf(out, "  %-24s %9.2f us\n", "emit max", max_us);
    fprintf(out, "  %-24s %9.3f s    (%.0f calls/s)\n", "emit phase",
            (double)(t_emitted - t0) / 1e9, (double)total / ((double)(t_emitted - t0) / 1e9));
    fprintf(out, "  %-24s %9.3f s\n", "until flush returned", (double)(t_flushed - t0) / 1e9);
    fprintf(out, "  %-24s %12.0f   >= %.0f\n", "rows/s into PostgreSQL", rows_s,
            NR_BENCH_TARGET_ROWS_S);
    fprintf(out, "  %-24s %12lld   %zu, each once\n", "rows in logs", rows, total);
    fprintf(out, "  %-24s %12llu\n", "db dropped", (unsigned long long)st.db_dropped);
    fprintf(out, "  %-24s %12llu\n", "stdout dropped", (unsigned long long)st.out_dropped);
    fprintf(out, "  result: %s\n", ok ? "PASS" : "FAIL");
    fclose(out);

    snprintf(sql, sizeof(sql), "DELETE FROM jobs WHERE id = %lld", job_id);   /* cascades to logs */
    PQclear(PQexec(pg, sql));
    snprintf(sql, sizeof(sql), "DELETE FROM devices WHERE id = %lld", device_id);
    PQclear(PQexec(pg, sql));
    PQfinish(pg);
    free(all);
    return ok ? 0 : 1;
}
