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

/* What NetRaven's API accepts (its device schema) and the platforms most
 * often found beside them: each has a row of its own. */
static const char *const fleet[] = {
    "cisco_ios", "cisco_xe", "cisco_nxos", "cisco_asa", "cisco_xr", "juniper_junos",
    "arista_eos", "hp_comware", "hp_procurve", "huawei", "fortinet", "paloalto_panos",
    "f5_tmsh", "linux", "dell_os10", "dell_os6", "dell_os9",
    "aruba_aoscx", "aruba_os", "mikrotik_routeros", "ruckus_fastiron", "extreme_exos",
    "vyos", "cumulus_linux", "ciena_saos", "sonicwall_sshd", "checkpoint_gaia", "cisco_ftd",
    "cisco_wlc",
};

START_TEST(table_covers_real_fleets)
{
    size_t n;
    const struct nr_devtype *tab = nr_devtype_table(&n);

    ck_assert_uint_eq(n, NR_ARRAY_LEN(fleet) + 1);
    ck_assert_str_eq(tab[n - 1].name, "default");
    ck_assert_uint_eq(tab[n - 1].id, NR_DEVTYPE_COUNT);
    ck_assert(tab[n - 1].flags & NR_DT_ENABLE_OPTIONAL);
    for (size_t i = 0; i < NR_ARRAY_LEN(fleet); i++)
        ck_assert_str_eq(T(fleet[i])->name, fleet[i]);
    for (size_t i = 0; i < n; i++) {
        const struct nr_devtype *t = &tab[i];

        ck_assert_ptr_nonnull(t->config_cmds);
        ck_assert_ptr_nonnull(t->config_cmds[0]);
        ck_assert_uint_gt(strlen(t->config_cmds[0]), 0);
        ck_assert_ptr_nonnull(t->prompt_end);
        ck_assert_uint_gt(strlen(t->prompt_end), 0);
        if (i + 1 < n)
            ck_assert_uint_eq(t->id, i);
        /* an enable command needs a privileged prompt end, which ends prompts */
        if (t->enable_cmd) {
            ck_assert_int_ne(t->priv_end, 0);
            ck_assert_ptr_nonnull(strchr(t->prompt_end, t->priv_end));
        }
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(t->name, tab[j].name);
        /* an alias is no other row's name, and finds its own row */
        for (const char *const *a = t->aliases; a && *a; a++) {
            for (size_t j = 0; j < n; j++)
                ck_assert_str_ne(*a, tab[j].name);
            ck_assert_ptr_eq(nr_devtype_find(*a), t);
        }
        for (const char *const *v = t->volatile_lines; v && *v; v++)
            ck_assert_uint_gt(strlen(*v), 0);
    }
    /* the commands as rows say them */
    ck_assert_str_eq(T("juniper_junos")->config_cmds[0], "show configuration | display set");
    ck_assert_str_eq(T("juniper_junos")->paging_off, "set cli screen-length 0");
    ck_assert_str_eq(T("hp_comware")->config_cmds[0], "display current-configuration");
    ck_assert_str_eq(T("huawei")->paging_off, "screen-length 0 temporary");
    ck_assert_str_eq(T("mikrotik_routeros")->config_cmds[0], "/export");
    ck_assert_ptr_null(T("linux")->paging_off);
    ck_assert_ptr_null(T("mikrotik_routeros")->pagers);
    ck_assert_str_eq(T("fortinet")->config_cmds[1], "show full-configuration");
    ck_assert_ptr_null(T("fortinet")->config_cmds[2]);
    ck_assert_str_eq(T("fortinet")->secret_words[0], " ENC ");
    char *cmds = nr_devtype_commands(T("fortinet"));
    ck_assert_str_eq(cmds, "get system status; show full-configuration");
    free(cmds);
    /* privilege levels only where the platform has them */
    ck_assert_str_eq(T("cisco_ios")->enable_cmd, "enable");
    ck_assert_str_eq(T("hp_procurve")->enable_cmd, "enable");
    static const char *const no_enable[] = { "cisco_nxos", "hp_comware", "huawei", "fortinet",
                                             "ciena_saos", "sonicwall_sshd", "juniper_junos",
                                             "mikrotik_routeros", "cisco_ftd", "cisco_wlc" };
    for (size_t i = 0; i < NR_ARRAY_LEN(no_enable); i++)
        ck_assert_msg(T(no_enable[i])->enable_cmd == NULL, "%s has enable", no_enable[i]);
}
END_TEST

