/*
 * term.c - one simulated CLI session (a shell or an exec channel).
 *
 * A state machine over bytes, with no I/O and no clock of its own: the
 * server feeds what the client typed, calls ds_term_step() with the time,
 * and sends t->out.  Latency is a deadline (ready_at) the step reports back,
 * so a slow device never blocks the thread that serves the others.
 *
 *   INPUT  --Enter--> WAIT --latency--> OUTPUT --body sent--> INPUT (prompt)
 *                                         |  ^
 *                                page full v  | key
 *                                         MORE
 *   "enable" -> WAIT -> SECRET (no echo) --Enter--> WAIT -> INPUT
 *   greeting with press_key: ANYKEY --any key--> INPUT (prompt)
 *   in-shell login (shell_user): INPUT "User: " -> SECRET "Password:" -> INPUT
 *   faults: HUNG (say nothing, read nothing), DONE + ABORT (drop the TCP).
 *
 * Every type-specific string comes from the profile row, every quirk of a
 * real device (ANSI prompts, bracketed paste, line ends, log lines at the
 * pager, ...) from a device field; lines are kept with "\n" and leave as
 * the device's line end ("\r\n" by default, as a PTY with onlcr sends).
 */
#include "devsim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_LOW_WATER  8192     /* refill out when it holds less than this */
#define PRODUCE_BUDGET 4096     /* body bytes moved per refill */
#define GARBAGE_EVERY  40       /* body lines between garbage bursts */

static const char fault_motd[] =
    "*** Notice: the lines below are not prompts ***\n"
    "core-rtr01#\n"
    "Password:\n"
    "Username:\n"
    "admin@fw01> \n"
    "RP/0/RSP0/CPU0:edge#\n"
    "switch>\n"
    "% Login invalid\n"
    "*** end of notice ***\n";

/* What "\n" becomes on the wire, by device field line_end. */
static const char *const line_ends[] = {
    [DS_LE_CRLF] = "\r\n", [DS_LE_CRCRLF] = "\r\r\n", [DS_LE_LF] = "\n",
};

#define ESC_PASTE_ON  "\x1b[?2004h"     /* bash 5.1+: before each prompt */
#define ESC_PASTE_OFF "\x1b[?2004l\r"   /*            once a line is read */
#define ESC_BOLD      "\x1b[1m"
#define ESC_RESET     "\x1b[m"

/* Append s to out with "\n" sent as the device's line end. */
static void put_n(struct ds_term *t, const char *s, size_t n)
{
    const char *le = line_ends[t->dev->line_end];

    while (n > 0) {
        const char *nl = memchr(s, '\n', n);
        size_t k = nl ? (size_t)(nl - s) : n;

        ds_buf_add(&t->out, s, k);
        if (!nl)
            break;
        ds_buf_adds(&t->out, le);
        s += k + 1;
        n -= k + 1;
    }
}

static void put(struct ds_term *t, const char *s)
{
    put_n(t, s, strlen(s));
}

/* Expand the profile tokens of fmt into b (no line-end conversion). */
static void expand(const struct ds_term *t, struct ds_buf *b, const char *fmt,
                   const char *word, size_t wlen, long num)
{
    for (const char *p = fmt; *p; p++) {
        if (*p != '%' || p[1] == '\0') {
            ds_buf_add(b, p, 1);
            continue;
        }
        switch (p[1]) {
        case 'h': ds_buf_adds(b, t->dev->hostname); break;
        case 'u': ds_buf_adds(b, t->user); break;
        case 'v': ds_buf_adds(b, t->prof->os_version); break;
        case 'w': ds_buf_add(b, word ? word : "", word ? wlen : 0); break;
        case 'n': ds_buf_printf(b, "%ld", num); break;
        case 'c': ds_buf_printf(b, "%u", t->cmd_count); break;
        case '{': {
            const char *end = strchr(p + 2, '}');

            if (end == NULL) {
                ds_buf_add(b, p, 2);
                break;
            }
            ds_buf_strftime(b, p + 2, (size_t)(end - p - 2), t->vol.when, t->vol.ms);
            p = end - 1;
            break;
        }
        default:  ds_buf_add(b, p, 2); break;
        }
        p++;
    }
}

