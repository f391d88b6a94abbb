/*
 * cli.c - the CLI engine: prompt learning, paging off, enable, commands
 * with pager answers and output framing, on top of one nr_ssh session;
 * and the device-type table it reads (netraven/devtypes.def).
 *
 * Every wait is a read with a deadline (nr_ssh_recv); the engine decides
 * from the bytes alone when an exchange is over: the last line ends with
 * the learned prompt, asks for a secret, or is a pager prompt.  The parsing
 * helpers are pure functions, exported for the unit tests.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/log.h"
#include "netraven/secret.h"
#include "netraven/ssh.h"

#define CHUNK              32768
#define DEFAULT_COMMAND_S  30.0
#define DEFAULT_MAX_OUTPUT (8L * 1024 * 1024)
#define PAGER_LINE_MAX     160      /* a longer last line is not a pager prompt */
#define LEARN_LINES        64       /* lines searched back for the command's echo */

/* ---- the device-type table ---------------------------------------------- */

static const struct nr_devtype devtypes[] = {
#define NR_DEVTYPE(name, paging_off, config_cmd, prompt_end, priv_end, enable_cmd, pagers) \
    { #name, paging_off, config_cmd, prompt_end, priv_end, enable_cmd, pagers,          \
      NR_DEVTYPE_##name },
#define NR_DEVTYPE_FALLBACK(name, paging_off, config_cmd, prompt_end, priv_end, enable_cmd, \
                            pagers)                                                         \
    { name, paging_off, config_cmd, prompt_end, priv_end, enable_cmd, pagers,             \
      NR_DEVTYPE_COUNT },
#include "netraven/devtypes.def"
#undef NR_DEVTYPE_FALLBACK
#undef NR_DEVTYPE
};

/* Other names Netmiko accepts for a row. */
static const struct { const char *alias, *name; } devtype_aliases[] = {
    { "juniper", "juniper_junos" },
    { "cisco_ios_xe", "cisco_xe" },
    { "cisco_iosxe", "cisco_xe" },
    { "cisco_iosxr", "cisco_xr" },
    { "eos", "arista_eos" },
    { "panos", "paloalto_panos" },
};

static const struct nr_devtype *devtype_exact(const char *name, size_t n)
{
    for (size_t i = 0; i < NR_ARRAY_LEN(devtypes); i++)
        if (strlen(devtypes[i].name) == n && strncmp(devtypes[i].name, name, n) == 0)
            return &devtypes[i];
    for (size_t i = 0; i < NR_ARRAY_LEN(devtype_aliases); i++)
        if (strlen(devtype_aliases[i].alias) == n &&
            strncmp(devtype_aliases[i].alias, name, n) == 0)
            return devtype_exact(devtype_aliases[i].name, strlen(devtype_aliases[i].name));
    return NULL;
}

const struct nr_devtype *nr_devtype_find(const char *name)
{
    static const char *const suffixes[] = { "_ssh", "_telnet" };
    const struct nr_devtype *t;
    size_t n;

    if (name == NULL)
        return &devtypes[NR_ARRAY_LEN(devtypes) - 1];
    n = strlen(name);
    if ((t = devtype_exact(name, n)) != NULL)
        return t;
    for (size_t i = 0; i < NR_ARRAY_LEN(suffixes); i++) {
        size_t m = strlen(suffixes[i]);

        if (n > m && strcmp(name + n - m, suffixes[i]) == 0 &&
            (t = devtype_exact(name, n - m)) != NULL)
            return t;
    }
    return &devtypes[NR_ARRAY_LEN(devtypes) - 1];
}

const struct nr_devtype *nr_devtype_table(size_t *n)
{
    *n = NR_ARRAY_LEN(devtypes);
    return devtypes;
}

/* Offset just after the last '\n' of buf[0..len), 0 if none. */
static size_t last_line(const char *buf, size_t len)
{
    const char *nl = len ? memrchr(buf, '\n', len) : NULL;

    return nl ? (size_t)(nl - buf) + 1 : 0;
}

static size_t rstrip_blank(const char *p, size_t n)
{
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\0'))
        n--;
    return n;
}

static bool is_end(const struct nr_devtype *type, int c)
{
    const char *ends = type && type->prompt_end ? type->prompt_end : ">#";

    return c != '\0' && memchr(ends, c, strlen(ends)) != NULL;
}

