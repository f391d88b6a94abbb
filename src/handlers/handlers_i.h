/*
 * handlers_i.h - what the SSH handlers (backup.c, command.c) share
 * (ssh_job.c): the job's skeleton, logging in with the device's
 * credentials, and the JSON of a result.
 */
#ifndef NR_HANDLERS_I_H
#define NR_HANDLERS_I_H

#include <jansson.h>

#include "netraven/handler.h"
#include "netraven/log.h"
#include "netraven/secret.h"
#include "netraven/ssh.h"

/*
 * An SSH job on one device (config_backup, backup, command): what every
 * such handler does around its own work, once.
 *
 *   struct nr_sshjob j;
 *   nr_sshjob_begin(&j, ctx, out);     the clock, the details, no failure
 *   ... details the job opens with (j.d), or a failure of its input
 *       (nr_sshjob_fail) ...
 *   if (nr_sshjob_login(&j)) {         credential fallback, logins
 *       ... the work on j.c, redacted with j.red; a failure of the
 *           session stays in j.c->ssh, any other: nr_sshjob_fail ...
 *   }
 *   if (nr_sshjob_ok(&j)) ... hand over what the work produced ...
 *   nr_sshjob_end(&j, ok_event, failed_event, extra, nextra);
 *
 * nr_sshjob_end writes the failure (details error / class / stage), the
 * device's details, logs the closing line, ends the session and sets
 * duration_ms; out->details, success and device_seen are set then.
 */
struct nr_sshjob {
    const struct nr_handler_ctx *ctx;
    struct nr_result            *out;
    const struct nr_devtype     *type;      /* the device's row (never NULL) */
    json_t                      *d;         /* details under way, handed to out at the end */
    struct nr_cli               *c;         /* the session; NULL until a login was tried */
    const struct nr_credential  *cred;      /* the session's credential; NULL: none */
    size_t                       tried;     /* credentials tried */
    struct nr_redaction          red;       /* set by nr_sshjob_login */
    uint64_t                     t0;        /* nr_mono_ns() at the start */
};

void nr_sshjob_begin(struct nr_sshjob *j, const struct nr_handler_ctx *ctx,
                     struct nr_result *out);

/* The job fails, unless it failed already: class, stage (static) and the
 * message. */
void nr_sshjob_fail(struct nr_sshjob *j, enum nr_failure_class cls, const char *stage,
                    const char *msg);

/*
 * Unless the job failed already: open a CLI session with the device's
 * credentials, best first (nr_handler_cli_connect), then details
 * credentials_tried and logins and the session's redaction in j->red
 * (nr_handler_redaction).  No credentials is a failure (NO_CREDENTIALS)
 * that tries nothing.  True when j->c is logged in and usable.
 */
bool nr_sshjob_login(struct nr_sshjob *j);

/* True when nothing failed so far; else out->failure says what (a failure
 * of the session is taken there). */
bool nr_sshjob_ok(struct nr_sshjob *j);

/* The end (above).  The closing line is event ok or failed with
 * device_name and job_name, then on failure class, stage and error, then
 * extra[0, nextra). */
void nr_sshjob_end(struct nr_sshjob *j, enum nr_event ok, enum nr_event failed,
                   const struct nr_kv *extra, size_t nextra);

/* Seconds since the job began. */
double nr_sshjob_seconds(const struct nr_sshjob *j);

/*
 * Open a CLI session to ctx->device with its credentials, best first: a
 * credential that the device refuses at login (class auth, stage auth)
 * passes to the next one, up to worker.max_credential_attempts; any other
 * outcome ends the loop.  (Retries of timeouts belong to the dispatcher.)
 * Each credential that got an answer at login is appended to
 * out->attempts (success: logged in), for the run to record; one that
 * never got that far (refused connection, timeout, host key) is not.
 * Each credential tried is a connection record (CONN_CREDENTIAL_TRY:
 * credential id and username), and the session uses the timeouts of the
 * device's type (worker.device_types.*, else worker.*).
 * Requires ctx->ncreds > 0.  Never NULL; check ->ssh->err; *used is the
 * credential of the returned session, *tried how many were tried.
 */
struct nr_cli *nr_handler_cli_connect(const struct nr_handler_ctx *ctx,
                                      const struct nr_devtype *type, struct nr_result *out,
                                      const struct nr_credential **used, size_t *tried);

/*
 * The redaction of this session's output and commands (secret.h): the
 * patterns and marker of ctx->cfg; the password of *used (kind "login
 * password"); the enable secret in use, ssh.enable_secret when set, else
 * that same password (kind "enable secret"; a duplicate keeps its first
 * kind); then the passwords of the other credentials tried, ctx->creds[0,
 * tried), while NR_REDACT_MAX_SECRETS allows, and the words type (the
 * device's row) prints in place of an encrypted secret.  used may be NULL
 * (nothing tried: patterns only).  r points into ctx: it is valid while ctx is.
 */
void nr_handler_redaction(const struct nr_handler_ctx *ctx, const struct nr_devtype *type,
                          const struct nr_credential *used, size_t tried,
                          struct nr_redaction *r);

/* A JSON string of s (NULL -> null); bytes that are not UTF-8 become '?'. */
json_t *nr_handler_jstr(const char *s);

/* Milliseconds since t0 (nr_mono_ns), rounded to the microsecond. */
json_t *nr_handler_jms(uint64_t t0);

/* The common part of details: device_type, hostname, credential_id,
 * username (cred may be NULL). */
void nr_handler_details_device(json_t *d, const struct nr_handler_ctx *ctx,
                               const struct nr_credential *cred);

/* details.logins: each credential in out->attempts with its username and
 * "accepted" / "refused" (never a password). */
void nr_handler_details_logins(json_t *d, const struct nr_handler_ctx *ctx,
                               const struct nr_result *out);

#endif /* NR_HANDLERS_I_H */
