/*
 * ssh.h - talking to a device's CLI over SSH: the session (libssh), the CLI
 * engine on top of it, and the device-type table that drives the engine.
 *
 * DESIGN
 *   Everything here runs on the calling thread (a pool thread), blocking
 *   with deadlines: no other thread, no sleeps.  One struct nr_cli owns one
 *   struct nr_ssh, which owns one libssh session, its socket and one shell
 *   channel; neither is shared between threads.  Process-wide state is
 *   libssh's one-time initialisation and the known_hosts table
 *   (knownhosts.h): libssh itself never reads the file.
 *
 *   Stages and their clocks (seconds from the configuration, or from the
 *   target when it carries its device type's: worker.device_types.*):
 *     connect  TCP connect plus SSH handshake     worker.connection_timeout
 *     auth     none / password / keyboard-interactive, each step bounded
 *                                                 worker.connection_timeout
 *     shell    channel, PTY (vt100, 511 columns), shell
 *                                                 worker.connection_timeout
 *     prompt   greeting until a prompt-like line  worker.connection_timeout
 *              (silence), then the paging-off command (or an empty line)
 *                                                 worker.command_timeout
 *     enable   "enable" and its secret            worker.command_timeout
 *     command  one command until the prompt is back
 *                                                 worker.command_timeout
 *   The prompt, enable and command stages measure silence: each byte that
 *   arrives restarts the clock, and a stage never lasts more than
 *   NR_CLI_STAGE_CAP times its timeout in all.  Output beyond
 *   worker.max_output_bytes for one exchange is a failure ("output cap").
 *
 *   Prompt learning takes no extra round trip: once the greeting ends in a
 *   line that looks like a prompt (the type's prompt_end characters), the
 *   engine sends the paging-off command and takes as prompt the line that
 *   the device prints both before the echo of that command and after its
 *   answer.  Banner lines that merely look like prompts ("router#",
 *   "Password:") are never confirmed that way.  Types without a paging-off
 *   command send an empty line instead.
 *
 *   Session stream: every chunk sent and received is handed to
 *   nr_log_session() as it happens, line-buffered so that redaction
 *   (worker.redaction.patterns, whole lines) works across chunk borders;
 *   a secret the engine types is logged as "********", what the device
 *   echoes on that line is masked likewise, and any occurrence of the
 *   login password or enable secret in either direction is replaced by
 *   "********".  Nothing is buffered when session records are disabled.
 *
 * Caller's steps (a handler):
 *   const struct nr_devtype *type = nr_devtype_find(device->device_type);
 *   struct nr_ssh_target t = { host, port, device_name, job_id, device_id,
 *                              username, password };
 *   struct nr_cli *c = nr_cli_connect(cfg, &t, type, enable_secret);
 *   if (c->ssh->err) { ... nr_ssh_failure(c->ssh, &failure) ... }
 *   else nr_cli_run(c, type->config_cmds[0], &out, &len, &ms); ... free(out);
 *   nr_cli_free(c);           always; logs CONN_DISCONNECTED
 *
 * Errors (STYLE 8): connect returns the object even when it failed; once
 * ssh->err is set the object is only good for nr_cli_free().  The failure
 * is logged once, as CONN_FAILED with its class and stage, where it
 * happens; callers carry it into their results (details error / class /
 * stage) and do not log it as a connection event again.
 *
 * Secrets: the target's password and the enable secret are only read
 * (never copied) and must outlive the object.  They never reach a log
 * record, an error string or the session stream.
 */
#ifndef NR_SSH_H
#define NR_SSH_H

#include "netraven/common.h"
#include "netraven/config.h"
#include "netraven/failure.h"

/* ---- failure classes and stages --------------------------------------- */

enum nr_ssh_fail {
    NR_SSH_OK = 0,
    NR_SSH_REFUSED,         /* TCP refused, or closed before the SSH banner */
    NR_SSH_UNREACHABLE,     /* no route, no such address */
    NR_SSH_TIMEOUT,         /* a stage ran out of time */
    NR_SSH_AUTH,            /* login or enable refused */
    NR_SSH_HOSTKEY,         /* unknown (strict) or changed host key */
    NR_SSH_PROTOCOL,        /* handshake, channel, lost connection, device closed */
    NR_SSH_OUTPUT_CAP,      /* more than worker.max_output_bytes */
    NR_SSH_FAIL_COUNT
};

/* "ok", "refused", "unreachable", "timeout", "auth", "host key",
 * "protocol", "output cap" (the names of failure.def); never NULL. */
const char *nr_ssh_fail_name(enum nr_ssh_fail f);

