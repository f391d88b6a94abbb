/*
 * cli.c - the CLI engine: prompt learning, paging off, enable, commands
 * with pager answers and output framing, on top of one nr_ssh session,
 * driven by the device-type table (devtype.c, netraven/devtypes.def).
 *
 * Every wait is a read with a deadline (nr_ssh_recv); the engine decides
 * from the bytes alone when an exchange is over: the last line ends with
 * the learned prompt, asks for a secret, or is a pager prompt.  What real
 * devices add around that is taken off as the bytes arrive: terminal
 * escape sequences (colours, bracketed paste, cursor moves) and control
 * bytes are dropped before anything is searched (term_filter), so prompts
 * and pagers are recognised whatever a device wraps them in.  The parsing
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

#define CHUNK              4096     /* read at most this much at once; the buffer
                                       grows by doubling, so that an idle session
                                       holds little */
#define PAGER_LINE_MAX     160      /* longest pager prompt line */
#define PAGER_LINES        4        /* lines searched for a pager prompt */
#define LEARN_LINES        64       /* lines searched back for the command's echo */
#define GREETING_ANSWERS   6        /* questions answered before the first prompt */

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

static bool counts(const struct nr_devtype *type)
{
    return type && (type->flags & NR_DT_PROMPT_COUNTER);
}

/* What a terminal shows of line[0..len): the text after the last carriage
 * return that sends the cursor back to the line start, without blanks at
 * either end.  Returns its length; *start gets its offset. */
static size_t visible(const char *line, size_t len, size_t *start)
{
    size_t n = rstrip_blank(line, len), s;
    const char *cr = n ? memrchr(line, '\r', n) : NULL;

    s = cr ? (size_t)(cr - line) + 1 : 0;
    while (s < n && (line[s] == ' ' || line[s] == '\t'))
        s++;
    *start = s;
    return n - s;
}

/*
 * The common suffix of a[0..al) and b[0..bl): its length in a (and in b,
 * via *kb).  With digits, a run of digits equals any other run of digits
 * (a prompt whose counter moved on is the same prompt).
 */
static size_t common_suffix(const char *a, size_t al, const char *b, size_t bl, bool digits,
                            size_t *kb)
{
    size_t i = al, j = bl;

    while (i > 0 && j > 0) {
        if (digits && isdigit((unsigned char)a[i - 1]) && isdigit((unsigned char)b[j - 1])) {
            while (i > 0 && isdigit((unsigned char)a[i - 1]))
                i--;
            while (j > 0 && isdigit((unsigned char)b[j - 1]))
                j--;
            continue;
        }
        if (a[i - 1] != b[j - 1])
            break;
        i--;
        j--;
    }
    if (kb)
        *kb = bl - j;
    return al - i;
}

size_t nr_cli_prompt_token(const struct nr_devtype *type, const char *line, size_t len,
                           size_t *start)
{
    size_t vs, n = visible(line, len, &vs), b, end;

    if (n == 0 || n >= NR_CLI_PROMPT_MAX || !is_end(type, (unsigned char)line[vs + n - 1]))
        return 0;
    /* A prompt is printable text: bytes before it that are not (a device's
     * garbage, a half-drawn line) are not part of it. */
    end = vs + n;
    b = end - 1;
    while (b > vs && (unsigned char)line[b - 1] >= 0x20 && (unsigned char)line[b - 1] < 0x7f)
        b--;
    while (b < end && line[b] == ' ')
        b++;
    /* A lone prompt character ("> ") is a prompt only as a line of its own. */
    if (end - b < 2 && b != vs)
        return 0;
    if (start)
        *start = b;
    return end - b;
}

/* True if the line l[0..n) shows prompt: it ends with it (text before it
 * on the same line is a device's doing, not the prompt's), or, for a
 * prompt of one character, it is nothing else. */
static bool line_has_prompt(const struct nr_devtype *type, const char *l, size_t n,
                            const char *prompt)
{
    size_t vs, vn = visible(l, n, &vs), m = prompt ? strlen(prompt) : 0, kb = 0;

    if (m == 0 || vn == 0)
        return false;
    if (m == 1)
        return vn == 1 && l[vs] == prompt[0];
    return common_suffix(prompt, m, l + vs, vn, counts(type), &kb) == m;
}

