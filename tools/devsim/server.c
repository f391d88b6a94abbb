/*
 * server.c - the SSH side of devsim.
 *
 * DESIGN
 *   Threads: the main thread accepts (devsim.c, epoll over every device's
 *   listening socket) and hands each new socket to the least busy of N loop
 *   threads through that thread's bounded queue plus an eventfd.  A loop
 *   thread owns its connections entirely.  Its epoll set holds the eventfd
 *   and every session's socket; when a socket is ready the loop runs
 *   ssh_event_dopoll(0) on that session's own ssh_event, and libssh calls
 *   back (non-blocking server: ssh_server_callbacks for password auth and
 *   channel open, the message callback for keyboard-interactive,
 *   ssh_channel_callbacks for pty/shell/exec/data).
 *
 *   Why one ssh_event per session and not one for all: libssh flushes a
 *   channel write by polling the session's poll context, and in a shared
 *   event that context holds every session, so each write would poll them
 *   all, and another client's disconnect seen there marks the writing
 *   session as failed (ssh_handle_packets sets SSH_SESSION_STATE_ERROR).
 *
 *   Callbacks only record what happened and mark the connection dirty;
 *   all writing, closing and freeing happens in pump(), after the poll,
 *   never inside libssh's poll loop.
 *
 *   Time: each connection has one wake time (the earliest of its latency
 *   deadline, output pacing, login and idle timeouts); a binary heap per
 *   thread gives epoll_wait its timeout.  Nothing sleeps.
 *
 *   Memory: per connection, the terminal's output buffer is refilled only
 *   below a low-water mark, and pump() writes to libssh only while the
 *   channel window is open and libssh's socket buffer is empty, so a client
 *   that stops reading holds at most a few tens of KB.  The hand-off queue
 *   and the session count are capped; overflow is counted and logged.
 */
#include "devsim.h"

#include <errno.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUEUE_CAP      1024     /* hand-off queue per loop thread */
#define SWEEP_MS       1000     /* safety net: look for dead sessions */
#define MAX_EVENTS     256
#define WRITE_CHUNK    16384
#define PUMP_BUDGET    65536    /* bytes per connection per turn */
#define MAX_AUTH_TRIES 6
#define CLOSE_GRACE_MS 2000

static const char banner_text[] =
    "\r\n*** Authorized access only. Lines below are not prompts. ***\r\n"
    "router#\r\n"
    "Password:\r\n"
    "lab-sw01>\r\n"
    "Username:\r\n\r\n";

struct dlink {
    struct dlink *prev, *next;
};

static void dl_init(struct dlink *h) { h->prev = h->next = h; }
static bool dl_linked(const struct dlink *n) { return n->next != NULL; }

