/*
 * profile.c - the device-type table.
 *
 * Every behaviour that differs between device types is a row here (prompts,
 * commands, pager, enable, errors); term.c reads the row and has no
 * per-type branches.  The strings follow what the real CLIs print, closely
 * enough for Netmiko-style prompt and pager handling to be exercised: the
 * facts (prompt shapes, pager strings, error texts, which commands a backup
 * tool runs) come from public recordings of real sessions; the texts are
 * our own.
 *
 * A type accepts exactly the commands NetRaven's worker sends for it (its
 * paging command and its config commands, listed in config_cmds), plus a
 * few that people type; anything else, `enable` on a platform without a
 * privilege level included, gets that platform's error.
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

/* What the worker runs for the configuration, in order (--print-config). */
static const char *const cc_show_run[] = {"show running-config", NULL};
static const char *const cc_junos[] = {"show configuration | display set", NULL};
static const char *const cc_panos[] = {"show config running", NULL};
static const char *const cc_linux[] = {"cat /etc/network/interfaces", NULL};
static const char *const cc_display[] = {"display current-configuration", NULL};
static const char *const cc_fortinet[] = {"get system status", "show full-configuration", NULL};
static const char *const cc_os10[] = {"show running-configuration", NULL};
static const char *const cc_export[] = {"/export", NULL};
static const char *const cc_exos[] = {"show configuration", NULL};
static const char *const cc_vyos[] = {"show configuration commands", NULL};
static const char *const cc_cumulus[] = {"net show configuration commands", NULL};
static const char *const cc_saos[] = {"configuration show", NULL};
static const char *const cc_sonicwall[] = {"show current-config", NULL};
static const char *const cc_gaia[] = {"show configuration", NULL};
static const char *const cc_wlc[] = {"show run-config commands", NULL};

