/*
 * ssh_job.c - what the SSH handlers share (handlers_i.h): the skeleton of
 * an SSH job on one device (the opening, the credential fallback and its
 * logins, the failure's details, the closing line and the end of the
 * session), and the pieces of a result's JSON.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "handlers_i.h"
#include "netraven/log.h"
#include "netraven/secret.h"

/* ---- the skeleton ---------------------------------------------------------- */

void nr_sshjob_begin(struct nr_sshjob *j, const struct nr_handler_ctx *ctx,
                     struct nr_result *out)
{
    memset(j, 0, sizeof(*j));
    j->t0 = nr_mono_ns();
    j->ctx = ctx;
    j->out = out;
    j->type = nr_devtype_find(ctx->device->device_type);
    j->d = json_object();
    memset(&out->failure, 0, sizeof(out->failure));
}

void nr_sshjob_fail(struct nr_sshjob *j, enum nr_failure_class cls, const char *stage,
                    const char *msg)
{
    if (nr_sshjob_ok(j))
        nr_failure_set(&j->out->failure, cls, stage, "%s", msg);
}

bool nr_sshjob_ok(struct nr_sshjob *j)
{
    if (j->out->failure.cls != NR_FAILURE_NONE)
        return false;
    if (j->c == NULL || j->c->ssh->err == NR_SSH_OK)
        return true;
    nr_ssh_failure(j->c->ssh, &j->out->failure);
    return false;
}

bool nr_sshjob_login(struct nr_sshjob *j)
{
    if (!nr_sshjob_ok(j))
        return false;
    if (j->ctx->ncreds == 0) {
        nr_sshjob_fail(j, NR_FAILURE_NO_CREDENTIALS, "auth", "no credentials match this device");
        return false;
    }
    j->c = nr_handler_cli_connect(j->ctx, j->type, j->out, &j->cred, &j->tried);
    json_object_set_new(j->d, "credentials_tried", json_integer((json_int_t)j->tried));
    nr_handler_details_logins(j->d, j->ctx, j->out);
    /* patterns, every password tried here, the enable secret in use */
    nr_handler_redaction(j->ctx, j->type, j->cred, j->tried, &j->red);
    return nr_sshjob_ok(j);
}

void nr_sshjob_end(struct nr_sshjob *j, enum nr_event ok, enum nr_event failed,
                   const struct nr_kv *extra, size_t nextra)
{
    const struct nr_device *dev = j->ctx->device;
    const struct nr_job *job = j->ctx->job;
    const struct nr_failure *f = &j->out->failure;
    bool success = nr_sshjob_ok(j);
    enum nr_event ev = success ? ok : failed;

    if (!success)
        nr_failure_details(j->d, f);
    nr_handler_details_device(j->d, j->ctx, j->cred);
    j->out->success = success;
    j->out->device_seen = success;

    if (nr_log_enabled(ev)) {
        struct nr_kv kv[8];
        size_t n = 0;

        kv[n++] = NR_S("device_name", dev->hostname ? dev->hostname : dev->ip_address);
        kv[n++] = NR_S("job_name", job && job->name ? job->name : "");
        if (!success) {
            kv[n++] = NR_S("class", nr_failure_name(f->cls));
            kv[n++] = NR_S("stage", f->stage);
            kv[n++] = NR_S("error", f->message);
        }
        for (size_t i = 0; i < nextra && n < NR_ARRAY_LEN(kv); i++)
            kv[n++] = extra[i];
        nr_log_emit(ev, job ? job->id : 0, dev->id, kv, n);
    }
    /* The session ends before the result is complete: duration_ms covers it. */
    nr_cli_free(j->c);
    j->c = NULL;
    json_object_set_new(j->d, "duration_ms", nr_handler_jms(j->t0));
    json_decref(j->out->details);
    j->out->details = j->d;
    j->d = NULL;
}

double nr_sshjob_seconds(const struct nr_sshjob *j)
{
    return (double)(nr_mono_ns() - j->t0) / 1e9;
}

/* ---- pieces ---------------------------------------------------------------- */

json_t *nr_handler_jstr(const char *s)
{
    json_t *j;
    char *copy;

    if (s == NULL)
        return json_null();
    j = json_string(s);
    if (j != NULL)
        return j;
    /* not UTF-8 (device output, names): only the bad bytes become '?' */
    copy = nr_strdup(s);
    nr_utf8_scrub(copy, strlen(copy));
    j = json_string(copy);
    free(copy);
    return j ? j : json_null();
}

json_t *nr_handler_jms(uint64_t t0)
{
    double ms = (double)(nr_mono_ns() - t0) / 1e6;

    return json_real(round(ms * 1e3) / 1e3);
}

