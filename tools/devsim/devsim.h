/*
 * devsim.h - the device simulator's internal interfaces.
 *
 * devsim serves many simulated network devices (Cisco, Juniper, Arista, HPE,
 * Huawei, Fortinet, F5, Dell, MikroTik, Ruckus, Extreme, ... and Linux; one
 * row each in profile.c) from one process, each on its own loopback
 * address:port, over real SSH (libssh's server API).  It is a test tool: it
 * is not linked with libnetraven and shares nothing with it.
 *
 * Pieces, one file each:
 *   inventory.c  devices from a YAML file and/or the command line, through
 *                one field table (ds_fields[]); validation (loopback only).
 *   profile.c    the device-type table: prompts, commands, pager, errors.
 *   confgen.c    deterministic running-configs, seeded by hostname; the
 *                volatile lines of a session; --print-config's text.
 *   term.c       one terminal (shell or exec channel): line editor, enable,
 *                pager, latency, faults.  No I/O: bytes in, bytes out.
 *   server.c     the SSH side: host keys, event-loop threads, timers.
 *   devsim.c     main: options, listeners, the accept thread, signals.
 *
 * Names are tool-private and start with ds_ (the project's nr_ prefix is
 * for libnetraven).
 */
#ifndef DS_DEVSIM_H
#define DS_DEVSIM_H

#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- small byte buffer ---------------------------------------------- */

/* Readable bytes are data[off, len).  Zero-initialised is empty.  A failed
 * append sets the sticky failed flag, so a run of appends is checked once. */
struct ds_buf {
    char  *data;
    size_t off, len, cap;
    bool   failed;
};