static const struct ds_cmd comware_cmds[] = {
    {"screen-length disable", DS_ACT_PAGER_OFF, false, NULL},
    {"undo screen-length disable", DS_ACT_PAGER_ON, false, NULL},
    {"undo terminal monitor", DS_ACT_NOOP, false, NULL},
    {"display current-configuration", DS_ACT_SHOW_CONFIG, false, NULL},
    {"display version", DS_ACT_SHOW_VERSION, false, NULL},
    {"quit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd procurve_cmds[] = {
    {"no page", DS_ACT_PAGER_OFF, false, NULL},
    {"page", DS_ACT_PAGER_ON, false, NULL},
    {"terminal length <n>", DS_ACT_PAGE_LEN, false, NULL},
    {"terminal width <n>", DS_ACT_NOOP, false, NULL},
    {"show running-config", DS_ACT_SHOW_CONFIG, true, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    {"enable", DS_ACT_ENABLE, false, NULL},
    {"disable", DS_ACT_DISABLE, true, NULL},
    EXIT_CMDS,
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd vrp_cmds[] = {
    {"screen-length <n> temporary", DS_ACT_PAGE_LEN, false,
     "Info: The configuration takes effect on the current user terminal interface only."},
    {"undo terminal monitor", DS_ACT_NOOP, false,
     "Info: Current terminal monitor is off."},
    {"display current-configuration", DS_ACT_SHOW_CONFIG, false, NULL},
    {"display version", DS_ACT_SHOW_VERSION, false, NULL},
    {"quit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd fortinet_cmds[] = {
    {"get system status", DS_ACT_SHOW_STATUS, false, NULL},
    {"show full-configuration", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show", DS_ACT_SHOW_CONFIG, false, NULL},
    {"get system performance status", DS_ACT_SHOW_VERSION, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd tmsh_cmds[] = {
    {"modify cli preference pager disabled display-threshold <n>", DS_ACT_PAGER_OFF, false, NULL},
    {"modify cli preference pager disabled", DS_ACT_PAGER_OFF, false, NULL},
    {"modify cli preference pager enabled", DS_ACT_PAGER_ON, false, NULL},
    {"show running-config", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show sys version", DS_ACT_SHOW_VERSION, false, NULL},
    {"quit", DS_ACT_EXIT, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd os10_cmds[] = {
    PAGE_CMDS("terminal length <n>"),
    {"show running-configuration", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    EXIT_CMDS,
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd aoscx_cmds[] = {
    {"no page", DS_ACT_PAGER_OFF, false, NULL},
    {"page", DS_ACT_PAGER_ON, false, NULL},
    {"show running-config", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    EXIT_CMDS,
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd routeros_cmds[] = {
    {"/export", DS_ACT_SHOW_CONFIG, false, NULL},
    {"/export <*>", DS_ACT_SHOW_CONFIG, false, NULL},
    {"/system resource print", DS_ACT_SHOW_VERSION, false, NULL},
    {"/quit", DS_ACT_EXIT, false, NULL},
    {"quit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd fastiron_cmds[] = {
    {"skip-page-display", DS_ACT_PAGER_OFF, false, NULL},
    {"page-display", DS_ACT_PAGER_ON, false, NULL},
    PAGE_CMDS("terminal length <n>"),
    {"show running-config", DS_ACT_SHOW_CONFIG, true, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    {"enable", DS_ACT_ENABLE, false, NULL},
    {"disable", DS_ACT_DISABLE, true, NULL},
    EXIT_CMDS,
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd exos_cmds[] = {
    {"disable clipaging", DS_ACT_PAGER_OFF, false, NULL},
    {"disable clipaging session", DS_ACT_PAGER_OFF, false, NULL},
    {"enable clipaging", DS_ACT_PAGER_ON, false, NULL},
    {"show configuration", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    /* "enable" starts many commands here; alone it is incomplete. */
    {"enable", DS_ACT_NOOP, false, "%% Incomplete command entered."},
    {"exit", DS_ACT_EXIT, false, NULL},
    {"logout", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd vyos_cmds[] = {
    {"set terminal length <n>", DS_ACT_PAGE_LEN, false, NULL},
    {"set terminal width <n>", DS_ACT_NOOP, false, NULL},
    {"show configuration commands", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd cumulus_cmds[] = {
    {"net show configuration commands", DS_ACT_SHOW_CONFIG, false, NULL},
    {"net show version", DS_ACT_SHOW_VERSION, false, NULL},
    {"echo <*>", DS_ACT_ECHO, false, NULL},
    {"whoami", DS_ACT_WHOAMI, false, NULL},
    {"hostname", DS_ACT_HOSTNAME, false, NULL},
    {"sudo -s", DS_ACT_ENABLE, false, NULL},
    {"sudo -i", DS_ACT_ENABLE, false, NULL},
    {"export <*>", DS_ACT_NOOP, false, NULL},
    {"stty <*>", DS_ACT_NOOP, false, NULL},
    /* bash's own "enable" lists its builtins. */
    {"enable", DS_ACT_NOOP, false,
     "enable .\nenable :\nenable [\nenable alias\nenable bg\nenable bind\nenable break"},
    {"exit", DS_ACT_EXIT, false, NULL},
    {"logout", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd saos_cmds[] = {
    {"system shell set more off", DS_ACT_PAGER_OFF, false, NULL},
    {"system shell session set more off", DS_ACT_PAGER_OFF, false, NULL},
    {"system shell set more on", DS_ACT_PAGER_ON, false, NULL},
    {"configuration show", DS_ACT_SHOW_CONFIG, false, NULL},
    {"software show", DS_ACT_SHOW_VERSION, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd sonicwall_cmds[] = {
    {"no cli pager session", DS_ACT_PAGER_OFF, false, NULL},
    {"cli pager session", DS_ACT_PAGER_ON, false, NULL},
    {"show current-config", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd gaia_cmds[] = {
    {"set clienv rows <n>", DS_ACT_PAGE_LEN, false, NULL},
    {"show configuration", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show version all", DS_ACT_SHOW_VERSION, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
    {"quit", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd ftd_cmds[] = {
    {"show running-config", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show version", DS_ACT_SHOW_VERSION, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
    {"logout", DS_ACT_EXIT, false, NULL},
    {NULL, DS_ACT_NOOP, false, NULL},
};

static const struct ds_cmd wlc_cmds[] = {
    {"config paging disable", DS_ACT_PAGER_OFF, false, NULL},
    {"config paging enable", DS_ACT_PAGER_ON, false, NULL},
    {"show run-config commands", DS_ACT_SHOW_CONFIG, false, NULL},
    {"show sysinfo", DS_ACT_SHOW_VERSION, false, NULL},
    {"logout", DS_ACT_EXIT, false, NULL},
    {"exit", DS_ACT_EXIT, false, NULL},
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

static const char comware_version[] =
    "HPE Comware Software, Version %v\n"
    "Copyright (c) 2010-2023 Hewlett Packard Enterprise Development LP\n"
    "HPE 5130 48G PoE+ 4SFP+ EI Switch uptime is 3 weeks, 2 days, 4 hours, 1 minute\n"
    "Boot image: flash:/5130ei-cmw710-boot.bin\n";

static const char procurve_version[] =
    "Image stamp:    /ws/swbuildm/rel_orlando_qaoff/code/build/lvm(swbuildm_rel_orlando_qaoff_rel_orlando)\n"
    "                Mar  1 2023 10:00:00\n"
    "                %v\n"
    "                1223\n"
    "Boot Image:     Primary\n";

static const char vrp_version[] =
    "Huawei Versatile Routing Platform Software\n"
    "VRP (R) software, Version 5.170 (S5735 %v)\n"
    "Copyright (C) 2000-2023 HUAWEI TECH Co., Ltd.\n"
    "HUAWEI S5735-L48T4X-A1 Routing Switch uptime is 0 week, 3 days, 4 hours, 5 minutes\n";

static const char fortinet_version[] =
    "CPU states: 1% user 0% system 0% nice 99% idle 0% iowait 0% irq 0% softirq\n"
    "Memory: 7728856k total, 2107904k used (27.3%), 5620952k free (72.7%)\n"
    "Uptime: 3 days,  4 hours,  5 minutes\n";

static const char tmsh_version[] =
    "\nSys::Version\nMain Package\n  Product     BIG-IP\n  Version     %v\n"
    "  Build       0.0.3\n  Edition     Point Release 4\n  Date        Thu Mar  9 10:00:00 PST 2023\n";

static const char os10_version[] =
    "Dell EMC Networking OS10 Enterprise\n"
    "Copyright (c) 1999-2023 by Dell Inc. All Rights Reserved.\n"
    "OS Version: %v\nBuild Version: %v.123\nSystem Type: S5248F-ON\n"
    "Up Time: 3 days 04:05:06\n";

static const char os6_version[] =
    "Machine Description............... Dell EMC Networking Switch\n"
    "System Model ID................... N1548P\n"
    "Machine Type...................... Dell EMC Networking N1548P\n"
    "Serial Number..................... CN0123456789\n"
    "Software Version.................. %v\n";

static const char os9_version[] =
    "Dell Real Time Operating System Software\n"
    "Dell Operating System Version: 2.0\n"
    "Dell Application Software Version: %v\n"
    "Copyright (c) 1999-2023 by Dell Inc. All Rights Reserved.\n"
    "%h uptime is 3 day(s), 4 hour(s), 5 minute(s)\n"
    "System Type: S4048-ON\n";

static const char aoscx_version[] =
    "-----------------------------------------------------------------------------\n"
    "ArubaOS-CX\n"
    "(c) Copyright 2017-2024 Hewlett Packard Enterprise Development LP\n"
    "-----------------------------------------------------------------------------\n"
    "Version      : %v\n"
    "Active Image : primary\n";

static const char routeros_version[] =
    "                   uptime: 3d4h5m6s\n"
    "                  version: %v (long-term)\n"
    "            total-memory: 1024.0MiB\n"
    "               board-name: RB5009UG+S+\n"
    "                 platform: MikroTik\n";

static const char fastiron_version[] =
    "  Copyright (c) Ruckus Networks, Inc. All rights reserved.\n"
    "    UNIT 1: compiled on Apr  1 2023 at 10:00:00 labeled as SPS%v\n"
    "      SW: Version %v\n"
    "  HW: Stackable ICX7150-48ZP\n"
    "  The system uptime is 3 days 4 hours 5 minutes 6 seconds\n";

static const char exos_version[] =
    "Switch      : 800745-00-05 1920G-01234 Rev 5.0 BootROM: 2.0.1.7    IMG: %v\n"
    "PSU-1       : Internal PSU 1920G-56789\n"
    "\n"
    "Image   : ExtremeXOS version %v by release-manager\n"
    "BootROM : Default 2.0.1.7\n";

static const char vyos_version[] =
    "Version:          VyOS %v\nRelease train:    sagitta\n"
    "Built on:         Mon 07 Jul 2025 14:34 UTC\nArchitecture:     x86_64\n"
    "Boot via:         installed image\nSystem type:      KVM guest\n";

static const char cumulus_version[] =
    "NCLU_VERSION=1.0-cl5.4.0u1\nDISTRIB_ID=\"Cumulus Linux\"\nDISTRIB_RELEASE=%v\n"
    "DISTRIB_DESCRIPTION=\"Cumulus Linux %v\"\n";

static const char saos_version[] =
    "+------------------------------------------------------------------------------+\n"
    "| Installed Package   : %v                                          |\n"
    "| Running Package     : %v                                          |\n"
    "+------------------------------------------------------------------------------+\n";

static const char sonicwall_version[] =
    "firmware-version \"SonicOS %v\"\n"
    "rom-version \"7.0.0.2\"\n"
    "model \"TZ 370\"\n"
    "system-uptime \"3 Days, 4 Hours, 5 Minutes, 6 Seconds\"\n";

static const char gaia_version[] =
    "Product version Check Point Gaia %v\n"
    "OS build 101\nOS kernel version 3.10.0-1160.15.2cpx86_64\nOS edition 64-bit\n";

static const char ftd_version[] =
    "-------------------[ %h ]--------------------\n"
    "Model                     : Cisco Firepower 1010 Threat Defense (78) Version %v (Build 208)\n"
    "UUID                      : 4b9c0d3e-1f2a-11ee-9d31-8e2c8f3a2b10\n"
    "VDB version               : 365\n"
    "----------------------------------------------------\n";

static const char wlc_version[] =
    "Manufacturer's Name.............................. Cisco Systems Inc.\n"
    "Product Name..................................... Cisco Controller\n"
    "Product Version.................................. %v\n"
    "System Name...................................... %h\n"
    "System Up Time................................... 3 days 4 hrs 5 mins 6 secs\n";

/* Syslog shapes of the platforms that print their own (tokens as in
 * confgen's templates: %{...} the session time, %h, %u, "%%" a '%'). */
#define NXOS_SYSLOG "%{%Y %b %e %H:%M:%S} %h %%ETHPORT-5-IF_UP: Interface Ethernet1/1 is up " \
                    "in mode routed"
#define XR_SYSLOG   "RP/0/RSP0/CPU0:%{%b %e %H:%M:%S.%q} UTC: ifmgr[257]: " \
                    "%%PKT_INFRA-LINK-3-UPDOWN : Interface GigabitEthernet0/0/0/1, changed state to Up"
#define EOS_SYSLOG  "%{%b %e %H:%M:%S} %h Ebra: %%LINEPROTO-5-UPDOWN: Line protocol on " \
                    "Interface Ethernet1, changed state to up"
#define ASA_SYSLOG  "%{%b %d %Y %H:%M:%S}: %%ASA-4-411002: Line protocol on Interface " \
                    "GigabitEthernet1/1, changed state to up"
#define VRP_SYSLOG  "%{%b %e %Y %H:%M:%S} %h %%%%01IFNET/4/LINK_STATE(l)[0]:The line protocol " \
                    "IP on the interface GigabitEthernet0/0/1 has entered the UP state."
#define CMW_SYSLOG  "%%%{%b %e %H:%M:%S:%q %Y} %h IFNET/3/PHY_UPDOWN: Physical state on the " \
                    "interface GigabitEthernet1/0/1 changed to up."

/* ArubaOS-Switch (ProCurve): the greeting waits for a key. */
#define PROCURVE_ROW(name) {                                                        \
        .type = name, .style = DS_STYLE_PROCURVE, .os_version = "YA.16.10.0009",       \
        .ssh_version = "Mocana_SSH_6.3",                                               \
        .user_prompt = "%h> ", .priv_prompt = "%h# ", .prompt_lead = "",                 \
        .motd = "HPE J9773A 2530-24G-PoEP Switch\nSoftware revision %v\n\n"            \
                "(C) Copyright 2023 Hewlett Packard Enterprise Development LP\n\n"     \
                "          RESTRICTED RIGHTS: use, copying or disclosure needs a\n"     \
                "          valid license from Hewlett Packard Enterprise.\n\n",        \
        .press_key = "Press any key to continue",                                    \
        .enable_prompt = "Password: ", .enable_retry = "",                             \
        .enable_fail = "Invalid password.", .enable_tries = 3,                         \
        .pager_default = true,                                                         \
        .pager = "-- MORE --, next page: Space, next line: Enter, quit: Control-C",    \
        .pager_erase = DS_ERASE_CR,                                                    \
        .invalid_caret = false, .invalid = "Invalid input: %w", .abbrev = true,        \
        .version_text = procurve_version, .cmds = procurve_cmds,                       \
        .config_cmds = cc_show_run,                                                    \
    }

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
        .version_text = ios_version, .cmds = ios_cmds, .config_cmds = cc_show_run,
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
        .version_text = xe_version, .cmds = ios_cmds, .config_cmds = cc_show_run,
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
        .version_text = nxos_version, .cmds = nxos_cmds, .config_cmds = cc_show_run,
        .syslog_pager = NXOS_SYSLOG, .syslog_async = NXOS_SYSLOG,
    },
    {
        .type = "cisco_xr", .style = DS_STYLE_XR, .os_version = "7.3.2",
        .ssh_version = "Cisco-2.0",
        .user_prompt = "RP/0/RSP0/CPU0:%h#", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "", .motd = "",
        .pager_default = true, .pager = " --More-- ", .pager_erase = DS_ERASE_BS,
        .invalid_caret = true, .invalid = IOS_INVALID, .abbrev = true,
        .version_text = xr_version, .cmds = xr_cmds, .config_cmds = cc_show_run,
        .syslog_pager = XR_SYSLOG, .syslog_async = XR_SYSLOG,
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
        .version_text = eos_version, .cmds = eos_cmds, .config_cmds = cc_show_run,
        .syslog_pager = EOS_SYSLOG, .syslog_async = EOS_SYSLOG,
    },
    {
        .type = "juniper_junos", .style = DS_STYLE_JUNOS, .os_version = "20.4R3.8",
        .ssh_version = "OpenSSH_7.5",
        .user_prompt = "%u@%h> ", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "\n",
        .motd = "--- JUNOS %v Kernel 64-bit  JNPR-12.1-20211110.0f58e49_buil\n",
        .pager_default = true, .pager = "---(more)---", .pager_erase = DS_ERASE_CR,
        .invalid_caret = true, .invalid = "unknown command.", .abbrev = true,
        .version_text = junos_version, .cmds = junos_cmds, .config_cmds = cc_junos,
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
        .version_text = asa_version, .cmds = asa_cmds, .config_cmds = cc_show_run,
        .syslog_pager = ASA_SYSLOG, .syslog_async = ASA_SYSLOG,
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
        .version_text = panos_version, .cmds = panos_cmds, .config_cmds = cc_panos,
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
        .version_text = linux_version, .cmds = linux_cmds, .config_cmds = cc_linux,
    },
    {
        .type = "hp_comware", .style = DS_STYLE_COMWARE, .os_version = "7.1.070, Release 3507P18",
        .ssh_version = "Comware-7.1.064",
        .user_prompt = "<%h>", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "",
        .motd = "******************************************************************************\n"
                "* Copyright (c) 2010-2023 Hewlett Packard Enterprise Development LP          *\n"
                "* Unauthorised access and reverse engineering are not permitted.             *\n"
                "******************************************************************************\n",
        .pager_default = true, .pager = "---- More ----", .pager_erase = DS_ERASE_CR,
        .invalid_caret = true, .invalid = " % Unrecognized command found at '^' position.",
        .abbrev = true, .version_text = comware_version,
        .syslog_pager = CMW_SYSLOG, .syslog_async = CMW_SYSLOG,
        .cmds = comware_cmds, .config_cmds = cc_display,
    },
    PROCURVE_ROW("hp_procurve"),
    PROCURVE_ROW("aruba_os"),
    {
        .type = "huawei", .style = DS_STYLE_VRP, .os_version = "V200R022C00SPC500",
        .ssh_version = "HUAWEI-1.5",
        .user_prompt = "<%h>", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "",
        .motd = "\nInfo: The max number of VTY users is 5, the number of current VTY users online "
                "is 1, and total number of terminal users online is 1.\n"
                "      The current login time is %{%Y-%m-%d %H:%M:%S+00:00}.\n",
        /* VRP moves the cursor back over the pager with ESC[42D. */
        .pager_default = true, .pager = "  ---- More ----", .pager_erase = DS_ERASE_ANSI,
        .invalid_caret = true, .invalid = "Error: Unrecognized command found at '^' position.",
        .abbrev = true, .version_text = vrp_version,
        .syslog_pager = VRP_SYSLOG, .syslog_async = VRP_SYSLOG,
        .cmds = vrp_cmds, .config_cmds = cc_display,
    },
    {
        /* No paging command: the worker answers the pager with a space.
         * FortiOS echoes Enter as "\r\r\n" and its pager ends in a blank. */
        .type = "fortinet", .style = DS_STYLE_FORTIOS, .os_version = "7.4.7",
        .ssh_version = "FortiSSH",
        .user_prompt = "%h # ", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "", .motd = "", .enter_echo = "\r\r\n",
        .pager_default = true, .pager = "--More-- ", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "Unknown action 0", .abbrev = false,
        .version_text = fortinet_version, .cmds = fortinet_cmds, .config_cmds = cc_fortinet,
    },
    {
        .type = "f5_tmsh", .style = DS_STYLE_TMSH, .os_version = "16.1.4",
        .ssh_version = "OpenSSH_7.4",
        .user_prompt = "%u@(%h)(cfg-sync Standalone)(Active)(/Common)(tmos)# ",
        .priv_prompt = NULL, .starts_priv = true, .prompt_lead = "",
        .motd = "Last login: Tue Mar  5 09:14:22 2024 from 192.0.2.5\n",
        .pager_default = true, .pager = "---(less %n%)---", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "Syntax Error: \"%w\" unknown property",
        .abbrev = false, .version_text = tmsh_version, .cmds = tmsh_cmds,
        .config_cmds = cc_show_run,
    },
    {
        .type = "dell_os10", .style = DS_STYLE_OS10, .os_version = "10.5.2.3",
        .ssh_version = "OpenSSH_7.9p1",
        .user_prompt = "%h# ", .priv_prompt = NULL, .starts_priv = true, .prompt_lead = "",
        .motd = "Dell EMC Networking OS10 Enterprise\n"
                "Copyright (c) 1999-2023 by Dell Inc. All Rights Reserved.\n",
        .pager_default = true, .pager = "--more--", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "% Error: Unrecognized command.", .abbrev = true,
        .version_text = os10_version, .cmds = os10_cmds, .config_cmds = cc_os10,
    },
    {
        .type = "dell_os6", .style = DS_STYLE_OS6, .os_version = "6.6.3.10",
        .ssh_version = "OpenSSH_7.5",
        .user_prompt = "%h>", .priv_prompt = "%h#", .prompt_lead = "", .motd = "",
        .enable_prompt = "Password:", .enable_retry = "", .enable_fail = "% Access denied",
        .enable_tries = 3,
        .pager_default = true, .pager = "--More-- or (q)uit", .pager_erase = DS_ERASE_CR,
        .invalid_caret = true, .invalid = IOS_INVALID, .abbrev = true,
        .version_text = os6_version, .cmds = ios_cmds, .config_cmds = cc_show_run,
    },
    {
        .type = "dell_os9", .style = DS_STYLE_OS9, .os_version = "9.14(2.4)",
        .ssh_version = "OpenSSH_6.5",
        .user_prompt = "%h>", .priv_prompt = "%h#", .prompt_lead = "", .motd = "",
        .enable_prompt = "Password: ", .enable_retry = "", .enable_fail = "% Bad passwords",
        .enable_tries = 3,
        .pager_default = true, .pager = " --More-- ", .pager_erase = DS_ERASE_BS,
        .invalid_caret = true, .invalid = "% Error: Invalid input at \"^\" marker.",
        .abbrev = true, .version_text = os9_version, .cmds = ios_cmds,
        .config_cmds = cc_show_run,
    },
    {
        .type = "aruba_aoscx", .style = DS_STYLE_AOSCX, .os_version = "FL.10.13.1050",
        .ssh_version = "OpenSSH_8.4",
        .user_prompt = "%h# ", .priv_prompt = NULL, .starts_priv = true, .prompt_lead = "",
        .motd = "",
        .pager_default = true, .pager = "-- MORE --", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "Invalid input: %w", .abbrev = true,
        .version_text = aoscx_version, .cmds = aoscx_cmds, .config_cmds = cc_show_run,
    },
    {
        .type = "mikrotik_routeros", .style = DS_STYLE_ROUTEROS, .os_version = "6.49.10",
        .ssh_version = "ROSSSH",
        .user_prompt = "[%u@%h] > ", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "",
        .motd = "\n\n  MikroTik RouterOS %v (c) 1999-2023       https://www.mikrotik.com/\n\n",
        .pager_default = false, .pager = "-- [Q quit|D dump|down]", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "bad command name %w (line 1 column 1)",
        .abbrev = false, .version_text = routeros_version, .cmds = routeros_cmds,
        .config_cmds = cc_export,
    },
    {
        .type = "ruckus_fastiron", .style = DS_STYLE_FASTIRON, .os_version = "08.0.95jT211",
        .ssh_version = "RGOS_SSH",
        .user_prompt = "SSH@%h>", .priv_prompt = "SSH@%h#", .prompt_lead = "", .motd = "",
        .enable_prompt = "Password:", .enable_retry = "",
        .enable_fail = "Error - Incorrect username or password.", .enable_tries = 3,
        .pager_default = true,
        .pager = "--More--, next page: Space, next line: Return key, quit: Control-c",
        .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "Invalid input -> %w\nType ? for a list",
        .abbrev = true, .version_text = fastiron_version, .cmds = fastiron_cmds,
        .config_cmds = cc_show_run,
    },
    {
        /* The prompt counts the commands run: "sw1.1 # ", "sw1.2 # ", ... */
        .type = "extreme_exos", .style = DS_STYLE_EXOS, .os_version = "30.7.1.1",
        .ssh_version = "OpenSSH_8.1",
        .user_prompt = "%h.%c # ", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "", .motd = "\nExtremeXOS\nCopyright (C) 1996-2023 Extreme Networks. "
                                   "All rights reserved.\n",
        .pager_default = true, .pager = "Press <SPACE> to continue or <Q> to quit:",
        .pager_erase = DS_ERASE_CR,
        .invalid_caret = true, .invalid = "%% Invalid input detected at '^' marker.",
        .abbrev = true, .version_text = exos_version, .cmds = exos_cmds,
        .config_cmds = cc_exos,
    },
    {
        .type = "vyos", .style = DS_STYLE_VYOS, .os_version = "1.4.3",
        .ssh_version = "OpenSSH_9.2p1",
        .user_prompt = "%u@%h:~$ ", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "",
        .motd = "Welcome to VyOS!\n\n   Check out project news at https://blog.vyos.io\n\n"
                "Last login: Tue Mar  5 09:14:22 2024 from 192.0.2.5\n",
        .pager_default = false, .pager = ":", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "\n  Invalid command: [%w]\n", .abbrev = false,
        .version_text = vyos_version, .cmds = vyos_cmds, .config_cmds = cc_vyos,
    },
    {
        .type = "cumulus_linux", .style = DS_STYLE_CUMULUS, .os_version = "5.4.0",
        .ssh_version = "OpenSSH_8.4p1",
        .user_prompt = "%u@%h:mgmt:~$ ", .priv_prompt = "root@%h:mgmt:~# ",
        .exit_unprivs = true, .prompt_lead = "",
        .motd = "Linux %h 5.10.0-cl-1-amd64 #1 SMP Debian 5.10.162-1+cl5.4.0u1 x86_64\n\n"
                "Welcome to NVIDIA Cumulus (R) Linux (R)\n\n"
                "Last login: Tue Mar  5 09:14:22 2024 from 192.0.2.5\n",
        .enable_prompt = "[sudo] password for %u: ", .enable_retry = "Sorry, try again.",
        .enable_fail = "sudo: 3 incorrect password attempts", .enable_tries = 3,
        .enable_login_password = true,
        .pager_default = false, .pager = "--More--", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "-bash: %w: command not found", .abbrev = false,
        .version_text = cumulus_version, .cmds = cumulus_cmds, .config_cmds = cc_cumulus,
    },
    {
        .type = "ciena_saos", .style = DS_STYLE_SAOS, .os_version = "saos-06-20-00-0269",
        .ssh_version = "OpenSSH_6.6",
        .user_prompt = "%h> ", .priv_prompt = NULL, .starts_priv = true, .prompt_lead = "",
        .motd = "\nSAOS is True and Secure\n\n",
        .pager_default = true, .pager = "--More--", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "SHELL PARSER FAILURE: '%w' - unrecognized command",
        .abbrev = true, .version_text = saos_version, .cmds = saos_cmds,
        .config_cmds = cc_saos,
    },
    {
        .type = "sonicwall_sshd", .style = DS_STYLE_SONICOS, .os_version = "7.0.1-5119",
        .ssh_version = "SonicWall",
        .user_prompt = "%u@%h> ", .priv_prompt = NULL, .starts_priv = true,
        .prompt_lead = "", .motd = "",
        .pager_default = true, .pager = "--MORE--", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "% No matching command found.", .abbrev = false,
        .version_text = sonicwall_version, .cmds = sonicwall_cmds,
        .config_cmds = cc_sonicwall,
    },
    {
        .type = "checkpoint_gaia", .style = DS_STYLE_GAIA, .os_version = "R81.20",
        .ssh_version = "OpenSSH_7.8",
        .user_prompt = "%h> ", .priv_prompt = NULL, .starts_priv = true, .prompt_lead = "",
        .motd = "\nThis system is for authorized use only.\n",
        .pager_default = true, .pager = "-- More --", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "CLINFR0329  Invalid command:'%w'.",
        .abbrev = false, .version_text = gaia_version, .cmds = gaia_cmds,
        .config_cmds = cc_gaia,
    },
    {
        /* No paging command: the worker answers the pager with a space. */
        .type = "cisco_ftd", .style = DS_STYLE_FTD, .os_version = "7.2.5",
        .ssh_version = "OpenSSH_8.0",
        .user_prompt = "> ", .priv_prompt = NULL, .starts_priv = true, .prompt_lead = "",
        .motd = "Copyright 2004-2023, Cisco and/or its affiliates. All rights reserved.\n"
                "Cisco is a registered trademark of Cisco Systems, Inc.\n\n"
                "Cisco Firepower Extensible Operating System (FX-OS) v2.13.0 (build 198)\n"
                "Cisco Firepower 1010 Threat Defense v%v (build 208)\n",
        .pager_default = true, .pager = "<--- More --->", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false, .invalid = "Syntax error: Illegal parameter", .abbrev = false,
        .version_text = ftd_version, .syslog_pager = ASA_SYSLOG, .syslog_async = ASA_SYSLOG,
        .cmds = ftd_cmds, .config_cmds = cc_show_run,
    },
    {
        /* AireOS asks for the login again inside the shell. */
        .type = "cisco_wlc", .style = DS_STYLE_AIREOS, .os_version = "8.10.185.0",
        .ssh_version = "OpenSSH_7.4",
        .user_prompt = "(%h) >", .priv_prompt = NULL, .starts_priv = true, .prompt_lead = "",
        .motd = "(Cisco Controller)\n", .shell_user = "User: ", .shell_pass = "Password:",
        .pager_default = true, .pager = "--More-- or (q)uit", .pager_erase = DS_ERASE_CR,
        .invalid_caret = false,
        .invalid = "Incorrect usage. Use the '?' or <TAB> key to list commands.",
        .abbrev = true, .version_text = wlc_version, .cmds = wlc_cmds,
        .config_cmds = cc_wlc,
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
    .version_text = ios_version, .cmds = ios_cmds, .config_cmds = cc_show_run,
};

/* Other names NetRaven, Netmiko or people use for a row's type. */
static const struct {
    const char *alias, *type;
} aliases[] = {
    {"cisco_ios_telnet", "cisco_ios"}, {"cisco_iosxe", "cisco_xe"}, {"cisco_ios_xe", "cisco_xe"},
    {"cisco_nexus", "cisco_nxos"},     {"nxos", "cisco_nxos"},      {"cisco_iosxr", "cisco_xr"},
    {"cisco_ios_xr", "cisco_xr"},      {"arista", "arista_eos"},    {"eos", "arista_eos"},
    {"juniper", "juniper_junos"},      {"junos", "juniper_junos"},  {"panos", "paloalto_panos"},
    {"h3c_comware", "hp_comware"},     {"comware", "hp_comware"},   {"procurve", "hp_procurve"},
    {"aruba_procurve", "aruba_os"},    {"aruba_osswitch", "aruba_os"},
    {"aruba_cx", "aruba_aoscx"},       {"aoscx", "aruba_aoscx"},    {"huawei_vrp", "huawei"},
    {"huawei_vrpv8", "huawei"},        {"fortios", "fortinet"},     {"fortigate", "fortinet"},
    {"f5_ltm", "f5_tmsh"},             {"dellos10", "dell_os10"},   {"dellos6", "dell_os6"},
    {"dellos9", "dell_os9"},           {"dell_force10", "dell_os9"},
    {"mikrotik", "mikrotik_routeros"}, {"routeros", "mikrotik_routeros"},
    {"brocade_fastiron", "ruckus_fastiron"}, {"ruckus_icx", "ruckus_fastiron"},
    {"fastiron", "ruckus_fastiron"},   {"extreme", "extreme_exos"}, {"exos", "extreme_exos"},
    {"vyatta_vyos", "vyos"},           {"cumulus", "cumulus_linux"}, {"ciena", "ciena_saos"},
    {"saos", "ciena_saos"},            {"sonicwall", "sonicwall_sshd"},
    {"checkpoint", "checkpoint_gaia"}, {"gaia", "checkpoint_gaia"},
    {"cisco_aireos", "cisco_wlc"},
};

const struct ds_profile *ds_profile_find(const char *type)
{
    size_t n = strlen(type);

    if (n > 4 && strcmp(type + n - 4, "_ssh") == 0)
        n -= 4;
    for (const struct ds_profile *p = ds_profiles; p->type; p++)
        if (strlen(p->type) == n && strncmp(p->type, type, n) == 0)
            return p;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strlen(aliases[i].alias) == n && strncmp(aliases[i].alias, type, n) == 0)
            return ds_profile_find(aliases[i].type);
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