bool nr_cli_ends_with_prompt(const struct nr_devtype *type, const char *buf, size_t len,
                             const char *prompt)
{
    size_t ls = last_line(buf, len);

    return line_has_prompt(type, buf + ls, len - ls, prompt);
}

long nr_cli_find_pager(const struct nr_devtype *type, const char *buf, size_t len, size_t from,
                       const char *prompt, size_t *end)
{
    const char *nl = len ? memchr(buf, '\n', len) : NULL;
    size_t first = nl ? (size_t)(nl - buf) + 1 : 0;    /* after the echo line */
    size_t lo = len, ls = last_line(buf, len);

    if (type == NULL || type->pagers == NULL || first == 0)
        return -1;
    /* A pager that asks now stands in the last lines (a log line may come
     * after it); never when the prompt is back. */
    for (int k = 0; k < PAGER_LINES && lo > first; k++) {
        nl = lo - 1 > first ? memrchr(buf + first, '\n', lo - 1 - first) : NULL;
        lo = nl ? (size_t)(nl - buf) + 1 : first;
    }
    if (lo < from)
        lo = from;
    if (lo >= len || (prompt && *prompt && line_has_prompt(type, buf + ls, len - ls, prompt)))
        return -1;
    for (const char *const *p = type->pagers; *p; p++) {
        size_t m = strlen(*p), cut, e;
        const char *hit = nr_memcasemem(buf + lo, len - lo, *p, m);

        if (hit == NULL)
            continue;
        cut = (size_t)(hit - buf);
        e = cut + m;
        /* the rest of its line: "42%)---", ", next page: Space, ..." */
        while (e < len && buf[e] != '\n' && buf[e] != '\r' && e - cut < PAGER_LINE_MAX)
            e++;
        while (cut > first && (buf[cut - 1] == ' ' || buf[cut - 1] == '\r'))
            cut--;
        /* A pager on a line of its own takes its line end with it, so that
         * a log line printed after it does not leave an empty line. */
        if (buf[cut - 1] == '\n') {
            size_t f = e;

            while (f < len && buf[f] == '\r')
                f++;
            if (f < len && buf[f] == '\n')
                e = f + 1;
        }
        if (end)
            *end = e;
        return (long)cut;
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
 * device printed before one of them does not survive it (nor, where the
 * prompt counts, its counter: the later sighting is kept). */
static bool agree(const struct nr_devtype *type, const char *a, size_t al, const char *b,
                  size_t bl, char *prompt, size_t cap)
{
    size_t k = common_suffix(a, al, b, bl, counts(type), NULL);

    /* one character only when both sightings are that character alone */
    if ((k < 2 && !(k == 1 && al == 1 && bl == 1)) || k >= cap)
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
            return pl > 0 && agree(type, buf + ls + ts, tl, l + ps, pl, prompt, cap);
        }
        if (n >= cl && memcmp(l + n - cl, command, cl) == 0) {
            pl = nr_cli_prompt_token(type, l, n - cl, &ps);
            return pl > 0 && agree(type, buf + ls + ts, tl, l + ps, pl, prompt, cap);
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

/* term_filter states: what the bytes so far have opened. */
enum { TERM_TEXT = 0, TERM_ESC, TERM_CSI, TERM_STRING, TERM_STRING_ESC, TERM_ONE };

size_t nr_cli_term_filter(int *state, char *p, size_t n)
{
    size_t w = 0;

    for (size_t r = 0; r < n; r++) {
        unsigned char ch = (unsigned char)p[r];

        switch (*state) {
        case TERM_TEXT:
            if (ch == 0x1b)
                *state = TERM_ESC;
            else if (ch >= 0x20 ? ch != 0x7f
                                : ch == '\n' || ch == '\r' || ch == '\b' || ch == '\t')
                p[w++] = (char)ch;
            break;                      /* NUL, BEL and the other controls go */
        case TERM_ESC:
            if (ch == '[')
                *state = TERM_CSI;
            else if (ch == ']' || ch == 'P' || ch == '_' || ch == '^' || ch == 'X')
                *state = TERM_STRING;   /* OSC, DCS, APC, PM, SOS: up to ST or BEL */
            else if (ch >= 0x20 && ch <= 0x2f)
                *state = TERM_ONE;      /* ESC ( B and the like: one more byte */
            else
                *state = TERM_TEXT;     /* ESC and one byte (ESC 7, ESC =, ...) */
            break;
        case TERM_CSI:                  /* parameters, intermediates, a final byte */
            if (ch >= 0x40 && ch <= 0x7e) {
                /* Cursor back or to a column: how pagers such as VRP's
                 * erase themselves ("ESC[16D", blanks, "ESC[16D"); read as
                 * a return to the line start, as nr_cli_erase_len and
                 * nr_cli_clean understand it. */
                if (ch == 'D' || ch == 'G')
                    p[w++] = '\r';
                *state = TERM_TEXT;
            }
            else if (ch < 0x20 || ch > 0x3f) {
                *state = TERM_TEXT;     /* broken off: the byte is text again */
                r--;
            }
            break;
        case TERM_STRING:
            if (ch == '\a')
                *state = TERM_TEXT;
            else if (ch == 0x1b)
                *state = TERM_STRING_ESC;
            else if (ch == '\n') {
                *state = TERM_TEXT;     /* never swallow lines for an unended string */
                r--;
            }
            break;
        case TERM_STRING_ESC:
            *state = TERM_TEXT;
            if (ch != '\\')
                r--;
            break;
        default:                        /* TERM_ONE */
            *state = TERM_TEXT;
            break;
        }
    }
    return w;
}

/* ---- the engine ------------------------------------------------------------ */

struct nr_cli_i {
    char       *buf;            /* the current exchange */
    size_t      len, cap;
    size_t      line_start;     /* offset of buf's last line */
    long        max_output;
    double      connect_s, command_s;
    const char *secret;         /* enable secret (borrowed) */
    int         term;           /* term_filter state, across reads */
    struct nr_redaction red;    /* how commands are shown: patterns and both secrets */
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
    got = nr_cli_term_filter(&i->term, i->buf + i->len, got);
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
    return nr_redact_line(command, &c->i->red);
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

/*
 * Questions a device asks before its first prompt: "Press any key to
 * continue" (ArubaOS-Switch, ProCurve), and, on a row with
 * NR_DT_SHELL_LOGIN, a login of its own in the shell ("User:", then
 * "Password:", after the SSH login: AireOS).  Each answer consumes what
 * was read so far, so a question is answered once.  1 if it answered, 0
 * if the last line asks nothing, negative on failure.
 */
static int greeting_answer(struct nr_cli *c, unsigned *answers)
{
    struct nr_cli_i *i = c->i;
    const struct nr_ssh_target *t = &c->ssh->t;
    const char *l = i->buf + i->line_start;
    size_t n = rstrip_blank(l, i->len - i->line_start);
    const char *text = NULL;
    unsigned flags = 0;

    if (n == 0 || *answers >= GREETING_ANSWERS)
        return 0;
    if (nr_memcasemem(l, n, "press any key", 13)) {
        text = "";
    } else if (c->type->flags & NR_DT_SHELL_LOGIN) {
        if (nr_cli_secret_prompt(i->buf, i->len)) {
            text = t->password ? t->password : "";
            flags = NR_SSH_SECRET;
        } else if (l[n - 1] == ':' &&
                   (nr_memcasemem(l, n, "user", 4) || nr_memcasemem(l, n, "login", 5))) {
            text = t->username ? t->username : "";
        }
    }
    if (text == NULL)
        return 0;
    (*answers)++;
    buf_reset(c);
    return send_line(c, text, flags) < 0 ? -1 : 1;
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
    unsigned answers = 0;
    uint64_t t1;

    c->ssh->stage = NR_SSH_STAGE_PROMPT;
    buf_reset(c);
    while (nr_cli_prompt_token(c->type, i->buf + i->line_start, i->len - i->line_start,
                               NULL) == 0) {
        int answered = greeting_answer(c, &answers);

        if (answered < 0 || (!answered && read_more(c, NR_SSH_STAGE_PROMPT, i->connect_s,
                                                    t0) < 0))
            return -1;
    }
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
    if (end != type->priv_end) {
        /* A platform the table does not know may have no such level: its
         * commands are tried where the prompt stands. */
        if (type->flags & NR_DT_ENABLE_OPTIONAL)
            return 0;
        return nr_ssh_fail(c->ssh, NR_SSH_AUTH, NR_SSH_STAGE_ENABLE,
                           "'%s' refused: the prompt stayed %s%c", type->enable_cmd, base, end);
    }
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
    const struct nr_config *dflt = nr_config_default();    /* keys.def's, for what cfg lacks */

    c->i = i;
    c->type = type ? type : nr_devtype_find(NULL);
    i->connect_s = t->connect_timeout > 0 ? t->connect_timeout
                   : cfg && cfg->worker.connection_timeout > 0 ? cfg->worker.connection_timeout
                                                               : dflt->worker.connection_timeout;
    i->command_s = t->command_timeout > 0 ? t->command_timeout
                   : cfg && cfg->worker.command_timeout > 0 ? cfg->worker.command_timeout
                                                            : dflt->worker.command_timeout;
    i->max_output = cfg && cfg->worker.max_output_bytes > 0 ? cfg->worker.max_output_bytes
                                                            : dflt->worker.max_output_bytes;
    i->secret = enable_secret && enable_secret[0] ? enable_secret : t->password;
    nr_redaction_init(&i->red, cfg);
    nr_redaction_add_secret(&i->red, t->password, NR_KIND_LOGIN_PASSWORD);
    nr_redaction_add_secret(&i->red, i->secret, NR_KIND_ENABLE_SECRET);
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
    size_t erase_at = 0, scan_from = 0, n;
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
        size_t pend = 0;
        long pager;
        bool paged = false;

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
        /* Every pager prompt in the last lines goes (a device that printed
         * a log line after its pager may draw the pager again); one key
         * answers them. */
        while ((pager = nr_cli_find_pager(c->type, i->buf, i->len, scan_from, c->prompt,
                                          &pend)) >= 0) {
            memmove(i->buf + pager, i->buf + pend, i->len - pend);
            buf_truncate(c, i->len - (pend - (size_t)pager));
            scan_from = (size_t)pager;
            paged = true;
        }
        if (paged) {
            char *cmd;

            if (nr_ssh_send(c->ssh, " ", 1, 0) < 0)
                return NR_ERR;
            cmd = shown(c, command);
            NR_LOG(NR_EV_SESSION_PAGER, c->ssh->t.job_id, c->ssh->t.device_id,
                   NR_S("device_name", c->ssh->t.device_name), NR_S("command", cmd));
            free(cmd);
            erase = true;
            erase_at = i->len;
            continue;
        }
        /* A pager prompt may still be arriving: search its length again. */
        if (i->len > scan_from + PAGER_LINE_MAX)
            scan_from = i->len - PAGER_LINE_MAX;
        if (i->line_start > 0 && nr_cli_ends_with_prompt(c->type, i->buf, i->len, c->prompt) &&
            !nr_ssh_pending(c->ssh))
            break;
    }
    /* The last line is the prompt as it stands now (its counter may have
     * moved on since it was learned): it goes here, not by comparison. */
    buf_truncate(c, i->line_start);
    text = nr_cli_clean(i->buf, i->len, command, NULL, &n);
    took = (double)(nr_mono_ns() - t0) / 1e6;
    log_command_done(c, command, n, took);
    *out = text;
    *out_len = n;
    if (ms)
        *ms = took;
    return 0;
}

int nr_cli_config(struct nr_cli *c, bool keep_volatile, char **out, size_t *out_len,
                  size_t *nvolatile)
{
    char *all = NULL, *part;
    size_t len = 0, n, removed = 0;
    int rc;

    for (const char *const *cmd = c->type->config_cmds; *cmd; cmd++) {
        if ((rc = nr_cli_run(c, *cmd, &part, &n, NULL)) < 0) {
            nr_secret_free(all, len);
            return rc;
        }
        if (n > 0) {
            all = nr_realloc(all, len + n + 2);
            memcpy(all + len, part, n);
            len += n;
            if (all[len - 1] != '\n')
                all[len++] = '\n';
            all[len] = '\0';
        }
        nr_secret_free(part, n);
    }
    if (all == NULL)
        all = nr_strdup("");
    if (!keep_volatile)
        len = nr_devtype_strip_volatile(c->type, all, len, &removed);
    *out = all;
    *out_len = len;
    if (nvolatile)
        *nvolatile = removed;
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
