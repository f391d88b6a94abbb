/* test_docs.c - the README documents every config key, every log type and
 * every job type the code has (they are read from the same tables). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/config.h"
#include "netraven/handler.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static bool documented(const char *readme, const char *name)
{
    char want[256];
    snprintf(want, sizeof(want), "| `%s` |", name);
    return strstr(readme, want) != NULL;
}

START_TEST(every_config_key_is_in_the_readme)
{
    char *readme = slurp(NR_SOURCE_ROOT "/README.md");
    char *env[] = { NULL };
    struct nr_config cfg;
    char *err = NULL, *buf = NULL;
    size_t len = 0;

    ck_assert_msg(nr_config_load(&cfg, NR_SOURCE_ROOT "/config", env, &err) == 0, "%s", err);
    FILE *out = open_memstream(&buf, &len);
    nr_config_print(&cfg, out);
    fclose(out);

    int keys = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        ck_assert_ptr_nonnull(colon);
        *colon = '\0';
        /* worker.device_types.<type>.<key>: the key once, with <type>, and
         * the type in the device-type table */
        if (strncmp(line, "worker.device_types.", 20) == 0) {
            char *type = line + 20, *dot = strrchr(type, '.'), generic[160];

            ck_assert_ptr_nonnull(dot);
            snprintf(generic, sizeof generic, "worker.device_types.<type>%s", dot);
            ck_assert_msg(documented(readme, generic), "README.md does not document %s", generic);
            *dot = '\0';
            ck_assert_msg(documented(readme, type),
                          "README.md's device-type table lacks %s", type);
            keys++;
            continue;
        }
        ck_assert_msg(documented(readme, line), "README.md does not document config key %s", line);
        keys++;
    }
    ck_assert_int_gt(keys, 30);
    free(buf);
    nr_config_clear(&cfg);
    free(readme);
}
END_TEST

START_TEST(every_log_type_and_job_type_is_in_the_readme)
{
    char *readme = slurp(NR_SOURCE_ROOT "/README.md");
    size_t n;
    const struct nr_handler_def *h = nr_handler_table(&n);

    for (int t = 0; t < NR_LOG_TYPE_COUNT; t++)
        ck_assert_msg(documented(readme, nr_log_type_name(t)),
                      "README.md's routing table lacks log type %s", nr_log_type_name(t));
    ck_assert_uint_gt(n, 0);
    for (size_t i = 0; i < n; i++) {
        char want[128];
        snprintf(want, sizeof(want), "`%s`", h[i].job_type);
        ck_assert_msg(strstr(readme, want), "README.md does not describe job type %s", h[i].job_type);
    }
    free(readme);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("docs");
    TCase *tc = tcase_create("readme");
    tcase_add_test(tc, every_config_key_is_in_the_readme);
    tcase_add_test(tc, every_log_type_and_job_type_is_in_the_readme);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
