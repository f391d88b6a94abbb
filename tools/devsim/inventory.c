/*
 * inventory.c - the devices to simulate.
 *
 * One field table (ds_fields[]) describes every per-device setting: key,
 * type, offset, bounds, and whether it is a fault.  The YAML loader, the
 * "defaults:" section and the command line's --set / --fault all go through
 * ds_field_set(), so a key means the same thing everywhere.
 *
 * YAML shape (see README.md):
 *   state_dir: DIR            optional
 *   host_key_type: ed25519    optional (or rsa)
 *   defaults: {FIELD: VALUE, ...}
 *   devices:
 *     - {FIELD: VALUE, ..., accounts: [{username: u, password: p}],
 *        faults: {reject_auth: true, ...} or [reject_auth, refuse_times=2]}
 */
#include "devsim.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define DEV_FIELD(m) offsetof(struct ds_device, m), sizeof(((struct ds_device *)0)->m)
#define STR(k, m)             {k, DS_F_STR, DEV_FIELD(m), 0, 0, false, NULL}
#define U32(k, m, lo, hi, f)  {k, DS_F_U32, DEV_FIELD(m), lo, hi, f, NULL}
#define BOOL(k, m, f)         {k, DS_F_BOOL, DEV_FIELD(m), 0, 0, f, NULL}
#define ENUM(k, m, names)     {k, DS_F_ENUM, DEV_FIELD(m), 0, 0, false, names}

/* Values of the DS_F_ENUM fields, in enum order. */
static const char *const erase_names[] = {"default", "none", "bs", "cr", "ansi", NULL};
static const char *const line_end_names[] = {"crlf", "crcrlf", "lf", NULL};

/* Keys handled specially by ds_field_set (single-account shortcut). */
#define KEY_USERNAME "username"
#define KEY_PASSWORD "password"

const struct ds_field ds_fields[] = {
    STR("name", name),
    STR("hostname", hostname),
    STR("device_type", device_type),
    STR("type", device_type),
    STR("listen", listen),
    STR("address", listen),
    U32("port", port, 1, 65535, false),
    U32("count", count, 1, 1000000, false),
    STR("vary", vary),
    STR("enable_secret", enable_secret),
    STR("secret", enable_secret),
    U32("config_kb", config_kb, 0, 65536, false),
    U32("config_revision", config_revision, 0, 1000000000, false),
    U32("latency_ms", latency_ms, 0, 600000, false),
    U32("rate_bps", rate_bps, 0, 1000000000, false),
    {"pager", DS_F_TRI, DEV_FIELD(pager), 0, 0, false, NULL},
    U32("page_lines", page_lines, 2, 10000, false),
    BOOL("privileged_login", privileged_login, false),
    STR("host_key", host_key),
    STR("kex", kex),
    STR("ciphers", ciphers),
    STR("macs", macs),
    STR("hostkey_algorithms", hostkey_algorithms),
    BOOL("reject_auth", faults.reject_auth, true),
    BOOL("hang_after_auth", faults.hang_after_auth, true),
    BOOL("hang_mid_output", faults.hang_mid_output, true),
    BOOL("disconnect_mid_output", faults.disconnect_mid_output, true),
    BOOL("garbage", faults.garbage, true),
    BOOL("banner_prompts", faults.banner_prompts, true),
    BOOL("kbdint_only", faults.kbdint_only, true),
    {"trickle", DS_F_TRICKLE, DEV_FIELD(faults.trickle_ms), 0, 0, true, NULL},
    U32("trickle_ms", faults.trickle_ms, 0, 60000, true),
    U32("refuse_times", faults.refuse_times, 0, 1000000, true),
    U32("delay_banner_ms", faults.delay_banner_ms, 0, 600000, true),
    /* what real devices do that a plain CLI does not (README "Device fields") */
    STR("prompt", prompt),
    STR("priv_prompt", priv_prompt),
    BOOL("ansi_prompt", ansi_prompt, false),
    BOOL("bracketed_paste", bracketed_paste, false),
    ENUM("line_end", line_end, line_end_names),
    ENUM("pager_erase", pager_erase, erase_names),
    BOOL("pager_log", pager_log, false),
    BOOL("pager_midline", pager_midline, false),
    BOOL("pager_sticky", pager_sticky, false),
    STR("banner", banner),
    BOOL("volatile", volatile_lines, false),
    BOOL("leak_secrets", leak_secrets, false),
    BOOL("async_log", async_log, false),
    {NULL, DS_F_STR, 0, 0, 0, 0, false, NULL},
};

