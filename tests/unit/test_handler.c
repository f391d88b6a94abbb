/*
 * test_handler.c - the reachability handler against loopback: the result,
 * the details JSON and the job log lines it emits.
 *
 * The handler probes ICMP and the fixed ports 22 and 443; on 127.0.0.1
 * ICMP answers (the tests run as root, or with ping sockets allowed), and
 * the ports answer at once whether open or closed.  The "unreachable" case
 * runs in a child inside a new network namespace (the suite reports SKIP,
 * where namespaces cannot be created).
 *
 * Also the SSH jobs' failures that need no device (handlers_i.h's
 * skeleton): no commands, no credentials, a refused connection; their
 * class, stage, details and closing log line.
 */
#include <check.h>
#include "ck_skip.h"
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "netraven/handler.h"
#include "netraven/log.h"
#include "netraven/probe.h"

static bool icmp_should_answer(void)
{
    unsigned long lo = 1, hi = 0;
    gid_t groups[256];
    int n;
    FILE *f;

    if (geteuid() == 0)
        return true;
    f = fopen("/proc/sys/net/ipv4/ping_group_range", "r");
    if (f == NULL)
        return false;
    if (fscanf(f, "%lu %lu", &lo, &hi) != 2)
        lo = 1, hi = 0;
    fclose(f);
    if (getegid() >= lo && getegid() <= hi)
        return true;
    n = getgroups(NR_ARRAY_LEN(groups), groups);
    for (int i = 0; i < n; i++)
        if (groups[i] >= lo && groups[i] <= hi)
            return true;
    return false;
}

/* A run context for one device. */
struct fixture {
    struct nr_config cfg;
    struct nr_job    job;
    struct nr_device dev;
    struct nr_handler_ctx ctx;
    char job_name[32], hostname[32], ip[64];
};

static void fixture_init(struct fixture *f, const char *ip)
{
    memset(f, 0, sizeof(*f));
    f->cfg.worker.connection_timeout = 1;
    snprintf(f->job_name, sizeof(f->job_name), "reach-job");
    snprintf(f->hostname, sizeof(f->hostname), "lo-device");
    f->job.id = 42;
    f->job.name = f->job_name;
    f->job.job_type = (char *)"reachability";
    f->dev.id = 7;
    f->dev.hostname = f->hostname;
    if (ip != NULL) {
        snprintf(f->ip, sizeof(f->ip), "%s", ip);
        f->dev.ip_address = f->ip;
    }
    f->ctx.cfg = &f->cfg;
    f->ctx.job = &f->job;
    f->ctx.device = &f->dev;
}

static bool known_status(const char *s)
{
    static const char *names[] = { "ok", "refused", "timeout", "unreachable",
                                   "error", "unavailable" };
    for (size_t i = 0; i < NR_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0)
            return true;
    return false;
}

/* Check the shape of details; returns the number of probes with "ok". */
static int check_details(const json_t *d, const char *ip, bool reachable)
{
    static const char *keys[] = { "icmp", "tcp_22", "tcp_443" };
    json_t *probes, *v;
    int ok = 0;

    ck_assert_msg(json_is_object(d), "details is not an object");
    ck_assert_uint_eq(json_object_size(d), 4);
    v = json_object_get(d, "reachable");
    ck_assert(json_is_boolean(v));
    ck_assert_int_eq(json_is_true(v), reachable);
    ck_assert_str_eq(json_string_value(json_object_get(d, "ip")), ip);
    v = json_object_get(d, "duration_ms");
    ck_assert(json_is_real(v));
    ck_assert(json_real_value(v) >= 0 && json_real_value(v) < 1500);

    probes = json_object_get(d, "probes");
    ck_assert(json_is_object(probes));
    ck_assert_uint_eq(json_object_size(probes), 3);
    for (size_t i = 0; i < NR_ARRAY_LEN(keys); i++) {
        json_t *p = json_object_get(probes, keys[i]), *lat;
        const char *st;

        ck_assert_msg(json_is_object(p), "probes.%s missing", keys[i]);
        ck_assert_uint_eq(json_object_size(p), 3);
        st = json_string_value(json_object_get(p, "status"));
        ck_assert_msg(st && known_status(st), "probes.%s.status", keys[i]);
        ck_assert(json_is_string(json_object_get(p, "detail")));
        ck_assert(json_string_length(json_object_get(p, "detail")) > 0);
        lat = json_object_get(p, "latency_ms");
        if (strcmp(st, "ok") == 0) {
            ck_assert(json_is_real(lat) && json_real_value(lat) >= 0);
            ok++;
        } else {
            ck_assert_msg(json_is_null(lat), "probes.%s.latency_ms", keys[i]);
        }
    }
    ck_assert_int_eq(ok > 0, reachable);
    return ok;
}

