/*
 * confgen.c - deterministic running-configs.
 *
 * One row per config style: a preamble (which may state the size, as IOS's
 * "Current configuration : N bytes" does), a head with the system and the
 * secret-bearing lines, a block repeated (one interface each) until the
 * wanted size is reached, and a tail.  Everything random comes from one
 * PRNG seeded by the hostname and the revision, so a device prints the same
 * bytes every time until its revision changes.
 *
 * The first eight styles are C functions; the others are rows of text
 * templates (struct syntax, tokens below), one row per platform.
 *
 * Volatile lines (the ones a real device changes by itself: "! Last
 * configuration change at", "Cryptochecksum:", ...) are written only when
 * the caller passes a session (struct ds_vol), from a PRNG of their own and
 * counted apart, so that the rest of the text, the number of blocks
 * included, is the same byte for byte with and without them: that is what
 * lets --print-config promise "the session's output less its volatile
 * lines".
 */
#include "devsim.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gen {
    struct ds_buf *w;
    uint64_t rng;
    const struct ds_device *dev;
    const char *host;
    const char *ver;            /* profile os_version */
    char   short_ver[16];       /* "15.9" */
    unsigned net;               /* second octet of the 10/8 addresses */
    unsigned loop_c, loop_d;    /* loopback 10.255.c.d */
    unsigned mgmt;              /* 192.0.2.mgmt */
    const struct ds_vol *vol;   /* NULL: no volatile lines */
    uint64_t vrng;              /* the volatile lines' own PRNG */
    size_t   vbytes;            /* volatile bytes written to body and tail */
    char     leakc[DS_NAME_MAX + 8];    /* leak_secrets: the community */
};

#define P(...) ds_buf_printf(g->w, __VA_ARGS__)

/* A volatile line (printf-like, with its "\n"): written only for a
 * session, and counted in vbytes. */
