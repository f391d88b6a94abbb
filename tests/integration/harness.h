/*
 * harness.h - helpers for the integration suites.
 *
 * The servers are real: scripts/test (via scripts/services) starts
 * PostgreSQL and Redis on free loopback ports in a scratch folder, applies
 * the schema, and exports NR_TEST_DATABASE_URL and NR_TEST_REDIS_URL.  A
 * suite run without them fails loudly; it is never skipped.
 *
 * Every helper aborts the current test (ck_abort_msg) on failure, naming
 * what failed, so a test body reads as its assertions.
 */
#ifndef NR_TEST_HARNESS_H
#define NR_TEST_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#include <check.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

/* tcase_add_test() for suites that tests/integration/meson.build splits
 * into shards, run at the same time: with NRT_SHARD=K/N in the environment
 * a suite keeps only the tests it is handed in turns K, K+N, K+2N ...
 * (counted from 0, over all its test cases), so N shards run every test
 * once; without NRT_SHARD it keeps them all. */
#define nrt_add_test(tc, fn) \
    do { \
        if (nrt_shard_takes()) \
            tcase_add_test((tc), fn); \
    } while (0)
bool nrt_shard_takes(void);

const char *nrt_db_url(void);       /* NR_TEST_DATABASE_URL */
const char *nrt_redis_url(void);    /* NR_TEST_REDIS_URL, redis://127.0.0.1:PORT/0 */
const char *nrt_worker_bin(void);   /* the built netraven-worker */
const char *nrt_source_root(void);

/* A new libpq connection to the test database. */
PGconn *nrt_pg(void);
/* Run SQL (printf-style); aborts the test if it fails; caller PQclear()s. */
PGresult *nrt_sql(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Run SQL and return the first column of the first row as a number
 * (0 if NULL); aborts if there is no row. */
long long nrt_sql_int(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, as a malloc'd string (NULL if SQL NULL). */
char *nrt_sql_str(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empty every table the worker touches (TRUNCATE ... RESTART IDENTITY CASCADE). */
void nrt_db_reset(PGconn *c);

/* A new hiredis connection to the test Redis, selected on its db. */
redisContext *nrt_redis(void);
/* FLUSHDB on the test Redis db. */
void nrt_redis_reset(void);

/* A fresh scratch directory under $NR_TEST_SCRATCH (or /tmp); malloc'd. */
char *nrt_tmpdir(const char *tag);
/* Write a file (creating it); aborts on failure. */
void nrt_write_file(const char *path, const char *text);
/* Read a whole file into a malloc'd string (NULL if it cannot be read). */
char *nrt_read_file(const char *path);

/* A child process of the worker binary with stdout and stderr captured to
 * files.  env_extra: NULL-terminated "KEY=VALUE" list added to (and
 * overriding) the test environment, which already carries
 * NETRAVEN_DATABASE__URL, NETRAVEN_SCHEDULER__REDIS_URL and
 * NETRAVEN_CONFIG_DIR=<source>/config. */
struct nrt_proc {
    pid_t pid;
    char *out_path;
    char *err_path;
    int   status;           /* from waitpid, once exited */
    bool  exited;
};
void nrt_proc_start(struct nrt_proc *p, char *const argv[], char *const env_extra[]);
/* Wait up to timeout_s; returns true if it exited (status in p->status). */
bool nrt_proc_wait(struct nrt_proc *p, double timeout_s);
/* SIGTERM, then SIGKILL after grace_s; waits. */
void nrt_proc_stop(struct nrt_proc *p, double grace_s);
void nrt_proc_clear(struct nrt_proc *p);
/* Captured stdout so far (malloc'd). */
char *nrt_proc_stdout(const struct nrt_proc *p);
/* Wait up to timeout_s for needle to appear `times` times in p's stdout. */
bool nrt_wait_stdout(const struct nrt_proc *p, const char *needle, int times, double timeout_s);
/* How many times needle occurs in hay (not overlapping). */
int nrt_count_of(const char *hay, const char *needle);

/* Start devsim (the build's tools/devsim/devsim) on an inventory file with
 * its state in state_dir, and wait until it says "devsim ready".  Returns
 * true when it is ready; false (the process stopped and cleared) when it
 * exited first, e.g. because one of its sockets was taken, so that the
 * caller can try other ports. */
bool nrt_devsim_start(struct nrt_proc *p, const char *inventory, const char *state_dir);

/* Fernet tokens of the plaintexts, made as NetRaven's API makes them:
 * Debian's python3-cryptography (/usr/bin/python3), PBKDF2-HMAC-SHA256 of
 * master with salt (NULL: "netraven_salt"), 100,000 rounds.  Arguments
 * pass hex-encoded, so no shell quoting is involved.  tokens[i] malloc'd;
 * aborts the test if Python fails. */
void nrt_fernet_tokens(const char *master, const char *salt, const char *const *plain,
                       size_t n, char **tokens);

/* Poll SQL until its first column equals want (string compare) or
 * timeout_s passes; returns true when it matched. */
bool nrt_wait_sql(PGconn *c, const char *want, double timeout_s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A network namespace made by the test, holding 10.199.N.2 (and, with
 * extra > 0, 10.199.N.3 ... 10.199.N.(2+extra)) behind a veth pair: no
 * listener, ICMP echo ignored, so nothing of it answers (probes time out,
 * TCP is refused).  nrt_blackhole_down() removes it; safe to call when it
 * is not up.  N, from nrt_blackhole_net(), is a /24 that no other test
 * process on the machine holds (tests run at the same time): the first
 * call claims it, for the life of the process. */
void nrt_blackhole_up(int extra);
void nrt_blackhole_down(void);
int nrt_blackhole_net(void);
/* "10.199.N.2", the first address of the blackhole. */
const char *nrt_blackhole_ip(void);

/* "127.N.<tail>" (tail "4.1": 127.N.4.1), a loopback address for the
 * test's listeners, N a number no other test process on the machine holds
 * (tests run at the same time), claimed at the first call for the life of
 * the process.  The string lives until 8 more calls. */
const char *nrt_lo(const char *tail);

/* scripts/services (from NR_SERVICES) run on the test's scratch folder
 * (NR_SCRATCH): nrt_services("pg-stop") stops PostgreSQL, "pg-start"
 * starts it again on the same port; likewise redis-stop / redis-start. */
void nrt_services(const char *verb);

#endif /* NR_TEST_HARNESS_H */
