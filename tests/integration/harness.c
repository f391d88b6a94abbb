/* harness.c - see harness.h. */
#include "harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "netraven/common.h"

extern char **environ;

static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        ck_abort_msg("%s is not set: run the integration suites through scripts/test, "
                     "which starts PostgreSQL and Redis on loopback", name);
    return v;
}

bool nrt_shard_takes(void)
{
    static int k = -1, n = -1, turn;
    const char *v = getenv("NRT_SHARD");

    if (n < 0) {
        k = 0;
        n = 1;
        if (v != NULL && *v != '\0' &&
            (sscanf(v, "%d/%d", &k, &n) != 2 || n < 1 || k < 0 || k >= n)) {
            fprintf(stderr, "NRT_SHARD=%s is not K/N with 0 <= K < N\n", v);
            exit(2);
        }
    }
    return turn++ % n == k;
}

const char *nrt_db_url(void)    { return need_env("NR_TEST_DATABASE_URL"); }
const char *nrt_redis_url(void) { return need_env("NR_TEST_REDIS_URL"); }
const char *nrt_source_root(void) { return NR_SOURCE_ROOT; }
const char *nrt_worker_bin(void)  { return NR_BUILD_ROOT "/netraven-worker"; }

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

PGconn *nrt_pg(void)
{
    PGconn *c = PQconnectdb(nrt_db_url());
    if (PQstatus(c) != CONNECTION_OK)
        ck_abort_msg("cannot connect to the test database: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    return c;
}

static PGresult *vsql(PGconn *c, const char *fmt, va_list ap)
{
    char *q = NULL;
    if (vasprintf(&q, fmt, ap) < 0)
        ck_abort_msg("out of memory");
    PGresult *r = PQexec(c, q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        ck_abort_msg("SQL failed: %s\n  in: %s", PQresultErrorMessage(r), q);
    free(q);
    return r;
}

PGresult *nrt_sql(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = vsql(c, fmt, ap);
    va_end(ap);
    return r;
}

long long nrt_sql_int(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = vsql(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(PQntuples(r) > 0, "query returned no row: %s", fmt);
    long long v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

char *nrt_sql_str(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = vsql(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(PQntuples(r) > 0, "query returned no row: %s", fmt);
    char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

void nrt_db_reset(PGconn *c)
{
    PQclear(nrt_sql(c,
        "TRUNCATE logs, job_results, device_configurations, job_tags, "
        "device_tag_association, credential_tag_association, credentials, "
        "jobs, devices, tags RESTART IDENTITY CASCADE"));
}

redisContext *nrt_redis(void)
{
    const char *url = nrt_redis_url();
    char host[128] = "127.0.0.1";
    int port = 6379, db = 0;

    if (sscanf(url, "redis://%127[^:/]:%d/%d", host, &port, &db) < 2)
        ck_abort_msg("cannot parse NR_TEST_REDIS_URL %s", url);
    redisContext *rc = redisConnect(host, port);
    if (rc == NULL || rc->err)
        ck_abort_msg("cannot connect to the test Redis %s: %s", url, rc ? rc->errstr : "oom");
    redisReply *r = redisCommand(rc, "SELECT %d", db);
    ck_assert_msg(r != NULL && r->type != REDIS_REPLY_ERROR, "SELECT failed");
    freeReplyObject(r);
    return rc;
}

void nrt_redis_reset(void)
{
    redisContext *rc = nrt_redis();
    redisReply *r = redisCommand(rc, "FLUSHDB");
    ck_assert_msg(r != NULL && r->type != REDIS_REPLY_ERROR, "FLUSHDB failed");
    freeReplyObject(r);
    redisFree(rc);
}

char *nrt_tmpdir(const char *tag)
{
    const char *base = getenv("NR_TEST_SCRATCH");
    char *path = NULL;

    if (base == NULL || *base == '\0')
        base = "/tmp";
    if (asprintf(&path, "%s/nrt-%s-XXXXXX", base, tag) < 0 || mkdtemp(path) == NULL)
        ck_abort_msg("cannot make a scratch directory under %s: %s", base, strerror(errno));
    return path;
}

void nrt_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        ck_abort_msg("cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

char *nrt_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static bool has_key(char *const list[], size_t n, const char *entry)
{
    size_t klen = strcspn(entry, "=") + 1;
    for (size_t i = 0; i < n; i++)
        if (strncmp(list[i], entry, klen) == 0)
            return true;
    return false;
}

/* The child's environment: the test's own minus its NETRAVEN_* variables,
 * then the servers and config dir, then the caller's extras, each key once
 * (an extra replaces a default of the same name). */
static char **build_env(char *const extra[], char *defaults[3])
{
    size_t n = 0, m = 0, k = 0;

    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    if (asprintf(&defaults[0], "NETRAVEN_DATABASE__URL=%s", nrt_db_url()) < 0 ||
        asprintf(&defaults[1], "NETRAVEN_SCHEDULER__REDIS_URL=%s", nrt_redis_url()) < 0 ||
        asprintf(&defaults[2], "NETRAVEN_CONFIG_DIR=%s/config", nrt_source_root()) < 0)
        abort();

    char **env = calloc(n + m + 4, sizeof(*env));
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "NETRAVEN_", 9) != 0 && !has_key(extra, m, environ[i]))
            env[k++] = environ[i];
    for (size_t i = 0; i < 3; i++)
        if (!has_key(extra, m, defaults[i]))
            env[k++] = defaults[i];
    for (size_t j = 0; j < m; j++)
        env[k++] = extra[j];
    env[k] = NULL;
    return env;
}

void nrt_proc_start(struct nrt_proc *p, char *const argv[], char *const env_extra[])
{
    char *dir = nrt_tmpdir("proc");
    memset(p, 0, sizeof(*p));
    if (asprintf(&p->out_path, "%s/stdout", dir) < 0 || asprintf(&p->err_path, "%s/stderr", dir) < 0)
        abort();
    free(dir);
    char *defaults[3];
    char **env = build_env(env_extra, defaults);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork failed");
    if (pid == 0) {
        int o = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        execve(argv[0], argv, env);
        _exit(127);
    }
    for (int i = 0; i < 3; i++)
        free(defaults[i]);
    free(env);
    p->pid = pid;
}

bool nrt_proc_wait(struct nrt_proc *p, double timeout_s)
{
    if (p->exited)
        return true;
    struct timespec t0, now, nap = { 0, 20 * 1000 * 1000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        pid_t r = waitpid(p->pid, &p->status, WNOHANG);
        if (r == p->pid) {
            p->exited = true;
            return true;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 >= timeout_s)
            return false;
        nanosleep(&nap, NULL);
    }
}

void nrt_proc_stop(struct nrt_proc *p, double grace_s)
{
    if (p->pid <= 0 || p->exited)
        return;
    kill(p->pid, SIGTERM);
    if (!nrt_proc_wait(p, grace_s)) {
        kill(p->pid, SIGKILL);
        nrt_proc_wait(p, 10);
    }
}

void nrt_proc_clear(struct nrt_proc *p)
{
    nrt_proc_stop(p, 5);
    free(p->out_path);
    free(p->err_path);
    memset(p, 0, sizeof(*p));
}

char *nrt_proc_stdout(const struct nrt_proc *p)
{
    char *s = nrt_read_file(p->out_path);
    return s ? s : strdup("");
}

int nrt_count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

bool nrt_wait_stdout(const struct nrt_proc *p, const char *needle, int times, double timeout_s)
{
    uint64_t until = nr_mono_ns() + (uint64_t)(timeout_s * 1e9);

    for (;;) {
        char *out = nrt_proc_stdout(p);
        int n = nrt_count_of(out, needle);

        free(out);
        if (n >= times)
            return true;
        if (nr_mono_ns() > until)
            return false;
        usleep(50 * 1000);
    }
}

bool nrt_wait_sql(PGconn *c, const char *want, double timeout_s, const char *fmt, ...)
{
    char *q = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&q, fmt, ap) < 0)
        abort();
    va_end(ap);
    struct timespec t0, now, nap = { 0, 50 * 1000 * 1000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool ok = false;
    for (;;) {
        PGresult *r = PQexec(c, q);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 &&
            !PQgetisnull(r, 0, 0) && strcmp(PQgetvalue(r, 0, 0), want) == 0)
            ok = true;
        PQclear(r);
        if (ok)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 >= timeout_s)
            break;
        nanosleep(&nap, NULL);
    }
    free(q);
    return ok;
}

static char blackhole_ns[64];
static int  blackhole_net_n;            /* 0: not claimed yet */
static char blackhole_ip_s[32];

static void sh(const char *cmd)
{
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

/* A number in [lo, lo + n) that no other test process on the machine
 * holds: the first whose lock file (what-N.lock) this process can flock;
 * the lock lives as long as the process (and its children), whatever way
 * it ends. */
static int claim(const char *what, int lo, int n)
{
    const char *dir = access("/run/lock", W_OK) == 0 ? "/run/lock" : "/tmp";
    char path[128];

    for (int i = 0; i < n; i++) {
        int k = lo + (int)(((unsigned)getpid() + (unsigned)i) % (unsigned)n);

        snprintf(path, sizeof(path), "%s/%s-%d.lock", dir, what, k);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_msg(fd >= 0, "cannot open %s: %s", path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return k;                   /* fd stays open: the lock */
        close(fd);
    }
    ck_abort_msg("no free %s number (%d tests hold one)", what, n);
    return 0;
}

/* 10.199.N.0/24 for N in 10-249 (outside the old fixed 10.199.3.0/24). */
int nrt_blackhole_net(void)
{
    if (blackhole_net_n == 0) {
        blackhole_net_n = claim("nrt-blackhole", 10, 240);
        snprintf(blackhole_ip_s, sizeof(blackhole_ip_s), "10.199.%d.2", blackhole_net_n);
    }
    return blackhole_net_n;
}

const char *nrt_lo(const char *tail)
{
    static int net;
    static char buf[8][32];
    static unsigned next;
    char *s = buf[next++ % 8];

    if (net == 0)
        net = claim("nrt-loopback", 100, 150);
    snprintf(s, sizeof(buf[0]), "127.%d.%s", net, tail);
    return s;
}

const char *nrt_blackhole_ip(void)
{
    nrt_blackhole_net();
    return blackhole_ip_s;
}

void nrt_blackhole_up(int extra)
{
    char cmd[1536];
    int tag = (int)getpid() % 100000, net = nrt_blackhole_net();

    snprintf(blackhole_ns, sizeof(blackhole_ns), "nrt-bh-%d", (int)getpid());
    /* A link left with this net's address by a test that was killed would
     * take its route: removed first. */
    snprintf(cmd, sizeof(cmd),
             "for l in $(ip -o -4 addr show to 10.199.%3$d.1/32 | awk '{print $2}'); do "
             "ip link del \"${l%%@*}\" 2>/dev/null; done; "
             "ip netns add %1$s && ip link add nrtbh%2$d type veth peer name nrtbhp%2$d && "
             "ip link set nrtbhp%2$d netns %1$s && ip addr add 10.199.%3$d.1/24 dev nrtbh%2$d && "
             "ip link set nrtbh%2$d up && "
             "ip netns exec %1$s ip addr add 10.199.%3$d.2/24 dev nrtbhp%2$d && "
             "ip netns exec %1$s ip link set nrtbhp%2$d up && "
             "ip netns exec %1$s ip link set lo up && "
             "ip netns exec %1$s sysctl -qw net.ipv4.icmp_echo_ignore_all=1",
             blackhole_ns, tag, net);
    sh(cmd);
    for (int i = 0; i < extra && i < 250; i++) {
        snprintf(cmd, sizeof(cmd), "ip netns exec %s ip addr add 10.199.%d.%d/24 dev nrtbhp%d",
                 blackhole_ns, net, 3 + i, tag);
        sh(cmd);
    }
}

void nrt_blackhole_down(void)
{
    char cmd[256];

    if (blackhole_ns[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", blackhole_ns);
    if (system(cmd) != 0)
        fprintf(stderr, "could not delete netns %s\n", blackhole_ns);
    blackhole_ns[0] = '\0';
}

void nrt_services(const char *verb)
{
    const char *script = getenv("NR_SERVICES"), *dir = getenv("NR_SCRATCH");
    char cmd[1024];

    ck_assert_msg(script && dir, "NR_SERVICES / NR_SCRATCH not set: run through scripts/test");
    snprintf(cmd, sizeof(cmd), "%s %s %s >/dev/null", script, verb, dir);
    sh(cmd);
}

bool nrt_devsim_start(struct nrt_proc *p, const char *inventory, const char *state_dir)
{
    char *argv[] = { NR_BUILD_ROOT "/tools/devsim/devsim", "--state-dir", (char *)state_dir,
                     "-i", (char *)inventory, "--login-timeout", "60", NULL };

    nrt_proc_start(p, argv, NULL);
    for (int k = 0; k < 500; k++) {
        char *out = nrt_read_file(p->out_path);
        bool ready = out && strstr(out, "devsim ready");

        free(out);
        if (ready)
            return true;
        if (nrt_proc_wait(p, 0.02))
            break;
    }
    nrt_proc_stop(p, 1);
    nrt_proc_clear(p);
    return false;
}

/* ---- Fernet tokens ------------------------------------------------------------ */

static const char fernet_py[] =
    "import sys, base64\n"
    "from cryptography.fernet import Fernet\n"
    "from cryptography.hazmat.primitives import hashes\n"
    "from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC\n"
    "master, salt = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])\n"
    "kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=100000)\n"
    "f = Fernet(base64.urlsafe_b64encode(kdf.derive(master)))\n"
    "for h in sys.argv[3:]:\n"
    "    print(f.encrypt(bytes.fromhex(h[1:])).decode())\n";

/* " x" and s in hex appended to *cmd (the "x" keeps an empty argument). */
static void append_hex(char **cmd, size_t *len, const char *s, bool mark)
{
    size_t n = strlen(s);

    *cmd = realloc(*cmd, *len + 2 * n + 3);
    ck_assert_ptr_nonnull(*cmd);
    (*cmd)[(*len)++] = ' ';
    if (mark)
        (*cmd)[(*len)++] = 'x';
    for (size_t i = 0; i < n; i++)
        *len += (size_t)sprintf(*cmd + *len, "%02x", (unsigned char)s[i]);
}

void nrt_fernet_tokens(const char *master, const char *salt, const char *const *plain,
                       size_t n, char **tokens)
{
    char *dir = nrt_tmpdir("fernet"), *script = NULL, *cmd = NULL, line[4096];
    size_t len, got = 0;
    FILE *p;

    ck_assert(asprintf(&script, "%s/fernet.py", dir) > 0);
    nrt_write_file(script, fernet_py);
    ck_assert(asprintf(&cmd, "/usr/bin/python3 %s", script) > 0);
    len = strlen(cmd);
    append_hex(&cmd, &len, master, false);
    append_hex(&cmd, &len, salt ? salt : "netraven_salt", false);
    for (size_t i = 0; i < n; i++)
        append_hex(&cmd, &len, plain[i], true);
    cmd[len] = '\0';
    p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "popen: %s", strerror(errno));
    while (got < n && fgets(line, sizeof(line), p) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        tokens[got++] = strdup(line);
    }
    ck_assert_msg(pclose(p) == 0, "python3 failed (python3-cryptography missing?)");
    ck_assert_uint_eq(got, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strncmp(tokens[i], "gAAAAA", 6) == 0, "not a Fernet token: %s", tokens[i]);
    unlink(script);
    rmdir(dir);
    free(script);
    free(cmd);
    free(dir);
}
