/* test_cli.c - the CLI engine's pure parts: the device-type table, prompt
 * recognition and learning, pager and secret prompts, erase sequences and
 * the cleaning of command output; no SSH (tests/integration/test_ssh.c
 * drives the engine against devsim). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/ssh.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static const struct nr_devtype *T(const char *name)
{
    const struct nr_devtype *t = nr_devtype_find(name);

    ck_assert_ptr_nonnull(t);
    return t;
}

/* ---- the table --------------------------------------------------------- */

START_TEST(table_is_complete)
{
    static const struct { const char *type, *cmd, *paging; } want[] = {
        { "cisco_ios", "show running-config", "terminal length 0" },
        { "cisco_xe", "show running-config", "terminal length 0" },
        { "cisco_nxos", "show running-config", "terminal length 0" },
        { "cisco_xr", "show running-config", "terminal length 0" },
        { "arista_eos", "show running-config", "terminal length 0" },
        { "juniper_junos", "show configuration | display set", "set cli screen-length 0" },
        { "cisco_asa", "show running-config", "terminal pager 0" },
        { "paloalto_panos", "show config running", "set cli pager off" },
        { "linux", NULL, NULL },
        { "default", "show running-config", "terminal length 0" },
    };
    size_t n;
    const struct nr_devtype *tab = nr_devtype_table(&n);

    ck_assert_uint_eq(n, NR_ARRAY_LEN(want));
    ck_assert_str_eq(tab[n - 1].name, "default");
    for (size_t i = 0; i < NR_ARRAY_LEN(want); i++) {
        const struct nr_devtype *t = nr_devtype_find(want[i].type);

        ck_assert_str_eq(t->name, want[i].type);
        ck_assert_ptr_nonnull(t->config_cmd);
        ck_assert_ptr_nonnull(t->prompt_end);
        ck_assert_uint_gt(strlen(t->prompt_end), 0);
        ck_assert_ptr_nonnull(t->pagers);
        ck_assert_uint_gt(strlen(t->pagers), 0);
        if (want[i].cmd)
            ck_assert_str_eq(t->config_cmd, want[i].cmd);
        if (want[i].paging)
            ck_assert_str_eq(t->paging_off, want[i].paging);
        /* an enable command needs a privileged prompt end, which ends prompts */
        if (t->enable_cmd) {
            ck_assert_int_ne(t->priv_end, 0);
            ck_assert_ptr_nonnull(strchr(t->prompt_end, t->priv_end));
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(tab[i].name, tab[j].name);
}
END_TEST

START_TEST(find_falls_back)
{
    ck_assert_str_eq(T("cisco_ios_ssh")->name, "cisco_ios");
    ck_assert_str_eq(T("juniper")->name, "juniper_junos");
    ck_assert_str_eq(T("juniper_junos_telnet")->name, "juniper_junos");
    ck_assert_str_eq(T("huawei_vrp")->name, "default");
    ck_assert_str_eq(T("")->name, "default");
    ck_assert_str_eq(nr_devtype_find(NULL)->name, "default");
    ck_assert_str_eq(T("cisco_ios")->enable_cmd, "enable");
    ck_assert_ptr_null(T("cisco_nxos")->enable_cmd);
}
END_TEST

/* ---- prompts ----------------------------------------------------------- */

static char *token(const char *type, const char *line)
{
    static char out[NR_CLI_PROMPT_MAX];
    size_t start = 0, n = nr_cli_prompt_token(T(type), line, strlen(line), &start);

    if (n == 0)
        return NULL;
    memcpy(out, line + start, n);
    out[n] = '\0';
    return out;
}

START_TEST(prompt_tokens)
{
    ck_assert_str_eq(token("cisco_ios", "router>"), "router>");
    ck_assert_str_eq(token("cisco_ios", "core-rtr01#  "), "core-rtr01#");
    ck_assert_str_eq(token("cisco_xr", "RP/0/RSP0/CPU0:edge#"), "RP/0/RSP0/CPU0:edge#");
    ck_assert_str_eq(token("juniper_junos", "netops@mx1> "), "netops@mx1>");
    ck_assert_str_eq(token("linux", "admin@web1:~$ "), "admin@web1:~$");
    ck_assert_str_eq(token("cisco_asa", "fw1(config)# "), "fw1(config)#");
    ck_assert_str_eq(token("cisco_ios", "\x01\xfe\x07router#"), "router#");
    ck_assert_str_eq(token("cisco_ios", "% Login invalid router>"), "router>");
    ck_assert_ptr_null(token("cisco_ios", "Password:"));
    ck_assert_ptr_null(token("cisco_ios", "Password: "));
    ck_assert_ptr_null(token("cisco_ios", "#"));
    ck_assert_ptr_null(token("cisco_ios", ""));
    ck_assert_ptr_null(token("cisco_ios", "Building configuration..."));
    ck_assert_ptr_null(token("cisco_ios", "u@h:~$ "));        /* not an IOS end */
    ck_assert_str_eq(token("cisco_ios", "a->b>"), "b>");       /* ends do not repeat */
}
END_TEST

START_TEST(ends_with_prompt)
{
    ck_assert(nr_cli_ends_with_prompt(S("line\r\nrouter#"), "router#"));
    ck_assert(nr_cli_ends_with_prompt(S("line\r\n\x05router# "), "router#"));
    ck_assert(!nr_cli_ends_with_prompt(S("router#\r\nmore"), "router#"));
    ck_assert(!nr_cli_ends_with_prompt(S("line\r\nrouter"), "router#"));
    ck_assert(!nr_cli_ends_with_prompt(S("line\r\n"), "router#"));
    ck_assert(!nr_cli_ends_with_prompt(S("x"), ""));
}
END_TEST

static bool learn(const char *type, const char *buf, const char *cmd, char *out)
{
    return nr_cli_learn(T(type), buf, strlen(buf), cmd, out, NR_CLI_PROMPT_MAX);
}

START_TEST(learning_needs_two_sightings)
{
    char p[NR_CLI_PROMPT_MAX];

    /* greeting, then the echo of the paging command, then the prompt */
    ck_assert(learn("cisco_ios", "\r\nr1>terminal length 0\r\nr1>", "terminal length 0", p));
    ck_assert_str_eq(p, "r1>");
    /* not yet: the answer has not come */
    ck_assert(!learn("cisco_ios", "\r\nr1>terminal length 0\r\n", "terminal length 0", p));
    ck_assert(!learn("cisco_ios", "\r\nr1>terminal length 0", "terminal length 0", p));
    /* Junos: a reply line and an empty line before the prompt */
    ck_assert(learn("juniper_junos",
                    "--- JUNOS\r\n\r\nadmin@mx1> set cli screen-length 0\r\n"
                    "Screen length set to 0\r\n\r\nadmin@mx1> ",
                    "set cli screen-length 0", p));
    ck_assert_str_eq(p, "admin@mx1>");
    /* a banner with prompt-like lines: the command was typed early, while
     * the banner was still coming; the real prompt is the one confirmed */
    ck_assert(learn("cisco_ios",
                    "*** not prompts ***\r\ncore-rtr01#\r\nPassword:\r\nswitch>\r\n"
                    "\r\nedge7>terminal length 0\r\nedge7>",
                    "terminal length 0", p));
    ck_assert_str_eq(p, "edge7>");
    ck_assert(!learn("cisco_ios", "core-rtr01#\r\nswitch>terminal length 0\r\nedge7>",
                     "terminal length 0", p));
    /* no paging command: the prompt twice, around an empty line */
    ck_assert(learn("linux", "Last login: x\r\nu@h:~$ \r\nu@h:~$ ", "", p));
    ck_assert_str_eq(p, "u@h:~$");
    ck_assert(!learn("linux", "u@h:~$ \r\nroot@h:~# ", "", p));
    /* garbage before each prompt: what they share */
    ck_assert(learn("cisco_ios", "\x9a\x01Zr1>terminal length 0\r\n\x13kr1>",
                    "terminal length 0", p));
    ck_assert_str_eq(p, "r1>");
}
END_TEST

/* ---- pagers and secrets ---------------------------------------------- */

START_TEST(pagers)
{
    const char *ios = "line 1\r\nline 2\r\n --More-- ";

    ck_assert_int_eq(nr_cli_find_pager(T("cisco_ios"), ios, strlen(ios)),
                     (long)strlen("line 1\r\nline 2\r\n"));
    ck_assert_int_eq(nr_cli_find_pager(T("cisco_asa"), S("a\r\n<--- More --->")), 3);
    ck_assert_int_eq(nr_cli_find_pager(T("juniper_junos"), S("a\r\n---(more 42%)---")), 3);
    ck_assert_int_eq(nr_cli_find_pager(T("paloalto_panos"), S("a\r\n--more--")), 3);
    ck_assert_int_eq(nr_cli_find_pager(T("cisco_ios"), S("a\r\nb --more-- ")), 4);
    ck_assert_int_eq(nr_cli_find_pager(T("cisco_ios"), S(" --More-- \r\nrouter#")), -1);
    ck_assert_int_eq(nr_cli_find_pager(T("cisco_ios"), S("a\r\nrouter#")), -1);
    ck_assert_int_eq(nr_cli_find_pager(T("cisco_ios"), S("")), -1);
}
END_TEST

START_TEST(secret_prompts)
{
    ck_assert(nr_cli_secret_prompt(S("enable\r\nPassword: ")));
    ck_assert(nr_cli_secret_prompt(S("\r\n[sudo] password for admin: ")));
    ck_assert(nr_cli_secret_prompt(S("Enter secret:")));
    ck_assert(!nr_cli_secret_prompt(S("Password: \r\nrouter>")));
    ck_assert(!nr_cli_secret_prompt(S("router>")));
    ck_assert(!nr_cli_secret_prompt(S("Username:")));
}
END_TEST

START_TEST(erase_sequences)
{
    bool more;

    ck_assert_uint_eq(nr_cli_erase_len(S("\b\b\b   \b\b\bnext"), &more), 9);
    ck_assert(!more);
    ck_assert_uint_eq(nr_cli_erase_len(S("\b\b\b   \b"), &more), 0);
    ck_assert(more);
    ck_assert_uint_eq(nr_cli_erase_len(S("\b\b"), &more), 0);
    ck_assert(more);
    ck_assert_uint_eq(nr_cli_erase_len(S("\r        \r interface x"), &more), 10);
    ck_assert(!more);
    ck_assert_uint_eq(nr_cli_erase_len(S("\r    "), &more), 0);
    ck_assert(more);
    ck_assert_uint_eq(nr_cli_erase_len(S("\r\nnext"), &more), 0);
    ck_assert(!more);
    ck_assert_uint_eq(nr_cli_erase_len(S(" interface x"), &more), 0);
    ck_assert(!more);
    ck_assert_uint_eq(nr_cli_erase_len(S(""), &more), 0);
    ck_assert(more);
}
END_TEST

/* ---- cleaning ---------------------------------------------------------- */

static char *clean(const char *raw, size_t len, const char *cmd, const char *prompt)
{
    size_t n;
    char *o = nr_cli_clean(raw, len, cmd, prompt, &n);

    ck_assert_uint_eq(strlen(o), n);
    return o;
}

START_TEST(clean_strips_echo_and_prompt)
{
    char *o;

    o = clean(S("show run\r\nline 1\r\nline 2\r\nr1#"), "show run", "r1#");
    ck_assert_str_eq(o, "line 1\nline 2\n");
    free(o);
    /* Junos: blank line before the prompt */
    o = clean(S("show configuration | display set\r\nset a\r\n\r\nu@mx> "),
              "show configuration | display set", "u@mx>");
    ck_assert_str_eq(o, "set a\n");
    free(o);
    /* nothing but the prompt */
    o = clean(S("terminal length 0\r\nr1>"), "terminal length 0", "r1>");
    ck_assert_str_eq(o, "");
    free(o);
    /* a first line that is not the echo stays */
    o = clean(S("something else\r\nx\r\nr1#"), "show run", "r1#");
    ck_assert_str_eq(o, "something else\nx\n");
    free(o);
    /* garbage before the prompt goes with the prompt line */
    o = clean(S("show run\r\nx\r\n\x13\x02r1#"), "show run", "r1#");
    ck_assert_str_eq(o, "x\n");
    free(o);
}
END_TEST

START_TEST(clean_terminal_controls)
{
    char *o;

    /* escapes, backspaces, CR CR LF, lone CR, NUL and other controls */
    o = clean(S("cmd\r\n\x1b[1mbold\x1b[0m\r\r\nab\bc\r\nxx\ryy\r\n\x1b]0;title\x07t\0u\x01v\r\nr#"),
              "cmd", "r#");
    ck_assert_str_eq(o, "bold\nac\nyy\ntuv\n");
    free(o);
    /* invalid UTF-8 becomes '?', valid stays */
    o = clean(S("cmd\r\ncaf\xc3\xa9 \xff\xc3 \xed\xa0\x80\r\nr#"), "cmd", "r#");
    ck_assert_str_eq(o, "caf\xc3\xa9 ?? ???\n");
    free(o);
    /* a truncated sequence at the end */
    o = clean(S("cmd\r\nx\xe2\x82"), "cmd", NULL);
    ck_assert_str_eq(o, "x??");
    free(o);
    o = clean(S("cmd\r\nx\x1b["), "cmd", NULL);
    ck_assert_str_eq(o, "x");
    free(o);
}
END_TEST

/* Random bytes: no crash, output always valid and no longer than input. */
START_TEST(clean_survives_garbage)
{
    unsigned seed = 12345;

    for (int round = 0; round < 2000; round++) {
        char raw[256], p[NR_CLI_PROMPT_MAX];
        size_t len = (size_t)(rand_r(&seed) % sizeof(raw)), n, s = 0;
        char *o;
        bool more;

        for (size_t i = 0; i < len; i++)
            raw[i] = (char)rand_r(&seed);
        o = nr_cli_clean(raw, len, "show run", "r1#", &n);
        ck_assert_uint_le(n, len);
        ck_assert_uint_eq(strlen(o), n);
        free(o);
        (void)nr_cli_prompt_token(T("cisco_ios"), raw, len, &s);
        (void)nr_cli_find_pager(T("cisco_asa"), raw, len);
        (void)nr_cli_secret_prompt(raw, len);
        (void)nr_cli_learn(T("cisco_ios"), raw, len, "terminal length 0", p, sizeof(p));
        (void)nr_cli_learn(T("linux"), raw, len, "", p, sizeof(p));
        ck_assert_uint_le(nr_cli_erase_len(raw, len, &more), len);
    }
}
END_TEST

/* The session stream's cut of a long line never splits a secret, so that
 * each occurrence is masked whole. */
START_TEST(stream_cut_never_splits_a_secret)
{
    const char *secrets[] = { "hunter2-pw", "en4ble" };
    char buf[200];

    memset(buf, 'x', sizeof(buf));
    /* no secret: STREAM_KEEP-style tail of 64 */
    ck_assert_uint_eq(nr_ssh_safe_cut(buf, sizeof(buf), secrets, 2, 64), 136);
    /* "hunter2-pw" across the plain cut at 136: the cut moves before it */
    memcpy(buf + 130, "hunter2-pw", 10);
    ck_assert_uint_eq(nr_ssh_safe_cut(buf, sizeof(buf), secrets, 2, 64), 130);
    /* one ending exactly at the cut is whole on its side: no move */
    memset(buf, 'x', sizeof(buf));
    memcpy(buf + 130, "en4ble", 6);
    ck_assert_uint_eq(nr_ssh_safe_cut(buf, sizeof(buf), secrets, 2, 64), 136);
    /* moving the cut for one secret exposes another: it moves again */
    const char *overlap[] = { "abcdef", "efghijklmn" };
    memset(buf, 'x', sizeof(buf));
    memcpy(buf + 129, "abcdefghijklmn", 14);     /* abcdef 129-134, efghijklmn 133-142 */
    ck_assert_uint_eq(nr_ssh_safe_cut(buf, sizeof(buf), overlap, 2, 64), 129);
    /* a secret longer than the tail widens it */
    const char *longsec[] = { "0123456789abcdefghij" };
    ck_assert_uint_eq(nr_ssh_safe_cut(buf, 30, longsec, 1, 5), 10);
    ck_assert_uint_eq(nr_ssh_safe_cut(buf, 20, longsec, 1, 5), 0);
}
END_TEST

START_TEST(names)
{
    ck_assert_str_eq(nr_ssh_fail_name(NR_SSH_HOSTKEY), "host key");
    ck_assert_str_eq(nr_ssh_fail_name(NR_SSH_OUTPUT_CAP), "output cap");
    ck_assert_str_eq(nr_ssh_fail_name(NR_SSH_FAIL_COUNT), "unknown");
    ck_assert_str_eq(nr_ssh_stage_name(NR_SSH_STAGE_PROMPT), "prompt");
    for (int f = 0; f < NR_SSH_FAIL_COUNT; f++)
        ck_assert_str_ne(nr_ssh_fail_name(f), "unknown");
    for (int s = 0; s < NR_SSH_STAGE_COUNT; s++)
        ck_assert_str_ne(nr_ssh_stage_name(s), "unknown");
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *t = tcase_create("table");
    TCase *p = tcase_create("parse");

    tcase_add_test(t, table_is_complete);
    tcase_add_test(t, find_falls_back);
    tcase_add_test(t, names);
    suite_add_tcase(s, t);

    tcase_add_test(p, prompt_tokens);
    tcase_add_test(p, ends_with_prompt);
    tcase_add_test(p, learning_needs_two_sightings);
    tcase_add_test(p, pagers);
    tcase_add_test(p, secret_prompts);
    tcase_add_test(p, erase_sequences);
    tcase_add_test(p, clean_strips_echo_and_prompt);
    tcase_add_test(p, clean_terminal_controls);
    tcase_add_test(p, clean_survives_garbage);
    tcase_add_test(p, stream_cut_never_splits_a_secret);
    suite_add_tcase(s, p);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cli_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