/* Characters of a prompt other than its last: hostnames, paths, user@,
 * XR's RP/0/RSP0/CPU0:, (config), Huawei's <...>. */
static bool prompt_char(int c)
{
    return isalnum(c) || (c != '\0' && strchr("-_.:/@~()[]{}<+*!,=|\\", c) != NULL);
}

size_t nr_cli_prompt_token(const struct nr_devtype *type, const char *line, size_t len,
                           size_t *start)
{
    size_t end = rstrip_blank(line, len), b;

    if (end < 2 || !is_end(type, (unsigned char)line[end - 1]))
        return 0;
    b = end - 1;
    while (b > 0 && end - b < NR_CLI_PROMPT_MAX - 1 &&
           prompt_char((unsigned char)line[b - 1]) && !is_end(type, (unsigned char)line[b - 1]))
        b--;
    if (end - b < 2)
        return 0;
    if (start)
        *start = b;
    return end - b;
}

bool nr_cli_ends_with_prompt(const char *buf, size_t len, const char *prompt)
{
    size_t ls = last_line(buf, len), n = rstrip_blank(buf + ls, len - ls);
    size_t m = prompt ? strlen(prompt) : 0;

    return m > 0 && n >= m && memcmp(buf + ls + n - m, prompt, m) == 0;
}

long nr_cli_find_pager(const struct nr_devtype *type, const char *buf, size_t len)
{
    size_t ls = last_line(buf, len), n = len - ls;
    const char *p;

    if (n == 0 || n > PAGER_LINE_MAX || type == NULL || type->pagers == NULL)
        return -1;
    for (p = type->pagers; *p;) {
        size_t m = strcspn(p, "|");
        const char *hit = nr_memcasemem(buf + ls, n, p, m);

        if (hit) {
            size_t cut = (size_t)(hit - buf);

            while (cut > ls && (buf[cut - 1] == ' ' || buf[cut - 1] == '\r'))
                cut--;
            return (long)cut;
        }
        p += m;
        if (*p == '|')
            p++;
    }
    return -1;
}

bool nr_cli_secret_prompt(const char *buf, size_t len)
{
    size_t ls = last_line(buf, len), n = rstrip_blank(buf + ls, len - ls);
    const char *l = buf + ls;

    if (n == 0 || l[n - 1] != ':')
        return false;
    return nr_memcasemem(l, n, "password", 8) || nr_memcasemem(l, n, "secret", 6) ||
           nr_memcasemem(l, n, "passcode", 8);
}

/* The longest common suffix of two sightings of the prompt; garbage the
 * device printed before one of them does not survive it. */
static bool agree(const char *a, size_t al, const char *b, size_t bl, char *prompt, size_t cap)
{
    size_t k = 0;

    while (k < al && k < bl && a[al - 1 - k] == b[bl - 1 - k])
        k++;
    if (k < 2 || k >= cap)
        return false;
    memcpy(prompt, a + al - k, k);
    prompt[k] = '\0';
    return true;
}

bool nr_cli_learn(const struct nr_devtype *type, const char *buf, size_t len,
                  const char *command, char *prompt, size_t cap)
{
    size_t ls = last_line(buf, len), ts = 0, tl, end = ls;
    size_t cl = command ? strlen(command) : 0;

    tl = nr_cli_prompt_token(type, buf + ls, len - ls, &ts);
    if (tl == 0)
        return false;
    for (int k = 0; k < LEARN_LINES && end > 0; k++) {
        size_t lb = last_line(buf, end - 1);
        size_t n = rstrip_blank(buf + lb, end - 1 - lb), ps = 0, pl;
        const char *l = buf + lb;

        if (cl == 0) {
            pl = nr_cli_prompt_token(type, l, n, &ps);
            return pl > 0 && agree(buf + ls + ts, tl, l + ps, pl, prompt, cap);
        }
        if (n >= cl && memcmp(l + n - cl, command, cl) == 0) {
            pl = nr_cli_prompt_token(type, l, n - cl, &ps);
            return pl > 0 && agree(buf + ls + ts, tl, l + ps, pl, prompt, cap);
        }
        end = lb;
    }
    return false;
}