void ds_device_defaults(struct ds_device *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->device_type, sizeof d->device_type, "cisco_ios");
    snprintf(d->listen, sizeof d->listen, "127.0.0.1");
    snprintf(d->vary, sizeof d->vary, "port");
    snprintf(d->accounts[0].username, sizeof d->accounts[0].username, "admin");
    snprintf(d->accounts[0].password, sizeof d->accounts[0].password, "admin");
    d->naccounts = 1;
    d->count = 1;
    d->config_kb = 16;
    d->pager = -1;
    d->page_lines = 24;
    d->listen_fd = -1;
    d->volatile_lines = true;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};

    for (int i = 0; yes[i]; i++)
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
    for (int i = 0; no[i]; i++)
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    return -1;
}

static int parse_u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    unsigned long long n;

    if (!isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno || *end || n < lo || n > hi)
        return -1;
    *out = (uint32_t)n;
    return 0;
}

static const struct ds_field *field_find(const char *key)
{
    for (const struct ds_field *f = ds_fields; f->key; f++)
        if (strcmp(f->key, key) == 0)
            return f;
    return NULL;
}

static int set_str(char *dst, size_t size, const char *v, const char *key, char *err,
                   size_t errlen)
{
    if (strlen(v) >= size) {
        snprintf(err, errlen, "%s: longer than %zu characters", key, size - 1);
        return -1;
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

int ds_field_set(struct ds_device *d, const char *key, const char *value, char *err,
                 size_t errlen)
{
    const struct ds_field *f;
    char *base = (char *)d;
    bool b;

    if (strcmp(key, KEY_USERNAME) == 0 || strcmp(key, KEY_PASSWORD) == 0) {
        struct ds_account *a = &d->accounts[0];

        if (d->naccounts == 0)
            d->naccounts = 1;
        return strcmp(key, KEY_USERNAME) == 0
                   ? set_str(a->username, sizeof a->username, value, key, err, errlen)
                   : set_str(a->password, sizeof a->password, value, key, err, errlen);
    }
    f = field_find(key);
    if (f == NULL) {
        snprintf(err, errlen, "%s: unknown key", key);
        return -1;
    }
    switch (f->type) {
    case DS_F_STR:
        return set_str(base + f->off, f->size, value, key, err, errlen);
    case DS_F_U32:
        if (parse_u32(value, f->min, f->max, (uint32_t *)(base + f->off)) < 0) {
            snprintf(err, errlen, "%s: want a whole number in %u..%u, got \"%s\"", key,
                     f->min, f->max, value);
            return -1;
        }
        return 0;
    case DS_F_BOOL:
        if (parse_bool(value, &b) < 0) {
            snprintf(err, errlen, "%s: want true or false, got \"%s\"", key, value);
            return -1;
        }
        *(bool *)(base + f->off) = b;
        return 0;
    case DS_F_TRI:
        if (strcasecmp(value, "default") == 0) {
            *(int *)(base + f->off) = -1;
            return 0;
        }
        if (parse_bool(value, &b) < 0) {
            snprintf(err, errlen, "%s: want true, false or default, got \"%s\"", key, value);
            return -1;
        }
        *(int *)(base + f->off) = b;
        return 0;
    case DS_F_ENUM:
        for (int i = 0; f->names[i]; i++)
            if (strcasecmp(value, f->names[i]) == 0) {
                *(int *)(base + f->off) = i;
                return 0;
            }
        {
            size_t n = (size_t)snprintf(err, errlen, "%s: want one of", key);

            for (int i = 0; f->names[i] && n < errlen; i++)
                n += (size_t)snprintf(err + n, errlen - n, "%s %s", i ? "," : "", f->names[i]);
            if (n < errlen)
                snprintf(err + n, errlen - n, "; got \"%s\"", value);
        }
        return -1;
    case DS_F_TRICKLE:
        if (parse_bool(value, &b) == 0) {
            *(uint32_t *)(base + f->off) = b ? 5 : 0;
            return 0;
        }
        if (parse_u32(value, 0, 60000, (uint32_t *)(base + f->off)) < 0) {
            snprintf(err, errlen, "%s: want true, false or milliseconds, got \"%s\"", key,
                     value);
            return -1;
        }
        return 0;
    }
    return -1;
}

/* ---- YAML ----------------------------------------------------------- */

struct yctx {
    yaml_document_t doc;
    const char *path;
    char *err;
    size_t errlen;
};

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int yerr(struct yctx *y, yaml_node_t *n, const char *what)
{
    snprintf(y->err, y->errlen, "%s:%lu: %s", y->path,
             n ? (unsigned long)n->start_mark.line + 1 : 0ul, what);
    return -1;
}

static int set_at(struct yctx *y, struct ds_device *d, yaml_node_t *kn, const char *key,
                  const char *value, bool faults_only)
{
    char why[256];
    const struct ds_field *f = field_find(key);

    if (faults_only && (f == NULL || !f->fault)) {
        snprintf(why, sizeof why, "%s: not a fault", key);
        return yerr(y, kn, why);
    }
    if (ds_field_set(d, key, value, why, sizeof why) < 0)
        return yerr(y, kn, why);
    return 0;
}

static int load_faults(struct yctx *y, struct ds_device *d, yaml_node_t *v)
{
    if (v->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
            yaml_node_t *val = yaml_document_get_node(&y->doc, p->value);

            if (!scalar(k) || !scalar(val))
                return yerr(y, k, "faults: want name: value pairs");
            if (set_at(y, d, k, scalar(k), scalar(val), true) < 0)
                return -1;
        }
        return 0;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top;
             i++) {
            yaml_node_t *n = yaml_document_get_node(&y->doc, *i);
            char name[64];
            const char *s = scalar(n), *eq;

            if (!s)
                return yerr(y, n, "faults: want a list of names (name or name=value)");
            eq = strchr(s, '=');
            snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - s) : (int)strlen(s), s);
            if (set_at(y, d, n, name, eq ? eq + 1 : "true", true) < 0)
                return -1;
        }
        return 0;
    }
    return yerr(y, v, "faults: want a mapping or a list");
}