enum nr_ssh_stage {
    NR_SSH_STAGE_CONNECT = 0,
    NR_SSH_STAGE_AUTH,
    NR_SSH_STAGE_SHELL,
    NR_SSH_STAGE_PROMPT,
    NR_SSH_STAGE_ENABLE,
    NR_SSH_STAGE_COMMAND,
    NR_SSH_STAGE_COUNT
};

/* "connect", "auth", "shell", "prompt", "enable", "command". */
const char *nr_ssh_stage_name(enum nr_ssh_stage s);

struct nr_ssh;

/* A failed session as a device task's failure: its class (failure.def: a
 * protocol failure at the connect stage is the handshake, later a session
 * lost), its stage's name and errstr.  NR_FAILURE_NONE, no stage and no
 * message when s has not failed. */
void nr_ssh_failure(const struct nr_ssh *s, struct nr_failure *f);

/* ---- session ------------------------------------------------------------ */

/* Who to talk to.  Strings are borrowed for the life of the object. */
struct nr_ssh_target {
    const char *host;           /* address (or name) of the device */
    int         port;           /* 0 means 22 */
    const char *device_name;    /* for log records; host when NULL */
    long long   job_id;         /* carried by every log record; 0 = none */
    long long   device_id;
    const char *username;
    const char *password;       /* SECRET */
    long long   credential_id;  /* carried by the auth records; 0 = none */
    /* Seconds; 0 means worker.connection_timeout / worker.command_timeout.
     * Handlers pass the device type's (nr_config_device_timeouts). */
    double      connect_timeout;
    double      command_timeout;
};

#define NR_SSH_ERRLEN 256

struct nr_ssh_i;                /* stream and libssh state, private */

struct nr_ssh {
    const struct nr_config *cfg;
    struct nr_ssh_target    t;
    const char *auth_method;    /* "password", "keyboard-interactive", "none"; NULL before */
    char  kex[64];              /* negotiated, once connected */
    char  cipher[96];           /* "in/out" when they differ */
    char  hmac[96];
    char  fingerprint[128];     /* "SHA256:..." of the host key */
    uint64_t bytes_in, bytes_out;

    enum nr_ssh_fail  err;      /* NR_SSH_OK while usable */
    enum nr_ssh_stage stage;    /* where it failed (or where it is) */
    char  errstr[NR_SSH_ERRLEN];

    struct nr_ssh_i *i;
};

/*
 * Connect, check the host key, authenticate with the target's username and
 * password, and start a shell on a PTY.
 *   Host key (ssh.host_key_policy): accept-new stores an unknown key and
 *   refuses a changed one; strict refuses unknown keys too; off checks
 *   nothing.  File: ssh.known_hosts, or <worker.spool_dir>/known_hosts when
 *   that is empty.
 *   Algorithms: libssh's defaults, the host key types known for the device
 *   first; with ssh.allow_legacy_kex, ssh.legacy_kex and ssh.legacy_macs
 *   (and the ssh-rsa host key) are appended.
 *   Login: "none" first (for the banner and the method list), then
 *   password; keyboard-interactive only when the device does not offer
 *   password (prompts that echo and do not ask for a password get the
 *   username, every other prompt the password).
 * Logs CONN_CONNECTING, CONN_CONNECTED, CONN_AUTHENTICATING,
 * CONN_AUTHENTICATED / CONN_AUTH_FAILED and, on failure, CONN_FAILED.
 * Never NULL; check ->err.  Free with nr_ssh_free().
 */
struct nr_ssh *nr_ssh_connect(const struct nr_config *cfg, const struct nr_ssh_target *t);

/* Where the session stream may cut a long unfinished line of len bytes:
 * keep bytes (or the longest secret, if longer) before its end, moved back
 * before any occurrence of a secret that would straddle the cut, so that
 * every occurrence is masked whole.  0 when nothing can be sent yet.
 * Pure; exposed for tests. */
size_t nr_ssh_safe_cut(const char *buf, size_t len, const char *const *secrets, size_t nsecrets,
                       size_t keep);

/* Mask this secret too wherever it would appear in the session stream
 * (the enable secret).  Borrowed; NULL or "" ignored; up to 4. */
void nr_ssh_add_secret(struct nr_ssh *s, const char *secret);

#define NR_SSH_SECRET 1u        /* nr_ssh_send: the bytes are a secret */

/* Send len bytes on the shell.  With NR_SSH_SECRET the session stream
 * gets "********" instead, and the device's echo of that line is masked.
 * Returns 0, or NR_EIO with ->err set (class protocol, stage as set by the
 * caller in ->stage). */
int nr_ssh_send(struct nr_ssh *s, const void *data, size_t len, unsigned flags);