/* Append n bytes; returns 0, or -1 if memory ran out (buffer unchanged). */
int  ds_buf_add(struct ds_buf *b, const void *p, size_t n);
int  ds_buf_adds(struct ds_buf *b, const char *s);
int  ds_buf_printf(struct ds_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline size_t ds_buf_avail(const struct ds_buf *b) { return b->len - b->off; }
static inline const char *ds_buf_head(const struct ds_buf *b) { return b->data + b->off; }
/* Drop n readable bytes from the front. */
void ds_buf_consume(struct ds_buf *b, size_t n);
void ds_buf_reset(struct ds_buf *b);
void ds_buf_free(struct ds_buf *b);
/* Take the contents as a NUL-terminated malloc'd string (buffer emptied). */
char *ds_buf_steal(struct ds_buf *b, size_t *len);

uint64_t ds_now_ms(void);                   /* CLOCK_MONOTONIC, ms */
uint64_t ds_hash64(const char *s, uint64_t seed);  /* FNV-1a, mixed */
uint64_t ds_rand(uint64_t *state);          /* splitmix64 */

/* strftime of t (UTC) for fmt[0..n), where "%q" is ms (3 digits). */
void ds_buf_strftime(struct ds_buf *b, const char *fmt, size_t n, int64_t t, unsigned ms);

/* ---- device types --------------------------------------------------- */

enum ds_style {                 /* which config generator (confgen.c) */
    DS_STYLE_IOS, DS_STYLE_NXOS, DS_STYLE_XR, DS_STYLE_EOS, DS_STYLE_JUNOS,
    DS_STYLE_ASA, DS_STYLE_PANOS, DS_STYLE_LINUX,
    DS_STYLE_COMWARE, DS_STYLE_PROCURVE, DS_STYLE_VRP, DS_STYLE_FORTIOS, DS_STYLE_TMSH,
    DS_STYLE_OS10, DS_STYLE_OS6, DS_STYLE_OS9, DS_STYLE_AOSCX, DS_STYLE_ROUTEROS,
    DS_STYLE_FASTIRON, DS_STYLE_EXOS, DS_STYLE_VYOS, DS_STYLE_CUMULUS, DS_STYLE_SAOS,
    DS_STYLE_SONICOS, DS_STYLE_GAIA, DS_STYLE_FTD, DS_STYLE_AIREOS,
    DS_STYLE_COUNT
};

/* Which text of a style a command prints. */
enum ds_part { DS_PART_CONFIG, DS_PART_STATUS };

enum ds_act {                   /* what a command does */
    DS_ACT_NOOP,                /* prints its reply, if any */
    DS_ACT_PAGE_LEN,            /* first number in the line: page length, 0 = off */
    DS_ACT_PAGER_OFF,
    DS_ACT_PAGER_ON,
    DS_ACT_SHOW_CONFIG,
    DS_ACT_SHOW_STATUS,         /* the style's status text (FortiGate "get system status") */
    DS_ACT_SHOW_VERSION,
    DS_ACT_ENABLE,
    DS_ACT_DISABLE,
    DS_ACT_EXIT,
    DS_ACT_ECHO,                /* prints the rest of the line */
    DS_ACT_WHOAMI,
    DS_ACT_HOSTNAME,
};

/* One command.  pattern: words; "<n>" matches a number, "<*>" the rest of
 * the line (zero or more words).  With the profile's abbrev flag each typed
 * word may be a prefix of the pattern's word ("sh run"). */
struct ds_cmd {
    const char *pattern;
    enum ds_act act;
    bool        priv;           /* needs the privileged level */
    const char *reply;          /* printed before the prompt; tokens as prompts */
};

/* How the pager prompt is erased; DS_ERASE_TYPE (0) means the type's own. */
enum ds_erase { DS_ERASE_TYPE, DS_ERASE_NONE, DS_ERASE_BS, DS_ERASE_CR,
                DS_ERASE_ANSI /* ESC[nD, blanks, ESC[nD (Huawei) */ };

/* How "\n" goes on the wire. */
enum ds_line_end { DS_LE_CRLF, DS_LE_CRCRLF, DS_LE_LF };

/* A device type.  Strings may hold tokens: %h hostname, %u user, %v OS
 * version, %w the first word typed, %n the number typed (in the pager: the
 * percentage shown), %c the command counter (1, 2, ...), %{...} strftime of
 * the session time (UTC; %q = milliseconds); any other '%' is literal. */
struct ds_profile {
    const char *type;           /* Netmiko device_type */
    enum ds_style style;
    const char *os_version;
    const char *ssh_version;    /* software part of the SSH identification */
    const char *user_prompt;
    const char *priv_prompt;    /* NULL: one level only (user_prompt) */
    bool        starts_priv;
    bool        exit_unprivs;   /* "exit" at the privileged level drops it (sudo) */
    const char *prompt_lead;    /* before each prompt after a command */
    const char *motd;           /* after the shell starts */
    const char *press_key;      /* then this, and wait for any key (NULL: none) */
    const char *shell_user;     /* in-shell login after SSH auth: "User: " (NULL: none) */
    const char *shell_pass;     /*   its password prompt (not echoed) */
    const char *enter_echo;     /* what Enter echoes (NULL: a line end) */
    const char *enable_prompt;
    const char *enable_retry;   /* before each re-prompt ("" = none) */
    const char *enable_fail;    /* after the last wrong try */
    unsigned    enable_tries;
    bool        enable_login_password;  /* the user's own password (sudo) */
    bool        pager_default;
    const char *pager;
    enum ds_erase pager_erase;
    bool        invalid_caret;
    const char *invalid;
    bool        abbrev;
    const char *version_text;   /* "show version" output */
    const char *syslog_pager;   /* pager_log line (NULL: the IOS shape) */
    const char *syslog_async;   /* async_log line (NULL: the IOS shape) */
    const struct ds_cmd *cmds;  /* ends with a NULL pattern */
    const char *const *config_cmds;  /* what the worker runs for the config, in order */
};

extern const struct ds_profile ds_profiles[];  /* ends with a NULL type */
extern const struct ds_profile ds_profile_default;

/* The profile for a Netmiko device_type ("_ssh" suffix ignored); NULL if
 * unknown (callers fall back to ds_profile_default). */
const struct ds_profile *ds_profile_find(const char *type);

/* The command a line matches at the given level; NULL if none.  *argn gets
 * the first number matched by "<n>" (0 if none), *rest the offset in line of
 * the words matched by "<*>" (strlen(line) if none). */
const struct ds_cmd *ds_profile_match(const struct ds_profile *p, const char *line,
                                      bool priv, long *argn, size_t *rest);

/* ---- inventory ------------------------------------------------------ */

#define DS_NAME_MAX     64
#define DS_SECRET_MAX   128
#define DS_MAX_ACCOUNTS 8
#define DS_STR_MAX      256

struct ds_account {
    char username[DS_NAME_MAX];
    char password[DS_SECRET_MAX];
};

struct ds_faults {
    bool     reject_auth;
    bool     hang_after_auth;
    bool     hang_mid_output;
    bool     disconnect_mid_output;
    bool     garbage;
    bool     banner_prompts;
    bool     kbdint_only;
    uint32_t trickle_ms;        /* 0 = off; "trickle: true" means 5 */
    uint32_t refuse_times;
    uint32_t delay_banner_ms;
};

#define DS_BANNER_MAX 2048

struct ds_device {
    char     name[DS_NAME_MAX];
    char     hostname[DS_NAME_MAX];
    char     device_type[DS_NAME_MAX];
    char     listen[INET_ADDRSTRLEN];
    uint32_t port;
    uint32_t count;             /* expansion of one entry into N devices */
    char     vary[16];          /* "port" or "address" */
    struct ds_account accounts[DS_MAX_ACCOUNTS];
    uint32_t naccounts;
    char     enable_secret[DS_SECRET_MAX];
    uint32_t config_kb;
    uint32_t config_revision;
    uint32_t latency_ms;
    uint32_t rate_bps;          /* 0 = unlimited */
    int      pager;             /* -1: the type's default */
    uint32_t page_lines;
    bool     privileged_login;
    char     host_key[DS_STR_MAX];      /* "", ed25519, rsa, per-device, or a path */
    char     kex[DS_STR_MAX];           /* libssh algorithm lists, "" = default */
    char     ciphers[DS_STR_MAX];
    char     macs[DS_STR_MAX];
    char     hostkey_algorithms[DS_STR_MAX];
    struct ds_faults faults;

    /* real-device behaviours (README "Device fields") */
    char     prompt[DS_STR_MAX];        /* "" = the type's; tokens as in profiles */
    char     priv_prompt[DS_STR_MAX];
    bool     ansi_prompt;               /* ESC[1m prompt ESC[m */
    bool     bracketed_paste;           /* ESC[?2004h before prompts, ESC[?2004l after Enter */
    int      line_end;                  /* enum ds_line_end */
    int      pager_erase;               /* enum ds_erase; DS_ERASE_TYPE = the type's */
    bool     pager_log;                 /* a syslog line right after each pager prompt */
    bool     pager_midline;             /* the page breaks inside a line */
    bool     pager_sticky;              /* the paging-off command leaves the pager on */
    char     banner[DS_BANNER_MAX];     /* after the MOTD, before the first prompt */
    bool     volatile_lines;            /* key "volatile": print the type's volatile lines */
    bool     leak_secrets;              /* password, enable secret, community in the config */
    bool     async_log;                 /* a syslog line in the middle of the config */

    /* resolved at load / start */
    const struct ds_profile *profile;
    struct in_addr addr;
    int      listen_fd;
    void    *bind;              /* ssh_bind that carries this device's host key */
    atomic_uint accepts;        /* connections accepted so far (refuse_times) */
};

/* One device field, as the YAML loader and the command line see it. */
enum ds_ftype { DS_F_STR, DS_F_U32, DS_F_BOOL, DS_F_TRI, DS_F_TRICKLE, DS_F_ENUM };

struct ds_field {
    const char   *key;
    enum ds_ftype type;
    size_t        off;          /* offsetof(struct ds_device, ...) */
    size_t        size;         /* DS_F_STR: buffer size */
    uint32_t      min, max;     /* DS_F_U32 bounds */
    bool          fault;        /* also accepted under "faults:" */
    const char *const *names;   /* DS_F_ENUM: the values (an int, the index); NULL-ended */
};

extern const struct ds_field ds_fields[];   /* ends with a NULL key */

/* Set a field from its text form.  Returns 0, or -1 with a reason in err. */
int ds_field_set(struct ds_device *d, const char *key, const char *value,
                 char *err, size_t errlen);

struct ds_inventory {
    struct ds_device *devs;     /* heap array, resolved and expanded */
    size_t            ndevs, cap;
    char              state_dir[DS_STR_MAX];    /* from the file; "" if unset */
    char              host_key_type[16];
};

/* A device with built-in defaults (cisco_ios, 127.0.0.1, admin/admin, ...). */
void ds_device_defaults(struct ds_device *d);

/* Load a YAML inventory and append its devices (expanded, not yet
 * resolved).  Returns 0, or -1 with "file:line: key: reason" in err. */
int ds_inventory_load(struct ds_inventory *inv, const char *path, char *err, size_t errlen);

/* Append a copy of d (expanded by its count).  Returns 0 or -1 (err). */
int ds_inventory_add(struct ds_inventory *inv, const struct ds_device *d,
                     char *err, size_t errlen);

/* Check every device (loopback address, unique name and address:port,
 * accounts) and resolve its profile and address.  Returns 0 or -1 (err). */
int ds_inventory_resolve(struct ds_inventory *inv, char *err, size_t errlen);

void ds_inventory_clear(struct ds_inventory *inv);

/* ---- config generator ----------------------------------------------- */

/* What makes one session's volatile lines differ from the next one's. */
struct ds_vol {
    int64_t     when;           /* the time they show (s since the epoch, UTC) */
    unsigned    ms;
    uint32_t    serial;         /* a counter, one up per session */
    const char *user;           /* "by <user>" */
};

/* Fill v for a new session of user: now, or a second past the previous
 * session's time, so that no two sessions show the same time; the next
 * session counter.  v->user points at user (keep it alive). */
void ds_vol_init(struct ds_vol *v, const char *user);

/* A text of the device as its type prints it, with "\n" line ends:
 * DS_PART_CONFIG, the running-config, deterministic for (hostname,
 * revision), about config_kb KB long (never shorter), with password /
 * secret / community lines; DS_PART_STATUS, the style's status text (empty
 * if it has none).  vol NULL: without the volatile lines, and the rest is
 * byte for byte what the same call with a vol prints.  Returns a malloc'd
 * string (caller frees) and its length, or NULL if memory ran out. */
char *ds_config_generate(const struct ds_device *d, enum ds_part part, uint32_t revision,
                         const struct ds_vol *vol, size_t *len);

/* The text the worker must store for d (the plan's --print-config): the
 * outputs of the type's config commands, each ending in "\n", without
 * volatile or syslog lines.  Returns a malloc'd string or NULL. */
char *ds_config_print(const struct ds_device *d, size_t *len);

/* The syslog line of a pager_log (async false) or async_log (true), one
 * line without its line end, into b. */
void ds_syslog_line(struct ds_buf *b, const struct ds_device *d, const struct ds_vol *v,
                    bool async);

/* ---- terminal ------------------------------------------------------- */

enum ds_tstate { DS_T_INPUT, DS_T_SECRET, DS_T_WAIT, DS_T_OUTPUT, DS_T_MORE,
                 DS_T_ANYKEY, DS_T_HUNG, DS_T_DONE };
enum ds_login  { DS_L_DONE, DS_L_USER, DS_L_PASS };     /* in-shell login (shell_user) */
enum ds_tact   { DS_TA_NONE, DS_TA_CLOSE, DS_TA_ABORT };

#define DS_LINE_MAX  1024
#define DS_INPUT_MAX 8192

/*
 * One terminal: the CLI behind a shell or exec channel.  The caller feeds
 * the client's bytes with ds_term_input(), calls ds_term_step() when input
 * arrived or the returned deadline passed, sends ds_term.out to the client,
 * and performs ds_term.action once out is empty.  Latency is a deadline,
 * never a sleep.
 */
struct ds_term {
    const struct ds_device  *dev;
    const struct ds_profile *prof;
    char     user[DS_NAME_MAX];
    char     login_password[DS_SECRET_MAX];
    uint32_t revision;
    bool     exec;
    bool     priv;
    uint32_t page_len;          /* 0 = pager off */
    enum ds_tstate st;
    enum ds_tact action;
    int      exit_status;

    struct ds_buf in;           /* typed, not yet read by the CLI (bounded) */
    struct ds_buf out;          /* for the wire */
    size_t   in_dropped;

    char     line[DS_LINE_MAX];
    size_t   line_len;
    bool     skip_lf;
    bool     line_is_secret;
    unsigned secret_tries;
    uint64_t ready_at;

    char    *body;              /* command output being sent ("\n" lines) */
    size_t   body_len, body_pos;
    bool     body_is_config;
    uint32_t page_left;
    uint32_t garbage_lines;
    uint64_t rng;

    struct ds_vol vol;          /* this session's volatile values */
    uint32_t cmd_count;         /* %c: commands run so far + 1 */
    enum ds_login login;
    char     login_user[DS_NAME_MAX];
    size_t   pager_len;         /* visible length of the pager prompt shown */
    bool     split_line;        /* pager_midline: a line was cut at this page end */
    bool     async_done;        /* async_log: printed for this output */
};

/* Set up t for a session of user on dev (t zeroed first).  For an exec
 * channel pass the command; NULL for a shell.  Nothing is sent before
 * ds_term_start(). */
void ds_term_init(struct ds_term *t, const struct ds_device *dev, const char *user,
                  const char *login_password, uint32_t revision, const char *exec_cmd);
/* Queue the greeting and first prompt (shell), or schedule the command (exec). */
void ds_term_start(struct ds_term *t, uint64_t now);
/* Append client bytes; beyond DS_INPUT_MAX they are dropped and counted. */
void ds_term_input(struct ds_term *t, const void *p, size_t n);
/* Advance: read input, run due commands, fill out (up to a low-water mark).
 * Returns the next deadline in ms (0 = none; call again on input). */
uint64_t ds_term_step(struct ds_term *t, uint64_t now);
void ds_term_clear(struct ds_term *t);

/* ---- server --------------------------------------------------------- */

struct ds_opts {
    const char *state_dir;
    const char *host_key_type;  /* ed25519 (default) or rsa */
    unsigned    threads;
    unsigned    max_sessions;
    unsigned    idle_timeout_s;
    unsigned    login_timeout_s;
    int         ssh_log;
    int         verbose;        /* -1 quiet, 0 normal, 1 per-session lines */
};

struct ds_server;

/* Host keys and one ssh_bind per distinct key; threads started.  Returns
 * the server, or NULL with a reason in err. */
struct ds_server *ds_server_new(struct ds_inventory *inv, const struct ds_opts *o,
                                char *err, size_t errlen);
/* Hand an accepted socket for dev to a loop thread (takes fd in every case). */
void ds_server_dispatch(struct ds_server *s, struct ds_device *dev, int fd);
/* Count a connection closed at once for a refuse_times fault. */
void ds_server_count_refused(struct ds_server *s);
/* Make every device's next config differ (SIGUSR1). */
void ds_server_bump_revision(struct ds_server *s);
/* One line of counters to stderr. */
void ds_server_stats(struct ds_server *s);
/* Stop and join the threads, close sessions, free (NULL is fine). */
void ds_server_free(struct ds_server *s);

void ds_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern int ds_verbosity;        /* -1 quiet, 0 normal, 1 verbose */

#endif /* DS_DEVSIM_H */