size_t nr_cli_erase_len(const char *p, size_t n, bool *more)
{
    size_t k = 0, s = 0, b = 0;

    *more = false;
    if (n == 0) {
        *more = true;
        return 0;
    }
    if (p[0] == '\b') {
        while (k < n && p[k] == '\b')
            k++;
        while (k + s < n && s < k && p[k + s] == ' ')
            s++;
        if (s < k)
            return (*more = k + s == n) ? 0 : k;
        while (2 * k + b < n && b < k && p[2 * k + b] == '\b')
            b++;
        if (b < k && 2 * k + b == n) {
            *more = true;
            return 0;
        }
        return 2 * k + b;
    }
    if (p[0] == '\r') {
        if (n == 1) {
            *more = true;
            return 0;
        }
        if (p[1] == '\n')
            return 0;
        while (1 + s < n && p[1 + s] == ' ')
            s++;
        if (1 + s == n) {
            *more = true;
            return 0;
        }
        return p[1 + s] == '\r' ? 2 + s : 1;
    }
    return 0;
}

/* Index of the last byte of the escape sequence that starts at raw[k]. */
static size_t skip_escape(const char *raw, size_t len, size_t k)
{
    size_t j;

    if (k + 1 >= len)
        return k;
    if (raw[k + 1] == '[') {            /* CSI: parameters, intermediates, final */
        for (j = k + 2; j < len; j++) {
            unsigned char c = (unsigned char)raw[j];

            if (c >= 0x40 && c <= 0x7e)
                return j;
            if (c < 0x20 || c > 0x3f)
                return j - 1;
        }
        return len - 1;
    }
    if (raw[k + 1] == ']') {            /* OSC: up to BEL or ESC \ */
        for (j = k + 2; j < len; j++) {
            if (raw[j] == '\a')
                return j;
            if (raw[j] == 0x1b)
                return j + 1 < len ? j + 1 : j;
            if (raw[j] == '\n')
                return j - 1;
        }
        return len - 1;
    }
    return k + 1;                       /* ESC and one byte */
}

char *nr_cli_clean(const char *raw, size_t len, const char *command, const char *prompt,
                   size_t *out_len)
{
    char *o = nr_malloc(len + 1);
    size_t n = 0, line = 0, start = 0, cl, pl;
    const char *nl;

    for (size_t k = 0; k < len; k++) {
        unsigned char ch = (unsigned char)raw[k];

        if (ch == 0x1b) {
            k = skip_escape(raw, len, k);
        } else if (ch == '\n') {
            o[n++] = '\n';
            line = n;
        } else if (ch == '\r') {
            size_t j = k;

            while (j + 1 < len && raw[j + 1] == '\r')
                j++;
            if (j + 1 < len && raw[j + 1] != '\n')
                n = line;               /* a lone CR: back to the line start */
            k = j;
        } else if (ch == '\b') {
            if (n > line)
                n--;
        } else if (ch == '\t' || (ch >= 0x20 && ch != 0x7f)) {
            o[n++] = (char)ch;
        }
    }
    nr_utf8_scrub(o, n);

    /* The echo of the command (or the empty line of a device that does not
     * echo). */
    cl = command ? rstrip_blank(command, strlen(command)) : 0;
    nl = memchr(o, '\n', n);
    if (nl) {
        size_t l = rstrip_blank(o, (size_t)(nl - o));

        if (l == 0 || (cl > 0 && l >= cl && memcmp(o + l - cl, command, cl) == 0))
            start = (size_t)(nl - o) + 1;
    }
    /* The prompt that ends it. */
    pl = prompt ? strlen(prompt) : 0;
    if (pl > 0) {
        size_t ls = start + last_line(o + start, n - start);
        size_t l = rstrip_blank(o + ls, n - ls);

        if (l >= pl && memcmp(o + ls + l - pl, prompt, pl) == 0)
            n = ls;
    }
    /* Blank lines before it (Junos and PAN-OS print one). */
    while (n > start + 1 && o[n - 1] == '\n') {
        size_t lb = start + last_line(o + start, n - 1 - start);

        if (lb == start || rstrip_blank(o + lb, n - 1 - lb) > 0)
            break;
        n = lb;
    }
    memmove(o, o + start, n - start);
    n -= start;
    o[n] = '\0';
    *out_len = n;
    return o;
}

/* ---- the engine ------------------------------------------------------------ */