START_TEST(find_by_alias_and_suffix)
{
    static const struct { const char *name, *row; } want[] = {
        { "cisco_ios_ssh", "cisco_ios" },       { "juniper", "juniper_junos" },
        { "juniper_junos_telnet", "juniper_junos" }, { "huawei_vrp", "huawei" },
        { "huawei_vrpv8", "huawei" },           { "brocade_fastiron", "ruckus_fastiron" },
        { "brocade_fastiron_ssh", "ruckus_fastiron" }, { "aruba_procurve", "aruba_os" },
        { "fortinet_ssh", "fortinet" },         { "dell_force10", "dell_os9" },
        { "vyatta_vyos", "vyos" },              { "extreme", "extreme_exos" },
        { "cisco_ios_xe", "cisco_xe" },         { "eos", "arista_eos" },
        { "hp_comware_ssh", "hp_comware" },     { "f5_ltm", "f5_tmsh" },
        { "no_such_platform", "default" },      { "", "default" },
    };

    for (size_t i = 0; i < NR_ARRAY_LEN(want); i++)
        ck_assert_msg(strcmp(T(want[i].name)->name, want[i].row) == 0, "%s -> %s, not %s",
                      want[i].name, T(want[i].name)->name, want[i].row);
    ck_assert_str_eq(nr_devtype_find(NULL)->name, "default");
}
END_TEST

/* ---- volatile lines ---------------------------------------------------- */

static char *strip(const char *type, const char *text, size_t *removed)
{
    char *s = strdup(text);
    size_t n = nr_devtype_strip_volatile(T(type), s, strlen(s), removed);

    ck_assert_uint_eq(strlen(s), n);
    return s;
}

