/* test_knownhosts.c - the known_hosts table: what each kind of line means
 * (names, [name]:port, lists, patterns and negations, hashed names,
 * markers, malformed lines), the verdicts (ok, changed, other, unknown),
 * learning (the file and its folder made, the line appended in OpenSSH's
 * form, once however many sessions learn at the same time), reading the
 * file again only when it changes, and the key types in order. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "netraven/knownhosts.h"

#define K1 "AAAAC3NzaC1lZDI1NTE5AAAAIKey1111111111111111111111111111111111111"
#define K2 "AAAAC3NzaC1lZDI1NTE5AAAAIKey2222222222222222222222222222222222222"
#define KR "AAAAB3NzaC1yc2EAAAADAQABAAABAQCkeyrsa"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/nr-kh.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];

    nr_known_hosts_close_all();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static char *path_of(const char *name)
{
    static char p[128];

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return p;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static enum nr_kh_state check(struct nr_known_hosts *kh, const char *host, int port,
                              const char *type, const char *b64)
{
    return nr_known_hosts_check(kh, host, port, type, b64, false, NULL, NULL, 0);
}

START_TEST(verdicts)
{
    char *p = path_of("kh");
    struct nr_known_hosts *kh;

    put(p, "# a comment\n\n"
           "10.0.0.1 ssh-ed25519 " K1 "\n"
           "[10.0.0.2]:2222 ssh-ed25519 " K1 " comment words\n"
           "Router-A.Example.NET,10.0.0.3 ssh-rsa " KR "\n"
           "  10.0.0.4\tssh-ed25519\t" K2 "\n");
    kh = nr_known_hosts_open(p);
    ck_assert_ptr_eq(nr_known_hosts_open(p), kh);          /* one table per path */
    ck_assert_int_eq(check(kh, "10.0.0.1", 22, "ssh-ed25519", K1), NR_KH_OK);
    ck_assert_int_eq(check(kh, "10.0.0.1", 22, "ssh-ed25519", K2), NR_KH_CHANGED);
    ck_assert_int_eq(check(kh, "10.0.0.1", 22, "ssh-rsa", KR), NR_KH_OTHER);
    ck_assert_int_eq(check(kh, "10.0.0.1", 2222, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "10.0.0.2", 2222, "ssh-ed25519", K1), NR_KH_OK);
    ck_assert_int_eq(check(kh, "10.0.0.2", 22, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "router-a.example.net", 22, "ssh-rsa", KR), NR_KH_OK);
    ck_assert_int_eq(check(kh, "ROUTER-A.example.net", 22, "ssh-rsa", KR), NR_KH_OK);
    ck_assert_int_eq(check(kh, "10.0.0.3", 22, "ssh-rsa", KR), NR_KH_OK);
    ck_assert_int_eq(check(kh, "10.0.0.4", 22, "ssh-ed25519", K2), NR_KH_OK);
    ck_assert_int_eq(check(kh, "10.0.0.9", 22, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    ck_assert_uint_eq(nr_known_hosts_skipped(kh), 0);
    ck_assert_uint_eq(nr_known_hosts_reads(kh), 1);
}
END_TEST

START_TEST(patterns_hashes_markers_and_bad_lines)
{
    char *p = path_of("kh"), line[1024], salt64[64], mac64[64];
    unsigned char salt[20], mac[20];
    unsigned int maclen = 0;
    struct nr_known_hosts *kh;

    for (int i = 0; i < 20; i++)
        salt[i] = (unsigned char)(i * 7 + 1);
    ck_assert_ptr_nonnull(HMAC(EVP_sha1(), salt, 20, (const unsigned char *)"[10.9.9.9]:830",
                               14, mac, &maclen));
    EVP_EncodeBlock((unsigned char *)salt64, salt, 20);
    EVP_EncodeBlock((unsigned char *)mac64, mac, 20);
    snprintf(line, sizeof(line),
             "10.1.*.*,!10.1.0.66 ssh-ed25519 " K1 "\n"
             "core-?.lab ssh-ed25519 " K2 "\n"
             "|1|%s|%s ssh-ed25519 " K2 "\n"
             "@cert-authority *.lab ssh-ed25519 " K1 "\n"
             "@revoked 10.7.0.1 ssh-ed25519 " K1 "\n"
             "10.8.0.1 ssh-ed25519\n"
             "10.8.0.2 ssh-ed25519 not*base64\n"
             "|1|garbage ssh-ed25519 " K1 "\n",
             salt64, mac64);
    put(p, line);
    kh = nr_known_hosts_open(p);
    ck_assert_int_eq(check(kh, "10.1.2.3", 22, "ssh-ed25519", K1), NR_KH_OK);
    ck_assert_int_eq(check(kh, "10.1.0.66", 22, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "10.2.2.3", 22, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "core-7.lab", 22, "ssh-ed25519", K2), NR_KH_OK);
    ck_assert_int_eq(check(kh, "core-7.lab", 22, "ssh-ed25519", K1), NR_KH_CHANGED);
    ck_assert_int_eq(check(kh, "core-77.lab", 22, "ssh-ed25519", K2), NR_KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "10.9.9.9", 830, "ssh-ed25519", K2), NR_KH_OK);
    ck_assert_int_eq(check(kh, "10.9.9.9", 830, "ssh-ed25519", K1), NR_KH_CHANGED);
    ck_assert_int_eq(check(kh, "10.9.9.9", 22, "ssh-ed25519", K2), NR_KH_UNKNOWN);
    /* markers are skipped, as libssh 0.10 does */
    ck_assert_int_eq(check(kh, "x.lab", 22, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "10.7.0.1", 22, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    /* three malformed lines skipped, the rest kept */
    ck_assert_int_eq(check(kh, "10.8.0.1", 22, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    ck_assert_uint_eq(nr_known_hosts_skipped(kh), 3);
}
END_TEST

START_TEST(learning)
{
    char *p = path_of("sub/dir/kh"), err[256], *text;
    struct nr_known_hosts *kh = nr_known_hosts_open(p);
    bool stored = true;
    struct stat st;

    /* nothing there: unknown, the file is not made by a lookup */
    ck_assert_int_eq(check(kh, "10.0.0.1", 22, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    ck_assert_ptr_null(slurp(p));
    ck_assert_int_eq(nr_known_hosts_check(kh, "10.0.0.1", 22, "ssh-ed25519", K1, true, &stored,
                                          err, sizeof(err)), NR_KH_UNKNOWN);
    ck_assert_msg(stored, "not stored: %s", err);
    ck_assert_int_eq(nr_known_hosts_check(kh, "Dev.Lab", 2200, "ssh-rsa", KR, true, &stored,
                                          err, sizeof(err)), NR_KH_UNKNOWN);
    ck_assert(stored);
    text = slurp(p);
    ck_assert_str_eq(text, "10.0.0.1 ssh-ed25519 " K1 "\n[dev.lab]:2200 ssh-rsa " KR "\n");
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(check(kh, "10.0.0.1", 22, "ssh-ed25519", K1), NR_KH_OK);
    ck_assert_int_eq(check(kh, "dev.lab", 2200, "ssh-rsa", KR), NR_KH_OK);
    /* a known host is not learned again, whatever its key */
    ck_assert_int_eq(nr_known_hosts_check(kh, "10.0.0.1", 22, "ssh-ed25519", K2, true, &stored,
                                          err, sizeof(err)), NR_KH_CHANGED);
    ck_assert(!stored);
    /* its own appends did not make it read the file again */
    ck_assert_uint_eq(nr_known_hosts_reads(kh), 1);

    /* a file whose last line has no newline gets one before the next line */
    put(p, "10.0.0.5 ssh-ed25519 " K1);
    ck_assert_int_eq(nr_known_hosts_check(kh, "10.0.0.6", 22, "ssh-ed25519", K2, true, &stored,
                                          err, sizeof(err)), NR_KH_UNKNOWN);
    ck_assert(stored);
    ck_assert_str_eq(slurp(p), "10.0.0.5 ssh-ed25519 " K1 "\n10.0.0.6 ssh-ed25519 " K2 "\n");

    /* a folder that cannot be made: not stored, and the reason */
    kh = nr_known_hosts_open("/proc/nr-no-such/kh");
    ck_assert_int_eq(nr_known_hosts_check(kh, "10.0.0.1", 22, "ssh-ed25519", K1, true, &stored,
                                          err, sizeof(err)), NR_KH_UNKNOWN);
    ck_assert(!stored);
    ck_assert_ptr_nonnull(strstr(err, "/proc/nr-no-such/kh"));
}
END_TEST

START_TEST(edits_are_heard)
{
    char *p = path_of("kh");
    struct nr_known_hosts *kh;

    put(p, "10.0.0.1 ssh-ed25519 " K1 "\n10.0.0.2 ssh-ed25519 " K1 "\n");
    kh = nr_known_hosts_open(p);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(check(kh, "10.0.0.2", 22, "ssh-ed25519", K1), NR_KH_OK);
    ck_assert_uint_eq(nr_known_hosts_reads(kh), 1);
    /* the operator removes the line of a replaced device */
    put(p, "10.0.0.1 ssh-ed25519 " K1 "\n");
    ck_assert_int_eq(check(kh, "10.0.0.2", 22, "ssh-ed25519", K2), NR_KH_UNKNOWN);
    ck_assert_uint_eq(nr_known_hosts_reads(kh), 2);
    /* ... or the whole file */
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(check(kh, "10.0.0.1", 22, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    ck_assert_uint_eq(nr_known_hosts_reads(kh), 3);
    ck_assert_int_eq(check(kh, "10.0.0.1", 22, "ssh-ed25519", K1), NR_KH_UNKNOWN);
    ck_assert_uint_eq(nr_known_hosts_reads(kh), 3);
}
END_TEST

START_TEST(types_in_order)
{
    char *p = path_of("kh"), out[128];
    struct nr_known_hosts *kh;

    put(p, "10.0.0.1 ecdsa-sha2-nistp256 " K1 "\n"
           "10.0.0.1 ssh-rsa " KR "\n"
           "10.0.0.* ssh-ed25519 " K2 "\n"
           "10.0.0.1 ssh-rsa " KR "\n");
    kh = nr_known_hosts_open(p);
    ck_assert_uint_eq(nr_known_hosts_types(kh, "10.0.0.1", 22, out, sizeof(out)), 3);
    ck_assert_str_eq(out, "ecdsa-sha2-nistp256,ssh-rsa,ssh-ed25519");
    ck_assert_uint_eq(nr_known_hosts_types(kh, "10.0.0.9", 22, out, sizeof(out)), 1);
    ck_assert_str_eq(out, "ssh-ed25519");
    ck_assert_uint_eq(nr_known_hosts_types(kh, "10.0.1.1", 22, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "");
    /* a short buffer keeps whole types */
    ck_assert_uint_eq(nr_known_hosts_types(kh, "10.0.0.1", 22, out, 28), 2);
    ck_assert_str_eq(out, "ecdsa-sha2-nistp256,ssh-rsa");
}
END_TEST

/* Many sessions learn the same new devices at once: one line each. */
struct racer {
    struct nr_known_hosts *kh;
    int stored;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    char host[32];
    bool stored;

    for (int i = 0; i < 200; i++) {
        snprintf(host, sizeof(host), "10.5.%d.%d", i / 250, i % 250);
        nr_known_hosts_check(r->kh, host, 22, "ssh-ed25519", K1, true, &stored, NULL, 0);
        r->stored += stored;
    }
    return NULL;
}

START_TEST(learning_races)
{
    char *p = path_of("kh"), *text;
    struct racer r[8];
    pthread_t t[8];
    int total = 0, lines = 0;

    for (int i = 0; i < 8; i++) {
        r[i].kh = nr_known_hosts_open(p);
        r[i].stored = 0;
        ck_assert_int_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += r[i].stored;
    }
    ck_assert_int_eq(total, 200);
    text = slurp(p);
    for (char *c = text; *c; c++)
        lines += *c == '\n';
    ck_assert_int_eq(lines, 200);
}
END_TEST

/* A fleet's file: read once, however many lookups. */
START_TEST(large_file_read_once)
{
    char *p = path_of("kh");
    FILE *f = fopen(p, "w");
    struct nr_known_hosts *kh;
    char host[32];

    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 20000; i++)
        fprintf(f, "10.%d.%d.%d ssh-ed25519 %s\n", i >> 16, (i >> 8) & 255, i & 255,
                i % 2 ? K1 : K2);
    fclose(f);
    kh = nr_known_hosts_open(p);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 20000; i++) {
            snprintf(host, sizeof(host), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
            ck_assert_int_eq(check(kh, host, 22, "ssh-ed25519", i % 2 ? K1 : K2), NR_KH_OK);
        }
    ck_assert_uint_eq(nr_known_hosts_reads(kh), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("knownhosts");
    TCase *tc = tcase_create("table");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, verdicts);
    tcase_add_test(tc, patterns_hashes_markers_and_bad_lines);
    tcase_add_test(tc, learning);
    tcase_add_test(tc, edits_are_heard);
    tcase_add_test(tc, types_in_order);
    tcase_add_test(tc, learning_races);
    tcase_add_test(tc, large_file_read_once);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