static int load_accounts(struct yctx *y, struct ds_device *d, yaml_node_t *v)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return yerr(y, v, "accounts: want a list of {username, password}");
    d->naccounts = 0;
    for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top;
         i++) {
        yaml_node_t *m = yaml_document_get_node(&y->doc, *i);
        struct ds_account *a;

        if (d->naccounts == DS_MAX_ACCOUNTS)
            return yerr(y, m, "accounts: too many (at most 8)");
        if (m->type != YAML_MAPPING_NODE)
            return yerr(y, m, "accounts: each entry is {username: U, password: P}");
        a = &d->accounts[d->naccounts];
        memset(a, 0, sizeof *a);
        for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
            const char *ks = scalar(k), *vs = scalar(yaml_document_get_node(&y->doc, p->value));
            char why[128];
            int rc;

            if (!ks || !vs)
                return yerr(y, k, "accounts: want scalar username and password");
            if (strcmp(ks, "username") == 0)
                rc = set_str(a->username, sizeof a->username, vs, ks, why, sizeof why);
            else if (strcmp(ks, "password") == 0)
                rc = set_str(a->password, sizeof a->password, vs, ks, why, sizeof why);
            else {
                snprintf(why, sizeof why, "accounts: unknown key %s", ks);
                rc = -1;
            }
            if (rc < 0)
                return yerr(y, k, why);
        }
        if (a->username[0] == '\0')
            return yerr(y, m, "accounts: entry without a username");
        d->naccounts++;
    }
    return 0;
}

static int load_device(struct yctx *y, struct ds_device *d, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return yerr(y, map, "a device is a mapping of fields");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&y->doc, p->value);
        const char *key = scalar(k);

        if (!key)
            return yerr(y, k, "keys are plain words");
        if (strcmp(key, "faults") == 0) {
            if (load_faults(y, d, v) < 0)
                return -1;
        } else if (strcmp(key, "accounts") == 0) {
            if (load_accounts(y, d, v) < 0)
                return -1;
        } else if (!scalar(v)) {
            char why[128];

            snprintf(why, sizeof why, "%s: want a single value", key);
            return yerr(y, v, why);
        } else if (set_at(y, d, k, key, scalar(v), false) < 0) {
            return -1;
        }
    }
    return 0;
}