static void VL(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void VL(struct gen *g, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    if (g->vol == NULL)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    ds_buf_add(g->w, line, (size_t)n);
    g->vbytes += (size_t)n;
}

/* The session time in a strftime format ("%q" = ms), for VL(). */
static const char *vt(const struct gen *g, char out[96], const char *fmt)
{
    struct ds_buf b = {0};

    out[0] = '\0';
    if (g->vol == NULL)
        return out;
    ds_buf_strftime(&b, fmt, strlen(fmt), g->vol->when, g->vol->ms);
    snprintf(out, 96, "%.*s", (int)ds_buf_avail(&b), b.failed || !b.data ? "" : ds_buf_head(&b));
    ds_buf_free(&b);
    return out;
}

/* Time shapes shared by several platforms. */
#define T_CTIME  "%a %b %e %H:%M:%S %Y"         /* Tue Mar  5 09:14:22 2024 */
#define T_IOS    "%H:%M:%S UTC %a %b %-d %Y"    /* 09:14:22 UTC Tue Mar 5 2024 */

static unsigned rnd(struct gen *g, unsigned n)
{
    return (unsigned)(ds_rand(&g->rng) % n);
}

/* n characters from set, NUL-terminated into out (sized n+1). */
static const char *rstr(struct gen *g, char *out, size_t n, const char *set)
{
    size_t m = strlen(set);

    for (size_t i = 0; i < n; i++)
        out[i] = set[ds_rand(&g->rng) % m];
    out[n] = '\0';
    return out;
}

static const char B64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char HEX[] = "0123456789ABCDEF";
static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyz0123456789";

/* $1$salt$hash (md5-crypt shape). */
static const char *md5crypt(struct gen *g, char out[40])
{
    char salt[5], hash[23];

    snprintf(out, 40, "$1$%s$%s", rstr(g, salt, 4, B64), rstr(g, hash, 22, B64));
    return out;
}

/* $6$salt$hash (sha512-crypt shape). */
static const char *sha512crypt(struct gen *g, char out[112])
{
    char salt[17], hash[87];

    snprintf(out, 112, "$6$%s$%s", rstr(g, salt, 16, B64), rstr(g, hash, 86, B64));
    return out;
}

/* Cisco type 7: two decimal digits then hex. */
static const char *type7(struct gen *g, char out[32])
{
    char hex[21];

    snprintf(out, 32, "%02u%s", rnd(g, 16), rstr(g, hex, 12 + 2 * rnd(g, 5), HEX));
    return out;
}

static const char *word(struct gen *g)
{
    static const char *const words[] = {"core", "dist", "edge", "wan", "dc", "campus",
                                        "access", "border", "lab", "spine", "leaf"};
    return words[rnd(g, sizeof words / sizeof words[0])];
}

static void p2p_addr(struct gen *g, unsigned i, char out[20])
{
    snprintf(out, 20, "10.%u.%u.%u", g->net, (i >> 6) & 255, ((i & 63) << 2) | 1);
}

/* An interface description.  With leak_secrets, the first two carry the
 * login password and the enable secret, in words that do not say so (the
 * way a careless admin leaves them). */
static void describe(struct gen *g, unsigned i, char out[DS_SECRET_MAX + 64])
{
    const struct ds_device *d = g->dev;
    const char *w = word(g);
    unsigned n = 1 + rnd(g, 40);

    if (d->leak_secrets && i == 0)
        snprintf(out, DS_SECRET_MAX + 64, "OOB console %s", d->accounts[0].password);
    else if (d->leak_secrets && i == 1 && d->enable_secret[0])
        snprintf(out, DS_SECRET_MAX + 64, "Break-glass %s", d->enable_secret);
    else
        snprintf(out, DS_SECRET_MAX + 64, "Link to %s%u-%s port %u", w, n, g->host, i + 1);
}

/* ---- Cisco IOS / IOS-XE --------------------------------------------- */

static void ios_pre(struct gen *g, size_t body)
{
    P("Building configuration...\n\n");
    VL(g, "Current configuration : %zu bytes\n", body);
}

static void ios_head(struct gen *g)
{
    char a[40], b[40], c[32], t[96];

    P("!\n");
    VL(g, "! Last configuration change at %s by %s\n", vt(g, t, T_IOS), g->vol ? g->vol->user : "");
    VL(g, "! NVRAM config last updated at %s by %s\n", vt(g, t, T_IOS), g->vol ? g->vol->user : "");
    P("!\n"
      "version %s\n"
      "service timestamps debug datetime msec\n"
      "service timestamps log datetime msec\n"
      "service password-encryption\n!\n"
      "hostname %s\n!\n"
      "boot-start-marker\nboot-end-marker\n!\n!\n", g->short_ver, g->host);
    P("enable secret 5 %s\n!\n", md5crypt(g, a));
    P("aaa new-model\n"
      "aaa authentication login default local\n"
      "aaa authorization exec default local\n!\n"
      "clock timezone UTC 0 0\n!\n"
      "ip domain name lab.example.net\n"
      "ip name-server 192.0.2.53\n"
      "ip cef\nno ipv6 cef\n!\n");
    P("username admin privilege 15 secret 5 %s\n", md5crypt(g, b));
    P("username backup privilege 15 password 7 %s\n!\nredundancy\n!\n", type7(g, c));
    P("interface Loopback0\n ip address 10.255.%u.%u 255.255.255.255\n!\n",
      g->loop_c, g->loop_d);
    P("interface GigabitEthernet0/0\n description Management\n"
      " ip address 192.0.2.%u 255.255.255.0\n negotiation auto\n!\n", g->mgmt);
}

static void ios_block(struct gen *g, unsigned i)
{
    char ip[20], d[DS_SECRET_MAX + 64];

    p2p_addr(g, i, ip);
    describe(g, i, d);
    P("interface GigabitEthernet%u/0/%u\n"
      " description %s\n"
      " ip address %s 255.255.255.252\n"
      " ip ospf network point-to-point\n"
      " ip ospf cost %u\n"
      " negotiation auto\n"
      "%s!\n", 1 + i / 48, 1 + i % 48, d, ip, 1 + rnd(g, 100),
      rnd(g, 8) == 0 ? " shutdown\n" : " no shutdown\n");
}

static void ios_tail(struct gen *g)
{
    char a[32], b[32], c[32], rw[13];

    P("router ospf 1\n"
      " router-id 10.255.%u.%u\n"
      " passive-interface Loopback0\n"
      " network 10.0.0.0 0.255.255.255 area 0\n!\n"
      "ip forward-protocol nd\n"
      "no ip http server\n"
      "no ip http secure-server\n"
      "ip route 0.0.0.0 0.0.0.0 192.0.2.1\n"
      "ip ssh version 2\n!\n"
      "logging host 192.0.2.50\n", g->loop_c, g->loop_d);
    P("snmp-server community public RO\n"
      "snmp-server community %s RW\n"
      "snmp-server location lab\n"
      "snmp-server contact noc@example.net\n!\n", rstr(g, rw, 12, ALNUM));
    P("tacacs-server host 192.0.2.49 key 7 %s\n!\ncontrol-plane\n!\n"
      "banner motd ^C\nAuthorized access only\n^C\n!\n", type7(g, a));
    P("line con 0\n password 7 %s\n logging synchronous\n"
      "line aux 0\n"
      "line vty 0 4\n password 7 %s\n transport input ssh\n"
      "line vty 5 15\n password 7 %s\n transport input ssh\n!\n",
      type7(g, b), type7(g, c), type7(g, a));
    /* The clock's drift correction: rewritten by the box as it learns. */
    VL(g, "ntp clock-period %u\n", 17179000u + (g->vol ? g->vol->serial % 1000u : 0));
    P("ntp server 192.0.2.123\n!\nend\n");
}

/* ---- Cisco NX-OS ---------------------------------------------------- */

static void nxos_pre(struct gen *g, size_t body)
{
    char t[96];

    (void)body;
    P("\n!Command: show running-config\n");
    VL(g, "!Running configuration last done at: %s\n", vt(g, t, T_CTIME));
    VL(g, "!Time: %s\n", vt(g, t, T_CTIME));
    P("\n");
}

static void nxos_head(struct gen *g)
{
    char a[112], b[112], k1[33], k2[33], rw[13];

    P("version %s Bios:version 05.45\n"
      "hostname %s\n"
      "vdc %s id 1\n  limit-resource vlan minimum 16 maximum 4094\n\n"
      "feature ospf\nfeature interface-vlan\nfeature lacp\nfeature lldp\n\n",
      g->ver, g->host, g->host);
    P("username admin password 5 %s  role network-admin\n", sha512crypt(g, a));
    P("username backup password 5 %s  role network-operator\n", sha512crypt(g, b));
    P("ip domain-lookup\n"
      "snmp-server user admin network-admin auth md5 0x%s priv 0x%s localizedkey\n",
      rstr(g, k1, 32, HEX), rstr(g, k2, 32, HEX));
    P("snmp-server community public group network-operator\n"
      "snmp-server community %s group network-admin\n\n"
      "vlan 1,10-20\n\n"
      "vrf context management\n  ip route 0.0.0.0/0 192.0.2.1\n\n"
      "interface mgmt0\n  vrf member management\n  ip address 192.0.2.%u/24\n\n"
      "interface loopback0\n  ip address 10.255.%u.%u/32\n",
      rstr(g, rw, 12, ALNUM), g->mgmt, g->loop_c, g->loop_d);
}

static void nxos_block(struct gen *g, unsigned i)
{
    char ip[20], d[DS_SECRET_MAX + 64];

    p2p_addr(g, i, ip);
    describe(g, i, d);
    P("\ninterface Ethernet%u/%u\n"
      "  description %s\n"
      "  no switchport\n"
      "  mtu 9216\n"
      "  ip address %s/30\n"
      "  ip router ospf 1 area 0.0.0.0\n"
      "  no shutdown\n", 1 + i / 48, 1 + i % 48, d, ip);
}

static void nxos_tail(struct gen *g)
{
    P("line console\n  exec-timeout 0\nline vty\n  exec-timeout 30\n"
      "router ospf 1\n  router-id 10.255.%u.%u\n  log-adjacency-changes\n",
      g->loop_c, g->loop_d);
}

/* ---- Cisco IOS-XR --------------------------------------------------- */

static void xr_pre(struct gen *g, size_t body)
{
    char t[96];

    (void)body;
    /* XR stamps every command's output with the time, first line. */
    VL(g, "%s\n", vt(g, t, "%a %b %e %H:%M:%S.%q UTC"));
    P("Building configuration...\n!! IOS XR Configuration %s\n", g->ver);
    VL(g, "!! Last configuration change at %s by %s\n", vt(g, t, T_CTIME),
       g->vol ? g->vol->user : "");
    P("!\n");
}

static void xr_head(struct gen *g)
{
    char a[112], b[32];

    P("hostname %s\nclock timezone UTC 0\nlogging console informational\n"
      "domain name lab.example.net\n", g->host);
    P("username admin\n group root-lr\n group cisco-support\n secret 10 %s\n!\n",
      sha512crypt(g, a));
    P("username backup\n group netadmin\n password 7 %s\n!\n", type7(g, b));
    P("interface Loopback0\n ipv4 address 10.255.%u.%u 255.255.255.255\n!\n"
      "interface MgmtEth0/RSP0/CPU0/0\n ipv4 address 192.0.2.%u 255.255.255.0\n!\n",
      g->loop_c, g->loop_d, g->mgmt);
}

static void xr_block(struct gen *g, unsigned i)
{
    char ip[20], d[DS_SECRET_MAX + 64];

    p2p_addr(g, i, ip);
    describe(g, i, d);
    P("interface GigabitEthernet0/0/%u/%u\n"
      " description %s\n"
      " mtu 9216\n"
      " ipv4 address %s 255.255.255.252\n"
      " load-interval 30\n!\n", i / 40, i % 40, d, ip);
}

static void xr_tail(struct gen *g)
{
    char rw[13];

    P("router static\n address-family ipv4 unicast\n  0.0.0.0/0 192.0.2.1\n !\n!\n"
      "router ospf 1\n router-id 10.255.%u.%u\n area 0\n  interface Loopback0\n"
      "   passive enable\n  !\n !\n!\n", g->loop_c, g->loop_d);
    P("snmp-server community public RO\nsnmp-server community %s RW\n"
      "ssh server v2\nssh server vrf default\nend\n", rstr(g, rw, 12, ALNUM));
}

/* ---- Arista EOS ----------------------------------------------------- */

static void eos_pre(struct gen *g, size_t body)
{
    char t[96];

    (void)body;
    P("! Command: show running-config\n");
    VL(g, "! Time: %s\n", vt(g, t, T_CTIME));
    P("! device: %s (DCS-7050SX3-48YC8, EOS-%s)\n", g->host, g->ver);
    VL(g, "! Startup-config last modified at %s by %s\n", vt(g, t, T_CTIME),
       g->vol ? g->vol->user : "");
    P("!\n! boot system flash:/EOS-%s.swi\n!\n", g->ver);
}

static void eos_head(struct gen *g)
{
    char a[112], b[112], c[112], rw[13];

    P("no aaa root\n!\n");
    P("username admin privilege 15 role network-admin secret sha512 %s\n", sha512crypt(g, a));
    P("username backup privilege 15 role network-operator secret sha512 %s\n!\n",
      sha512crypt(g, b));
    P("transceiver qsfp default-mode 4x10G\n!\n"
      "service routing protocols model multi-agent\n!\n"
      "hostname %s\n"
      "ip name-server vrf default 192.0.2.53\n"
      "dns domain lab.example.net\n!\n"
      "snmp-server community public ro\n"
      "snmp-server community %s rw\n!\n"
      "spanning-tree mode mstp\n!\n", g->host, rstr(g, rw, 12, ALNUM));
    P("enable password sha512 %s\n!\n", sha512crypt(g, c));
    P("interface Loopback0\n   ip address 10.255.%u.%u/32\n!\n"
      "interface Management1\n   ip address 192.0.2.%u/24\n!\n",
      g->loop_c, g->loop_d, g->mgmt);
}

static void eos_block(struct gen *g, unsigned i)
{
    char ip[20], d[DS_SECRET_MAX + 64];

    p2p_addr(g, i, ip);
    describe(g, i, d);
    P("interface Ethernet%u\n"
      "   description %s\n"
      "   mtu 9214\n"
      "   no switchport\n"
      "   ip address %s/30\n"
      "   ip ospf network point-to-point\n!\n", i + 1, d, ip);
}

static void eos_tail(struct gen *g)
{
    P("ip routing\n!\nip route 0.0.0.0/0 192.0.2.1\n!\n"
      "router ospf 1\n   router-id 10.255.%u.%u\n   passive-interface Loopback0\n"
      "   network 10.0.0.0/8 area 0.0.0.0\n   max-lsa 12000\n!\n"
      "management api http-commands\n   no shutdown\n!\n"
      "management ssh\n   idle-timeout 0\n!\nend\n", g->loop_c, g->loop_d);
}

/* ---- Juniper Junos (display set) ------------------------------------ */

static void junos_head(struct gen *g)
{
    char a[112], b[112], c[112], rw[13], t[96];

    VL(g, "## Last commit: %s by %s\n", vt(g, t, "%Y-%m-%d %H:%M:%S UTC"),
       g->vol ? g->vol->user : "");
    P("set version %s\nset system host-name %s\nset system domain-name lab.example.net\n",
      g->ver, g->host);
    P("set system root-authentication encrypted-password \"%s\"\n", sha512crypt(g, a));
    P("set system login user admin uid 2000\n"
      "set system login user admin class super-user\n"
      "set system login user admin authentication encrypted-password \"%s\"\n",
      sha512crypt(g, b));
    P("set system login user backup uid 2001\n"
      "set system login user backup class read-only\n"
      "set system login user backup authentication encrypted-password \"%s\"\n",
      sha512crypt(g, c));
    P("set system services ssh root-login deny\n"
      "set system services netconf ssh\n"
      "set system syslog user * any emergency\n"
      "set system syslog file messages any notice\n"
      "set system ntp server 192.0.2.123\n"
      "set snmp community public authorization read-only\n"
      "set snmp community %s authorization read-write\n"
      "set interfaces lo0 unit 0 family inet address 10.255.%u.%u/32\n"
      "set interfaces fxp0 unit 0 family inet address 192.0.2.%u/24\n",
      rstr(g, rw, 12, ALNUM), g->loop_c, g->loop_d, g->mgmt);
}

static void junos_block(struct gen *g, unsigned i)
{
    char ip[20], d[DS_SECRET_MAX + 64], ifn[24];

    p2p_addr(g, i, ip);
    describe(g, i, d);
    snprintf(ifn, sizeof ifn, "ge-%u/0/%u", i / 48, i % 48);
    P("set interfaces %s description \"%s\"\n"
      "set interfaces %s mtu 9192\n"
      "set interfaces %s unit 0 family inet address %s/30\n"
      "set protocols ospf area 0.0.0.0 interface %s.0 interface-type p2p\n",
      ifn, d, ifn, ifn, ip, ifn);
}

static void junos_tail(struct gen *g)
{
    P("set routing-options static route 0.0.0.0/0 next-hop 192.0.2.1\n"
      "set routing-options router-id 10.255.%u.%u\n"
      "set protocols ospf area 0.0.0.0 interface lo0.0 passive\n"
      "set protocols lldp interface all\n"
      "set policy-options prefix-list mgmt 192.0.2.0/24\n"
      "set firewall filter protect-re term ssh from source-prefix-list mgmt\n"
      "set firewall filter protect-re term ssh then accept\n", g->loop_c, g->loop_d);
}

/* ---- Cisco ASA ------------------------------------------------------ */

/* "Cryptochecksum:<32 hex>", from the volatile PRNG. */
static void vchecksum(struct gen *g)
{
    char sum[33];
    uint64_t keep = g->rng;

    if (g->vol == NULL)
        return;
    g->rng = g->vrng;
    rstr(g, sum, 32, "0123456789abcdef");
    g->vrng = g->rng;
    g->rng = keep;
    VL(g, "Cryptochecksum:%s\n", sum);
}

static void asa_pre(struct gen *g, size_t body)
{
    char t[96];

    (void)body;
    P(": Saved\n\n:\n: Serial Number: JAD%08u\n"
      ": Hardware:   ASA5516, 8192 MB RAM, CPU Atom C2000 series 2416 MHz, 1 CPU (8 cores)\n",
      (unsigned)(g->rng % 100000000u));
    VL(g, ": Written by %s at %s\n", g->vol ? g->vol->user : "",
       vt(g, t, "%H:%M:%S.%q UTC %a %b %-d %Y"));
    P(":\nASA Version %s \n!\n", g->ver);
}

static void asa_head(struct gen *g)
{
    char a[112], p[17];

    P("hostname %s\ndomain-name lab.example.net\n", g->host);
    P("enable password %s pbkdf2\n", sha512crypt(g, a));
    P("passwd %s encrypted\nnames\nno mac-address auto\n!\n", rstr(g, p, 16, B64));
    P("interface Management1/1\n management-only\n nameif management\n"
      " security-level 100\n ip address 192.0.2.%u 255.255.255.0\n!\n", g->mgmt);
}

static void asa_block(struct gen *g, unsigned i)
{
    char ip[20], d[DS_SECRET_MAX + 64];

    p2p_addr(g, i, ip);
    describe(g, i, d);
    P("interface GigabitEthernet1/%u\n"
      " description %s\n"
      " nameif seg%u\n"
      " security-level %u\n"
      " ip address %s 255.255.255.252\n!\n", i + 1, d, i + 1, 10 + rnd(g, 80), ip);
}

static void asa_tail(struct gen *g)
{
    char a[112], b[112];

    P("ftp mode passive\ndns server-group DefaultDNS\n domain-name lab.example.net\n"
      "object network obj-lan\n subnet 10.0.0.0 255.0.0.0\n"
      "access-list outside_in extended permit icmp any any echo-reply\n"
      "pager lines 24\nlogging enable\nlogging host management 192.0.2.50\n"
      "mtu management 1500\nroute management 0.0.0.0 0.0.0.0 192.0.2.1 1\n"
      "aaa authentication ssh console LOCAL\n"
      "snmp-server host management 192.0.2.50 community public version 2c\n"
      "snmp-server community public\n"
      "ssh 192.0.2.0 255.255.255.0 management\nssh version 2\nssh timeout 30\n");
    P("username admin password %s pbkdf2 privilege 15\n", sha512crypt(g, a));
    P("username backup password %s pbkdf2 privilege 5\n", sha512crypt(g, b));
    P("tunnel-group 203.0.113.9 ipsec-attributes\n"
      " ikev2 remote-authentication pre-shared-key *****\n"
      "prompt hostname context\n");
    vchecksum(g);
    P(": end\n");
}

/* ---- Palo Alto PAN-OS ----------------------------------------------- */

static void panos_head(struct gen *g)
{
    char a[40], b[40];

    P("config {\n  mgt-config {\n    users {\n      admin {\n        phash %s;\n"
      "        permissions {\n          role-based {\n            superuser yes;\n"
      "          }\n        }\n      }\n", md5crypt(g, a));
    P("      backup {\n        phash %s;\n        permissions {\n          role-based {\n"
      "            superreader yes;\n          }\n        }\n      }\n    }\n"
      "    password-complexity {\n      enabled yes;\n      minimum-length 12;\n    }\n  }\n"
      "  devices {\n    localhost.localdomain {\n      network {\n        interface {\n"
      "          ethernet {\n", md5crypt(g, b));
}

static void panos_block(struct gen *g, unsigned i)
{
    char ip[20], d[DS_SECRET_MAX + 64];

    p2p_addr(g, i, ip);
    describe(g, i, d);
    P("            ethernet1/%u {\n"
      "              layer3 {\n"
      "                ip {\n"
      "                  %s/30;\n"
      "                }\n"
      "              }\n"
      "              comment \"%s\";\n"
      "            }\n", i + 1, ip, d);
}

static void panos_tail(struct gen *g)
{
    char s[25];

    P("          }\n        }\n      }\n      deviceconfig {\n        system {\n"
      "          hostname %s;\n          ip-address 192.0.2.%u;\n"
      "          netmask 255.255.255.0;\n          default-gateway 192.0.2.1;\n"
      "          snmp-setting {\n            access-setting {\n              version {\n"
      "                v2c {\n                  snmp-community-string public;\n"
      "                }\n              }\n            }\n          }\n        }\n"
      "      }\n", g->host, g->mgmt);
    P("      vsys {\n        vsys1 {\n          server-profile {\n            radius {\n"
      "              radius1 {\n                server {\n                  r1 {\n"
      "                    ip-address 192.0.2.49;\n"
      "                    secret -AQ==%s;\n                    port 1812;\n"
      "                  }\n                }\n              }\n            }\n"
      "          }\n        }\n      }\n    }\n  }\n}\n", rstr(g, s, 24, B64));
}

/* ---- Linux (cat of a config file) ----------------------------------- */

static void linux_head(struct gen *g)
{
    char a[112], b[112], s[33];

    P("# /etc/netraven/device.conf - generated by devsim for %s\n"
      "[system]\nhostname = %s\ndomain = lab.example.net\nadmin_user = admin\n",
      g->host, g->host);
    P("admin_password = %s\n", sha512crypt(g, a));
    P("backup_password = %s\n", sha512crypt(g, b));
    P("api_secret = %s\nsnmp_community = public\n\n", rstr(g, s, 32, "0123456789abcdef"));
}

static void linux_block(struct gen *g, unsigned i)
{
    char ip[20], d[DS_SECRET_MAX + 64];

    p2p_addr(g, i, ip);
    describe(g, i, d);
    P("[interface eth%u]\ndescription = %s\naddress = %s/30\nmtu = 9000\n\n", i + 1, d, ip);
}

static void linux_tail(struct gen *g)
{
    P("[routing]\ndefault_gateway = 192.0.2.1\nrouter_id = 10.255.%u.%u\nospf_area = 0.0.0.0\n",
      g->loop_c, g->loop_d);
}


/* ---- text templates ------------------------------------------------- */

/*
 * The other platforms are rows of text.  A line that starts with '~' is a
 * volatile line.  Tokens:
 *   %h hostname   %v OS version   %u the session's user   %m mgmt octet (192.0.2.%m)
 *   %L loopback address (10.255.c.d)
 *   in a block:  %i block number (1, 2, ...)   %s slot (1 + i/48)   %S slot - 1
 *                %p port (1 + i%48)   %I point-to-point address   %D description
 *                %V a VLAN id (100 + i)
 *   random:      %r 1..100   %5 md5-crypt   %6 sha512-crypt   %7 Cisco type 7
 *                %x 32 hex   %X 32 HEX   %y 40 hex   %a 12 alnum   %b 24 base64
 *   session:     %c session counter   %{...} strftime of the session time (UTC,
 *                "%q" ms, "%Q" lower-case month)
 *   %K the leak_secrets community   %% a '%'
 * Any other '%' is literal (VRP's "%^%#" cipher marks).
 */
struct syntax {
    const char *head;           /* preamble, system, users, secrets */
    const char *block;          /* one interface, repeated to the size */
    const char *tail;           /* routing, SNMP, the end marker */
    const char *status;         /* DS_PART_STATUS, NULL if the platform has none */
};

static void tpl_line(struct gen *g, const char *t, size_t n, unsigned i)
{
    char tmp[DS_SECRET_MAX + 128];

    for (size_t k = 0; k < n; k++) {
        const char *v = tmp;

        if (t[k] != '%' || k + 1 == n) {
            ds_buf_add(g->w, t + k, 1);
            continue;
        }
        tmp[0] = '\0';
        switch (t[++k]) {
        case 'h': v = g->host; break;
        case 'v': v = g->ver; break;
        case 'u': v = g->vol ? g->vol->user : "admin"; break;
        case 'm': snprintf(tmp, sizeof tmp, "%u", g->mgmt); break;
        case 'L': snprintf(tmp, sizeof tmp, "10.255.%u.%u", g->loop_c, g->loop_d); break;
        case 'i': snprintf(tmp, sizeof tmp, "%u", i + 1); break;
        case 's': snprintf(tmp, sizeof tmp, "%u", 1 + i / 48); break;
        case 'S': snprintf(tmp, sizeof tmp, "%u", i / 48); break;
        case 'p': snprintf(tmp, sizeof tmp, "%u", 1 + i % 48); break;
        case 'V': snprintf(tmp, sizeof tmp, "%u", 100 + i % 3900); break;
        case 'I': p2p_addr(g, i, tmp); break;
        case 'D': describe(g, i, tmp); break;
        case 'r': snprintf(tmp, sizeof tmp, "%u", 1 + rnd(g, 100)); break;
        case '5': md5crypt(g, tmp); break;
        case '6': sha512crypt(g, tmp); break;
        case '7': type7(g, tmp); break;
        case 'x': rstr(g, tmp, 32, "0123456789abcdef"); break;
        case 'X': rstr(g, tmp, 32, HEX); break;
        case 'y': rstr(g, tmp, 40, "0123456789abcdef"); break;
        case 'a': rstr(g, tmp, 12, ALNUM); break;
        case 'b': rstr(g, tmp, 24, B64 + 2); break;
        case 'c': snprintf(tmp, sizeof tmp, "%u", g->vol ? g->vol->serial : 0); break;
        case 'K': v = g->leakc; break;
        case '%': v = "%"; break;
        case '{': {
            const char *end = memchr(t + k, '}', n - k);

            if (end == NULL) {
                v = "";
                break;
            }
            if (g->vol == NULL) {
                k = (size_t)(end - t);
                v = "";
                break;
            }
            ds_buf_strftime(g->w, t + k + 1, (size_t)(end - t - k - 1), g->vol->when,
                            g->vol->ms);
            k = (size_t)(end - t);
            v = "";
            break;
        }
        default:
            ds_buf_add(g->w, t + k - 1, 2);
            v = "";
            break;
        }
        ds_buf_adds(g->w, v);
    }
}

/* Expand a template; volatile lines ('~') only for a session, from the
 * volatile PRNG, and counted in vbytes. */
static void tpl(struct gen *g, const char *t, unsigned i)
{
    while (t && *t) {
        const char *eol = strchr(t, '\n');
        size_t n = eol ? (size_t)(eol - t) + 1 : strlen(t);

        if (*t != '~') {
            tpl_line(g, t, n, i);
        } else if (g->vol) {
            size_t before = ds_buf_avail(g->w);
            uint64_t keep = g->rng;

            g->rng = g->vrng;
            tpl_line(g, t + 1, n - 1, i);
            g->vrng = g->rng;
            g->rng = keep;
            g->vbytes += ds_buf_avail(g->w) - before;
        }
        t += n;
    }
}

/* ---- the platforms written as templates ----------------------------- */

static const struct syntax syn_comware = {
    .head =
        "#\n version %v\n#\n sysname %h\n#\n clock timezone UTC add 00:00:00\n#\n"
        " telnet server disable\n ssh server enable\n#\n irf mac-address persistent timer\n"
        " irf auto-update enable\n#\n lldp global enable\n#\n password-recovery enable\n#\n"
        "vlan 1\n#\n stp global enable\n#\n"
        "local-user admin class manage\n password hash $h$6$%b$%b==\n"
        " service-type ssh terminal\n authorization-attribute user-role network-admin\n#\n"
        "local-user backup class manage\n password hash $h$6$%b$%b==\n service-type ssh\n"
        " authorization-attribute user-role network-operator\n#\n"
        "interface LoopBack0\n ip address %L 255.255.255.255\n#\n"
        "interface M-GigabitEthernet0/0/0\n ip address 192.0.2.%m 255.255.255.0\n#\n",
    .block =
        "interface GigabitEthernet%s/0/%p\n port link-mode route\n description %D\n"
        " ip address %I 255.255.255.252\n ospf cost %r\n#\n",
    .tail =
        "ospf 1 router-id %L\n area 0.0.0.0\n  network 10.0.0.0 0.255.255.255\n#\n"
        " ip route-static 0.0.0.0 0 192.0.2.1\n#\n info-center loghost 192.0.2.50\n#\n"
        " snmp-agent\n snmp-agent local-engineid 800063A280%X\n"
        " snmp-agent community read simple public\n"
        " snmp-agent community write cipher $c$3$%b==\n snmp-agent sys-info version v2c v3\n#\n"
        "radius scheme rad1\n primary authentication 192.0.2.49\n"
        " key authentication cipher $c$3$%b==\n#\n"
        "line vty 0 63\n authentication-mode scheme\n user-role network-operator\n#\nreturn\n",
};

static const struct syntax syn_procurve = {
    .head =
        "Running configuration:\n\n"
        "; J9773A Configuration Editor; Created on release #%v\n"
        "; Ver #14:01.6f.f8.1d.fb.7f.bf.bb.ff.7c.59.fc.7b.ff.ff.fc.ff.ff.3f.ef:04\n"
        "hostname \"%h\"\nmodule 1 type j9773a\ntime timezone 0\n"
        "ip default-gateway 192.0.2.1\n"
        "snmp-server community \"public\" unrestricted\n"
        "snmp-server community \"%a\" operator\n"
        "snmp-server contact \"noc@example.net\"\nsnmp-server location \"lab\"\n"
        "oobm\n   ip address 192.0.2.%m 255.255.255.0\n   exit\n"
        "radius-server host 192.0.2.49 key \"%a\"\n"
        "vlan 1\n   name \"DEFAULT_VLAN\"\n   untagged 1-24\n   ip address dhcp-bootp\n   exit\n",
    .block =
        "interface %i\n   name \"%D\"\n   exit\n"
        "vlan %V\n   name \"v%V\"\n   tagged %i\n   ip address %I 255.255.255.252\n   exit\n",
    .tail =
        "spanning-tree\nno tftp server\nno autorun\nno dhcp config-file-update\n"
        "password manager user-name \"admin\" sha1 \"%y\"\n"
        "password operator user-name \"backup\" sha1 \"%y\"\n",
};

static const struct syntax syn_vrp = {
    .head =
        "!Software Version %v\n"
        "~!Last configuration was updated at %{%Y-%m-%d %H:%M:%S+00:00}\n"
        "~!Last configuration was saved at %{%Y-%m-%d %H:%M:%S+00:00}\n"
        "#\nsysname %h\n#\n info-center loghost 192.0.2.50\n#\nvlan batch 10 to 20\n#\n"
        " stp enable\n#\naaa\n authentication-scheme default\n authorization-scheme default\n"
        " accounting-scheme default\n domain default\n domain default_admin\n"
        " local-user admin password irreversible-cipher $1a$%b$%b$\n"
        " local-user admin privilege level 15\n local-user admin service-type ssh\n"
        " local-user backup password irreversible-cipher $1a$%b$%b$\n"
        " local-user backup privilege level 3\n local-user backup service-type ssh\n#\n"
        "interface MEth0/0/1\n ip address 192.0.2.%m 255.255.255.0\n#\n"
        "interface LoopBack0\n ip address %L 255.255.255.255\n#\n",
    .block =
        "interface GigabitEthernet%S/0/%p\n description %D\n undo portswitch\n"
        " ip address %I 255.255.255.252\n ospf cost %r\n#\n",
    .tail =
        "ospf 1 router-id %L\n area 0.0.0.0\n  network 10.0.0.0 0.255.255.255\n#\n"
        " snmp-agent\n snmp-agent local-engineid 800007DB03%X\n"
        " snmp-agent community read cipher %^%#%b%b%^%#\n"
        " snmp-agent sys-info version v2c v3\n#\n ip route-static 0.0.0.0 0.0.0.0 192.0.2.1\n#\n"
        " stelnet server enable\n ssh user admin\n ssh user admin authentication-type password\n"
        " ssh user admin service-type stelnet\n#\n"
        "user-interface con 0\n authentication-mode password\n"
        " set authentication password cipher %^%#%b%b%^%#\n"
        "user-interface vty 0 4\n authentication-mode aaa\n protocol inbound ssh\n#\nreturn\n",
};

static const struct syntax syn_fortios = {
    .head =
        "#config-version=FGT91G-%v-FW-build2731-250120:opmode=1:vdom=0:user=admin\n"
        "~#conf_file_ver=%{%s}%c\n"
        "#buildno=2731\n#global_vdom=1\n"
        "config system global\n    set admin-sport 443\n    set alias \"FortiGate-91G\"\n"
        "    set hostname \"%h\"\n    set timezone \"Etc/UTC\"\nend\n"
        "config system admin\n    edit \"admin\"\n        set accprofile \"super_admin\"\n"
        "        set vdom \"root\"\n        set password ENC SH2%b%b%b\n    next\n"
        "    edit \"backup\"\n        set accprofile \"prof_admin\"\n        set vdom \"root\"\n"
        "        set password ENC SH2%b%b%b\n    next\nend\n"
        "config system interface\n    edit \"mgmt\"\n        set vdom \"root\"\n"
        "        set ip 192.0.2.%m 255.255.255.0\n        set allowaccess ping https ssh\n"
        "        set type physical\n        set role lan\n    next\n",
    .block =
        "    edit \"port%i\"\n        set vdom \"root\"\n        set ip %I 255.255.255.252\n"
        "        set allowaccess ping\n        set type physical\n"
        "        set description \"%D\"\n        set snmp-index %i\n    next\n",
    .tail =
        "end\nconfig system snmp community\n    edit 1\n        set name \"public\"\n"
        "        config hosts\n            edit 1\n                set ip 192.0.2.50 255.255.255.255\n"
        "            next\n        end\n    next\nend\n"
        "config user tacacs+\n    edit \"tac1\"\n        set server \"192.0.2.49\"\n"
        "        set key ENC %b%b\n    next\nend\n"
        "config router static\n    edit 1\n        set gateway 192.0.2.1\n"
        "        set device \"mgmt\"\n    next\nend\n",
    .status =
        "Version: FortiGate-91G v%v,build2731,250120 (GA.M)\n"
        "~Virus-DB: 92.0%c(%{%Y-%m-%d %H:%M})\n"
        "~Extended DB: 92.0%c(%{%Y-%m-%d %H:%M})\n"
        "~IPS-DB: 29.00%c(%{%Y-%m-%d %H:%M})\n"
        "~APP-DB: 29.00%c(%{%Y-%m-%d %H:%M})\n"
        "Serial-Number: FGT91GTK2400%r\n"
        "BIOS version: 06000100\nSystem Part-Number: P28792-06\nLog hard disk: Available\n"
        "Hostname: %h\nPrivate Encryption: Disable\nOperation Mode: NAT\n"
        "Current virtual domain: root\nMax number of virtual domains: 10\n"
        "Virtual domains status: 1 in NAT mode, 0 in TP mode\n"
        "Virtual domain configuration: disable\nFIPS-CC mode: disable\n"
        "Current HA mode: a-p, master\n"
        "~Cluster uptime: %{%-j days, %-H hours, %-M minutes, %-S seconds}\n"
        "Branch point: 2731\nRelease Version Information: GA\n"
        "~System time: %{%a %b %e %H:%M:%S %Y}\n"
        "~Last reboot reason: warm reboot\n",
};

static const struct syntax syn_tmsh = {
    .head =
        "auth password-policy { }\n"
        "auth user admin {\n    description \"Admin User\"\n    encrypted-password %6\n"
        "    partition-access {\n        all-partitions {\n            role admin\n"
        "        }\n    }\n    shell tmsh\n}\n"
        "auth user backup {\n    description backup\n    encrypted-password %6\n"
        "    partition-access {\n        all-partitions {\n            role auditor\n"
        "        }\n    }\n    shell tmsh\n}\n"
        "cli global-settings {\n    service number\n}\n",
    .block =
        "net self /Common/self-%i {\n    address %I/30\n"
        "    traffic-group /Common/traffic-group-local-only\n    vlan /Common/vlan%V\n}\n"
        "net vlan /Common/vlan%V {\n    description \"%D\"\n    interfaces {\n"
        "        1.1 {\n            tagged\n        }\n    }\n    tag %V\n}\n",
    .tail =
        "sys global-settings {\n    gui-setup disabled\n    hostname %h.lab.example.net\n"
        "    mgmt-dhcp disabled\n}\n"
        "sys management-ip 192.0.2.%m/24 {\n    description configured-statically\n}\n"
        "sys management-route /Common/default {\n    gateway 192.0.2.1\n    network default\n}\n"
        "sys ntp {\n    servers { 192.0.2.123 }\n    timezone UTC\n}\n"
        "sys snmp {\n    agent-addresses { tcp6:161 udp6:161 }\n    communities {\n"
        "        /Common/comm-public {\n            community-name public\n"
        "            source default\n        }\n    }\n}\n"
        "auth radius-server /Common/system_auth_name1 {\n    secret %b\n    server 192.0.2.49\n}\n",
};

static const struct syntax syn_os10 = {
    .head =
        "! Version %v\n"
        "~! Last configuration change at %{%a %b %e %H:%M:%S %Y}\n"
        "~! Startup-config last updated at %{%a %b %e %H:%M:%S %Y}\n"
        "!\nip vrf default\n!\nhostname %h\n"
        "system-user linuxadmin password %6\niscsi target port 860\n"
        "username admin password %6 role sysadmin priv-lvl 15\n"
        "username backup password %6 role netoperator priv-lvl 1\n"
        "aaa authentication login default local\naaa authentication login console local\n!\n"
        "snmp-server community public ro\nsnmp-server contact noc@example.net\n"
        "snmp-server location lab\n!\n"
        "interface mgmt1/1/1\n no shutdown\n no ip address dhcp\n ip address 192.0.2.%m/24\n"
        " ipv6 address autoconfig\n!\n"
        "interface loopback0\n no shutdown\n ip address %L/32\n!\n",
    .block =
        "interface ethernet%s/1/%p\n description \"%D\"\n no shutdown\n no switchport\n"
        " mtu 9216\n ip address %I/30\n flowcontrol receive off\n!\n",
    .tail =
        "router ospf 1\n router-id %L\n!\nmanagement route 0.0.0.0/0 192.0.2.1\n!\n"
        "radius-server host 192.0.2.49 key 9 %x\n!\nline vty\n",
};

static const struct syntax syn_os6 = {
    .head =
        "!Current Configuration:\n"
        "!System Description \"Dell EMC Networking N1548P, %v, Linux 4.14.174\"\n"
        "!System Software Version %v\n!Cut-through mode is configured as disabled\n!\n"
        "configure\nvlan 10-20\nexit\nhostname \"%h\"\n"
        "slot 1/0 10    ! Dell EMC Networking N1548P\n"
        "sntp server 192.0.2.123\nclock timezone 0 minutes 0 zone \"UTC\"\n"
        "ip default-gateway 192.0.2.1\n"
        "interface out-of-band\nip address 192.0.2.%m 255.255.255.0 192.0.2.1\nexit\n"
        "username \"admin\" password %x privilege 15 encrypted\n"
        "username \"backup\" password %x privilege 1 encrypted\n"
        "enable password %x encrypted\n"
        "aaa authentication login \"defaultList\" local\n"
        "snmp-server community \"public\" ro\nip ssh server\n",
    .block =
        "!\ninterface Gi%s/0/%p\ndescription \"%D\"\nswitchport mode trunk\n"
        "switchport trunk allowed vlan 10-20\nexit\n",
    .tail =
        "!\nsnmp-server community \"%a\" rw\n"
        "radius server auth 192.0.2.49\nkey 7 \"%x\"\nexit\nexit\n",
};

static const struct syntax syn_os9 = {
    .head =
        "Current Configuration ...\n! Version %v\n"
        "~! Last configuration change at %{%a %b %e %H:%M:%S %Y} by %u\n"
        "~! Startup-config last updated at %{%a %b %e %H:%M:%S %Y} by %u\n"
        "!\nboot system stack-unit 1 primary system://A\n"
        "boot system stack-unit 1 secondary system://B\n!\nhostname %h\n!\n"
        "protocol lldp\n!\nredundancy auto-synchronize full\n!\n"
        "enable password 7 %x\nenable secret 5 %5\n!\n"
        "username admin password 7 %x privilege 15\n"
        "username backup password 7 %x privilege 1\n!\n",
    .block =
        "interface TenGigabitEthernet %s/%p\n description %D\n ip address %I/30\n"
        " mtu 9216\n no shutdown\n!\n",
    .tail =
        "interface ManagementEthernet 1/1\n ip address 192.0.2.%m/24\n no shutdown\n!\n"
        "router ospf 1\n router-id %L\n network 10.0.0.0/8 area 0\n!\n"
        "management route 0.0.0.0/0 192.0.2.1\n!\nsnmp-server community public ro\n!\n"
        "line console 0\nline vty 0\n login authentication default\n!\n"
        "reload-type\n boot-type normal-reload\n!\nend\n",
};

static const struct syntax syn_aoscx = {
    .head =
        "Current configuration:\n!\n!Version ArubaOS-CX %v\n!export-password: default\n"
        "hostname %h\n"
        "user admin group administrators password ciphertext AQBapU%b%b%b\n"
        "user backup group operators password ciphertext AQBapU%b%b%b\n"
        "clock timezone utc\nntp server 192.0.2.123 iburst\nntp enable\n!\n"
        "ssh server vrf default\nssh server vrf mgmt\n"
        "snmp-server vrf mgmt\nsnmp-server community public\n!\n"
        "radius-server host 192.0.2.49 key ciphertext AQBapU%b%b vrf mgmt\n!\n"
        "vlan 1\ninterface mgmt\n    no shutdown\n    ip static 192.0.2.%m/24\n"
        "    default-gateway 192.0.2.1\n",
    .block =
        "interface %s/1/%p\n    description %D\n    no shutdown\n    routing\n"
        "    ip address %I/30\n    ip ospf 1 area 0.0.0.0\n",
    .tail =
        "interface loopback 0\n    ip address %L/32\n    ip ospf 1 area 0.0.0.0\n"
        "router ospf 1\n    router-id %L\n    area 0.0.0.0\n"
        "https-server vrf default\nhttps-server vrf mgmt\n",
};

static const struct syntax syn_routeros = {
    .head =
        "~# %{%Q/%d/%Y %H:%M:%S} by RouterOS %v\n"
        "# software id = 7HAC-1U2P\n#\n# model = RB5009UG+S+\n# serial number = HD0%X\n"
        "/interface bridge\nadd name=bridge1\n"
        "/interface ethernet\nset [ find default-name=ether1 ] comment=mgmt\n"
        "/interface vlan\n",
    .block =
        "add comment=\"%D\" interface=bridge1 name=vlan%V vlan-id=%V\n",
    .tail =
        "/ppp secret\nadd name=backup password=%a service=pppoe\n"
        "/snmp community\nset [ find default=yes ] addresses=192.0.2.0/24 name=public\n"
        "/ip address\nadd address=192.0.2.%m/24 interface=ether1 network=192.0.2.0\n"
        "add address=%L interface=bridge1 network=%L\n"
        "/ip route\nadd distance=1 gateway=192.0.2.1\n"
        "/radius\nadd address=192.0.2.49 secret=%a service=login\n"
        "/system clock\nset time-zone-name=UTC\n"
        "/system identity\nset name=%h\n"
        "/system ntp client\nset enabled=yes primary-ntp=192.0.2.123\n",
};

static const struct syntax syn_fastiron = {
    .head =
        "Current configuration:\n!\nver %v\n!\nstack unit 1\n"
        "  module 1 icx7150-48zp-poe-port-management-module\n"
        "  module 2 icx7150-8-sfp-plus-port-80g-module\n!\nglobal-stp\n!\n"
        "vlan 1 name DEFAULT-VLAN by port\n!\n"
        "aaa authentication login default local\n"
        "enable super-user-password 8 %5\nhostname %h\nip route 0.0.0.0/0 192.0.2.1\n!\n"
        "username admin password 8 %5\nusername backup privilege 5 password 8 %5\n"
        "snmp-server community 2 $%b ro\n!\n"
        "interface management 1\n ip address 192.0.2.%m 255.255.255.0\n!\n",
    .block =
        "interface ethernet %s/1/%p\n port-name %D\n route-only\n"
        " ip address %I 255.255.255.252\n!\n",
    .tail =
        "router ospf\n area 0\n!\nradius-server host 192.0.2.49 auth-port 1812 "
        "acct-port 1813 default key 2 $%b dot1x\n!\nend\n",
};

static const struct syntax syn_exos = {
    .head =
        "#\n"
        "~# X440G2-48p-10G4 Configuration generated %{%a %b %e %H:%M:%S %Y}\n"
        "# Software Version %v by release-manager on Mon Jan 15 10:00:00 EST 2024\n#\n"
        "# Module devmgr configuration.\n#\nconfigure snmp sysName \"%h\"\n"
        "configure snmp sysContact \"noc@example.net\"\n"
        "configure timezone name UTC 0 autodst\n#\n# Module vlan configuration.\n#\n"
        "configure vlan default delete ports all\n"
        "configure vr VR-Default delete ports 1-52\nconfigure vr VR-Default add ports 1-52\n"
        "configure vlan Mgmt ipaddress 192.0.2.%m 255.255.255.0\n",
    .block =
        "create vlan \"v%V\"\nconfigure vlan v%V tag %V\n"
        "configure vlan v%V add ports %p tagged\n"
        "configure vlan v%V ipaddress %I 255.255.255.252\n"
        "configure ports %p description-string \"%D\"\n",
    .tail =
        "#\n# Module aaa configuration.\n#\n"
        "configure account admin encrypted \"$5$%b$%b\"\n"
        "create account user \"backup\" encrypted \"$5$%b$%b\"\n"
        "configure radius mgmt-access primary shared-secret encrypted \"%a\"\n"
        "configure radius mgmt-access secondary shared-secret encrypted \"%a\"\n#\n"
        "# Module snmpMaster configuration.\n#\n"
        "configure snmpv2c add community readonly encrypted \"%a\"\n#\n"
        "# Module ospf configuration.\n#\nconfigure ospf routerid %L\nenable ospf\n#\n"
        "# Module rtmgr configuration.\n#\n"
        "configure iproute add default 192.0.2.1 vr VR-Mgmt\n",
};

static const struct syntax syn_vyos = {
    .head =
        "set firewall global-options all-ping 'enable'\n"
        "set firewall global-options broadcast-ping 'disable'\n"
        "set interfaces ethernet eth0 address '192.0.2.%m/24'\n"
        "set interfaces ethernet eth0 description 'mgmt'\n"
        "set interfaces loopback lo address '%L/32'\n",
    .block =
        "set interfaces ethernet eth1 vif %V address '%I/30'\n"
        "set interfaces ethernet eth1 vif %V description '%D'\n"
        "set interfaces ethernet eth1 vif %V mtu '9000'\n",
    .tail =
        "set protocols ospf area 0 network '10.0.0.0/8'\n"
        "set protocols ospf parameters router-id '%L'\n"
        "set protocols static route 0.0.0.0/0 next-hop 192.0.2.1\n"
        "set service snmp community public authorization 'ro'\n"
        "set service ssh port '22'\n"
        "set system config-management commit-revisions '100'\n"
        "set system host-name '%h'\n"
        "set system login user admin authentication encrypted-password '%6'\n"
        "set system login user backup authentication encrypted-password '%6'\n"
        "set system name-server '192.0.2.53'\n"
        "set system syslog global facility all level 'info'\n",
};

static const struct syntax syn_cumulus = {
    .head =
        "net add hostname %h\n"
        "net add interface eth0 ip address 192.0.2.%m/24\nnet add interface eth0 vrf mgmt\n"
        "net add vrf mgmt ip address 127.0.0.1/8\nnet add loopback lo ip address %L/32\n"
        "net add snmp-server listening-address localhost\n"
        "net add snmp-server readonly-community public access any\n"
        "net add dot1x radius shared-secret %a\n",
    .block =
        "net add interface swp%i alias %D\nnet add interface swp%i ip address %I/30\n"
        "net add interface swp%i mtu 9216\n",
    .tail =
        "net add bgp autonomous-system 65001\nnet add bgp router-id %L\n"
        "net add bgp neighbor 192.0.2.9 remote-as 65000\n"
        "net add bgp neighbor 192.0.2.9 password %a\n"
        "net add routing route 0.0.0.0/0 192.0.2.1 vrf mgmt\n"
        "net add time ntp server 192.0.2.123 iburst\nnet add time zone Etc/UTC\n"
        "net add dns nameserver ipv4 192.0.2.53 vrf mgmt\n",
};

static const struct syntax syn_saos = {
    .head =
        "!\n~! Created: %{%a %b %e %H:%M:%S %Y}\n~! On terminal: ttyp%c\n!\n"
        "! CHASSIS CONFIG\n!\nchassis set contact noc@example.net location lab\n!\n"
        "! SYSTEM CONFIG\n!\nsystem set host-name %h\n"
        "interface set ip-interface local ip 192.0.2.%m/24\n!\n! PORT CONFIG\n!\n",
    .block =
        "port set port %i description \"%D\"\nvlan create vlan %V name v%V\n"
        "vlan add vlan %V port %i\ninterface create ip-interface if%V ip %I/30 vlan %V\n",
    .tail =
        "!\n! SNMP CONFIG\n!\nsnmp create community public access-level read-only\n!\n"
        "! USER CONFIG\n!\nuser create user admin access-level super secret %x\n"
        "user create user backup access-level limited secret %x\n!\n"
        "! RADIUS CONFIG\n!\nradius-server add ip 192.0.2.49 secret %x\n!\n"
        "! END OF CONFIG\n",
};

static const struct syntax syn_sonicos = {
    .head =
        "administration\n    firewall-name %h\n    admin name admin\n"
        "    admin password 1,%b%b\n    exit\n"
        "user local\n    user backup\n        password 1,%b%b\n        exit\n    exit\n"
        "interface X0\n    ip-assignment LAN static\n        ip 192.0.2.%m netmask 255.255.255.0\n"
        "        exit\n    management https\n    management ssh\n    exit\n",
    .block =
        "interface X%i\n    comment \"%D\"\n    ip-assignment LAN static\n"
        "        ip %I netmask 255.255.255.252\n        exit\n    exit\n",
    .tail =
        "snmp\n    enable\n    system-name %h\n    get-community public\n"
        "    trap-community public\n    exit\n"
        "radius\n    server 192.0.2.49\n        shared-secret 1,%b\n        exit\n    exit\n",
};

static const struct syntax syn_gaia = {
    .head =
        "#\n# Configuration of %h\n# Language version: 14.1v1\n#\n"
        "~# Exported by %u on %{%a %b %e %H:%M:%S %Y}\n#\n"
        "set installer policy check-for-updates-period 3\n"
        "set installer policy periodically-self-update on\n"
        "set timezone Etc / GMT\nset ntp active on\n"
        "set ntp server primary 192.0.2.123 version 4\nset hostname %h\n"
        "set interface Mgmt ipv4-address 192.0.2.%m mask-length 24\nset interface Mgmt state on\n",
    .block =
        "add interface eth1 vlan %V\nset interface eth1.%V ipv4-address %I mask-length 30\n"
        "set interface eth1.%V comments \"%D\"\nset interface eth1.%V state on\n",
    .tail =
        "set static-route default nexthop gateway address 192.0.2.1 on\n"
        "set snmp community public read-only\nset snmp agent on\n"
        "set expert-password-hash %6\nset user admin password-hash %6\n"
        "set user backup password-hash %6\n",
};

static const struct syntax syn_ftd = {
    .head =
        ": Saved\n\n: \n: Serial Number: JMX2400%r\n"
        ": Hardware:   FPR-1010, 6854 MB RAM, CPU Atom C3000 series 2200 MHz, 1 CPU (4 cores)\n"
        "~: Written by %u at %{%H:%M:%S.%q UTC %a %b %-d %Y}\n"
        "!\nNGFW Version %v \n!\ncommand-alias exec h help\nhostname %h\n"
        "enable password ***** pbkdf2\nstrong-encryption-disable\nnames\nno mac-address auto\n\n"
        "interface Management1/1\n management-only\n nameif diagnostic\n security-level 0\n"
        " ip address 192.0.2.%m 255.255.255.0\n!\n",
    .block =
        "interface Ethernet1/%i\n description %D\n nameif seg%i\n security-level 0\n"
        " ip address %I 255.255.255.252\n!\n",
    .tail =
        "ftp mode passive\nngips conn-match vlan-id\n"
        "access-list CSM_FW_ACL_ remark rule-id 9998: PREFILTER POLICY: Default Tunnel\n"
        "access-list CSM_FW_ACL_ advanced permit ipinip any any rule-id 9998\n"
        "snmp-server host diagnostic 192.0.2.50 community ***** version 2c\n"
        "snmp-server location lab\n"
        "aaa-server rad1 protocol radius\naaa-server rad1 host 192.0.2.49\n key *****\n"
        "username admin password ***** pbkdf2 privilege 15\n"
        "~Cryptochecksum:%x\n: end\n",
};

static const struct syntax syn_aireos = {
    .head =
        "config sysname %h\nconfig location lab\nconfig country US\n"
        "config time timezone 0 0\nconfig time ntp server 1 192.0.2.123\n"
        "config network telnet disable\nconfig network ssh enable\n"
        "config switchconfig secret-obfuscation enable\n"
        "config interface address management 192.0.2.%m 255.255.255.0 192.0.2.1\n"
        "config mgmtuser add admin **** read-write\nconfig mgmtuser add backup **** read-only\n"
        "config radius auth add 1 192.0.2.49 1812 ascii ****\nconfig radius auth enable 1\n"
        "config snmp community create public\nconfig snmp community accessmode ro public\n",
    .block =
        "config interface create v%V %V\n"
        "config interface address dynamic-interface v%V %I 255.255.255.252 192.0.2.1\n"
        "config interface port v%V 1\nconfig interface description v%V \"%D\"\n",
    .tail =
        "config wlan create 1 corp corp\n"
        "config wlan security wpa akm psk set-key ascii **** 1\n"
        "config wlan enable 1\nconfig paging enable\n",
};

/* ---- the table ------------------------------------------------------ */

struct style {
    void (*pre)(struct gen *, size_t body);     /* may be NULL */
    void (*head)(struct gen *);
    void (*block)(struct gen *, unsigned i);
    void (*tail)(struct gen *);
    const struct syntax *syn;   /* instead of the functions */
    const char *leak;           /* leak_secrets: the community line, at the tail's start */
};

static const struct style styles[DS_STYLE_COUNT] = {
    [DS_STYLE_IOS]   = {ios_pre, ios_head, ios_block, ios_tail, NULL,
                        "snmp-server community %K RO\n"},
    [DS_STYLE_NXOS]  = {nxos_pre, nxos_head, nxos_block, nxos_tail, NULL,
                        "snmp-server community %K group network-operator\n"},
    [DS_STYLE_XR]    = {xr_pre, xr_head, xr_block, xr_tail, NULL,
                        "snmp-server community %K RO\n"},
    [DS_STYLE_EOS]   = {eos_pre, eos_head, eos_block, eos_tail, NULL,
                        "snmp-server community %K ro\n"},
    [DS_STYLE_JUNOS] = {NULL, junos_head, junos_block, junos_tail, NULL,
                        "set snmp community %K authorization read-only\n"},
    [DS_STYLE_ASA]   = {asa_pre, asa_head, asa_block, asa_tail, NULL,
                        "snmp-server community %K\n"},
    [DS_STYLE_PANOS] = {NULL, panos_head, panos_block, panos_tail, NULL,
                        "            ethernet1/99 {\n              comment \"community %K\";\n"
                        "            }\n"},
    [DS_STYLE_LINUX] = {NULL, linux_head, linux_block, linux_tail, NULL,
                        "[snmp]\ncommunity = %K\n\n"},
    [DS_STYLE_COMWARE]  = {.syn = &syn_comware, .leak = " snmp-agent community read simple %K\n#\n"},
    [DS_STYLE_PROCURVE] = {.syn = &syn_procurve, .leak = "snmp-server community \"%K\" manager\n"},
    [DS_STYLE_VRP]      = {.syn = &syn_vrp, .leak = " snmp-agent community read %K\n#\n"},
    [DS_STYLE_FORTIOS]  = {.syn = &syn_fortios,
                           .leak = "end\nconfig system snmp sysinfo\n"
                                   "    set description \"community %K\"\n"},
    [DS_STYLE_TMSH]     = {.syn = &syn_tmsh,
                           .leak = "sys snmp {\n    communities {\n        /Common/comm-ro {\n"
                                   "            community-name %K\n"
                                   "            source default\n        }\n    }\n}\n"},
    [DS_STYLE_OS10]     = {.syn = &syn_os10, .leak = "snmp-server community %K ro\n!\n"},
    [DS_STYLE_OS6]      = {.syn = &syn_os6, .leak = "snmp-server community \"%K\" ro\n"},
    [DS_STYLE_OS9]      = {.syn = &syn_os9, .leak = "snmp-server community %K ro\n!\n"},
    [DS_STYLE_AOSCX]    = {.syn = &syn_aoscx, .leak = "snmp-server community %K\n"},
    [DS_STYLE_ROUTEROS] = {.syn = &syn_routeros,
                           .leak = "/snmp community\n"
                                   "add addresses=192.0.2.0/24 comment=\"ro community\" name=%K\n"},
    [DS_STYLE_FASTIRON] = {.syn = &syn_fastiron, .leak = "snmp-server community %K ro\n!\n"},
    [DS_STYLE_EXOS]     = {.syn = &syn_exos, .leak = "configure snmpv2c add community readonly %K\n"},
    [DS_STYLE_VYOS]     = {.syn = &syn_vyos,
                           .leak = "set service snmp community %K authorization 'ro'\n"},
    [DS_STYLE_CUMULUS]  = {.syn = &syn_cumulus,
                           .leak = "net add snmp-server readonly-community %K access any\n"},
    [DS_STYLE_SAOS]     = {.syn = &syn_saos,
                           .leak = "snmp create community %K access-level read-only\n"},
    [DS_STYLE_SONICOS]  = {.syn = &syn_sonicos, .leak = "snmp\n    get-community %K\n    exit\n"},
    [DS_STYLE_GAIA]     = {.syn = &syn_gaia, .leak = "set snmp community %K read-only\n"},
    [DS_STYLE_FTD]      = {.syn = &syn_ftd, .leak = "snmp-server community %K\n"},
    [DS_STYLE_AIREOS]   = {.syn = &syn_aireos, .leak = "config snmp community create %K\n"},
};

/* "15.9(3)M4" -> "15.9", "17.09.04a" -> "17.9". */
static void major_minor(const char *v, char *out, size_t n)
{
    unsigned maj = 0, min = 0;

    if (sscanf(v, "%u.%u", &maj, &min) == 2)
        snprintf(out, n, "%u.%u", maj, min);
    else
        snprintf(out, n, "%s", v);
}

static void st_pre(struct gen *g, const struct style *st, size_t body)
{
    if (st->pre)
        st->pre(g, body);
}

static void st_head(struct gen *g, const struct style *st)
{
    if (st->syn)
        tpl(g, st->syn->head, 0);
    else
        st->head(g);
}

static void st_block(struct gen *g, const struct style *st, unsigned i)
{
    if (st->syn)
        tpl(g, st->syn->block, i);
    else
        st->block(g, i);
}

static void st_tail(struct gen *g, const struct style *st)
{
    if (g->dev->leak_secrets && st->leak)
        tpl(g, st->leak, 0);
    if (st->syn)
        tpl(g, st->syn->tail, 0);
    else
        st->tail(g);
}

static void gen_init(struct gen *g, const struct ds_device *d, uint32_t revision,
                     const struct ds_vol *vol)
{
    memset(g, 0, sizeof *g);
    g->dev = d;
    g->host = d->hostname;
    g->ver = d->profile->os_version;
    g->vol = vol;
    g->rng = ds_hash64(d->hostname, 0x6465767369ull + revision);
    g->vrng = ds_hash64(d->hostname, vol ? vol->serial : 0);
    snprintf(g->leakc, sizeof g->leakc, "lk7-%s", d->hostname);
    major_minor(g->ver, g->short_ver, sizeof g->short_ver);
    g->net = 1 + (unsigned)(ds_rand(&g->rng) % 254);
    g->loop_c = (unsigned)(ds_rand(&g->rng) % 256);
    g->loop_d = 1 + (unsigned)(ds_rand(&g->rng) % 254);
    g->mgmt = 10 + (unsigned)(ds_rand(&g->rng) % 240);
}

static char *status_generate(const struct ds_device *d, const struct style *st,
                             uint32_t revision, const struct ds_vol *vol, size_t *len)
{
    struct ds_buf out = {0};
    struct gen g;
    char *res;

    gen_init(&g, d, revision, vol);
    g.w = &out;
    if (st->syn && st->syn->status)
        tpl(&g, st->syn->status, 0);
    if (out.failed) {
        ds_buf_free(&out);
        return NULL;
    }
    res = ds_buf_steal(&out, len);
    return res;
}

char *ds_config_generate(const struct ds_device *d, enum ds_part part, uint32_t revision,
                         const struct ds_vol *vol, size_t *len)
{
    const struct style *st = &styles[d->profile->style];
    struct ds_buf body = {0}, tail = {0}, out = {0};
    size_t target = (size_t)d->config_kb * 1024, pre_est;
    struct gen g;
    char *res;

    if (part == DS_PART_STATUS)
        return status_generate(d, st, revision, vol, len);
    gen_init(&g, d, revision, vol);
    g.w = &tail;
    st_tail(&g, st);
    g.w = &body;
    st_head(&g, st);
    /* Measure the preamble (its size figure may grow by a digit or two)
     * so the total lands at or just above the target; without the
     * volatile lines, which do not count toward the size. */
    pre_est = 0;
    if (st->pre) {
        struct ds_buf scratch = {0};

        g.w = &scratch;
        g.vol = NULL;
        st->pre(&g, target);
        g.vol = vol;
        pre_est = ds_buf_avail(&scratch) + 4;
        ds_buf_free(&scratch);
        g.w = &body;
    }
    for (unsigned i = 0; i < 2 || body.len + tail.len + pre_est - g.vbytes < target; i++)
        st_block(&g, st, i);
    if (ds_buf_add(&body, ds_buf_head(&tail), ds_buf_avail(&tail)) < 0 || tail.failed)
        goto oom;
    g.w = &out;
    st_pre(&g, st, body.len);
    if (ds_buf_add(&out, ds_buf_head(&body), ds_buf_avail(&body)) < 0 || body.failed ||
        out.failed)
        goto oom;
    res = ds_buf_steal(&out, len);
    ds_buf_free(&body);
    ds_buf_free(&tail);
    return res;
oom:
    ds_buf_free(&body);
    ds_buf_free(&tail);
    ds_buf_free(&out);
    return NULL;
}

char *ds_config_print(const struct ds_device *d, size_t *len)
{
    const struct ds_profile *p = d->profile;
    struct ds_buf out = {0};

    for (const char *const *c = p->config_cmds; c && *c; c++) {
        const struct ds_cmd *cmd;
        size_t rest, n = 0;
        long num;
        char *text = NULL;

        cmd = ds_profile_match(p, *c, true, &num, &rest);
        if (cmd && cmd->act == DS_ACT_SHOW_CONFIG)
            text = ds_config_generate(d, DS_PART_CONFIG, d->config_revision, NULL, &n);
        else if (cmd && cmd->act == DS_ACT_SHOW_STATUS)
            text = ds_config_generate(d, DS_PART_STATUS, d->config_revision, NULL, &n);
        else
            continue;
        if (text == NULL)
            goto oom;
        ds_buf_add(&out, text, n);
        if (n > 0 && text[n - 1] != '\n')
            ds_buf_add(&out, "\n", 1);
        free(text);
    }
    if (out.failed)
        goto oom;
    return ds_buf_steal(&out, len);
oom:
    ds_buf_free(&out);
    return NULL;
}

/* ---- session values and syslog lines -------------------------------- */

static atomic_uint vol_serial;
static _Atomic int64_t vol_last;

void ds_vol_init(struct ds_vol *v, const char *user)
{
    struct timespec ts;
    int64_t prev, when;

    clock_gettime(CLOCK_REALTIME, &ts);
    /* The session's time, but a second past the last session's if that is
     * later: two sessions never show the same time, even within a second. */
    prev = atomic_load(&vol_last);
    do {
        when = (int64_t)ts.tv_sec > prev ? (int64_t)ts.tv_sec : prev + 1;
    } while (!atomic_compare_exchange_weak(&vol_last, &prev, when));
    v->when = when;
    v->ms = (unsigned)(ts.tv_nsec / 1000000);
    v->serial = atomic_fetch_add(&vol_serial, 1) + 1;
    v->user = user;
}

/* Default shapes: IOS's "service timestamps log datetime msec", unsynced. */
#define SYSLOG_PAGER "*%{%b %e %H:%M:%S.%q}: %%LINK-3-UPDOWN: Interface GigabitEthernet0/1, " \
                     "changed state to up"
#define SYSLOG_ASYNC "*%{%b %e %H:%M:%S.%q}: %%SYS-5-CONFIG_I: Configured from console by " \
                     "%u on vty0 (192.0.2.5)"

void ds_syslog_line(struct ds_buf *b, const struct ds_device *d, const struct ds_vol *v,
                    bool async)
{
    const struct ds_profile *p = d->profile;
    const char *t = async ? (p->syslog_async ? p->syslog_async : SYSLOG_ASYNC)
                          : (p->syslog_pager ? p->syslog_pager : SYSLOG_PAGER);
    struct gen g;

    gen_init(&g, d, 0, v);
    g.w = b;
    tpl_line(&g, t, strlen(t), 0);
}
