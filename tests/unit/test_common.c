/* test_common.c - the helpers every module shares. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/common.h"

START_TEST(utf8_scrub_replaces_invalid_bytes_and_nul)
{
    char ok[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    ck_assert_uint_eq(nr_utf8_scrub(ok, strlen(ok)), 0);
    ck_assert_str_eq(ok, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");

    char bad[] = { 'a', (char)0xff, 'b', 0, 'c', (char)0xc3, 'd', (char)0xed, (char)0xa0,
                   (char)0x80, (char)0xc0, (char)0xaf, 'e' };
    ck_assert_uint_eq(nr_utf8_scrub(bad, sizeof(bad)), 8);
    ck_assert(memcmp(bad, "a?b?c?d?????e", sizeof(bad)) == 0);

    char cut[] = "x\xe2\x82";           /* truncated 3-byte sequence */
    ck_assert_uint_eq(nr_utf8_scrub(cut, 3), 2);
    ck_assert_str_eq(cut, "x??");
}
END_TEST

START_TEST(utf8_seq_lengths)
{
    ck_assert_uint_eq(nr_utf8_seq((const unsigned char *)"A", 1), 1);
    ck_assert_uint_eq(nr_utf8_seq((const unsigned char *)"\xc3\xa9", 2), 2);
    ck_assert_uint_eq(nr_utf8_seq((const unsigned char *)"\xe2\x82\xac", 3), 3);
    ck_assert_uint_eq(nr_utf8_seq((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4);
    ck_assert_uint_eq(nr_utf8_seq((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);  /* > U+10FFFF */
    ck_assert_uint_eq(nr_utf8_seq((const unsigned char *)"\xe0\x80\x80", 3), 0);      /* overlong */
    ck_assert_uint_eq(nr_utf8_seq((const unsigned char *)"\xc3\xa9", 1), 0);          /* short */
    ck_assert_uint_eq(nr_utf8_seq((const unsigned char *)"", 1), 0);                  /* NUL */
}
END_TEST

START_TEST(iso_timestamp_format)
{
    struct timespec ts = { 1795458242, 123456789 };
    char buf[NR_ISO_TS_LEN];
    nr_iso_ts(&ts, buf);
    ck_assert_uint_eq(strlen(buf), NR_ISO_TS_LEN - 1);
    ck_assert_str_eq(buf + 19, ".123456Z");
    ck_assert_int_eq(buf[10], 'T');
}
END_TEST

START_TEST(strlist_and_strcasestr)
{
    struct nr_strlist a = { 0 }, b = { 0 };
    nr_strlist_push(&a, "password");
    nr_strlist_push(&a, "secret");
    nr_strlist_copy(&b, &a);
    nr_strlist_clear(&a);
    ck_assert_uint_eq(a.n, 0);
    ck_assert_ptr_null(a.v);
    ck_assert_uint_eq(b.n, 2);
    ck_assert_str_eq(b.v[1], "secret");
    nr_strlist_clear(&b);

    ck_assert_ptr_nonnull(nr_strcasestr("enable SECRET 5 x", "secret"));
    ck_assert_ptr_null(nr_strcasestr("enable", "secret"));
    const char *h = "abc";
    ck_assert_ptr_eq(nr_strcasestr(h, ""), h);

    const char mem[] = { 'x', 0, 'P', 'a', 'S', 's', 'w', 'o', 'r', 'd', ':' };
    ck_assert_ptr_eq(nr_memcasemem(mem, sizeof(mem), "password", 8), mem + 2);
    ck_assert_ptr_null(nr_memcasemem(mem, 9, "password", 8));   /* cut short */
    ck_assert_ptr_null(nr_memcasemem(mem, sizeof(mem), "", 0));
}
END_TEST

START_TEST(mkdir_p_makes_parents)
{
    char base[] = "/tmp/nr-mkdir-XXXXXX";
    char path[256], file[300];
    struct stat st;

    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(path, sizeof(path), "%s/a/b/c", base);
    ck_assert_int_eq(nr_mkdir_p(path, 0750), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(nr_mkdir_p(path, 0750), 0);          /* exists: fine */
    snprintf(file, sizeof(file), "%s/a/plain", base);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/a/plain/below", base);
    ck_assert_int_eq(nr_mkdir_p(path, 0750), -1);         /* a file in the way */
    ck_assert_int_eq(errno, ENOTDIR);
    char cmd[320];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("common");
    tcase_add_test(tc, utf8_scrub_replaces_invalid_bytes_and_nul);
    tcase_add_test(tc, utf8_seq_lengths);
    tcase_add_test(tc, iso_timestamp_format);
    tcase_add_test(tc, strlist_and_strcasestr);
    tcase_add_test(tc, mkdir_p_makes_parents);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