/*
 * Receive what is there, waiting until deadline_ns (nr_mono_ns() clock)
 * for at least one byte.  Returns 0 with *got > 0 bytes in buf;
 * NR_ETIMEOUT when the deadline passed with nothing (->err not set: the
 * caller names the stage); NR_EIO when the connection or channel ended,
 * with ->err set (protocol) and logged.
 */
int nr_ssh_recv(struct nr_ssh *s, char *buf, size_t cap, uint64_t deadline_ns, size_t *got);

/* True if bytes can be read at once (no wait). */
bool nr_ssh_pending(struct nr_ssh *s);

/* Record a failure: sets err/stage/errstr if no failure was recorded yet
 * and logs CONN_FAILED once.  Returns NR_ERR (or NR_ETIMEOUT for the
 * timeout class), for `return nr_ssh_fail(...)`. */
int nr_ssh_fail(struct nr_ssh *s, enum nr_ssh_fail f, enum nr_ssh_stage st,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Flush the session stream, disconnect (CONN_DISCONNECTED with the reason:
 * "session complete" or the failure) and free.  NULL is fine. */
void nr_ssh_free(struct nr_ssh *s);

/* ---- device types --------------------------------------------------------- */

/* One row of netraven/devtypes.def (which documents each field). */
#define NR_DT_ENABLE_OPTIONAL 0x1u  /* a refused enable is not a failure */
#define NR_DT_PROMPT_COUNTER  0x2u  /* digit runs in the prompt change by themselves */
#define NR_DT_SHELL_LOGIN     0x4u  /* "User:" / "Password:" asked in the shell */

struct nr_devtype {
    const char *name;               /* Netmiko device_type, "default" for the rest */
    const char *paging_off;         /* NULL: the type does not page (an empty line is sent) */
    const char *const *config_cmds; /* print the configuration; NULL-terminated, >= 1 */
    const char *prompt_end;         /* characters a prompt may end with, e.g. ">#" */
    char        priv_end;           /* last character of the privileged prompt; 0: one level */
    const char *enable_cmd;         /* NULL: never typed */
    unsigned    flags;              /* NR_DT_* */
    const char *const *pagers;      /* pager prompts, matched ignoring case; NULL: none */
    const char *const *volatile_lines; /* fnmatch(3) patterns of whole lines; NULL: none */
    const char *const *secret_words; /* mark lines of encrypted secrets; NULL: none */
    const char *const *aliases;     /* other names of this row; NULL: none */
    enum nr_devtype_id id;          /* its settings in cfg->worker.device_types;
                                     * NR_DEVTYPE_COUNT for "default" */
};

/* The row for a device_type: exact name, then an alias, then the name
 * without a "_ssh" or "_telnet" suffix (and its alias), then "default".
 * Never NULL (NULL name: default). */
const struct nr_devtype *nr_devtype_find(const char *name);

/* The whole table (last row "default"); *n set to its length. */
const struct nr_devtype *nr_devtype_table(size_t *n);

/* The configuration commands of a row as one line for logs and results:
 * "a; b" (malloc'd). */
char *nr_devtype_commands(const struct nr_devtype *type);

/*
 * Remove the type's volatile lines from text[0..len) in place (text is a
 * NUL-terminated string: text[len] is read and written back): every line
 * (without its "\n", and a "\r" before it) that one of the row's patterns
 * matches as a whole is dropped with its line end.  Returns the new length
 * (text NUL-terminated there); *nremoved (may be NULL) gets the number of
 * lines dropped.
 */
size_t nr_devtype_strip_volatile(const struct nr_devtype *type, char *text, size_t len,
                                 size_t *nremoved);

/* ---- CLI engine ----------------------------------------------------------- */

#define NR_CLI_PROMPT_MAX 128
#define NR_CLI_STAGE_CAP  10    /* a stage lasts at most this many timeouts */

struct nr_cli_i;

struct nr_cli {
    struct nr_ssh           *ssh;       /* never NULL; its err is the CLI's */
    const struct nr_devtype *type;
    char  prompt[NR_CLI_PROMPT_MAX];    /* learned, e.g. "router#" */
    bool  privileged;                   /* enable done, or not needed */
    struct nr_cli_i *i;
};

/*
 * nr_ssh_connect(), then learn the prompt while turning paging off, then
 * enter privileged mode when the type has an enable command and the prompt
 * is not already privileged (secret: enable_secret, typed unlogged; NULL
 * means the target's password).  Never NULL; check ->ssh->err.
 */
struct nr_cli *nr_cli_connect(const struct nr_config *cfg, const struct nr_ssh_target *t,
                           const struct nr_devtype *type, const char *enable_secret);

/*
 * Run one command: send it, answer pager prompts, read until the prompt is
 * back.  Logs CONN_COMMAND_SENT and CONN_COMMAND_DONE.  Returns 0 with
 * *out the output (malloc'd, NUL-terminated, *out_len bytes, caller frees):
 * echo and trailing prompt removed, "\r\n" as "\n", pager prompts, erase
 * sequences and terminal escapes removed, invalid UTF-8 as '?'.  ms (may
 * be NULL) gets the duration.  On failure returns a negative code with
 * ->ssh->err set; outputs untouched.  Unredacted: callers redact.
 */
int nr_cli_run(struct nr_cli *c, const char *command, char **out, size_t *out_len, double *ms);

/*
 * The whole configuration: the type's config commands in turn (nr_cli_run
 * each), their outputs one after the other, each ending in "\n" (an empty
 * output adds nothing), then the type's volatile lines removed unless
 * keep_volatile (worker.device_types.<type>.keep_volatile).  Returns 0
 * with *out (malloc'd, NUL-terminated, *out_len bytes; unredacted: the
 * caller redacts, and frees with nr_secret_free) and *nvolatile (may be
 * NULL) the lines removed; on failure as nr_cli_run.
 */
int nr_cli_config(struct nr_cli *c, bool keep_volatile, char **out, size_t *out_len,
                  size_t *nvolatile);

/* nr_ssh_free() and the rest.  NULL is fine. */
void nr_cli_free(struct nr_cli *c);

/* ---- pure helpers of the engine (exposed for tests) ------------------- */

/* Length of the prompt at the end of line[0..len): what a terminal shows
 * of the line (after its last carriage return, blanks at either end
 * ignored), ending with one of type->prompt_end, printable, shorter than
 * NR_CLI_PROMPT_MAX; blanks may stand inside it ("FW-1 # ", "(node) [a: b]
 * > ").  A lone prompt character counts only as a line of its own.  0 if
 * the line does not end like a prompt.  *start gets its offset. */
size_t nr_cli_prompt_token(const struct nr_devtype *type, const char *line, size_t len,
                           size_t *start);

/* True if the last line of buf (after its last '\n') shows prompt at its
 * end, blanks ignored; a one-character prompt must be the whole line.
 * With NR_DT_PROMPT_COUNTER in type's flags, a run of digits in the
 * prompt matches any run of digits. */
bool nr_cli_ends_with_prompt(const struct nr_devtype *type, const char *buf, size_t len,
                             const char *prompt);

/* Offset where a live pager prompt of the type starts in buf, looking at
 * the last lines only and not before from (text already searched): the
 * blanks before it included, its line end too when it stands on a line of
 * its own.  *end (may be NULL) gets the offset just after it; the caller
 * removes [offset, *end) and answers.  -1 when there is none, or when the
 * last line shows prompt (NULL: not checked). */
long nr_cli_find_pager(const struct nr_devtype *type, const char *buf, size_t len, size_t from,
                       const char *prompt, size_t *end);

/* True if the last line of buf asks for a password or secret. */
bool nr_cli_secret_prompt(const char *buf, size_t len);

/*
 * Prompt learning on the stream so far (greeting plus the answer to
 * `command`, "" for an empty line): if the last line ends in a prompt and
 * the same prompt precedes the echo of command (or, for "", ends the line
 * before), writes the prompt (NUL-terminated) to prompt[cap] and returns
 * true.
 */
bool nr_cli_learn(const struct nr_devtype *type, const char *buf, size_t len,
                  const char *command, char *prompt, size_t cap);

/*
 * Remove terminal escape sequences (CSI "ESC[...m", "ESC[?2004h", OSC
 * titles, charset selections) and control bytes other than "\n", "\r",
 * "\b" and "\t" from p[0..n) in place (a cursor move back or to a column
 * becomes "\r": pagers erase themselves so), as the bytes arrive: *state (0 at
 * the start of a session) carries a sequence cut between two reads.
 * Returns the number of bytes kept.
 */
size_t nr_cli_term_filter(int *state, char *p, size_t n);

/*
 * Bytes of a pager's erase sequence at the start of p[0..n): "\b"xk " "xk
 * "\b"xk or "\r" blanks "\r".  *more is set when p is a proper prefix of
 * such a sequence (wait for more bytes).  0 when there is none.
 */
size_t nr_cli_erase_len(const char *p, size_t n, bool *more);

/*
 * The output of a command as stored: terminal escapes and control bytes
 * removed (a backspace erases, a lone CR returns to the line start),
 * "\r\n" as "\n", the first line dropped if it is the echo of command,
 * the last line dropped if it ends with prompt, trailing blank lines
 * dropped, invalid UTF-8 as '?'.  Returns a malloc'd NUL-terminated
 * string and its length.
 */
char *nr_cli_clean(const char *raw, size_t len, const char *command, const char *prompt,
                   size_t *out_len);

#endif /* NR_SSH_H */