int ds_inventory_load(struct ds_inventory *inv, const char *path, char *err, size_t errlen)
{
    struct yctx y = {.path = path, .err = err, .errlen = errlen};
    struct ds_device defaults;
    yaml_parser_t parser;
    yaml_node_t *root, *devices = NULL;
    FILE *f;
    int rc = -1;

    ds_device_defaults(&defaults);
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &y.doc)) {
        snprintf(err, errlen, "%s:%lu: %s", path, (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
        fclose(f);
        return -1;
    }
    root = yaml_document_get_root_node(&y.doc);
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        yerr(&y, root, "the inventory is a mapping with a devices: list");
        goto out;
    }
    /* defaults first, wherever they appear, so every device sees them. */
    for (int pass = 0; pass < 2; pass++) {
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
             p < root->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(&y.doc, p->key);
            yaml_node_t *v = yaml_document_get_node(&y.doc, p->value);
            const char *key = scalar(k);

            if (!key) {
                yerr(&y, k, "keys are plain words");
                goto out;
            }
            if (strcmp(key, "defaults") == 0) {
                if (pass == 0 && load_device(&y, &defaults, v) < 0)
                    goto out;
            } else if (strcmp(key, "devices") == 0) {
                devices = v;
            } else if (pass == 1) {
                /* nothing: top-level scalars are read in pass 0 */
            } else if (strcmp(key, "state_dir") == 0 && scalar(v)) {
                snprintf(inv->state_dir, sizeof inv->state_dir, "%s", scalar(v));
            } else if (strcmp(key, "host_key_type") == 0 && scalar(v)) {
                snprintf(inv->host_key_type, sizeof inv->host_key_type, "%s", scalar(v));
            } else {
                char why[128];

                snprintf(why, sizeof why, "%s: unknown top-level key", key);
                yerr(&y, k, why);
                goto out;
            }
        }
    }
    if (devices == NULL || devices->type != YAML_SEQUENCE_NODE) {
        yerr(&y, devices ? devices : root, "devices: want a list");
        goto out;
    }
    for (yaml_node_item_t *i = devices->data.sequence.items.start;
         i < devices->data.sequence.items.top; i++) {
        yaml_node_t *n = yaml_document_get_node(&y.doc, *i);
        struct ds_device d = defaults;
        char why[256];

        if (load_device(&y, &d, n) < 0)
            goto out;
        if (ds_inventory_add(inv, &d, why, sizeof why) < 0) {
            yerr(&y, n, why);
            goto out;
        }
    }
    rc = 0;