static void dl_push(struct dlink *h, struct dlink *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static void dl_unlink(struct dlink *n)
{
    if (!dl_linked(n))
        return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

#define FROM(ptr, member) \
    ((struct conn *)((char *)(ptr) - offsetof(struct conn, member)))

enum phase {
    PH_DELAY,                   /* raw TCP; SSH starts at kex_at (0 = now) */
    PH_SSH,
};

struct loop;

struct conn {
    struct loop      *loop;
    struct ds_device *dev;
    ssh_session       sess;
    int               fd;           /* ours until libssh takes it */
    enum phase        phase;
    ssh_event         ev;           /* this session's own event */
    int               reg_fd;       /* the socket in the loop's epoll, or -1 */
    uint32_t          ep_mask;
    bool              kill;         /* tear down at the next pump */
    bool              authed;
    bool              banner_sent;
    ssh_channel       chan;
    bool              chan_closed;  /* the client closed it */
    bool              chan_local_closed;
    bool              term_active;
    bool              term_start;
    bool              closing;      /* shell ended: disconnect soon */
    bool              aborting;     /* fault: drop TCP once flushed */
    unsigned          auth_failures;
    char              user[DS_NAME_MAX];
    char              password[DS_SECRET_MAX];
    char              kbd_user[DS_NAME_MAX];
    struct ds_term    term;
    struct ssh_server_callbacks_struct  scb;
    struct ssh_channel_callbacks_struct ccb;

    uint64_t kex_at, login_deadline, last_active, close_deadline, tx_next;
    double   tokens;
    uint64_t tokens_at;
    uint64_t bytes_out;

    uint64_t     wake_at;
    long         heap_idx;          /* -1 when not scheduled */
    struct dlink dirty;             /* in loop->dirty when linked */
    struct dlink all;
};

struct handoff {
    int               fd;
    struct ds_device *dev;
};

struct loop {
    struct ds_server *srv;
    unsigned          id;
    pthread_t         tid;
    bool              started;
    int               ep;           /* epoll: eventfd + session sockets */
    int               efd;
    pthread_mutex_t   mu;
    struct handoff    q[QUEUE_CAP];
    unsigned          qhead;
    atomic_uint       qlen;         /* changed under mu; read without it */
    atomic_bool       stop;
    atomic_uint       nconns;
    struct conn     **heap;
    size_t            hlen, hcap;
    struct dlink      dirty;
    struct dlink      conns;
    uint64_t          last_sweep;
};

struct bindent {
    char       key_path[2 * DS_STR_MAX + 2 * DS_NAME_MAX];
    const char *ssh_version;
    ssh_bind   bind;
};

struct ds_server {
    struct ds_inventory *inv;
    struct ds_opts       o;
    char                 state_dir[DS_STR_MAX];
    struct loop         *loops;
    unsigned             nloops;
    struct bindent      *binds;
    size_t               nbinds;
    pthread_mutex_t      bind_mu;
    atomic_uint          revision;
    atomic_uint          sessions;
    atomic_ullong        n_accepted, n_refused, n_overflow, n_auth_ok, n_auth_fail,
                         n_closed, n_bytes;
    atomic_ullong        last_overflow_log;
};

/* ---- host keys and binds -------------------------------------------- */

static int mkdir_p(const char *path)
{
    char tmp[2 * DS_STR_MAX + 2 * DS_NAME_MAX];

    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int key_type(const char *name, enum ssh_keytypes_e *t)
{
    if (strcmp(name, "ed25519") == 0)
        *t = SSH_KEYTYPE_ED25519;
    else if (strcmp(name, "rsa") == 0)
        *t = SSH_KEYTYPE_RSA;
    else
        return -1;
    return 0;
}

/* Make sure the key file exists (generating it once); 0 or -1 (err). */
static int ensure_key(const char *path, enum ssh_keytypes_e type, char *err, size_t errlen)
{
    ssh_key key = NULL;

    if (access(path, R_OK) == 0)
        return 0;
    if (ssh_pki_generate(type, type == SSH_KEYTYPE_RSA ? 2048 : 0, &key) != SSH_OK) {
        snprintf(err, errlen, "cannot generate a host key");
        return -1;
    }
    if (ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path) != SSH_OK) {
        ssh_key_free(key);
        snprintf(err, errlen, "cannot write host key %s", path);
        return -1;
    }
    ssh_key_free(key);
    chmod(path, 0600);
    return 0;
}

/* The bind of a host key (key_path: one private key file, or two separated
 * by a newline for a device that holds keys of two types). */
static ssh_bind bind_for(struct ds_server *s, const char *key_path, const char *ssh_version,
                         char *err, size_t errlen)
{
    struct bindent *e;
    ssh_bind b;
    bool no = false;
    int verbosity = s->o.ssh_log;
    char paths[sizeof e->key_path], *save = NULL;

    for (size_t i = 0; i < s->nbinds; i++)
        if (strcmp(s->binds[i].key_path, key_path) == 0 &&
            strcmp(s->binds[i].ssh_version, ssh_version) == 0)
            return s->binds[i].bind;
    b = ssh_bind_new();
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ssh_bind_options_set(b, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no);
    ssh_bind_options_set(b, SSH_BIND_OPTIONS_LOG_VERBOSITY, &verbosity);
    ssh_bind_options_set(b, SSH_BIND_OPTIONS_BANNER, ssh_version);
    snprintf(paths, sizeof paths, "%s", key_path);
    for (char *path = strtok_r(paths, "\n", &save); path; path = strtok_r(NULL, "\n", &save)) {
        ssh_key key = NULL;

        if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK) {
            snprintf(err, errlen, "cannot read host key %s", path);
            ssh_bind_free(b);
            return NULL;
        }
        /* The bind owns the key from here on. */
        if (ssh_bind_options_set(b, SSH_BIND_OPTIONS_IMPORT_KEY, key) != SSH_OK) {
            snprintf(err, errlen, "host key %s: %s", path, ssh_get_error(b));
            ssh_key_free(key);
            ssh_bind_free(b);
            return NULL;
        }
    }
    e = realloc(s->binds, (s->nbinds + 1) * sizeof *e);
    if (e == NULL) {
        ssh_bind_free(b);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->binds = e;
    e = &s->binds[s->nbinds++];
    snprintf(e->key_path, sizeof e->key_path, "%s", key_path);
    e->ssh_version = ssh_version;
    e->bind = b;
    return b;
}

static int setup_keys(struct ds_server *s, char *err, size_t errlen)
{
    enum ssh_keytypes_e deftype;
    char path[2 * DS_STR_MAX + 2 * DS_NAME_MAX];

    if (key_type(s->o.host_key_type, &deftype) < 0) {
        snprintf(err, errlen, "host key type %s: want ed25519 or rsa", s->o.host_key_type);
        return -1;
    }
    if (mkdir_p(s->state_dir) < 0) {
        snprintf(err, errlen, "state dir %s: %s", s->state_dir, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < s->inv->ndevs; i++) {
        struct ds_device *d = &s->inv->devs[i];
        const char *hk = d->host_key;
        enum ssh_keytypes_e t = deftype;
        const char *tname = s->o.host_key_type;

        if (hk[0] == '\0' || strcmp(hk, "shared") == 0 || key_type(hk, &t) == 0) {
            if (hk[0] && strcmp(hk, "shared") != 0)
                tname = hk;
            snprintf(path, sizeof path, "%s/ssh_host_%s_key", s->state_dir, tname);
            if (ensure_key(path, t, err, errlen) < 0)
                return -1;
        } else if (strcmp(hk, "both") == 0) {
            /* the shared ed25519 and rsa keys, as a server with two types */
            char rsa[sizeof path];

            snprintf(path, sizeof path, "%s/ssh_host_ed25519_key", s->state_dir);
            snprintf(rsa, sizeof rsa, "%s/ssh_host_rsa_key", s->state_dir);
            if (ensure_key(path, SSH_KEYTYPE_ED25519, err, errlen) < 0 ||
                ensure_key(rsa, SSH_KEYTYPE_RSA, err, errlen) < 0)
                return -1;
            size_t pl = strlen(path), rl = strlen(rsa);

            if (pl + 1 + rl >= sizeof path) {
                snprintf(err, errlen, "state dir %s: path too long", s->state_dir);
                return -1;
            }
            path[pl] = '\n';
            memcpy(path + pl + 1, rsa, rl + 1);
        } else if (strcmp(hk, "per-device") == 0) {
            snprintf(path, sizeof path, "%s/keys", s->state_dir);
            if (mkdir_p(path) < 0) {
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
                return -1;
            }
            snprintf(path, sizeof path, "%s/keys/%s_%s_key", s->state_dir, d->name, tname);
            if (ensure_key(path, t, err, errlen) < 0)
                return -1;
        } else {
            snprintf(path, sizeof path, "%s", hk);
        }
        d->bind = bind_for(s, path, d->profile->ssh_version, err, errlen);
        if (d->bind == NULL)
            return -1;
    }
    return 0;
}

/* ---- scheduling ------------------------------------------------------ */

static void heap_swap(struct loop *l, size_t a, size_t b)
{
    struct conn *t = l->heap[a];

    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_idx = (long)a;
    l->heap[b]->heap_idx = (long)b;
}

static void heap_fix(struct loop *l, size_t i)
{
    while (i > 0 && l->heap[(i - 1) / 2]->wake_at > l->heap[i]->wake_at) {
        heap_swap(l, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t m = i, a = 2 * i + 1, b = a + 1;

        if (a < l->hlen && l->heap[a]->wake_at < l->heap[m]->wake_at)
            m = a;
        if (b < l->hlen && l->heap[b]->wake_at < l->heap[m]->wake_at)
            m = b;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

static void heap_remove(struct loop *l, struct conn *c)
{
    size_t i = (size_t)c->heap_idx;

    if (c->heap_idx < 0)
        return;
    c->heap_idx = -1;
    l->hlen--;
    if (i == l->hlen)
        return;
    l->heap[i] = l->heap[l->hlen];
    l->heap[i]->heap_idx = (long)i;
    heap_fix(l, i);
}

/* Wake c at `at` (0: not at all). */
static void schedule(struct conn *c, uint64_t at)
{
    struct loop *l = c->loop;

    if (at == 0) {
        heap_remove(l, c);
        return;
    }
    c->wake_at = at;
    if (c->heap_idx >= 0) {
        heap_fix(l, (size_t)c->heap_idx);
        return;
    }
    if (l->hlen == l->hcap) {
        size_t cap = l->hcap ? l->hcap * 2 : 64;
        struct conn **h = realloc(l->heap, cap * sizeof *h);

        if (h == NULL) {        /* cannot schedule: the sweep still reaps it */
            ds_log(0, "out of memory for timers");
            return;
        }
        l->heap = h;
        l->hcap = cap;
    }
    l->heap[l->hlen] = c;
    c->heap_idx = (long)l->hlen++;
    heap_fix(l, (size_t)c->heap_idx);
}

static void mark_dirty(struct conn *c)
{
    if (!dl_linked(&c->dirty))
        dl_push(&c->loop->dirty, &c->dirty);
}

/* ---- connection life ------------------------------------------------ */

static void conn_free(struct conn *c, const char *why)
{
    struct loop *l = c->loop;

    heap_remove(l, c);
    dl_unlink(&c->dirty);
    dl_unlink(&c->all);
    if (c->sess) {
        /* ssh_disconnect / ssh_free free the channel. */
        if (c->chan)
            ssh_remove_channel_callbacks(c->chan, &c->ccb);
        c->chan = NULL;
        if (c->reg_fd >= 0 && ssh_get_fd(c->sess) == c->reg_fd)
            epoll_ctl(l->ep, EPOLL_CTL_DEL, c->reg_fd, NULL);
        if (c->ev) {
            ssh_event_remove_session(c->ev, c->sess);
            ssh_event_free(c->ev);
        }
        if (ssh_is_connected(c->sess))
            ssh_disconnect(c->sess);
        ssh_free(c->sess);
    } else if (c->fd >= 0) {
        close(c->fd);
    }
    ds_log(2, "%s: session closed (%s), %llu bytes sent", c->dev->name, why,
           (unsigned long long)c->bytes_out);
    ds_term_clear(&c->term);
    atomic_fetch_add(&l->srv->n_closed, 1);
    atomic_fetch_sub(&l->srv->sessions, 1);
    atomic_fetch_sub(&l->nconns, 1);
    free(c);
}

static void send_banner(struct conn *c)
{
    ssh_string s;

    if (!c->dev->faults.banner_prompts || c->banner_sent)
        return;
    c->banner_sent = true;
    s = ssh_string_from_char(banner_text);
    if (s) {
        ssh_send_issue_banner(c->sess, s);
        ssh_string_free(s);
    }
}

/* SSH_AUTH_SUCCESS if user/password is one of the device's accounts. */
static int check_login(struct conn *c, const char *user, const char *password)
{
    struct ds_server *s = c->loop->srv;
    const struct ds_device *d = c->dev;

    if (user && password && !d->faults.reject_auth) {
        for (uint32_t i = 0; i < d->naccounts; i++) {
            if (strcmp(d->accounts[i].username, user) == 0 &&
                strcmp(d->accounts[i].password, password) == 0) {
                c->authed = true;
                snprintf(c->user, sizeof c->user, "%s", user);
                snprintf(c->password, sizeof c->password, "%s", password);
                atomic_fetch_add(&s->n_auth_ok, 1);
                ds_log(2, "%s: %s logged in", d->name, user);
                return SSH_AUTH_SUCCESS;
            }
        }
    }
    atomic_fetch_add(&s->n_auth_fail, 1);
    ds_log(2, "%s: login failed for %s", d->name, user ? user : "?");
    if (++c->auth_failures >= MAX_AUTH_TRIES) {
        c->kill = true;
        mark_dirty(c);
    }
    return SSH_AUTH_DENIED;
}

static int cb_auth_none(ssh_session sess, const char *user, void *ud)
{
    (void)sess;
    (void)user;
    send_banner(ud);
    return SSH_AUTH_DENIED;
}

static int cb_auth_password(ssh_session sess, const char *user, const char *password, void *ud)
{
    struct conn *c = ud;

    (void)sess;
    send_banner(c);
    if (c->dev->faults.kbdint_only)
        return SSH_AUTH_DENIED;
    return check_login(c, user, password);
}

/* Messages the server callbacks do not take: keyboard-interactive here;
 * everything else gets libssh's default (refusal) reply. */
static int cb_message(ssh_session sess, ssh_message m, void *ud)
{
    struct conn *c = ud;
    const char *prompts[1] = {"Password: "};
    char echo[1] = {0};

    if (ssh_message_type(m) != SSH_REQUEST_AUTH ||
        ssh_message_subtype(m) != SSH_AUTH_METHOD_INTERACTIVE)
        return 1;
    send_banner(c);
    if (!ssh_message_auth_kbdint_is_response(m)) {
        const char *u = ssh_message_auth_user(m);

        snprintf(c->kbd_user, sizeof c->kbd_user, "%s", u ? u : "");
        ssh_message_auth_interactive_request(m, "", "", 1, prompts, echo);
        return 0;
    }
    if (ssh_userauth_kbdint_getnanswers(sess) == 1 &&
        check_login(c, c->kbd_user, ssh_userauth_kbdint_getanswer(sess, 0)) == SSH_AUTH_SUCCESS)
        ssh_message_auth_reply_success(m, 0);
    else
        ssh_message_reply_default(m);
    return 0;
}

static int cb_data(ssh_session sess, ssh_channel ch, void *data, uint32_t len, int is_stderr,
                   void *ud)
{
    struct conn *c = ud;

    (void)sess;
    (void)is_stderr;
    if (ch == c->chan && c->term_active) {
        ds_term_input(&c->term, data, len);
        c->last_active = ds_now_ms();
        mark_dirty(c);
    }
    return (int)len;
}

static void cb_close(ssh_session sess, ssh_channel ch, void *ud)
{
    struct conn *c = ud;

    (void)sess;
    if (ch == c->chan) {
        c->chan_closed = true;
        mark_dirty(c);
    }
}

static int cb_pty(ssh_session sess, ssh_channel ch, const char *term, int w, int h, int pw,
                  int ph, void *ud)
{
    (void)sess, (void)ch, (void)term, (void)w, (void)h, (void)pw, (void)ph, (void)ud;
    return 0;
}

static int cb_resize(ssh_session sess, ssh_channel ch, int w, int h, int pw, int ph, void *ud)
{
    (void)sess, (void)ch, (void)w, (void)h, (void)pw, (void)ph, (void)ud;
    return 0;
}

static int cb_env(ssh_session sess, ssh_channel ch, const char *k, const char *v, void *ud)
{
    (void)sess, (void)ch, (void)k, (void)v, (void)ud;
    return 0;
}

static int start_term(struct conn *c, ssh_channel ch, const char *cmd)
{
    if (ch != c->chan || c->term_active)
        return -1;
    ds_term_init(&c->term, c->dev, c->user, c->password,
                 atomic_load(&c->loop->srv->revision), cmd);
    c->term_active = true;
    c->term_start = true;
    c->last_active = ds_now_ms();
    mark_dirty(c);
    ds_log(2, "%s: %s%s", c->dev->name, cmd ? "exec: " : "shell", cmd ? cmd : "");
    return 0;
}

static int cb_shell(ssh_session sess, ssh_channel ch, void *ud)
{
    (void)sess;
    return start_term(ud, ch, NULL);
}

static int cb_exec(ssh_session sess, ssh_channel ch, const char *cmd, void *ud)
{
    (void)sess;
    return start_term(ud, ch, cmd);
}

static int cb_wontblock(ssh_session sess, ssh_channel ch, uint32_t bytes, void *ud)
{
    (void)sess, (void)ch, (void)bytes;
    mark_dirty(ud);
    return 0;
}

static ssh_channel cb_channel_open(ssh_session sess, void *ud)
{
    struct conn *c = ud;
    ssh_channel ch;

    if (!c->authed || c->chan != NULL)
        return NULL;
    ch = ssh_channel_new(sess);
    if (ch == NULL)
        return NULL;
    memset(&c->ccb, 0, sizeof c->ccb);
    c->ccb.userdata = c;
    c->ccb.channel_data_function = cb_data;
    c->ccb.channel_close_function = cb_close;
    c->ccb.channel_pty_request_function = cb_pty;
    c->ccb.channel_pty_window_change_function = cb_resize;
    c->ccb.channel_shell_request_function = cb_shell;
    c->ccb.channel_exec_request_function = cb_exec;
    c->ccb.channel_env_request_function = cb_env;
    c->ccb.channel_write_wontblock_function = cb_wontblock;
    ssh_callbacks_init(&c->ccb);
    ssh_set_channel_callbacks(ch, &c->ccb);
    c->chan = ch;
    c->chan_closed = false;
    c->chan_local_closed = false;
    return ch;
}

/* Give the socket to libssh and start the key exchange (non-blocking). */
static void start_ssh(struct conn *c)
{
    struct ds_server *s = c->loop->srv;
    const struct ds_device *d = c->dev;
    int rc;

    c->phase = PH_SSH;
    c->sess = ssh_new();
    if (c->sess == NULL) {
        c->kill = true;
        return;
    }
    pthread_mutex_lock(&s->bind_mu);
    rc = ssh_bind_accept_fd(d->bind, c->sess, c->fd);
    pthread_mutex_unlock(&s->bind_mu);
    if (ssh_get_fd(c->sess) == c->fd)
        c->fd = -1;             /* libssh owns it now */
    if (rc != SSH_OK) {
        ds_log(0, "%s: accept: %s", d->name, ssh_get_error(d->bind));
        c->kill = true;
        return;
    }
    ssh_set_blocking(c->sess, 0);
    if (d->kex[0])
        ssh_options_set(c->sess, SSH_OPTIONS_KEY_EXCHANGE, d->kex);
    if (d->ciphers[0]) {
        ssh_options_set(c->sess, SSH_OPTIONS_CIPHERS_C_S, d->ciphers);
        ssh_options_set(c->sess, SSH_OPTIONS_CIPHERS_S_C, d->ciphers);
    }
    if (d->macs[0]) {
        ssh_options_set(c->sess, SSH_OPTIONS_HMAC_C_S, d->macs);
        ssh_options_set(c->sess, SSH_OPTIONS_HMAC_S_C, d->macs);
    }
    if (d->hostkey_algorithms[0])
        ssh_options_set(c->sess, SSH_OPTIONS_HOSTKEYS, d->hostkey_algorithms);
    ssh_set_auth_methods(c->sess, d->faults.kbdint_only
                                      ? SSH_AUTH_METHOD_INTERACTIVE
                                      : SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_INTERACTIVE);
    memset(&c->scb, 0, sizeof c->scb);
    c->scb.userdata = c;
    c->scb.auth_none_function = cb_auth_none;
    c->scb.auth_password_function = cb_auth_password;
    c->scb.channel_open_request_session_function = cb_channel_open;
    ssh_callbacks_init(&c->scb);
    ssh_set_server_callbacks(c->sess, &c->scb);
    ssh_set_message_callback(c->sess, cb_message, c);
    if (ssh_handle_key_exchange(c->sess) == SSH_ERROR) {
        ds_log(2, "%s: key exchange: %s", d->name, ssh_get_error(c->sess));
        c->kill = true;
        return;
    }
    c->ev = ssh_event_new();
    if (c->ev == NULL || ssh_event_add_session(c->ev, c->sess) != SSH_OK) {
        ds_log(0, "%s: cannot set up the session's event", d->name);
        c->kill = true;
    }
}

/* Keep the loop's epoll registration in step with libssh: read always,
 * write while libssh holds output the socket did not take.  A socket that
 * libssh closed has left the epoll set by itself (never DEL a number that
 * may already belong to someone else). */
static void watch(struct conn *c)
{
    struct loop *l = c->loop;
    int fd = c->sess ? ssh_get_fd(c->sess) : -1;
    struct epoll_event ev;
    uint32_t want;

    if (c->reg_fd >= 0 && fd != c->reg_fd)
        c->reg_fd = -1;
    if (fd < 0)
        return;
    want = EPOLLIN | ((ssh_get_status(c->sess) & SSH_WRITE_PENDING) ? EPOLLOUT : 0);
    ev.events = want;
    ev.data.ptr = c;
    if (c->reg_fd < 0) {
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            ds_log(0, "%s: epoll add: %s", c->dev->name, strerror(errno));
            c->kill = true;
            return;
        }
        c->reg_fd = fd;
        c->ep_mask = want;
    } else if (want != c->ep_mask && epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) == 0) {
        c->ep_mask = want;
    }
}

static void conn_new(struct loop *l, int fd, struct ds_device *dev, uint64_t now)
{
    struct conn *c = calloc(1, sizeof *c);

    if (c == NULL) {
        close(fd);
        atomic_fetch_sub(&l->srv->sessions, 1);
        ds_log(0, "%s: out of memory for a session", dev->name);
        return;
    }
    c->loop = l;
    c->dev = dev;
    c->fd = fd;
    c->reg_fd = -1;
    c->heap_idx = -1;
    c->login_deadline = now + (uint64_t)l->srv->o.login_timeout_s * 1000;
    c->last_active = now;
    dl_push(&l->conns, &c->all);
    atomic_fetch_add(&l->nconns, 1);
    if (dev->faults.delay_banner_ms) {
        c->phase = PH_DELAY;
        c->kex_at = now + dev->faults.delay_banner_ms;
    }
    mark_dirty(c);
}

static void close_channel(struct conn *c)
{
    ssh_remove_channel_callbacks(c->chan, &c->ccb);
    ssh_channel_free(c->chan);
    c->chan = NULL;
    if (c->term_active)
        ds_term_clear(&c->term);
    c->term_active = false;
}

/* Send what the terminal has, within window, pacing and socket limits.
 * Returns the time to try again (0: on an event). */
static uint64_t drain(struct conn *c, uint64_t now, bool *more)
{
    struct ds_buf *o = &c->term.out;
    const struct ds_device *d = c->dev;
    size_t sent = 0;

    while (ds_buf_avail(o) > 0) {
        uint32_t win;
        size_t n;
        int rc;

        if (c->chan == NULL || c->chan_local_closed || !ssh_channel_is_open(c->chan)) {
            ds_buf_reset(o);
            return 0;
        }
        /* libssh still holds output: EPOLLOUT (see watch) resumes us. */
        if (ssh_get_status(c->sess) & SSH_WRITE_PENDING)
            return 0;
        win = ssh_channel_window_size(c->chan);
        if (win == 0)
            return now + 1000;  /* the window-adjust callback wakes us sooner */
        n = ds_buf_avail(o);
        if (n > WRITE_CHUNK)
            n = WRITE_CHUNK;
        if (n > win)
            n = win;
        if (d->faults.trickle_ms) {
            if (now < c->tx_next)
                return c->tx_next;
            n = 1;
            c->tx_next = now + d->faults.trickle_ms;
        } else if (d->rate_bps) {
            double cap = d->rate_bps / 10.0 > 64 ? d->rate_bps / 10.0 : 64;
            double want;

            c->tokens += (double)(now - c->tokens_at) * d->rate_bps / 1000.0;
            c->tokens_at = now;
            if (c->tokens > cap)
                c->tokens = cap;
            want = (double)n < cap ? (double)n : cap;
            if (c->tokens < want)
                return now + 1 + (uint64_t)((want - c->tokens) * 1000.0 / d->rate_bps);
            n = (size_t)want;
            c->tokens -= want;
        }
        rc = ssh_channel_write(c->chan, ds_buf_head(o), (uint32_t)n);
        if (rc < 0) {
            c->kill = true;
            return 0;
        }
        ds_buf_consume(o, (size_t)rc);
        c->bytes_out += (size_t)rc;
        c->last_active = now;       /* output in progress is not idle */
        atomic_fetch_add(&c->loop->srv->n_bytes, (unsigned long long)rc);
        sent += (size_t)rc;
        if ((size_t)rc < n)
            return now + 1000;
        if (d->faults.trickle_ms)
            return c->tx_next;
        if (sent >= PUMP_BUDGET) {
            *more = true;       /* let the others have a turn */
            return 0;
        }
    }
    return 0;
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

/* Everything a connection does happens here, outside libssh's poll. */
static void pump(struct conn *c, uint64_t now)
{
    const struct ds_opts *o = &c->loop->srv->o;
    uint64_t wake = 0;
    bool more = false;

    if (c->kill) {
        conn_free(c, "ended");
        return;
    }
    if (c->phase == PH_DELAY) {
        if (now < c->kex_at) {
            schedule(c, c->kex_at);
            return;
        }
        start_ssh(c);
        if (c->kill) {
            conn_free(c, "key exchange failed");
            return;
        }
    }
    if (ssh_get_status(c->sess) & (SSH_CLOSED | SSH_CLOSED_ERROR)) {
        conn_free(c, "client gone");
        return;
    }
    if (!c->authed && now >= c->login_deadline) {
        conn_free(c, "login timeout");
        return;
    }
    if (o->idle_timeout_s && now >= c->last_active + (uint64_t)o->idle_timeout_s * 1000) {
        conn_free(c, "idle timeout");
        return;
    }
    if (c->chan && c->chan_closed) {
        close_channel(c);
        if (c->closing) {
            conn_free(c, "exit");
            return;
        }
    }
    if (c->term_active) {
        for (int round = 0;; round++) {
            uint64_t t_wake, d_wake;

            if (c->term_start) {
                c->term_start = false;
                ds_term_start(&c->term, now);
            }
            t_wake = ds_term_step(&c->term, now);
            d_wake = drain(c, now, &more);
            if (c->kill) {
                conn_free(c, "write failed");
                return;
            }
            wake = earliest(t_wake, d_wake);
            if (more || d_wake || ds_buf_avail(&c->term.out) > 0 || c->term.st != DS_T_OUTPUT)
                break;
            if (round == 3) {
                more = true;    /* more to produce: continue next turn */
                break;
            }
        }
        if (ds_buf_avail(&c->term.out) == 0 && c->term.action != DS_TA_NONE) {
            if (c->term.action == DS_TA_ABORT) {
                /* Fault: cut the TCP connection once what was sent is on
                 * the wire, without an SSH goodbye. */
                if (!c->aborting) {
                    c->aborting = true;
                    c->close_deadline = now + CLOSE_GRACE_MS;
                }
                if ((ssh_get_status(c->sess) & SSH_WRITE_PENDING) && now < c->close_deadline) {
                    wake = earliest(wake, now + 5);
                } else {
                    /* ssh_disconnect frees the channels: forget ours first. */
                    ssh_remove_channel_callbacks(c->chan, &c->ccb);
                    c->chan = NULL;
                    ssh_silent_disconnect(c->sess);
                    conn_free(c, "disconnect_mid_output");
                    return;
                }
            } else if (!c->chan_local_closed && c->chan) {
                if (c->term.exec)
                    ssh_channel_request_send_exit_status(c->chan, c->term.exit_status);
                ssh_channel_send_eof(c->chan);
                ssh_channel_close(c->chan);
                c->chan_local_closed = true;
                if (!c->term.exec) {
                    c->closing = true;
                    c->close_deadline = now + CLOSE_GRACE_MS;
                }
            }
        }
    }
    if (c->closing) {
        if (now >= c->close_deadline) {
            conn_free(c, "exit");
            return;
        }
        wake = earliest(wake, c->close_deadline);
    }
    /* libssh may have read the client's goodbye while we wrote. */
    if (ssh_get_status(c->sess) & (SSH_CLOSED | SSH_CLOSED_ERROR)) {
        conn_free(c, "client gone");
        return;
    }
    watch(c);
    if (c->kill) {
        conn_free(c, "epoll");
        return;
    }
    if (more)
        mark_dirty(c);
    if (!c->authed)
        wake = earliest(wake, c->login_deadline);
    if (o->idle_timeout_s)
        wake = earliest(wake, c->last_active + (uint64_t)o->idle_timeout_s * 1000);
    schedule(c, wake);
}

/* Reap sessions whose socket closed or failed. */
static void sweep(struct loop *l)
{
    struct dlink *n = l->conns.next;

    while (n != &l->conns) {
        struct conn *c = FROM(n, all);

        n = n->next;
        if (c->sess && c->phase == PH_SSH &&
            (ssh_get_status(c->sess) & (SSH_CLOSED | SSH_CLOSED_ERROR)))
            conn_free(c, "client gone");
    }
}

static void take_handoffs(struct loop *l, uint64_t now)
{
    struct handoff batch[QUEUE_CAP];
    unsigned n = 0;

    if (atomic_load(&l->qlen) == 0)
        return;
    pthread_mutex_lock(&l->mu);
    while (l->qlen > 0) {
        batch[n++] = l->q[l->qhead];
        l->qhead = (l->qhead + 1) % QUEUE_CAP;
        l->qlen--;
    }
    pthread_mutex_unlock(&l->mu);
    for (unsigned i = 0; i < n; i++)
        conn_new(l, batch[i].fd, batch[i].dev, now);
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;

    l->last_sweep = ds_now_ms();
    while (!atomic_load(&l->stop)) {
        struct epoll_event evs[MAX_EVENTS];
        uint64_t now = ds_now_ms();
        int timeout = SWEEP_MS, n;
        struct dlink work;

        if (l->dirty.next != &l->dirty)
            timeout = 0;
        else if (l->hlen > 0)
            timeout = l->heap[0]->wake_at <= now ? 0
                    : l->heap[0]->wake_at - now < SWEEP_MS ? (int)(l->heap[0]->wake_at - now)
                    : SWEEP_MS;
        n = epoll_wait(l->ep, evs, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR)
            ds_log(0, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;

            if (c == NULL) {
                uint64_t v;

                if (read(l->efd, &v, sizeof v) < 0 && errno != EAGAIN)
                    ds_log(0, "eventfd read: %s", strerror(errno));
                continue;
            }
            /* libssh reads, writes what it holds, and calls back. */
            if (c->ev)
                ssh_event_dopoll(c->ev, 0);
            mark_dirty(c);
        }
        now = ds_now_ms();
        take_handoffs(l, now);
        while (l->hlen > 0 && l->heap[0]->wake_at <= now) {
            struct conn *c = l->heap[0];

            heap_remove(l, c);
            mark_dirty(c);
        }
        /* Work on this turn's dirty list; pump() may queue for the next. */
        dl_init(&work);
        if (l->dirty.next != &l->dirty) {
            work.next = l->dirty.next;
            work.prev = l->dirty.prev;
            work.next->prev = &work;
            work.prev->next = &work;
            dl_init(&l->dirty);
        }
        while (work.next != &work) {
            struct conn *c = FROM(work.next, dirty);

            dl_unlink(&c->dirty);
            pump(c, now);
        }
        if (now - l->last_sweep >= SWEEP_MS) {
            sweep(l);
            l->last_sweep = now;
        }
    }
    while (l->conns.next != &l->conns)
        conn_free(FROM(l->conns.next, all), "shutdown");
    return NULL;
}

/* ---- public ---------------------------------------------------------- */

struct ds_server *ds_server_new(struct ds_inventory *inv, const struct ds_opts *o, char *err,
                                size_t errlen)
{
    struct ds_server *s = calloc(1, sizeof *s);

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->inv = inv;
    s->o = *o;
    snprintf(s->state_dir, sizeof s->state_dir, "%s", o->state_dir);
    pthread_mutex_init(&s->bind_mu, NULL);
    if (setup_keys(s, err, errlen) < 0)
        goto fail;
    s->nloops = o->threads ? o->threads : 1;
    s->loops = calloc(s->nloops, sizeof *s->loops);
    if (s->loops == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < s->nloops; i++) {
        struct loop *l = &s->loops[i];

        l->srv = s;
        l->id = i;
        l->efd = -1;
        l->ep = -1;
        dl_init(&l->dirty);
        dl_init(&l->conns);
        pthread_mutex_init(&l->mu, NULL);
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

            if (l->ep < 0 || l->efd < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->efd, &ev) < 0) {
                snprintf(err, errlen, "cannot set up event loop %u: %s", i, strerror(errno));
                goto fail;
            }
        }
        if (pthread_create(&l->tid, NULL, loop_main, l) != 0) {
            snprintf(err, errlen, "cannot start thread %u", i);
            goto fail;
        }
        l->started = true;
    }
    return s;
fail:
    ds_server_free(s);
    return NULL;
}

void ds_server_dispatch(struct ds_server *s, struct ds_device *dev, int fd)
{
    struct loop *best = &s->loops[0];
    uint64_t v = 1;
    bool queued = false;

    atomic_fetch_add(&s->n_accepted, 1);
    if (atomic_fetch_add(&s->sessions, 1) >= s->o.max_sessions) {
        atomic_fetch_sub(&s->sessions, 1);
        goto overflow;
    }
    for (unsigned i = 1; i < s->nloops; i++)
        if (atomic_load(&s->loops[i].nconns) + atomic_load(&s->loops[i].qlen) <
            atomic_load(&best->nconns) + atomic_load(&best->qlen))
            best = &s->loops[i];
    pthread_mutex_lock(&best->mu);
    if (best->qlen < QUEUE_CAP) {
        best->q[(best->qhead + best->qlen) % QUEUE_CAP] = (struct handoff){fd, dev};
        best->qlen++;
        queued = true;
    }
    pthread_mutex_unlock(&best->mu);
    if (queued) {
        if (write(best->efd, &v, sizeof v) < 0 && errno != EAGAIN)
            ds_log(0, "eventfd write: %s", strerror(errno));
        return;
    }
    atomic_fetch_sub(&s->sessions, 1);
overflow:
    close(fd);
    {
        unsigned long long n = atomic_fetch_add(&s->n_overflow, 1) + 1;
        unsigned long long now = ds_now_ms(), last = atomic_load(&s->last_overflow_log);

        if (now - last >= 1000 &&
            atomic_compare_exchange_strong(&s->last_overflow_log, &last, now))
            ds_log(0, "session limit (%u) or hand-off queue full: connection to %s refused "
                   "(%llu so far)", s->o.max_sessions, dev->name, n);
    }
}

void ds_server_bump_revision(struct ds_server *s)
{
    unsigned r = atomic_fetch_add(&s->revision, 1) + 1;

    ds_log(1, "config revision is now %u", r);
}

void ds_server_stats(struct ds_server *s)
{
    ds_log(1, "stats: accepted %llu, refused %llu, overflow %llu, active %u, closed %llu, "
           "logins %llu ok / %llu failed, %llu bytes sent",
           (unsigned long long)atomic_load(&s->n_accepted),
           (unsigned long long)atomic_load(&s->n_refused),
           (unsigned long long)atomic_load(&s->n_overflow), atomic_load(&s->sessions),
           (unsigned long long)atomic_load(&s->n_closed),
           (unsigned long long)atomic_load(&s->n_auth_ok),
           (unsigned long long)atomic_load(&s->n_auth_fail),
           (unsigned long long)atomic_load(&s->n_bytes));
}

void ds_server_count_refused(struct ds_server *s)
{
    atomic_fetch_add(&s->n_refused, 1);
}

void ds_server_free(struct ds_server *s)
{
    if (s == NULL)
        return;
    for (unsigned i = 0; s->loops && i < s->nloops; i++) {
        struct loop *l = &s->loops[i];
        uint64_t v = 1;

        atomic_store(&l->stop, true);
        if (l->efd >= 0 && write(l->efd, &v, sizeof v) < 0)
            ds_log(0, "eventfd write: %s", strerror(errno));
    }
    for (unsigned i = 0; s->loops && i < s->nloops; i++) {
        struct loop *l = &s->loops[i];

        if (l->started)
            pthread_join(l->tid, NULL);
        for (unsigned k = 0; k < l->qlen; k++)
            close(l->q[(l->qhead + k) % QUEUE_CAP].fd);
        if (l->ep >= 0)
            close(l->ep);
        if (l->efd >= 0)
            close(l->efd);
        free(l->heap);
        pthread_mutex_destroy(&l->mu);
    }
    free(s->loops);
    for (size_t i = 0; i < s->nbinds; i++)
        ssh_bind_free(s->binds[i].bind);
    free(s->binds);
    pthread_mutex_destroy(&s->bind_mu);
    free(s);
}