/* ------------------------------------------------------------------ */

START_TEST(test_registered)
{
    const struct nr_handler_def *h = nr_handler_find("reachability");

    ck_assert_ptr_nonnull(h);
    ck_assert(h->fn == nr_handler_reachability);
}
END_TEST

START_TEST(test_loopback_reachable)
{
    struct fixture f;
    struct nr_result out = { 0 };
    json_t *probes;

    fixture_init(&f, "127.0.0.1");
    nr_handler_reachability(&f.ctx, &out);
    probes = json_object_get(out.details, "probes");
    if (icmp_should_answer()) {
        ck_assert_msg(out.success, "icmp: %s",
                      json_string_value(json_object_get(json_object_get(probes, "icmp"),
                                                        "detail")));
        ck_assert_str_eq(json_string_value(json_object_get(
                             json_object_get(probes, "icmp"), "status")), "ok");
    }
    check_details(out.details, "127.0.0.1", out.success);
    /* loopback answers every TCP port at once, open or closed */
    for (int i = 0; i < 2; i++) {
        const char *st = json_string_value(json_object_get(
            json_object_get(probes, i ? "tcp_443" : "tcp_22"), "status"));
        ck_assert_msg(strcmp(st, "ok") == 0 || strcmp(st, "refused") == 0, "%s", st);
    }
    json_decref(out.details);
}
END_TEST

START_TEST(test_no_address)
{
    struct fixture f;
    struct nr_result out = { .success = true };
    json_t *probes;

    fixture_init(&f, NULL);
    nr_handler_reachability(&f.ctx, &out);
    ck_assert(!out.success);
    check_details(out.details, "", false);
    probes = json_object_get(out.details, "probes");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(probes, "tcp_443"), "status")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(probes, "icmp"), "detail")), "no address");
    json_decref(out.details);
}
END_TEST

/* A details object already in the result is replaced, not leaked (ASan). */
START_TEST(test_replaces_details)
{
    struct fixture f;
    struct nr_result out = { .details = json_pack("{s:s}", "stale", "yes") };

    fixture_init(&f, "");
    f.cfg.worker.connection_timeout = 0;     /* falls back to the default */
    nr_handler_reachability(&f.ctx, &out);
    ck_assert_ptr_null(json_object_get(out.details, "stale"));
    check_details(out.details, "", false);
    json_decref(out.details);
}
END_TEST

/* ---- unreachable, in a network namespace with no route out ---- */

static int lo_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return rc;
}