out:
    yaml_document_delete(&y.doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* ---- expansion and checks ------------------------------------------- */

static int push(struct ds_inventory *inv, const struct ds_device *d)
{
    if (inv->ndevs == inv->cap) {
        size_t cap = inv->cap ? inv->cap * 2 : 64;
        struct ds_device *p = realloc(inv->devs, cap * sizeof *p);

        if (p == NULL)
            return -1;
        inv->devs = p;
        inv->cap = cap;
    }
    inv->devs[inv->ndevs] = *d;
    atomic_init(&inv->devs[inv->ndevs].accepts, 0);
    inv->ndevs++;
    return 0;
}

int ds_inventory_add(struct ds_inventory *inv, const struct ds_device *d, char *err,
                     size_t errlen)
{
    struct in_addr a;
    bool by_addr;
    uint32_t base;

    if (strcmp(d->vary, "port") != 0 && strcmp(d->vary, "address") != 0) {
        snprintf(err, errlen, "vary: want port or address, got \"%s\"", d->vary);
        return -1;
    }
    by_addr = strcmp(d->vary, "address") == 0;
    if (inet_pton(AF_INET, d->listen, &a) != 1) {
        snprintf(err, errlen, "listen: \"%s\" is not an IPv4 address", d->listen);
        return -1;
    }
    base = ntohl(a.s_addr);
    if (d->count > 1 && !by_addr && (uint64_t)d->port + d->count - 1 > 65535) {
        snprintf(err, errlen, "count: ports %u..%u run past 65535", d->port,
                 d->port + d->count - 1);
        return -1;
    }
    for (uint32_t i = 0; i < d->count; i++) {
        struct ds_device e = *d;

        if (d->count > 1) {
            const char *stem = d->name[0] ? d->name : d->hostname[0] ? d->hostname : "dev";

            snprintf(e.name, sizeof e.name, "%.*s-%04u", DS_NAME_MAX - 12, stem, i + 1);
            if (d->hostname[0])
                snprintf(e.hostname, sizeof e.hostname, "%.*s-%04u", DS_NAME_MAX - 12,
                         d->hostname, i + 1);
        } else if (e.name[0] == '\0') {
            if (e.hostname[0])
                memcpy(e.name, e.hostname, sizeof e.name);
            else
                snprintf(e.name, sizeof e.name, "dev-%04zu", inv->ndevs + 1);
        }
        if (e.hostname[0] == '\0' || (d->count > 1 && d->hostname[0] == '\0'))
            memcpy(e.hostname, e.name, sizeof e.hostname);
        if (by_addr) {
            struct in_addr x = {.s_addr = htonl(base + i)};

            if (((base + i) >> 24) != 127) {
                snprintf(err, errlen, "count: addresses from %s run out of 127.0.0.0/8",
                         d->listen);
                return -1;
            }
            inet_ntop(AF_INET, &x, e.listen, sizeof e.listen);
        } else {
            e.port = d->port + i;
        }
        e.count = 1;
        if (push(inv, &e) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(struct ds_device *const *)a)->name, (*(struct ds_device *const *)b)->name);
}

static int by_endpoint(const void *a, const void *b)
{
    const struct ds_device *x = *(struct ds_device *const *)a;
    const struct ds_device *y = *(struct ds_device *const *)b;
    uint32_t ax = ntohl(x->addr.s_addr), ay = ntohl(y->addr.s_addr);

    if (ax != ay)
        return ax < ay ? -1 : 1;
    return (x->port > y->port) - (x->port < y->port);
}

static bool valid_host(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    return true;
}

int ds_inventory_resolve(struct ds_inventory *inv, char *err, size_t errlen)
{
    struct ds_device **v;
    int rc = -1;

    if (inv->ndevs == 0) {
        snprintf(err, errlen, "no devices (give --inventory FILE or --count N)");
        return -1;
    }
    for (size_t i = 0; i < inv->ndevs; i++) {
        struct ds_device *d = &inv->devs[i];

        d->profile = ds_profile_find(d->device_type);
        if (d->profile == NULL) {
            ds_log(1, "%s: device_type %s is not known; using the default profile", d->name,
                   d->device_type);
            d->profile = &ds_profile_default;
        }
        if (inet_pton(AF_INET, d->listen, &d->addr) != 1 ||
            (ntohl(d->addr.s_addr) >> 24) != 127) {
            snprintf(err, errlen, "%s: listen %s is not in 127.0.0.0/8 (devsim binds loopback only)",
                     d->name, d->listen);
            return -1;
        }
        if (d->port == 0) {
            snprintf(err, errlen, "%s: no port", d->name);
            return -1;
        }
        if (d->naccounts == 0) {
            snprintf(err, errlen, "%s: no accounts", d->name);
            return -1;
        }
        if (!valid_host(d->hostname)) {
            snprintf(err, errlen, "%s: hostname \"%s\" has characters a CLI prompt cannot show",
                     d->name, d->hostname);
            return -1;
        }
        d->listen_fd = -1;
    }
    v = malloc(inv->ndevs * sizeof *v);
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < inv->ndevs; i++)
        v[i] = &inv->devs[i];
    qsort(v, inv->ndevs, sizeof *v, by_name);
    for (size_t i = 1; i < inv->ndevs; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0) {
            snprintf(err, errlen, "device name %s is used twice", v[i]->name);
            goto out;
        }
    qsort(v, inv->ndevs, sizeof *v, by_endpoint);
    for (size_t i = 1; i < inv->ndevs; i++)
        if (by_endpoint(&v[i - 1], &v[i]) == 0) {
            snprintf(err, errlen, "%s and %s both listen on %s:%u", v[i - 1]->name,
                     v[i]->name, v[i]->listen, v[i]->port);
            goto out;
        }
    rc = 0;
out:
    free(v);
    return rc;
}

void ds_inventory_clear(struct ds_inventory *inv)
{
    free(inv->devs);
    memset(inv, 0, sizeof *inv);
}