START_TEST(volatile_lines_go)
{
    /* per type: a line that changes by itself, and lines that must stay */
    static const struct { const char *type, *gone, *kept; } cases[] = {
        { "cisco_ios", "! Last configuration change at 12:01:02 UTC Mon Mar 4 2024 by admin",
          "! Last configuration" },
        { "cisco_ios", "! NVRAM config last updated at 09:00:00 UTC Sun Mar 3 2024 by admin",
          "hostname r1" },
        { "cisco_ios", "ntp clock-period 17179869", "ntp server 192.0.2.1" },
        { "cisco_ios", "Current configuration : 20480 bytes", "Building configuration..." },
        { "cisco_ios", "*Mar  4 12:00:00.123: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up",
          "interface GigabitEthernet0/1" },
        { "cisco_xe", "000123: Mar  4 12:00:00: %SYS-5-CONFIG_I: Configured from console by admin",
          " description uplink: core %1" },
        { "cisco_nxos", "!Time: Mon Mar  4 12:00:00 2024", "!Command: show running-config" },
        { "cisco_xr", "Mon Mar  4 12:00:00.123 UTC", "Building configuration..." },
        { "cisco_xr", "!! Last configuration change at Mon Mar  4 11:00:00 2024 by admin",
          "!! IOS XR Configuration 7.3.2" },
        { "arista_eos", "! Startup-config last modified at  Mon Mar  4 12:00:00 2024 by admin",
          "! device: sw1 (DCS-7050SX3-48YC8, EOS-4.28.3M)" },
        { "juniper_junos", "## Last commit: 2024-03-04 12:00:00 UTC by admin",
          "set version 20.4R3.8" },
        { "cisco_asa", "Cryptochecksum:0123456789abcdef0123456789abcdef", ": Saved" },
        { "cisco_ftd", ": Written by enable_1 at 12:00:00.000 UTC Mon Mar 4 2024", ": Saved" },
        { "huawei", "!Last configuration was updated at 2024-03-04 12:00:00+00:00",
          "!Software Version V800R021C10SPC100" },
        { "fortinet", "#conf_file_ver=123456789", "#config-version=FGT60E-7.0.12" },
        { "fortinet", "System time: Mon Mar  4 12:00:00 2024", "Hostname: FW-1" },
        { "mikrotik_routeros", "# mar/04/2024 12:00:00 by RouterOS 6.49.10",
          "# software id = ABCD-1234" },
        { "ciena_saos", "! Created:       Mon Mar  4 12:00:00 2024", "! SAOS configuration" },
        { "checkpoint_gaia", "# Exported by admin on Mon Mar  4 12:00:00 2024",
          "# Language version: 13.4v1" },
        { "dell_os9", "! Last configuration change at Mon Mar  4 12:00:00 2024 by admin",
          "! Version 9.14(2.4)" },
        { "extreme_exos", "# X440G2-48p-10G4 Configuration generated Tue Mar  5 09:14:22 2024",
          "# Module devmgr configuration." },
        { "cisco_nxos", "2024 Mar  5 09:14:22 sw1 %ETHPORT-5-IF_UP: Interface Ethernet1/1 is up",
          "interface Ethernet1/1" },
        { "cisco_xr", "RP/0/RSP0/CPU0:Mar  5 09:14:22.123 UTC: ifmgr[257]: "
          "%PKT_INFRA-LINK-3-UPDOWN : Interface Gi0/0/0/1, changed state to Up",
          "interface GigabitEthernet0/0/0/1" },
        { "arista_eos", "Mar  5 09:14:22 sw1 Ebra: %LINEPROTO-5-UPDOWN: Line protocol on "
          "Interface Ethernet1, changed state to up", "interface Ethernet1" },
        { "cisco_asa", "Mar 05 2024 09:14:22: %ASA-4-411002: Line protocol on Interface "
          "GigabitEthernet1/1, changed state to up", "interface GigabitEthernet1/1" },
        { "huawei", "Mar  5 2024 09:14:22 sw1 %%01IFNET/4/LINK_STATE(l)[0]:The line protocol "
          "IP on the interface GigabitEthernet0/0/1 has entered the UP state.", "sysname sw1" },
        { "huawei", "2024-03-05 09:14:22.123 +00:00", "#" },
        { "hp_comware", "%Mar  5 09:14:22:123 2024 sw1 IFNET/3/PHY_UPDOWN: Physical state on "
          "the interface GigabitEthernet1/0/1 changed to up.", " sysname sw1" },
        { "dell_os10", "! Startup-config last updated at Tue Mar  5 09:14:22 2024",
          "! Version 10.5.2.3" },
        { "ciena_saos", "! On terminal: ttyp3", "! SAOS configuration" },
        { "mikrotik_routeros", "# 2024-03-05 09:14:22 by RouterOS 7.16",
          "/interface bridge" },
        { "arista_eos", "! Time: Tue Mar  5 09:14:22 2024", "! Command: show running-config" },
    };

    for (size_t i = 0; i < NR_ARRAY_LEN(cases); i++) {
        char text[512];
        size_t removed = 9;

        snprintf(text, sizeof text, "%s\r\n%s\n%s\nend", cases[i].kept, cases[i].gone,
                 cases[i].kept);
        char *s = strip(cases[i].type, text, &removed);
        char want[512];
        snprintf(want, sizeof want, "%s\r\n%s\nend", cases[i].kept, cases[i].kept);
        ck_assert_msg(strcmp(s, want) == 0, "%s: '%s' not removed alone: '%s'",
                      cases[i].type, cases[i].gone, s);
        ck_assert_uint_eq(removed, 1);
        free(s);
    }
}
END_TEST

