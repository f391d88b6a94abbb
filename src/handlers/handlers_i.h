/*
 * handlers_i.h - what the SSH handlers (backup.c, command.c) share:
 * logging in with the device's credentials, and the JSON of a result.
 */
#ifndef NR_HANDLERS_I_H
#define NR_HANDLERS_I_H

#include <jansson.h>

#include "netraven/handler.h"
#include "netraven/secret.h"
#include "netraven/ssh.h"

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
 * tried), while NR_REDACT_MAX_SECRETS allows.  used may be NULL (nothing
 * tried: patterns only).  r points into ctx: it is valid while ctx is.
 */
void nr_handler_redaction(const struct nr_handler_ctx *ctx, const struct nr_credential *used,
                          size_t tried, struct nr_redaction *r);

/* A JSON string of s (NULL -> null); bytes that are not UTF-8 become '?'. */
json_t *nr_handler_jstr(const char *s);

/* Milliseconds since t0 (nr_mono_ns), rounded to the microsecond. */
json_t *nr_handler_jms(uint64_t t0);

/* The common part of details: device_type, hostname, credential_id,
 * username (cred may be NULL). */
void nr_handler_details_device(json_t *d, const struct nr_handler_ctx *ctx,
                               const struct nr_credential *cred);

/* details.error / class / stage from a failed session. */
void nr_handler_details_failure(json_t *d, const struct nr_ssh *s);

/* What a failed session means to the dispatcher (handler.h): refused,
 * unreachable, timeouts and a session lost after the handshake are
 * transient; auth is auth; host key, a handshake that failed and the
 * output cap are permanent.  NR_FAIL_NONE when s has no failure. */
enum nr_fail_kind nr_handler_fail_kind(const struct nr_ssh *s);

/* details.logins: each credential in out->attempts with its username and
 * "accepted" / "refused" (never a password). */
void nr_handler_details_logins(json_t *d, const struct nr_handler_ctx *ctx,
                               const struct nr_result *out);

#endif /* NR_HANDLERS_I_H */