static void put_expanded(struct ds_term *t, const char *fmt, const char *word, size_t wlen,
                         long num)
{
    struct ds_buf b = {0};

    expand(t, &b, fmt, word, wlen, num);
    put_n(t, ds_buf_head(&b), ds_buf_avail(&b));
    ds_buf_free(&b);
}

static void put_garbage(struct ds_term *t)
{
    unsigned n = 8 + (unsigned)(ds_rand(&t->rng) % 24);
    unsigned char g[32];

    for (unsigned i = 0; i < n; i++)
        g[i] = (unsigned char)ds_rand(&t->rng);
    ds_buf_add(&t->out, g, n);
}

/* The prompt template: the device's prompt / priv_prompt fields win over
 * the type's. */
static const char *prompt_fmt(const struct ds_term *t)
{
    const struct ds_device *d = t->dev;

    if (t->priv && t->prof->priv_prompt)
        return d->priv_prompt[0] ? d->priv_prompt : t->prof->priv_prompt;
    return d->prompt[0] ? d->prompt : t->prof->user_prompt;
}

static void put_prompt(struct ds_term *t, bool lead)
{
    const struct ds_device *d = t->dev;
    struct ds_buf b = {0};
    size_t n;

    if (lead)
        put(t, t->prof->prompt_lead);
    if (d->faults.garbage)
        put_garbage(t);
    if (d->bracketed_paste)
        ds_buf_adds(&t->out, ESC_PASTE_ON);
    if (!d->ansi_prompt) {
        put_expanded(t, prompt_fmt(t), NULL, 0, 0);
        return;
    }
    /* Bold, and the reset in front of the trailing blank (as Aruba and
     * others send "host#ESC[m "); a prompt without one gets one. */
    expand(t, &b, prompt_fmt(t), NULL, 0, 0);
    for (n = ds_buf_avail(&b); n > 0 && ds_buf_head(&b)[n - 1] == ' '; n--)
        ;
    ds_buf_adds(&t->out, ESC_BOLD);
    put_n(t, ds_buf_head(&b), n);
    ds_buf_adds(&t->out, ESC_RESET);
    if (n < ds_buf_avail(&b))
        put_n(t, ds_buf_head(&b) + n, ds_buf_avail(&b) - n);
    else
        ds_buf_add(&t->out, " ", 1);
    ds_buf_free(&b);
}

/* One syslog line of the device (pager_log, async_log), without its ends. */
static void put_syslog(struct ds_term *t, bool async)
{
    struct ds_buf b = {0};

    ds_syslog_line(&b, t->dev, &t->vol, async);
    put_n(t, ds_buf_head(&b), ds_buf_avail(&b));
    ds_buf_free(&b);
}

static const struct ds_vol *session_vol(const struct ds_term *t)
{
    return t->dev->volatile_lines ? &t->vol : NULL;
}

/* The command (or greeting) is over: the prompt, or the end of an exec. */
static void finish(struct ds_term *t)
{
    free(t->body);
    t->body = NULL;
    if (t->exec) {
        t->action = DS_TA_CLOSE;
        t->st = DS_T_DONE;
        return;
    }
    put_prompt(t, true);
    t->st = DS_T_INPUT;
}

static void start_output(struct ds_term *t, char *body, size_t len, bool is_config)
{
    t->async_done = false;
    t->split_line = false;
    if (body == NULL) {
        put(t, "% Out of memory\n");
        finish(t);
        return;
    }
    t->body = body;
    t->body_len = len;
    t->body_pos = 0;
    t->body_is_config = is_config;
    t->page_left = t->page_len && !t->exec ? (t->page_len > 1 ? t->page_len - 1 : 1) : UINT32_MAX;
    t->garbage_lines = 0;
    t->st = DS_T_OUTPUT;
}