START_TEST(volatile_lines_edges)
{
    size_t removed = 9;
    char *s;

    /* a type without patterns: untouched */
    s = strip("linux", "auto lo\niface lo inet loopback\n", &removed);
    ck_assert_str_eq(s, "auto lo\niface lo inet loopback\n");
    ck_assert_uint_eq(removed, 0);
    free(s);
    /* the last line without a newline, and every line volatile */
    s = strip("cisco_asa", "Cryptochecksum:1\r\nCryptochecksum:2", &removed);
    ck_assert_str_eq(s, "");
    ck_assert_uint_eq(removed, 2);
    free(s);
    /* a pattern matches whole lines only */
    s = strip("cisco_ios", "description see ntp clock-period 5\n", &removed);
    ck_assert_str_eq(s, "description see ntp clock-period 5\n");
    free(s);
    s = strip("cisco_ios", "", &removed);
    ck_assert_str_eq(s, "");
    free(s);
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
    /* blanks inside a prompt, and before its last character */
    ck_assert_str_eq(token("fortinet", "FW-1 # "), "FW-1 #");
    ck_assert_str_eq(token("cisco_wlc", "(some_prompt) >"), "(some_prompt) >");
    ck_assert_str_eq(token("checkpoint_gaia", "(node) [standalone: master] > "),
                     "(node) [standalone: master] >");
    ck_assert_str_eq(token("mikrotik_routeros", "[admin@MikroTik] > "), "[admin@MikroTik] >");
    ck_assert_str_eq(token("hp_comware", "<HPE-5130-01>"), "<HPE-5130-01>");
    ck_assert_str_eq(token("extreme_exos", "* X460G2-48t.12 # "), "* X460G2-48t.12 #");
    ck_assert_str_eq(token("cisco_ftd", "> "), ">");
    /* what a carriage return sent back over is not shown */
    ck_assert_str_eq(token("cisco_ios", "--More--\r        \rrouter#"), "router#");
    ck_assert_ptr_null(token("cisco_ios", "Password:"));
    ck_assert_ptr_null(token("cisco_ios", "Password: "));
    ck_assert_str_eq(token("cisco_ios", "#"), "#");             /* a line of its own */
    ck_assert_ptr_null(token("cisco_ios", "\x01#"));
    ck_assert_ptr_null(token("cisco_ios", ""));
    ck_assert_ptr_null(token("cisco_ios", "Building configuration..."));
    ck_assert_ptr_null(token("cisco_ios", "u@h:~$ "));        /* not an IOS end */
    ck_assert_ptr_null(token("cisco_ios", "interface GigabitEthernet0/1 description to core "
                                          "and a line far longer than any prompt could ever be on any "
                                          "platform, ending with the character >"));
}
END_TEST

#define ENDS(type, lit, prompt) nr_cli_ends_with_prompt(T(type), S(lit), prompt)

