/*
 * test_store.c - the store's pure parts, no server: the scrubber every
 * writer of a libpq message uses (nr_store_scrub), so that the password of
 * database.url never reaches a log line, decoded or as written; and the
 * fault classes of SQLSTATEs that the log's DB writer acts on.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "netraven/store.h"

/* libpq's own message for a URI whose password is not valid %-encoding
 * quotes the raw token: the scrubber must take it out. */
START_TEST(scrub_raw_token_libpq_quotes)
{
    const char *url = "postgresql://u:Hunter2%zz@127.0.0.1:1/db";
    char *err = NULL;
    char msg[256];
    PQconninfoOption *o = PQconninfoParse(url, &err);

    ck_assert_ptr_null(o);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, "Hunter2%zz") != NULL, "libpq no longer quotes it: %s", err);
    snprintf(msg, sizeof(msg), "PostgreSQL unavailable (%s)", err);
    PQfreemem(err);
    nr_store_scrub(msg, sizeof(msg), url);
    ck_assert_msg(strstr(msg, "Hunter2") == NULL, "password left: %s", msg);
    ck_assert_ptr_nonnull(strstr(msg, "invalid percent-encoded token: \"****\""));
}
END_TEST

START_TEST(scrub_decoded_and_written_forms)
{
    static const struct {
        const char *url, *in, *out;
    } cases[] = {
        /* decoded (what libpq sends) and as written */
        { "postgresql+psycopg2://nr:p%40ss@h/db", "a p@ss b p%40ss c", "a **** b **** c" },
        { "postgres://nr:s3cr3t@h:5432/db", "x s3cr3ts3cr3t y", "x ******** y" },
        /* keyword=value */
        { "host=h password=kw-pw dbname=d", "auth failed for kw-pw", "auth failed for ****" },
        /* no password: nothing changes, whatever looks like one */
        { "postgresql://nr@h/db", "user nr on h", "user nr on h" },
        { "", "text", "text" },
    };
    char msg[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(msg, sizeof(msg), "%s", cases[i].in);
        nr_store_scrub(msg, sizeof(msg), cases[i].url);
        ck_assert_msg(strcmp(msg, cases[i].out) == 0, "%s: \"%s\"", cases[i].url, msg);
    }
    nr_store_scrub(msg, sizeof(msg), NULL);         /* no URL: a no-op */
    nr_store_scrub(NULL, 0, "postgresql://u:p@h/d");
}
END_TEST

/* A message that fills its buffer stays terminated inside it. */
START_TEST(scrub_keeps_the_buffer_bound)
{
    char msg[16];

    memset(msg, 'x', sizeof(msg));
    memcpy(msg, "pw:ab", 5);
    msg[sizeof(msg) - 1] = '\0';
    nr_store_scrub(msg, sizeof(msg), "postgresql://u:ab@h/d");
    ck_assert_uint_lt(strlen(msg), sizeof(msg));
    ck_assert_str_eq(msg, "pw:****xxxxxxxx");
}
END_TEST

/* What a failure means: the connection (reconnect and retry), the rows
 * (write them one by one), or neither (wait, rows kept). */
START_TEST(sqlstate_faults)
{
    static const struct {
        const char         *state;
        enum nr_store_fault want;
    } cases[] = {
        { NULL, NR_STORE_FAULT_CONN },              /* no result: libpq's own error */
        { "08006", NR_STORE_FAULT_CONN },           /* connection_failure */
        { "08000", NR_STORE_FAULT_CONN },
        { "57P01", NR_STORE_FAULT_CONN },           /* admin_shutdown */
        { "57P03", NR_STORE_FAULT_CONN },           /* cannot_connect_now */
        { "57014", NR_STORE_FAULT_OTHER },          /* query_canceled: not 57P0x */
        { "22P02", NR_STORE_FAULT_DATA },           /* invalid_text_representation */
        { "22001", NR_STORE_FAULT_DATA },           /* string_data_right_truncation */
        { "23503", NR_STORE_FAULT_DATA },           /* foreign_key_violation */
        { "23505", NR_STORE_FAULT_DATA },
        { "42P01", NR_STORE_FAULT_OTHER },          /* undefined_table */
        { "42501", NR_STORE_FAULT_OTHER },          /* insufficient_privilege */
        { "53100", NR_STORE_FAULT_OTHER },          /* disk_full */
        { "", NR_STORE_FAULT_OTHER },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(nr_store_sqlstate_fault(cases[i].state) == cases[i].want,
                      "%s: %d, not %d", cases[i].state ? cases[i].state : "(none)",
                      nr_store_sqlstate_fault(cases[i].state), cases[i].want);
}
END_TEST

/* Without a connection every failure is the connection's, said on one
 * line, and COPY does not start. */
START_TEST(fail_without_a_connection)
{
    struct nr_store s;

    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(nr_store_fail(&s, "log_copy", NULL), NR_STORE_FAULT_CONN);
    ck_assert_int_eq(s.err, NR_EIO);
    ck_assert_str_eq(s.errstr, "log_copy: not connected");
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(nr_store_copy_begin(&s, "COPY logs FROM STDIN"), NR_STORE_FAULT_CONN);
    ck_assert_int_eq(s.err, NR_EIO);
    ck_assert_str_eq(s.errstr, "not connected");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("scrub");
    tcase_add_test(tc, scrub_raw_token_libpq_quotes);
    tcase_add_test(tc, scrub_decoded_and_written_forms);
    tcase_add_test(tc, scrub_keeps_the_buffer_bound);
    suite_add_tcase(s, tc);
    tc = tcase_create("faults");
    tcase_add_test(tc, sqlstate_faults);
    tcase_add_test(tc, fail_without_a_connection);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