static void start_text(struct ds_term *t, const char *fmt, const char *word, size_t wlen)
{
    struct ds_buf b = {0};
    size_t len;
    char *s;

    expand(t, &b, fmt, word, wlen, 0);
    s = b.failed ? NULL : ds_buf_steal(&b, &len);
    ds_buf_free(&b);
    start_output(t, s, s ? len : 0, false);
}

static const char *enable_secret(const struct ds_term *t)
{
    return t->prof->enable_login_password ? t->login_password : t->dev->enable_secret;
}

static void ask_secret(struct ds_term *t)
{
    put_expanded(t, t->prof->enable_prompt, NULL, 0, 0);
    t->st = DS_T_SECRET;
}

static void check_secret(struct ds_term *t, const char *typed)
{
    if (strcmp(typed, enable_secret(t)) == 0) {
        t->priv = true;
        finish(t);
    } else if (++t->secret_tries < t->prof->enable_tries) {
        if (t->prof->enable_retry[0]) {
            put_expanded(t, t->prof->enable_retry, NULL, 0, 0);
            put(t, "\n");
        }
        ask_secret(t);
    } else {
        put_expanded(t, t->prof->enable_fail, NULL, 0, 0);
        put(t, "\n");
        finish(t);
    }
}

static void invalid(struct ds_term *t, const char *line, size_t wpos, size_t wlen)
{
    if (t->prof->invalid_caret && !t->exec) {
        struct ds_buf p = {0};

        expand(t, &p, prompt_fmt(t), NULL, 0, 0);
        for (size_t i = 0; i < ds_buf_avail(&p) + wpos; i++)
            ds_buf_add(&t->out, " ", 1);
        put(t, "^\n");
        ds_buf_free(&p);
    }
    put_expanded(t, t->prof->invalid, line + wpos, wlen, 0);
    put(t, "\n");
    t->exit_status = 1;
}

/* The in-shell login of shell_user types (AireOS): the device's accounts. */
static void shell_login(struct ds_term *t, const char *typed)
{
    const struct ds_device *d = t->dev;

    if (t->login == DS_L_USER) {
        snprintf(t->login_user, sizeof t->login_user, "%.*s", DS_NAME_MAX - 1, typed);
        put_expanded(t, t->prof->shell_pass, NULL, 0, 0);
        t->login = DS_L_PASS;
        t->st = DS_T_SECRET;
        return;
    }
    for (uint32_t i = 0; i < d->naccounts; i++) {
        if (strcmp(d->accounts[i].username, t->login_user) == 0 &&
            strcmp(d->accounts[i].password, typed) == 0) {
            snprintf(t->user, sizeof t->user, "%s", t->login_user);
            t->login = DS_L_DONE;
            put_prompt(t, false);
            t->st = DS_T_INPUT;
            return;
        }
    }
    put_expanded(t, t->prof->shell_user, NULL, 0, 0);
    t->login = DS_L_USER;
    t->st = DS_T_INPUT;
}