START_TEST(ends_with_prompt)
{
    ck_assert(ENDS("cisco_ios", "line\r\nrouter#", "router#"));
    ck_assert(ENDS("cisco_ios", "line\r\n\x05router# ", "router#"));
    ck_assert(!ENDS("cisco_ios", "router#\r\nmore", "router#"));
    ck_assert(!ENDS("cisco_ios", "line\r\nrouter", "router#"));
    ck_assert(!ENDS("cisco_ios", "line\r\n", "router#"));
    ck_assert(!ENDS("cisco_ios", "x", ""));
    /* "\r\r\n" line ends */
    ck_assert(ENDS("cisco_ios", "line\r\r\nrouter#\r\r", "router#"));
    /* blanks around the prompt's last character */
    ck_assert(ENDS("fortinet", "end\r\n\r\nFW-1 # ", "FW-1 #"));
    ck_assert(!ENDS("fortinet", "end\r\n\r\nFW-2 # ", "FW-1 #"));
    /* a lone prompt character is the whole line or nothing */
    ck_assert(ENDS("cisco_ftd", ": end\r\n> ", ">"));
    ck_assert(!ENDS("cisco_ftd", ": end\r\n<tag>", ">"));
    ck_assert(!ENDS("cisco_ftd", "a > ", ">"));
    /* a prompt whose counter moves: only where the row says so */
    ck_assert(ENDS("extreme_exos", "x\r\nsw1.13 # ", "sw1.9 #"));
    ck_assert(ENDS("extreme_exos", "x\r\n* sw1.4 # ", "sw1.3 #"));
    ck_assert(ENDS("extreme_exos", "x\r\nsw2.4 # ", "sw1.3 #"));   /* any digits */
    ck_assert(!ENDS("extreme_exos", "x\r\nswx.4 # ", "sw1.3 #"));
    ck_assert(!ENDS("cisco_ios", "x\r\nsw1.4#", "sw1.3#"));
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
    /* a blank before the last character */
    ck_assert(learn("fortinet", "\r\nFW-1 # \r\nFW-1 # ", "", p));
    ck_assert_str_eq(p, "FW-1 #");
    /* a lone '>' twice, each a line of its own */
    ck_assert(learn("cisco_ftd", "Copyright\r\n> \r\n> ", "", p));
    ck_assert_str_eq(p, ">");
    ck_assert(!learn("cisco_ftd", "a>\r\nb> ", "", p));
    /* a counter in the prompt: the later sighting is kept */
    ck_assert(learn("extreme_exos", "\r\nsw1.1 # disable clipaging\r\n\r\nsw1.2 # ",
                    "disable clipaging", p));
    ck_assert_str_eq(p, "sw1.2 #");
    ck_assert(!learn("cisco_ios", "\r\nsw1.1#terminal length 0\r\nsw1.2#",
                     "terminal length 0", p));
}
END_TEST

/* ---- pagers and secrets ---------------------------------------------- */

static long pager(const char *type, const char *buf, size_t len, const char *prompt,
                  size_t *end)
{
    return nr_cli_find_pager(T(type), buf, len, 0, prompt, end);
}

START_TEST(pagers)
{
    const char *ios = "line 1\r\nline 2\r\n --More-- ";
    size_t end = 0;

    ck_assert_int_eq(pager("cisco_ios", ios, strlen(ios), NULL, &end),
                     (long)strlen("line 1\r\nline 2\r\n"));
    ck_assert_uint_eq(end, strlen(ios));
    ck_assert_int_eq(pager("cisco_asa", S("a\r\n<--- More --->"), NULL, NULL), 3);
    ck_assert_int_eq(pager("juniper_junos", S("a\r\n---(more 42%)---"), NULL, &end), 3);
    ck_assert_uint_eq(end, strlen("a\r\n---(more 42%)---"));
    ck_assert_int_eq(pager("paloalto_panos", S("a\r\n--more--"), NULL, NULL), 3);
    ck_assert_int_eq(pager("cisco_ios", S("a\r\nb --more-- "), NULL, NULL), 4);
    ck_assert_int_eq(pager("cisco_ios", S(" --More-- \r\nrouter#"), "router#", NULL), -1);
    ck_assert_int_eq(pager("cisco_ios", S("a\r\nrouter#"), "router#", NULL), -1);
    ck_assert_int_eq(pager("cisco_ios", S(""), NULL, NULL), -1);
    /* the echo line is never searched */
    ck_assert_int_eq(pager("cisco_ios", S("show --More--"), NULL, NULL), -1);
    /* the whole pager line goes, words after the pager string too */
    const char *hp = "a\r\n-- MORE --, next page: Space, next line: Enter, quit: Control-C";
    ck_assert_int_eq(pager("hp_procurve", hp, strlen(hp), NULL, &end), 3);
    ck_assert_uint_eq(end, strlen(hp));
    /* a log line printed after the pager: found, and its line end goes too */
    const char *lg = "show run\r\nline 1\r\n --More-- \r\n"
                     "*Mar  4 12:00:00.123: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up\r\n";
    long at = pager("cisco_ios", lg, strlen(lg), "r1#", &end);
    ck_assert_int_eq(at, (long)strlen("show run\r\nline 1\r\n"));
    ck_assert_uint_eq(end, strlen("show run\r\nline 1\r\n --More-- \r\n"));
    /* a pager in the middle of a line */
    ck_assert_int_eq(pager("cisco_ios", S("show run\r\ninterface Gig --More-- "), NULL, &end),
                     (long)strlen("show run\r\ninterface Gig"));
    /* not before from, and not far up the output */
    ck_assert_int_eq(nr_cli_find_pager(T("cisco_ios"), ios, strlen(ios), strlen(ios) - 2, NULL,
                                       NULL), -1);
    ck_assert_int_eq(pager("cisco_ios", S("x\r\n --More-- \r\n1\r\n2\r\n3\r\n4\r\n5"), NULL,
                           NULL), -1);
}
END_TEST

