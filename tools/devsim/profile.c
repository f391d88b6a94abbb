/*
 * profile.c - the device-type table.
 *
 * Every behaviour that differs between device types is a row here (prompts,
 * commands, pager, enable, errors); term.c reads the row and has no
 * per-type branches.  The strings follow what the real CLIs print, closely
 * enough for Netmiko-style prompt and pager handling to be exercised.
 */
#include "devsim.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PAGE_CMDS(len_cmd)                                  \
    {len_cmd, DS_ACT_PAGE_LEN, false, NULL},                \
    {"terminal width <n>", DS_ACT_NOOP, false, NULL}

#define EXIT_CMDS                                           \
    {"exit", DS_ACT_EXIT, false, NULL},                     \
    {"logout", DS_ACT_EXIT, false, NULL},                   \
    {"quit", DS_ACT_EXIT, false, NULL}

static const struct ds_cmd ios_cmds[] = {
    PAGE_CMDS("terminal length <n>"),
    {"terminal no monitor", DS_ACT_NOOP, false, NULL},
    {"show running-config", DS_ACT_SHOW_CONFIG, true, NULL},
    {"show startup-config", DS_ACT_SHOW_CONFIG, true, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    {"enable", DS_ACT_ENABLE, false, NULL},
    {"disable", DS_ACT_DISABLE, true, NULL},
    EXIT_CMDS,
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd nxos_cmds[] = {
    PAGE_CMDS("terminal length <n>"),
    {"show running-config", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    EXIT_CMDS,
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd xr_cmds[] = {
    PAGE_CMDS("terminal length <n>"),
    {"terminal exec prompt no-timestamp", DS_ACT_NOOP, false, NULL},
    {"show running-config", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    EXIT_CMDS,
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd eos_cmds[] = {
    PAGE_CMDS("terminal length <n>"),
    {"show running-config", DS_ACT_SHOW_CONFIG, true, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    {"enable", DS_ACT_ENABLE, false, NULL},
    {"disable", DS_ACT_DISABLE, true, NULL},
    EXIT_CMDS,
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd junos_cmds[] = {
    {"set cli screen-length <n>", DS_ACT_PAGE_LEN, false, "Screen length set to %n"},
    {"set cli screen-width <n>", DS_ACT_NOOP, false, "Screen width set to %n"},
    {"set cli complete-on-space off", DS_ACT_NOOP, false, "Disabling complete-on-space"},
    {"show configuration | display set", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
    {"quit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd asa_cmds[] = {
    {"terminal pager <n>", DS_ACT_PAGE_LEN, false, NULL},
    {"terminal pager lines <n>", DS_ACT_PAGE_LEN, false, NULL},
    {"terminal width <n>", DS_ACT_NOOP, false, NULL},
    {"show running-config", DS_ACT_SHOW_CONFIG, true, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    {"enable", DS_ACT_ENABLE, false, NULL},
    {"disable", DS_ACT_DISABLE, true, NULL},
    EXIT_CMDS,
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd panos_cmds[] = {
    {"set cli pager off", DS_ACT_PAGER_OFF, false, NULL},
    {"set cli pager on", DS_ACT_PAGER_ON, false, NULL},
    {"set cli scripting-mode <*>", DS_ACT_NOOP, false, NULL},
    {"set cli terminal width <n>", DS_ACT_NOOP, false, NULL},
    {"set cli terminal height <n>", DS_ACT_NOOP, false, NULL},
    {"show config running", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show system info", DS_ACT_SHOW_VERSION, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
    {"quit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd linux_cmds[] = {
    {"cat <*>", DS_ACT_SHOW_CONFIG, false, NULL},
    {"echo <*>", DS_ACT_ECHO, false, NULL},
    {"whoami", DS_ACT_WHOAMI, false, NULL},
    {"hostname", DS_ACT_HOSTNAME, false, NULL},
    {"uname <*>", DS_ACT_SHOW_VERSION, false, NULL},
    {"sudo -s", DS_ACT_ENABLE, false, NULL},
    {"sudo -i", DS_ACT_ENABLE, false, NULL},
    {"sudo su <*>", DS_ACT_ENABLE, false, NULL},
    {"export <*>", DS_ACT_NOOP, false, NULL},
    {"unset <*>", DS_ACT_NOOP, false, NULL},
    {"stty <*>", DS_ACT_NOOP, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
    {"logout", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

#define IOS_INVALID "% Invalid input detected at '^' marker."

static const char ios_version[] =
    "Cisco IOS Software, C2900 Software (C2900-UNIVERSALK9-M), Version %v, RELEASE SOFTWARE (fc2)\n"
    "Technical Support: http://www.cisco.com/techsupport\n"
    "Copyright (c) 1986-2020 by Cisco Systems, Inc.\n"
    "Compiled Tue 28-Jul-20 07:09 by prod_rel_team\n"
    "\n"
    "ROM: System Bootstrap, Version 15.0(1r)M16, RELEASE SOFTWARE (fc1)\n"
    "\n"
    "%h uptime is 12 weeks, 3 days, 4 hours, 5 minutes\n"
    "System returned to ROM by power-on\n"
    "System image file is \"flash0:c2900-universalk9-mz.SPA.159-3.M4.bin\"\n"
    "\n"
    "Cisco CISCO2911/K9 (revision 1.0) with 487424K/36864K bytes of memory.\n"
    "Processor board ID FTX1234A5BC\n"
    "3 Gigabit Ethernet interfaces\n"
    "255K bytes of non-volatile configuration memory.\n"
    "\n"
    "Configuration register is 0x2102\n";

static const char xe_version[] =
    "Cisco IOS XE Software, Version %v\n"
    "Cisco IOS Software [Cupertino], Catalyst L3 Switch Software (CAT9K_IOSXE), Version %v, RELEASE SOFTWARE (fc3)\n"
    "Technical Support: http://www.cisco.com/techsupport\n"
    "Copyright (c) 1986-2023 by Cisco Systems, Inc.\n"
    "\n"
    "%h uptime is 4 weeks, 2 days, 1 hour, 7 minutes\n"
    "System image file is \"flash:packages.conf\"\n"
    "\n"
    "cisco C9300-48P (X86) processor with 1331521K/6147K bytes of memory.\n"
    "Processor board ID FOC2345X0YZ\n"
    "Configuration register is 0x102\n";

static const char nxos_version[] =
    "Cisco Nexus Operating System (NX-OS) Software\n"
    "TAC support: http://www.cisco.com/tac\n"
    "Copyright (C) 2002-2021, Cisco and/or its affiliates.\n"
    "\n"
    "Software\n"
    "  BIOS: version 05.45\n"
    " NXOS: version %v\n"
    "  NXOS image file is: bootflash:///nxos.%v.bin\n"
    "\n"
    "Hardware\n"
    "  cisco Nexus9000 C93180YC-EX chassis\n"
    "  Device name: %h\n"
    "  bootflash: 53298520 kB\n"
    "\n"
    "Kernel uptime is 45 day(s), 3 hour(s), 12 minute(s), 9 second(s)\n";

static const char xr_version[] =
    "Cisco IOS XR Software, Version %v\n"
    "Copyright (c) 2013-2021 by Cisco Systems, Inc.\n"
    "\n"
    "Build Information:\n"
    " Built By     : ingunawa\n"
    " Built On     : Mon Mar  1 10:00:00 PST 2021\n"
    "\n"
    "cisco ASR9K Series (Intel 686 F6M14S4) processor with 6291456K bytes of memory.\n"
    "%h uptime is 3 weeks, 1 day, 2 hours, 44 minutes\n";

static const char eos_version[] =
    "Arista DCS-7050SX3-48YC8\n"
    "Hardware version: 11.02\n"
    "Serial number: JPE12345678\n"
    "Hardware MAC address: 985d.8201.2345\n"
    "System MAC address: 985d.8201.2345\n"
    "\n"
    "Software image version: %v\n"
    "Architecture: x86_64\n"
    "Internal build version: %v-29230345.4283M\n"
    "\n"
    "Uptime: 6 weeks, 2 days, 3 hours and 1 minute\n"
    "Total memory: 8098968 kB\n"
    "Free memory: 5633092 kB\n";

static const char junos_version[] =
    "Hostname: %h\n"
    "Model: mx204\n"
    "Junos: %v\n"
    "JUNOS OS Kernel 64-bit  [20211110.0f58e49_builder_stable_11]\n"
    "JUNOS OS libs [20211110.0f58e49_builder_stable_11]\n"
    "JUNOS Routing Software Suite [%v]\n";

static const char asa_version[] =
    "\n"
    "Cisco Adaptive Security Appliance Software Version %v\n"
    "SSP Operating System Version 2.8(1.125)\n"
    "Device Manager Version 7.13(1)\n"
    "\n"
    "Compiled on Wed 19-Feb-20 12:00 GMT by builders\n"
    "System image file is \"disk0:/asa984-20-lfbff-k8.SPA\"\n"
    "Config file at boot was \"startup-config\"\n"
    "\n"
    "%h up 12 days 3 hours\n"
    "\n"
    "Hardware:   ASA5516, 8192 MB RAM, CPU Atom C2000 series 2416 MHz, 1 CPU (8 cores)\n";

static const char panos_version[] =
    "\n"
    "hostname: %h\n"
    "ip-address: 192.0.2.10\n"
    "netmask: 255.255.255.0\n"
    "model: PA-3220\n"
    "serial: 012345678901\n"
    "sw-version: %v\n"
    "app-version: 8700-7709\n"
    "uptime: 21 days, 4:05:06\n"
    "operational-mode: normal\n";

static const char linux_version[] =
    "Linux %h %v #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01) x86_64 GNU/Linux\n";

const struct ds_profile ds_profiles[] = {
    {
        .type = "cisco_ios", .style = DS_STYLE_IOS, .os_version = "15.9(3)M4",
        .ssh_version = "Cisco-1.25",
        .user_prompt = "%h>", .priv_prompt = "%h#",
        .prompt_lead = "", .motd = "",
        .enable_prompt = "Password: ", .enable_retry = "", .enable_fail = "% Bad secrets",
        .enable_tries = 3,
        .pager_default = true, .pager = " --More-- ", .pager_erase = DS_ERASE_BS,
        .invalid_caret = true, .invalid = IOS_INVALID, .abbrev = true,
        .version_text = ios_version, .cmds = ios_cmds,
    },
    {
        .type = "cisco_xe", .style = DS_STYLE_IOS, .os_version = "17.09.04a",
        .ssh_version = "Cisco-1.25",
        .user_prompt = "%h>", .priv_prompt = "%h#",
        .prompt_lead = "", .motd = "",
        .enable_prompt = "Password: ", .enable_retry = "", .enable_fail = "% Bad secrets",
        .enable_tries = 3,
        .pager_default = true, .pager = " --More-- ", .pager_erase = DS_ERASE_BS,
        .invalid_caret = true, .invalid = IOS_INVALID, .abbrev = true,
        .version_text = xe_version, .cmds = ios_cmds,
    },
    {
        .type = "cisco_nxos", .style = DS_STYLE_NXOS, .os_version = "9.3(8)",
        .ssh_version = "OpenSSH_8.3",
        .user_prompt = "%h#", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "",
        .motd = "Cisco NX-OS Software\n"
                "Copyright (c) 2002-2021, Cisco Systems, Inc. All rights reserved.\n",
        .pager_default = true, .pager = "--More--", .pager_erase = DS_ERASE_CR,
        .invalid_caret = true, .invalid = "% Invalid command at '^' marker.", .abbrev = true,
        .version_text = nxos_version, .cmds = nxos_cmds,
    },
    {
        .type = "cisco_xr", .style = DS_STYLE_XR, .os_version = "7.3.2",
        .ssh_version = "Cisco-2.0",
        .user_prompt = "RP/0/RSP0/CPU0:%h#", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "", .motd = "",
        .pager_default = true, .pager = " --More-- ", .pager_erase = DS_ERASE_BS,
        .invalid_caret = true, .invalid = IOS_INVALID, .abbrev = true,
        .version_text = xr_version, .cmds = xr_cmds,
    },
    {
        .type = "arista_eos", .style = DS_STYLE_EOS, .os_version = "4.28.3M",
        .ssh_version = "OpenSSH_8.6",
        .user_prompt = "%h>", .priv_prompt = "%h#",
        .prompt_lead = "", .motd = "Last login: Tue Mar  5 09:14:22 2024 from 192.0.2.5\n",
        .enable_prompt = "Password: ", .enable_retry = "", .enable_fail = "% Access denied",
        .enable_tries = 1,
        .pager_default = true, .pager = " --More-- ", .pager_erase = DS_ERASE_BS,
        .invalid_caret = false, .invalid = "% Invalid input", .abbrev = true,
        .version_text = eos_version, .cmds = eos_cmds,
    },
    {
        .type = "juniper_junos", .style = DS_STYLE_JUNOS, .os_version = "20.4R3.8",
        .ssh_version = "OpenSSH_7.5",
        .user_prompt = "%u@%h> ", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "\n",
        .motd = "--- JUNOS %v Kernel 64-bit  JNPR-12.1-20211110.0f58e49_buil\n",
        .pager_default = true, .pager = "---(more)---", .pager_erase = DS_ERASE_CR,
        .invalid_caret = true, .invalid = "unknown command.", .abbrev = true,
        .version_text = junos_version, .cmds = junos_cmds,
    },
    {
        .type = "cisco_asa", .style = DS_STYLE_ASA, .os_version = "9.8(4)20",
        .ssh_version = "Cisco-1.25",
        .user_prompt = "%h> ", .priv_prompt = "%h# ",
        .prompt_lead = "",
        .motd = "Type help or '?' for a list of available commands.\n",
        .enable_prompt = "Password: ", .enable_retry = "Invalid password",
        .enable_fail = "Access denied.", .enable_tries = 3,
        .pager_default = true, .pager = "<--- More --->", .pager_erase = DS_ERASE_CR,
        .invalid_caret = true, .invalid = "ERROR: " IOS_INVALID, .abbrev = true,
        .version_text = asa_version, .cmds = asa_cmds,
    },
    {
        .type = "paloalto_panos", .style = DS_STYLE_PANOS, .os_version = "10.1.9-h1",
        .ssh_version = "OpenSSH_8.0",
        .user_prompt = "%u@%h> ", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "\n",
        .motd = "Last login: Tue Mar  5 09:14:22 2024 from 192.0.2.5\n\n"
                "Number of failed attempts since last successful login: 0\n\n",
        .pager_default = true, .pager = "--more--", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "Unknown command: %w", .abbrev = false,
        .version_text = panos_version, .cmds = panos_cmds,
    },
    {
        .type = "linux", .style = DS_STYLE_LINUX, .os_version = "6.1.0-18-amd64",
        .ssh_version = "OpenSSH_9.2p1",
        .user_prompt = "%u@%h:~$ ", .priv_prompt = "root@%h:~# ", .exit_unprivs = true,
        .prompt_lead = "",
        .motd = "Linux %h %v #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 x86_64\n\n"
                "Last login: Tue Mar  5 09:14:22 2024 from 192.0.2.5\n",
        .enable_prompt = "[sudo] password for %u: ", .enable_retry = "Sorry, try again.",
        .enable_fail = "sudo: 3 incorrect password attempts", .enable_tries = 3,
        .enable_login_password = true,
        .pager_default = false, .pager = "--More--", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "-bash: %w: command not found", .abbrev = false,
        .version_text = linux_version, .cmds = linux_cmds,
    },
    {.type = NULL},
};

/* Unknown device types: an IOS-like box that starts privileged. */
const struct ds_profile ds_profile_default = {
    .type = "default", .style = DS_STYLE_IOS, .os_version = "15.9(3)M4",
    .ssh_version = "devsim",
    .user_prompt = "%h>", .priv_prompt = "%h#", .starts_priv = true,
    .prompt_lead = "", .motd = "",
    .enable_prompt = "Password: ", .enable_retry = "", .enable_fail = "% Bad secrets",
    .enable_tries = 3,
    .pager_default = true, .pager = " --More-- ", .pager_erase = DS_ERASE_BS,
    .invalid_caret = true, .invalid = IOS_INVALID, .abbrev = true,
    .version_text = ios_version, .cmds = ios_cmds,
};

const struct ds_profile *ds_profile_find(const char *type)
{
    size_t n = strlen(type);

    if (n > 4 && strcmp(type + n - 4, "_ssh") == 0)
        n -= 4;
    for (const struct ds_profile *p = ds_profiles; p->type; p++)
        if (strlen(p->type) == n && strncmp(p->type, type, n) == 0)
            return p;
    if (n == 7 && strncmp(type, "juniper", n) == 0)
        return ds_profile_find("juniper_junos");
    if (n == 9 && strncmp(type, "cisco_ios", n) == 0)
        return ds_profile_find("cisco_ios");
    return NULL;
}

#define MAX_WORDS 32

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

const struct ds_cmd *ds_profile_match(const struct ds_profile *p, const char *line,
                                      bool priv, long *argn, size_t *rest)
{
    size_t wpos[MAX_WORDS], wlen[MAX_WORDS], nw = 0, total = strlen(line);

    for (size_t i = 0; i < total && nw < MAX_WORDS;) {
        while (i < total && isspace((unsigned char)line[i]))
            i++;
        if (i == total)
            break;
        wpos[nw] = i;
        while (i < total && !isspace((unsigned char)line[i]))
            i++;
        wlen[nw] = i - wpos[nw];
        nw++;
    }

    for (const struct ds_cmd *c = p->cmds; c->pattern; c++) {
        const char *pat = c->pattern;
        size_t w = 0;
        long n = 0;
        size_t r = total;
        bool ok = true;

        if (c->priv && !priv)
            continue;
        while (*pat) {
            const char *pe = strchr(pat, ' ');
            size_t plen = pe ? (size_t)(pe - pat) : strlen(pat);

            if (plen == 3 && strncmp(pat, "<*>", 3) == 0) {
                r = w < nw ? wpos[w] : total;
                w = nw;
                break;
            }
            if (w == nw) {
                ok = false;
                break;
            }
            if (plen == 3 && strncmp(pat, "<n>", 3) == 0) {
                if (!all_digits(line + wpos[w], wlen[w])) {
                    ok = false;
                    break;
                }
                n = strtol(line + wpos[w], NULL, 10);
            } else if (p->abbrev) {
                if (wlen[w] > plen || strncasecmp(pat, line + wpos[w], wlen[w]) != 0) {
                    ok = false;
                    break;
                }
            } else if (wlen[w] != plen || strncmp(pat, line + wpos[w], plen) != 0) {
                ok = false;
                break;
            }
            w++;
            pat += plen;
            while (*pat == ' ')
                pat++;
        }
        if (ok && w == nw) {
            *argn = n;
            *rest = r;
            return c;
        }
    }
    return NULL;
}