static void run_line(struct ds_term *t)
{
    const struct ds_device *d = t->dev;
    char line[DS_LINE_MAX];
    const struct ds_cmd *c;
    size_t wpos = 0, wlen, rest, len;
    long num = 0;

    memcpy(line, t->line, t->line_len);
    line[t->line_len] = '\0';
    t->line_len = 0;
    if (t->login != DS_L_DONE) {
        t->line_is_secret = false;
        shell_login(t, line);
        return;
    }
    if (t->line_is_secret) {
        t->line_is_secret = false;
        check_secret(t, line);
        return;
    }
    while (line[wpos] == ' ')
        wpos++;
    for (wlen = 0; line[wpos + wlen] && line[wpos + wlen] != ' '; wlen++)
        ;
    if (wlen == 0) {
        finish(t);
        return;
    }
    t->cmd_count++;
    c = ds_profile_match(t->prof, line, t->priv, &num, &rest);
    if (c == NULL) {
        invalid(t, line, wpos, wlen);
        finish(t);
        return;
    }
    if (c->reply) {
        put_expanded(t, c->reply, line + wpos, wlen, num);
        put(t, "\n");
    }
    switch (c->act) {
    case DS_ACT_NOOP:
        break;
    case DS_ACT_PAGE_LEN:
        /* pager_sticky: accepted and ignored, as where a user may not
         * change the terminal length (an AAA command set) */
        if (!d->pager_sticky)
            t->page_len = (uint32_t)num;
        break;
    case DS_ACT_PAGER_OFF:
        if (!d->pager_sticky)
            t->page_len = 0;
        break;
    case DS_ACT_PAGER_ON:
        t->page_len = d->page_lines;
        break;
    case DS_ACT_SHOW_CONFIG:
    case DS_ACT_SHOW_STATUS: {
        bool cfg_part = c->act == DS_ACT_SHOW_CONFIG;
        char *text = ds_config_generate(d, cfg_part ? DS_PART_CONFIG : DS_PART_STATUS,
                                        d->config_revision + t->revision, session_vol(t),
                                        &len);

        start_output(t, text, text ? len : 0, cfg_part);
        return;
    }
    case DS_ACT_SHOW_VERSION:
        start_text(t, t->prof->version_text, NULL, 0);
        return;
    case DS_ACT_ENABLE:
        if (t->priv)
            break;
        if (enable_secret(t)[0] == '\0') {
            t->priv = true;
            break;
        }
        t->secret_tries = 0;
        ask_secret(t);
        return;
    case DS_ACT_DISABLE:
        t->priv = false;
        break;
    case DS_ACT_EXIT:
        if (t->prof->exit_unprivs && t->priv && !t->prof->starts_priv &&
            !d->privileged_login) {
            t->priv = false;
            break;
        }
        t->action = DS_TA_CLOSE;
        t->st = DS_T_DONE;
        return;
    case DS_ACT_ECHO:
        start_text(t, "%w\n", line + rest, strlen(line + rest));
        return;
    case DS_ACT_WHOAMI:
        start_text(t, t->priv && t->prof->exit_unprivs ? "root\n" : "%u\n", NULL, 0);
        return;
    case DS_ACT_HOSTNAME:
        start_text(t, "%h\n", NULL, 0);
        return;
    }
    finish(t);
}

/* The pager prompt (with the percentage shown where it has one), and the
 * pager_log line behind it. */
static void show_pager(struct ds_term *t)
{
    struct ds_buf b = {0};
    long pct = t->body_len ? (long)(t->body_pos * 100 / t->body_len) : 100;

    expand(t, &b, t->prof->pager, NULL, 0, pct);
    t->pager_len = ds_buf_avail(&b);
    put_n(t, ds_buf_head(&b), ds_buf_avail(&b));
    ds_buf_free(&b);
    if (t->dev->pager_log) {
        put(t, "\n");
        put_syslog(t, false);
        put(t, "\n");
    }
    t->st = DS_T_MORE;
}

/* Move up to PRODUCE_BUDGET body bytes to out, honouring pager and faults. */
static void produce(struct ds_term *t)
{
    const struct ds_device *d = t->dev;
    const struct ds_faults *f = &d->faults;
    size_t budget = PRODUCE_BUDGET;

    while (budget > 0 && t->body_pos < t->body_len) {
        const char *s = t->body + t->body_pos, *nl;
        size_t n;

        if (t->body_is_config && (f->hang_mid_output || f->disconnect_mid_output) &&
            t->body_pos >= t->body_len / 2) {
            free(t->body);
            t->body = NULL;
            if (f->hang_mid_output) {
                t->st = DS_T_HUNG;
            } else {
                t->action = DS_TA_ABORT;
                t->st = DS_T_DONE;
            }
            return;
        }
        nl = memchr(s, '\n', t->body_len - t->body_pos);
        if (t->page_left == 0) {
            /* pager_midline: half the next line comes before the pager. */
            n = nl ? (size_t)(nl - s) : t->body_len - t->body_pos;
            if (d->pager_midline && !t->split_line && n / 2 > 0) {
                put_n(t, s, n / 2);
                t->body_pos += n / 2;
                t->split_line = true;
            }
            show_pager(t);
            return;
        }
        if (t->body_is_config && d->async_log && !t->async_done &&
            t->body_pos > 0 && t->body_pos >= t->body_len / 2 &&
            t->body[t->body_pos - 1] == '\n') {
            put_syslog(t, true);
            put(t, "\n");
            t->async_done = true;
        }
        n = nl ? (size_t)(nl - s) + 1 : t->body_len - t->body_pos;
        put_n(t, s, n);
        t->body_pos += n;
        budget = n >= budget ? 0 : budget - n;
        if (t->page_left != UINT32_MAX)
            t->page_left--;
        if (f->garbage && ++t->garbage_lines % GARBAGE_EVERY == 0)
            put_garbage(t);
    }
    if (t->body_pos >= t->body_len)
        finish(t);
}