START_TEST(test_unreachable_netns)
{
    int pfd[2], status = 0;
    char msg[512] = "";
    ssize_t n;
    pid_t pid;

    ck_assert_int_eq(pipe(pfd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct fixture f;
        struct nr_result out = { .success = true };
        const char *why = NULL;
        json_t *probes;

        close(pfd[0]);
        if (unshare(CLONE_NEWNET) < 0)
            _exit(77);
        if (lo_up() < 0)
            why = "lo up failed";
        fixture_init(&f, "10.255.1.1");
        if (why == NULL) {
            nr_handler_reachability(&f.ctx, &out);
            probes = json_object_get(out.details, "probes");
            if (out.success)
                why = "success on an unreachable address";
            else if (!json_is_false(json_object_get(out.details, "reachable")))
                why = "reachable is not false";
            else
                for (int i = 0; i < 3 && why == NULL; i++) {
                    const char *k = i == 0 ? "icmp" : i == 1 ? "tcp_22" : "tcp_443";
                    const char *st = json_string_value(json_object_get(
                        json_object_get(probes, k), "status"));
                    if (st == NULL || strcmp(st, "unreachable") != 0)
                        why = k;
                }
            json_decref(out.details);
        }
        if (why != NULL) {
            if (write(pfd[1], why, strlen(why)) < 0) { /* nothing to do */ }
            _exit(1);
        }
        _exit(0);
    }
    close(pfd[1]);
    n = read(pfd[0], msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(pfd[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        ck_skip_note("test_unreachable_netns: no network namespaces here");
        return;
    }
    ck_assert_msg(WEXITSTATUS(status) == 0, "unreachable: %s", msg);
}
END_TEST

/* ---- the job log lines ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n;

    ck_assert_ptr_nonnull(f);
    buf = nr_malloc(1 << 20);
    n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(test_log_lines)
{
    struct fixture f;
    struct nr_result out = { 0 };
    struct nr_log_stats st0, st1;
    char path[] = "/tmp/nr-test-handler-XXXXXX";
    int fd = mkstemp(path);
    char *text;

    ck_assert_int_ge(fd, 0);
    close(fd);
    fixture_init(&f, "127.0.0.1");
    f.cfg.logging.level = NR_LOG_DEBUG;
    f.cfg.logging.file = path;
    ck_assert_int_eq(nr_log_init(&f.cfg), 0);
    ck_assert(nr_log_enabled(NR_EV_REACH_ENTERED));
    nr_log_get_stats(&st0);

    nr_handler_reachability(&f.ctx, &out);
    json_decref(out.details);
    out.details = NULL;
    f.dev.ip_address = NULL;                    /* now one that fails */
    nr_handler_reachability(&f.ctx, &out);
    ck_assert(!out.success);
    json_decref(out.details);

    ck_assert_int_eq(nr_log_flush(5.0), 0);
    nr_log_get_stats(&st1);
    /* entered + ok, entered + failed */
    ck_assert_uint_eq(st1.emitted[NR_LOG_JOB] - st0.emitted[NR_LOG_JOB], 4);
    text = slurp(path);
    ck_assert_msg(strstr(text, "Entered reachability handler for device 'lo-device'"
                               " in job 'reach-job'"), "%s", text);
    if (icmp_should_answer())
        ck_assert_msg(strstr(text, "Reachability check completed successfully for device"
                                   " 'lo-device' in job 'reach-job'"), "%s", text);
    ck_assert_msg(strstr(text, "Reachability check failed for device 'lo-device' in job"
                               " 'reach-job': icmp error, tcp/22 error, tcp/443 error"),
                  "%s", text);
    free(text);
    nr_log_shutdown();
    unlink(path);
}
END_TEST

/* ---- the SSH jobs' failures that need no device -------------------------- */

static const char *dstr(const json_t *d, const char *key)
{
    return json_string_value(json_object_get(d, key));
}

/* What every failed SSH job's details carry, and its result's flags. */
static void check_ssh_failure(const struct nr_result *out, enum nr_failure_class cls,
                              const char *stage, const char *error)
{
    const json_t *d = out->details;

    ck_assert(!out->success);
    ck_assert(!out->device_seen);
    ck_assert_ptr_null(out->config);
    ck_assert_int_eq(out->failure.cls, cls);
    ck_assert_str_eq(out->failure.stage, stage);
    ck_assert_str_eq(dstr(d, "class"), nr_failure_name(cls));
    ck_assert_str_eq(dstr(d, "stage"), stage);
    ck_assert_msg(strstr(dstr(d, "error"), error), "%s", dstr(d, "error"));
    ck_assert_str_eq(dstr(d, "hostname"), "lo-device");
    ck_assert(json_is_null(json_object_get(d, "device_type")));
    ck_assert(json_real_value(json_object_get(d, "duration_ms")) >= 0);
}

START_TEST(test_ssh_job_input)
{
    struct fixture f;
    struct nr_payload p = { 0 };
    struct nr_credential cred = { .id = 3, .username = "u", .password = "secret-pw" };
    struct nr_result out = { 0 };

    fixture_init(&f, "127.0.0.1");
    f.ctx.payload = &p;
    f.ctx.creds = &cred;
    f.ctx.ncreds = 1;
    nr_handler_command(&f.ctx, &out);
    check_ssh_failure(&out, NR_FAILURE_INPUT, "input", "carries no commands");
    ck_assert_str_eq(dstr(out.details, "class"), "input");
    ck_assert(!nr_failure_retried(out.failure.cls));
    /* nothing was tried */
    ck_assert_ptr_null(json_object_get(out.details, "credentials_tried"));
    ck_assert_ptr_null(json_object_get(out.details, "credential_id"));
    ck_assert_uint_eq(out.nattempts, 0);
    ck_assert_uint_eq(json_array_size(json_object_get(out.details, "outputs")), 0);
    json_decref(out.details);
}
END_TEST

START_TEST(test_ssh_job_no_credentials)
{
    struct fixture f;
    struct nr_payload p = { 0 };
    struct nr_result out = { 0 };

    fixture_init(&f, "127.0.0.1");
    nr_handler_config_backup(&f.ctx, &out);
    check_ssh_failure(&out, NR_FAILURE_NO_CREDENTIALS, "auth", "no credentials match");
    ck_assert_str_eq(dstr(out.details, "class"), "auth");
    ck_assert_str_eq(dstr(out.details, "command"), "show running-config");
    ck_assert_ptr_null(json_object_get(out.details, "logins"));
    ck_assert_int_eq(nr_failure_breaker(out.failure.cls), NR_BREAKER_NO_OUTCOME);
    json_decref(out.details);

    nr_strlist_push(&p.commands, "show version");
    f.ctx.payload = &p;
    memset(&out, 0, sizeof(out));
    nr_handler_command(&f.ctx, &out);
    check_ssh_failure(&out, NR_FAILURE_NO_CREDENTIALS, "auth", "no credentials match");
    json_decref(out.details);
    nr_strlist_clear(&p.commands);
}
END_TEST

/* Nothing listens: the session fails at connect, refused and retried; the
 * closing line says so once. */
START_TEST(test_ssh_job_refused)
{
    struct fixture f;
    struct nr_credential cred = { .id = 3, .username = "u", .password = "secret-pw" };
    struct nr_result out = { 0 };
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    socklen_t len = sizeof(sa);
    char path[] = "/tmp/nr-test-handler-XXXXXX";
    int fd = mkstemp(path), s = socket(AF_INET, SOCK_STREAM, 0);
    char *text;

    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    close(s);                   /* bound, never listened: refused */

    fixture_init(&f, "127.0.0.1");
    f.dev.port = ntohs(sa.sin_port);
    f.ctx.creds = &cred;
    f.ctx.ncreds = 1;
    f.cfg.logging.level = NR_LOG_INFO;
    f.cfg.logging.file = path;
    ck_assert_int_eq(nr_log_init(&f.cfg), 0);
    nr_handler_config_backup(&f.ctx, &out);
    check_ssh_failure(&out, NR_FAILURE_REFUSED, "connect", "");
    ck_assert(nr_failure_retried(out.failure.cls));
    ck_assert_int_eq(json_integer_value(json_object_get(out.details, "credentials_tried")), 1);
    ck_assert_uint_eq(json_array_size(json_object_get(out.details, "logins")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(out.details, "credential_id")), 3);
    ck_assert_str_eq(dstr(out.details, "error"), out.failure.message);
    ck_assert_uint_eq(out.nattempts, 0);     /* no answer at login: nothing to record */
    json_decref(out.details);

    ck_assert_int_eq(nr_log_flush(5.0), 0);
    text = slurp(path);
    ck_assert_msg(strstr(text, "Configuration backup of 'lo-device' in job 'reach-job' failed "
                               "(refused at connect): "), "%s", text);
    ck_assert_msg(strstr(text, "secret-pw") == NULL, "%s", text);
    free(text);
    nr_log_shutdown();
    unlink(path);
}
END_TEST

static Suite *handler_suite(void)
{
    Suite *s = suite_create("handler");
    TCase *tc = tcase_create("reachability");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_registered);
    tcase_add_test(tc, test_loopback_reachable);
    tcase_add_test(tc, test_no_address);
    tcase_add_test(tc, test_replaces_details);
    tcase_add_test(tc, test_unreachable_netns);
    tcase_add_test(tc, test_log_lines);
    suite_add_tcase(s, tc);

    tc = tcase_create("ssh job");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ssh_job_input);
    tcase_add_test(tc, test_ssh_job_no_credentials);
    tcase_add_test(tc, test_ssh_job_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(handler_suite());
    int failed;

    ck_skip_init();
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return ck_skip_exit(failed);
}
