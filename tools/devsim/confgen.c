/*
 * confgen.c - deterministic running-configs.
 *
 * One row per config style: a preamble (which may state the size, as IOS's
 * "Current configuration : N bytes" does), a head with the system and the
 * secret-bearing lines, a block repeated (one interface each) until the
 * wanted size is reached, and a tail.  Everything random comes from one
 * PRNG seeded by the hostname and the revision, so a device prints the same
 * bytes every time until its revision changes.
 */
#include "devsim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
};

#define P(...) ds_buf_printf(g->w, __VA_ARGS__)

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

static void describe(struct gen *g, unsigned i, char out[64])
{
    snprintf(out, 64, "Link to %s%u-%s port %u", word(g), 1 + rnd(g, 40), g->host, i + 1);
}

/* ---- Cisco IOS / IOS-XE --------------------------------------------- */

static void ios_pre(struct gen *g, size_t body)
{
    P("Building configuration...\n\nCurrent configuration : %zu bytes\n", body);
}

static void ios_head(struct gen *g)
{
    char a[40], b[40], c[32];

    P("!\n! Last configuration change at 09:14:22 UTC Tue Mar 5 2024 by admin\n!\n"
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
    char ip[20], d[64];

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
      "line vty 5 15\n password 7 %s\n transport input ssh\n!\n"
      "ntp server 192.0.2.123\n!\nend\n", type7(g, b), type7(g, c), type7(g, a));
}

/* ---- Cisco NX-OS ---------------------------------------------------- */

static void nxos_pre(struct gen *g, size_t body)
{
    (void)body;
    P("\n!Command: show running-config\n"
      "!Running configuration last done at: Tue Mar  5 09:14:22 2024\n"
      "!Time: Tue Mar  5 10:00:00 2024\n\n");
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
    char ip[20], d[64];

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
    (void)body;
    P("Tue Mar  5 10:00:00.000 UTC\nBuilding configuration...\n"
      "!! IOS XR Configuration %s\n"
      "!! Last configuration change at Tue Mar  5 09:14:22 2024 by admin\n!\n", g->ver);
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
    char ip[20], d[64];

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
    (void)body;
    P("! Command: show running-config\n"
      "! device: %s (DCS-7050SX3-48YC8, EOS-%s)\n!\n"
      "! boot system flash:/EOS-%s.swi\n!\n", g->host, g->ver, g->ver);
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
    char ip[20], d[64];

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
    char a[112], b[112], c[112], rw[13];

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
    char ip[20], d[64], ifn[24];

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

static void asa_pre(struct gen *g, size_t body)
{
    (void)body;
    P(": Saved\n\n:\n: Serial Number: JAD%08u\n"
      ": Hardware:   ASA5516, 8192 MB RAM, CPU Atom C2000 series 2416 MHz, 1 CPU (8 cores)\n"
      ":\nASA Version %s \n!\n", (unsigned)(g->rng % 100000000u), g->ver);
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
    char ip[20], d[64];

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
    char a[112], b[112], sum[33];

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
      "prompt hostname context\nCryptochecksum:%s\n: end\n", rstr(g, sum, 32, "0123456789abcdef"));
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
    char ip[20], d[64];

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
    char ip[20], d[64];

    p2p_addr(g, i, ip);
    describe(g, i, d);
    P("[interface eth%u]\ndescription = %s\naddress = %s/30\nmtu = 9000\n\n", i + 1, d, ip);
}

static void linux_tail(struct gen *g)
{
    P("[routing]\ndefault_gateway = 192.0.2.1\nrouter_id = 10.255.%u.%u\nospf_area = 0.0.0.0\n",
      g->loop_c, g->loop_d);
}

/* ---- the table ------------------------------------------------------ */

struct style {
    void (*pre)(struct gen *, size_t body);     /* may be NULL */
    void (*head)(struct gen *);
    void (*block)(struct gen *, unsigned i);
    void (*tail)(struct gen *);
};

static const struct style styles[] = {
    [DS_STYLE_IOS]   = {ios_pre, ios_head, ios_block, ios_tail},
    [DS_STYLE_NXOS]  = {nxos_pre, nxos_head, nxos_block, nxos_tail},
    [DS_STYLE_XR]    = {xr_pre, xr_head, xr_block, xr_tail},
    [DS_STYLE_EOS]   = {eos_pre, eos_head, eos_block, eos_tail},
    [DS_STYLE_JUNOS] = {NULL, junos_head, junos_block, junos_tail},
    [DS_STYLE_ASA]   = {asa_pre, asa_head, asa_block, asa_tail},
    [DS_STYLE_PANOS] = {NULL, panos_head, panos_block, panos_tail},
    [DS_STYLE_LINUX] = {NULL, linux_head, linux_block, linux_tail},
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

char *ds_config_generate(const struct ds_device *d, uint32_t revision, size_t *len)
{
    const struct style *st = &styles[d->profile->style];
    struct ds_buf body = {0}, tail = {0}, out = {0};
    struct gen g = {
        .dev = d, .host = d->hostname, .ver = d->profile->os_version,
        .rng = ds_hash64(d->hostname, 0x6465767369ull + revision),
    };
    size_t target = (size_t)d->config_kb * 1024, pre_est;
    char *res;

    major_minor(g.ver, g.short_ver, sizeof g.short_ver);
    g.net = 1 + (unsigned)(ds_rand(&g.rng) % 254);
    g.loop_c = (unsigned)(ds_rand(&g.rng) % 256);
    g.loop_d = 1 + (unsigned)(ds_rand(&g.rng) % 254);
    g.mgmt = 10 + (unsigned)(ds_rand(&g.rng) % 240);

    g.w = &tail;
    st->tail(&g);
    g.w = &body;
    st->head(&g);
    /* Measure the preamble (its size figure may grow by a digit or two)
     * so the total lands at or just above the target. */
    pre_est = 0;
    if (st->pre) {
        struct ds_buf scratch = {0};

        g.w = &scratch;
        st->pre(&g, target);
        pre_est = ds_buf_avail(&scratch) + 4;
        ds_buf_free(&scratch);
        g.w = &body;
    }
    for (unsigned i = 0; i < 2 || body.len + tail.len + pre_est < target; i++)
        st->block(&g, i);
    if (ds_buf_add(&body, ds_buf_head(&tail), ds_buf_avail(&tail)) < 0 || tail.failed)
        goto oom;
    g.w = &out;
    if (st->pre)
        st->pre(&g, body.len);
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