static void pager_key(struct ds_term *t, unsigned char c)
{
    size_t n = t->pager_len;
    int erase = t->dev->pager_erase != DS_ERASE_TYPE ? t->dev->pager_erase
                                                      : (int)t->prof->pager_erase;

    t->split_line = false;
    switch (erase) {
    case DS_ERASE_BS:
        for (size_t i = 0; i < n; i++)
            ds_buf_add(&t->out, "\b", 1);
        for (size_t i = 0; i < n; i++)
            ds_buf_add(&t->out, " ", 1);
        for (size_t i = 0; i < n; i++)
            ds_buf_add(&t->out, "\b", 1);
        break;
    case DS_ERASE_CR:
        ds_buf_add(&t->out, "\r", 1);
        for (size_t i = 0; i < n; i++)
            ds_buf_add(&t->out, " ", 1);
        ds_buf_add(&t->out, "\r", 1);
        break;
    case DS_ERASE_ANSI:
        ds_buf_printf(&t->out, "\x1b[%zuD", n);
        for (size_t i = 0; i < n; i++)
            ds_buf_add(&t->out, " ", 1);
        ds_buf_printf(&t->out, "\x1b[%zuD", n);
        break;
    case DS_ERASE_NONE:
    default:
        break;
    }
    if (c == 'q' || c == 'Q' || c == 0x03) {
        finish(t);
        return;
    }
    if (c == '\r' || c == '\n')
        t->page_left = 1;
    else
        t->page_left = t->page_len > 1 ? t->page_len - 1 : 1;
    t->st = DS_T_OUTPUT;
}

static void submit(struct ds_term *t, uint64_t now)
{
    if (t->prof->enter_echo)
        ds_buf_adds(&t->out, t->prof->enter_echo);
    else
        put(t, "\n");
    if (t->dev->bracketed_paste && t->st == DS_T_INPUT)
        ds_buf_adds(&t->out, ESC_PASTE_OFF);
    t->line_is_secret = t->st == DS_T_SECRET;
    t->st = DS_T_WAIT;
    t->ready_at = now + t->dev->latency_ms;
}

static void key(struct ds_term *t, unsigned char c, uint64_t now)
{
    bool echo = t->st == DS_T_INPUT;

    if (c == '\n' && t->skip_lf) {
        t->skip_lf = false;
        return;
    }
    t->skip_lf = c == '\r';
    if (t->st == DS_T_MORE) {
        pager_key(t, c);
        return;
    }
    if (t->st == DS_T_ANYKEY) {     /* press_key: any key shows the prompt */
        put(t, "\n");
        put_prompt(t, false);
        t->st = DS_T_INPUT;
        return;
    }
    if (c == '\r' || c == '\n') {
        submit(t, now);
    } else if (c == 0x7f || c == 0x08) {
        if (t->line_len > 0) {
            t->line_len--;
            if (echo)
                ds_buf_add(&t->out, "\b \b", 3);
        }
    } else if (c == 0x15) {         /* ^U: kill the line */
        for (; t->line_len > 0; t->line_len--)
            if (echo)
                ds_buf_add(&t->out, "\b \b", 3);
    } else if (c >= 0x20 && c < 0x7f) {
        if (t->line_len < DS_LINE_MAX - 1) {
            t->line[t->line_len++] = (char)c;
            if (echo)
                ds_buf_add(&t->out, &c, 1);
        }
    }
    /* other control bytes: ignored, as the CLIs do */
}