struct nr_cli_i {
    char       *buf;            /* the current exchange */
    size_t      len, cap;
    size_t      line_start;     /* offset of buf's last line */
    long        max_output;
    double      connect_s, command_s;
    const char *secret;         /* enable secret (borrowed) */
};

static void buf_reset(struct nr_cli *c)
{
    c->i->len = 0;
    c->i->line_start = 0;
    if (c->i->buf)
        c->i->buf[0] = '\0';
}

static void buf_truncate(struct nr_cli *c, size_t n)
{
    c->i->len = n;
    c->i->buf[n] = '\0';
    c->i->line_start = last_line(c->i->buf, n);
}

/*
 * Read what the device sends next into the buffer.  idle_s bounds the
 * silence, NR_CLI_STAGE_CAP * idle_s the stage since started.  0, or
 * negative with the failure recorded.
 */
static int read_more(struct nr_cli *c, enum nr_ssh_stage st, double idle_s, uint64_t started)
{
    struct nr_cli_i *i = c->i;
    uint64_t idle = (uint64_t)(idle_s * 1e9);
    uint64_t dl = nr_mono_ns() + idle, cap_dl = started + idle * NR_CLI_STAGE_CAP;
    size_t got = 0, old = i->len;
    const char *nl;
    int rc;

    if (dl > cap_dl)
        dl = cap_dl;
    if (i->len + CHUNK + 1 > i->cap) {
        i->cap = i->cap * 2 > i->len + CHUNK + 1 ? i->cap * 2 : i->len + CHUNK + 1;
        i->buf = nr_realloc(i->buf, i->cap);
    }
    c->ssh->stage = st;
    rc = nr_ssh_recv(c->ssh, i->buf + i->len, CHUNK, dl, &got);
    if (rc == NR_ETIMEOUT) {
        if (nr_mono_ns() >= cap_dl)
            return nr_ssh_fail(c->ssh, NR_SSH_TIMEOUT, st,
                               "the %s stage did not end within %.3gs although output kept "
                               "coming", nr_ssh_stage_name(st), idle_s * NR_CLI_STAGE_CAP);
        return nr_ssh_fail(c->ssh, NR_SSH_TIMEOUT, st,
                           "no answer from the device for %.3gs at the %s stage", idle_s,
                           nr_ssh_stage_name(st));
    }
    if (rc < 0)
        return rc;
    i->len += got;
    i->buf[i->len] = '\0';
    nl = memrchr(i->buf + old, '\n', got);
    if (nl)
        i->line_start = (size_t)(nl - i->buf) + 1;
    if ((long)i->len > i->max_output)
        return nr_ssh_fail(c->ssh, NR_SSH_OUTPUT_CAP, st,
                           "more than %ld bytes of output at the %s stage "
                           "(worker.max_output_bytes)", i->max_output, nr_ssh_stage_name(st));
    return 0;
}