void nr_handler_details_device(json_t *d, const struct nr_handler_ctx *ctx,
                               const struct nr_credential *cred)
{
    const struct nr_device *dev = ctx->device;

    json_object_set_new(d, "device_type", nr_handler_jstr(dev->device_type));
    json_object_set_new(d, "hostname", nr_handler_jstr(dev->hostname));
    if (cred) {
        json_object_set_new(d, "credential_id", json_integer(cred->id));
        json_object_set_new(d, "username", nr_handler_jstr(cred->username));
    }
}

void nr_handler_details_logins(json_t *d, const struct nr_handler_ctx *ctx,
                               const struct nr_result *out)
{
    json_t *a = json_array();

    for (size_t i = 0; i < out->nattempts; i++) {
        const char *user = NULL;

        for (size_t k = 0; k < ctx->ncreds; k++)
            if (ctx->creds[k].id == out->attempts[i].cred_id)
                user = ctx->creds[k].username;
        json_array_append_new(a, json_pack("{s:I, s:o, s:s}",
            "credential_id", (json_int_t)out->attempts[i].cred_id,
            "username", nr_handler_jstr(user),
            "result", out->attempts[i].success ? "accepted" : "refused"));
    }
    json_object_set_new(d, "logins", a);
}

struct nr_cli *nr_handler_cli_connect(const struct nr_handler_ctx *ctx,
                                      const struct nr_devtype *type, struct nr_result *out,
                                      const struct nr_credential **used, size_t *tried)
{
    const struct nr_config *cfg = ctx->cfg;
    const struct nr_device *dev = ctx->device;
    const char *enable_secret = cfg->ssh.enable_secret && cfg->ssh.enable_secret[0]
                                    ? cfg->ssh.enable_secret : NULL;
    size_t max = ctx->ncreds;
    struct nr_cli *c = NULL;
    double connect_s, command_s;

    nr_config_device_timeouts(cfg, (int)type->id, &connect_s, &command_s);
    if (cfg->worker.max_credential_attempts > 0 &&
        max > (size_t)cfg->worker.max_credential_attempts)
        max = (size_t)cfg->worker.max_credential_attempts;
    for (size_t k = 0; k < max; k++) {
        const struct nr_credential *cred = &ctx->creds[k];
        struct nr_ssh_target t = {
            .host = dev->ip_address,
            .port = dev->port,
            .device_name = dev->hostname,
            .job_id = ctx->job ? ctx->job->id : 0,
            .device_id = dev->id,
            .username = cred->username,
            .password = cred->password,
            .credential_id = cred->id,
            .connect_timeout = connect_s,
            .command_timeout = command_s,
        };

        nr_cli_free(c);     /* the refused session ends before the next begins */
        NR_LOG(NR_EV_CONN_CREDENTIAL_TRY, t.job_id, dev->id,
               NR_S("device_name", dev->hostname ? dev->hostname : dev->ip_address),
               NR_I("credential_id", cred->id), NR_S("username", cred->username),
               NR_I("attempt", k + 1), NR_I("max_attempts", max));
        c = nr_cli_connect(cfg, &t, type, enable_secret);
        *used = cred;
        *tried = k + 1;
        if ((c->ssh->auth_method || c->ssh->err == NR_SSH_AUTH) &&
            out->nattempts < NR_ARRAY_LEN(out->attempts)) {
            out->attempts[out->nattempts].cred_id = cred->id;
            out->attempts[out->nattempts].success = c->ssh->auth_method != NULL;
            out->nattempts++;
        }
        if (c->ssh->err != NR_SSH_AUTH || c->ssh->stage != NR_SSH_STAGE_AUTH)
            break;
    }
    return c;
}

void nr_handler_redaction(const struct nr_handler_ctx *ctx, const struct nr_devtype *type,
                          const struct nr_credential *used, size_t tried,
                          struct nr_redaction *r)
{
    const char *enable = ctx->cfg->ssh.enable_secret;

    nr_redaction_init(r, ctx->cfg);
    if (used == NULL)
        return;
    /* the secrets most likely printed first, should the table be full */
    nr_redaction_add_secret(r, used->password, NR_KIND_LOGIN_PASSWORD);
    nr_redaction_add_secret(r, enable && enable[0] ? enable : used->password,
                            NR_KIND_ENABLE_SECRET);
    for (size_t k = 0; k < tried && k < ctx->ncreds; k++)
        nr_redaction_add_secret(r, ctx->creds[k].password, NR_KIND_LOGIN_PASSWORD);
    /* what the platform prints in place of a secret it keeps encrypted,
     * differently at each display (FortiOS "ENC") */
    for (const char *const *w = type->secret_words; w && *w; w++)
        nr_redaction_add_secret(r, *w, NR_KIND_ENCRYPTED);
}