void ds_term_init(struct ds_term *t, const struct ds_device *dev, const char *user,
                  const char *login_password, uint32_t revision, const char *exec_cmd)
{
    bool pager = dev->pager < 0 ? dev->profile->pager_default : dev->pager > 0;

    memset(t, 0, sizeof *t);
    t->dev = dev;
    t->prof = dev->profile;
    snprintf(t->user, sizeof t->user, "%s", user);
    snprintf(t->login_password, sizeof t->login_password, "%s", login_password);
    t->revision = revision;
    ds_vol_init(&t->vol, t->user);
    t->cmd_count = 1;
    t->priv = t->prof->starts_priv || dev->privileged_login;
    t->page_len = pager ? dev->page_lines : 0;
    t->rng = ds_hash64(dev->name, ds_now_ms());
    if (exec_cmd) {
        t->exec = true;
        t->line_len = strnlen(exec_cmd, DS_LINE_MAX - 1);
        memcpy(t->line, exec_cmd, t->line_len);
    }
}

void ds_term_start(struct ds_term *t, uint64_t now)
{
    if (t->dev->faults.hang_after_auth) {
        t->st = DS_T_HUNG;
        return;
    }
    if (t->exec) {
        t->st = DS_T_WAIT;
        t->ready_at = now + t->dev->latency_ms;
        return;
    }
    if (t->dev->faults.banner_prompts)
        put(t, fault_motd);
    put_expanded(t, t->prof->motd, NULL, 0, 0);
    if (t->dev->banner[0]) {
        size_t n = strlen(t->dev->banner);

        put(t, t->dev->banner);
        if (t->dev->banner[n - 1] != '\n')
            put(t, "\n");
    }
    put(t, "\n");
    t->st = DS_T_INPUT;
    if (t->prof->press_key) {
        put_expanded(t, t->prof->press_key, NULL, 0, 0);
        t->st = DS_T_ANYKEY;
    } else if (t->prof->shell_user) {
        put_expanded(t, t->prof->shell_user, NULL, 0, 0);
        t->login = DS_L_USER;
    } else {
        put_prompt(t, false);
    }
}

void ds_term_input(struct ds_term *t, const void *p, size_t n)
{
    size_t room = DS_INPUT_MAX > ds_buf_avail(&t->in) ? DS_INPUT_MAX - ds_buf_avail(&t->in) : 0;

    if (t->st == DS_T_HUNG || t->st == DS_T_DONE) {
        t->in_dropped += n;
        return;
    }
    if (n > room) {
        t->in_dropped += n - room;
        n = room;
    }
    ds_buf_add(&t->in, p, n);
}

uint64_t ds_term_step(struct ds_term *t, uint64_t now)
{
    for (;;) {
        switch (t->st) {
        case DS_T_INPUT:
        case DS_T_SECRET:
        case DS_T_MORE:
        case DS_T_ANYKEY:
            if (ds_buf_avail(&t->in) == 0)
                return 0;
            /* A full out buffer stops the reading (a client pasting
             * megabytes gets its echo paced by the drain). */
            if (ds_buf_avail(&t->out) >= OUT_LOW_WATER * 4)
                return 0;
            {
                unsigned char c = (unsigned char)*ds_buf_head(&t->in);

                ds_buf_consume(&t->in, 1);
                key(t, c, now);
            }
            break;
        case DS_T_WAIT:
            if (now < t->ready_at)
                return t->ready_at;
            run_line(t);
            break;
        case DS_T_OUTPUT:
            if (ds_buf_avail(&t->out) >= OUT_LOW_WATER)
                return 0;
            produce(t);
            break;
        case DS_T_HUNG:
        case DS_T_DONE:
            ds_buf_reset(&t->in);
            return 0;
        }
    }
}

void ds_term_clear(struct ds_term *t)
{
    free(t->body);
    ds_buf_free(&t->in);
    ds_buf_free(&t->out);
    memset(t, 0, sizeof *t);
}