/* Type a line (text and "\n"). */
static int send_line(struct nr_cli *c, const char *text, unsigned flags)
{
    size_t n = strlen(text);
    char *line = nr_malloc(n + 2);
    int rc;

    memcpy(line, text, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    rc = nr_ssh_send(c->ssh, line, n + 1, flags);
    if (flags & NR_SSH_SECRET)
        memset(line, 0, n + 2);
    free(line);
    return rc;
}

/* A command as logs may show it: redacted like a config line (a command
 * such as "username x secret y" carries a secret). */
static char *shown(const struct nr_cli *c, const char *command)
{
    return nr_redact_line(command, &c->ssh->cfg->worker.redaction_patterns);
}

static void log_command_sent(struct nr_cli *c, const char *command)
{
    const struct nr_ssh_target *t = &c->ssh->t;
    char *cmd = shown(c, command);

    NR_LOG(NR_EV_CONN_COMMAND_SENT, t->job_id, t->device_id,
           NR_S("device_name", t->device_name), NR_S("command", cmd));
    free(cmd);
}

static void log_command_done(struct nr_cli *c, const char *command, size_t bytes, double ms)
{
    const struct nr_ssh_target *t = &c->ssh->t;
    char *cmd = shown(c, command);

    NR_LOG(NR_EV_CONN_COMMAND_DONE, t->job_id, t->device_id,
           NR_S("device_name", t->device_name), NR_S("command", cmd),
           NR_I("bytes", bytes), NR_D("ms", round(ms * 1e3) / 1e3));
    free(cmd);
}

/* The greeting, until its last line looks like a prompt; then the
 * paging-off command (or an empty line), until the prompt is seen both
 * before its echo and after its answer. */
static int learn_prompt(struct nr_cli *c)
{
    struct nr_cli_i *i = c->i;
    const char *cmd = c->type->paging_off ? c->type->paging_off : "";
    uint64_t t0 = nr_mono_ns();
    size_t greeting;
    uint64_t t1;

    c->ssh->stage = NR_SSH_STAGE_PROMPT;
    buf_reset(c);
    while (nr_cli_prompt_token(c->type, i->buf + i->line_start, i->len - i->line_start,
                               NULL) == 0)
        if (read_more(c, NR_SSH_STAGE_PROMPT, i->connect_s, t0) < 0)
            return -1;
    greeting = i->len;
    t1 = nr_mono_ns();
    if (*cmd)
        log_command_sent(c, cmd);
    if (send_line(c, cmd, 0) < 0)
        return -1;
    while (!nr_cli_learn(c->type, i->buf, i->len, cmd, c->prompt, sizeof(c->prompt)))
        if (read_more(c, NR_SSH_STAGE_PROMPT, i->command_s, t1) < 0)
            return -1;
    if (*cmd)
        log_command_done(c, cmd, i->len - greeting, (double)(nr_mono_ns() - t1) / 1e6);
    NR_LOG(NR_EV_SESSION_PROMPT, c->ssh->t.job_id, c->ssh->t.device_id,
           NR_S("device_name", c->ssh->t.device_name), NR_S("prompt", c->prompt));
    return 0;
}

/* The last line ends with base followed by one of the prompt ends; the
 * end is written to *end. */
static bool at_base_prompt(struct nr_cli *c, const char *base, size_t bl, char *end)
{
    struct nr_cli_i *i = c->i;
    const char *l = i->buf + i->line_start;
    size_t n = rstrip_blank(l, i->len - i->line_start);

    if (i->line_start == 0 || n < bl + 1 || !is_end(c->type, (unsigned char)l[n - 1]) ||
        memcmp(l + n - 1 - bl, base, bl) != 0)
        return false;
    *end = l[n - 1];
    return true;
}

static int enable(struct nr_cli *c)
{
    struct nr_cli_i *i = c->i;
    const struct nr_devtype *type = c->type;
    size_t pl = strlen(c->prompt), bl = pl - 1;
    char base[NR_CLI_PROMPT_MAX], end = 0;
    uint64_t t0 = nr_mono_ns();

    if (type->enable_cmd == NULL || type->priv_end == 0 || c->prompt[pl - 1] == type->priv_end) {
        c->privileged = true;
        return 0;
    }
    memcpy(base, c->prompt, bl);
    base[bl] = '\0';
    c->ssh->stage = NR_SSH_STAGE_ENABLE;
    buf_reset(c);
    if (send_line(c, type->enable_cmd, 0) < 0)
        return -1;
    while (!(i->line_start > 0 && nr_cli_secret_prompt(i->buf, i->len)) &&
           !at_base_prompt(c, base, bl, &end))
        if (read_more(c, NR_SSH_STAGE_ENABLE, i->command_s, t0) < 0)
            return -1;
    if (end == 0) {
        if (i->secret == NULL || i->secret[0] == '\0')
            return nr_ssh_fail(c->ssh, NR_SSH_AUTH, NR_SSH_STAGE_ENABLE,
                               "'%s' asks for a secret and none is configured", type->enable_cmd);
        buf_reset(c);
        if (send_line(c, i->secret, NR_SSH_SECRET) < 0)
            return -1;
        while (!(i->line_start > 0 && nr_cli_secret_prompt(i->buf, i->len)) &&
               !at_base_prompt(c, base, bl, &end))
            if (read_more(c, NR_SSH_STAGE_ENABLE, i->command_s, t0) < 0)
                return -1;
        if (end == 0)
            return nr_ssh_fail(c->ssh, NR_SSH_AUTH, NR_SSH_STAGE_ENABLE,
                               "enable secret refused (asked again)");
    }
    if (end != type->priv_end)
        return nr_ssh_fail(c->ssh, NR_SSH_AUTH, NR_SSH_STAGE_ENABLE,
                           "'%s' refused: the prompt stayed %s%c", type->enable_cmd, base, end);
    c->prompt[bl] = end;
    c->privileged = true;
    NR_LOG(NR_EV_CONN_PRIVILEGED, c->ssh->t.job_id, c->ssh->t.device_id,
           NR_S("device_name", c->ssh->t.device_name), NR_S("prompt", c->prompt),
           NR_D("ms", round((double)(nr_mono_ns() - t0) / 1e3) / 1e3));
    return 0;
}

struct nr_cli *nr_cli_connect(const struct nr_config *cfg, const struct nr_ssh_target *t,
                           const struct nr_devtype *type, const char *enable_secret)
{
    struct nr_cli *c = nr_calloc(1, sizeof(*c));
    struct nr_cli_i *i = nr_calloc(1, sizeof(*i));

    c->i = i;
    c->type = type ? type : nr_devtype_find(NULL);
    i->connect_s = t->connect_timeout > 0 ? t->connect_timeout
                   : cfg && cfg->worker.connection_timeout > 0 ? cfg->worker.connection_timeout
                                                               : 10.0;
    i->command_s = t->command_timeout > 0 ? t->command_timeout
                   : cfg && cfg->worker.command_timeout > 0 ? cfg->worker.command_timeout
                                                            : DEFAULT_COMMAND_S;
    i->max_output = cfg && cfg->worker.max_output_bytes > 0 ? cfg->worker.max_output_bytes
                                                            : DEFAULT_MAX_OUTPUT;
    i->secret = enable_secret && enable_secret[0] ? enable_secret : t->password;
    c->ssh = nr_ssh_connect(cfg, t);
    if (c->ssh->err)
        return c;
    nr_ssh_add_secret(c->ssh, i->secret);
    if (learn_prompt(c) < 0)
        return c;
    enable(c);
    return c;
}

int nr_cli_run(struct nr_cli *c, const char *command, char **out, size_t *out_len, double *ms)
{
    struct nr_cli_i *i = c->i;
    uint64_t t0 = nr_mono_ns();
    bool erase = false;
    size_t erase_at = 0, n;
    char *text;
    double took;

    if (c->ssh->err)
        return NR_ERR;
    c->ssh->stage = NR_SSH_STAGE_COMMAND;
    buf_reset(c);
    log_command_sent(c, command);
    if (send_line(c, command, 0) < 0)
        return NR_ERR;
    for (;;) {
        long pager;

        if (read_more(c, NR_SSH_STAGE_COMMAND, i->command_s, t0) < 0)
            return c->ssh->err == NR_SSH_TIMEOUT ? NR_ETIMEOUT : NR_ERR;
        if (erase) {
            bool more;
            size_t k = nr_cli_erase_len(i->buf + erase_at, i->len - erase_at, &more);

            if (more)
                continue;
            if (k > 0) {
                memmove(i->buf + erase_at, i->buf + erase_at + k, i->len - erase_at - k);
                buf_truncate(c, i->len - k);
            }
            erase = false;
        }
        pager = i->line_start > 0 ? nr_cli_find_pager(c->type, i->buf, i->len) : -1;
        if (pager >= 0) {
            buf_truncate(c, (size_t)pager);
            if (nr_ssh_send(c->ssh, " ", 1, 0) < 0)
                return NR_ERR;
            char *cmd = shown(c, command);
            NR_LOG(NR_EV_SESSION_PAGER, c->ssh->t.job_id, c->ssh->t.device_id,
                   NR_S("device_name", c->ssh->t.device_name), NR_S("command", cmd));
            free(cmd);
            erase = true;
            erase_at = i->len;
            continue;
        }
        if (i->line_start > 0 && nr_cli_ends_with_prompt(i->buf, i->len, c->prompt) &&
            !nr_ssh_pending(c->ssh))
            break;
    }
    text = nr_cli_clean(i->buf, i->len, command, c->prompt, &n);
    took = (double)(nr_mono_ns() - t0) / 1e6;
    log_command_done(c, command, n, took);
    *out = text;
    *out_len = n;
    if (ms)
        *ms = took;
    return 0;
}

void nr_cli_free(struct nr_cli *c)
{
    if (c == NULL)
        return;
    nr_ssh_free(c->ssh);
    free(c->i->buf);
    free(c->i);
    free(c);
}