/* ---- terminal escapes -------------------------------------------------- */

static char *filter(int *state, const char *in, size_t n)
{
    static char out[256];

    memcpy(out, in, n);
    out[nr_cli_term_filter(state, out, n)] = '\0';
    return out;
}

START_TEST(terminal_filter)
{
    int st = 0;

    ck_assert_str_eq(filter(&st, S("host#\x1b[m ")), "host# ");
    ck_assert_str_eq(filter(&st, S("\x1b[?2004hroot@h:~# ")), "root@h:~# ");
    ck_assert_str_eq(filter(&st, S("\x1b[1;32mgreen\x1b[0m\r\n")), "green\r\n");
    ck_assert_str_eq(filter(&st, S("\x1b]0;user@host: ~\x07prompt$ ")), "prompt$ ");
    ck_assert_str_eq(filter(&st, S("\x1b(Btext\x1b=\x1b>")), "text");
    /* cursor back: a return to the line start (VRP erases its pager so) */
    ck_assert_str_eq(filter(&st, S("\x1b[16D    \x1b[16Dnext")), "\r    \rnext");
    ck_assert_str_eq(filter(&st, S("\x1b[1Gx\x1b[K")), "\rx");
    ck_assert_str_eq(filter(&st, S("a\0b\x07" "c\x7f" "d\be\tf")), "abcd\be\tf");
    ck_assert_int_eq(st, 0);
    /* a sequence cut between two reads */
    ck_assert_str_eq(filter(&st, S("ok\x1b[")), "ok");
    ck_assert_int_ne(st, 0);
    ck_assert_str_eq(filter(&st, S("?2004hroot#")), "root#");
    ck_assert_str_eq(filter(&st, S("x\x1b")), "x");
    ck_assert_str_eq(filter(&st, S("[Ky")), "y");
    /* an OSC string never swallows a line; a broken CSI gives its byte back */
    ck_assert_str_eq(filter(&st, S("\x1b]title\r\nnext")), "\nnext");
    ck_assert_str_eq(filter(&st, S("\x1b[12\nz")), "\nz");
    ck_assert_int_eq(st, 0);
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
        (void)nr_cli_find_pager(T("cisco_asa"), raw, len, 0, "r1#", NULL);
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

    tcase_add_test(t, table_covers_real_fleets);
    tcase_add_test(t, find_by_alias_and_suffix);
    tcase_add_test(t, volatile_lines_go);
    tcase_add_test(t, volatile_lines_edges);
    tcase_add_test(t, names);
    suite_add_tcase(s, t);

    tcase_add_test(p, prompt_tokens);
    tcase_add_test(p, ends_with_prompt);
    tcase_add_test(p, learning_needs_two_sightings);
    tcase_add_test(p, pagers);
    tcase_add_test(p, terminal_filter);
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
