/*
 * backup.c - the "config_backup" job type, also registered as "backup"
 * (the jobs table's default job_type) (docs/netraven.md §3.3, §3.4): log in,
 * turn paging off, print the running config with the device type's command,
 * redact it (worker.redaction.patterns, and every line holding a password
 * tried on the device or the enable secret: nr_handler_redaction), and hand
 * it with its sha256 to the run thread, which stores it unless the device's
 * newest snapshot has the same hash.
 *
 * details on success:
 *   {"device_type": "cisco_ios", "hostname": "r1", "command": "show running-config",
 *    "bytes": 20480, "lines_redacted": 9, "duration_ms": 312.5,
 *    "credential_id": 3, "username": "netops", "credentials_tried": 1,
 *    "logins": [{"credential_id": 3, "username": "netops", "result": "accepted"}]}
 * on failure the same keys that apply, plus
 *   {"error": "...", "class": "timeout", "stage": "prompt"}
 * (class and stage: nr_ssh_fail_name / nr_ssh_stage_name), and out->fail
 * says what the failure means to the dispatcher (nr_handler_fail_kind).
 * "logins" lists every credential tried and whether the device took it.
 *
 * Also here: what backup.c and command.c share (handlers_i.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "handlers_i.h"
#include "netraven/log.h"
#include "netraven/metrics.h"
#include "netraven/secret.h"

/* ---- shared with command.c -------------------------------------------------- */

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

void nr_handler_details_failure(json_t *d, const struct nr_ssh *s)
{
    json_object_set_new(d, "error", nr_handler_jstr(s->errstr));
    json_object_set_new(d, "class", json_string(nr_ssh_fail_name(s->err)));
    json_object_set_new(d, "stage", json_string(nr_ssh_stage_name(s->stage)));
}

enum nr_fail_kind nr_handler_fail_kind(const struct nr_ssh *s)
{
    switch (s->err) {
    case NR_SSH_OK:
        return NR_FAIL_NONE;
    case NR_SSH_REFUSED:
    case NR_SSH_UNREACHABLE:
    case NR_SSH_TIMEOUT:
        return NR_FAIL_TRANSIENT;
    case NR_SSH_AUTH:
        return NR_FAIL_AUTH;
    case NR_SSH_PROTOCOL:
        /* at connect: the handshake itself failed (no common algorithm),
         * which asking again does not change; later: the session was lost */
        return s->stage == NR_SSH_STAGE_CONNECT ? NR_FAIL_PERMANENT : NR_FAIL_TRANSIENT;
    case NR_SSH_HOSTKEY:
    case NR_SSH_OUTPUT_CAP:
    case NR_SSH_FAIL_COUNT:
        break;
    }
    return NR_FAIL_PERMANENT;
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

void nr_handler_redaction(const struct nr_handler_ctx *ctx, const struct nr_credential *used,
                          size_t tried, struct nr_redaction *r)
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
    for (const char *const *w = nr_devtype_find(ctx->device->device_type)->secret_words;
         w && *w; w++)
        nr_redaction_add_secret(r, *w, NR_KIND_ENCRYPTED);
}

/* ---- config_backup ------------------------------------------------------------ */

static int sha256_hex(const char *p, size_t n, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return NR_ERR;
    for (unsigned int i = 0; i < len; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return 0;
}

void nr_handler_config_backup(const struct nr_handler_ctx *ctx, struct nr_result *out)
{
    const struct nr_device *dev = ctx->device;
    const struct nr_devtype *type = nr_devtype_find(dev->device_type);
    const char *device_name = dev->hostname ? dev->hostname : dev->ip_address;
    const char *job_name = ctx->job && ctx->job->name ? ctx->job->name : "";
    long long job_id = ctx->job ? ctx->job->id : 0;
    const struct nr_credential *cred = NULL;
    uint64_t t0 = nr_mono_ns();
    json_t *d = json_object();
    struct nr_cli *c = NULL;
    struct nr_redaction red;
    char *raw = NULL, *config = NULL, hash[65];
    size_t raw_len = 0, config_len = 0, redacted = 0, tried = 0, nvolatile = 0;
    bool keep_volatile = type->id < NR_DEVTYPE_COUNT &&
                         ctx->cfg->worker.device_types[type->id].keep_volatile;
    const char *error = NULL, *class = "auth", *stage = "auth";

    char *commands = nr_devtype_commands(type);

    json_object_set_new(d, "command", json_string(commands));
    free(commands);
    out->fail = NR_FAIL_NONE;
    if (ctx->ncreds == 0) {
        error = "no credentials match this device";
        json_object_set_new(d, "error", json_string(error));
        json_object_set_new(d, "class", json_string(class));
        json_object_set_new(d, "stage", json_string(stage));
    } else {
        c = nr_handler_cli_connect(ctx, type, out, &cred, &tried);
        json_object_set_new(d, "credentials_tried", json_integer((json_int_t)tried));
        nr_handler_details_logins(d, ctx, out);
        /* patterns, every password tried here, the enable secret in use */
        nr_handler_redaction(ctx, cred, tried, &red);
        /* stored text, hash, bytes, lines_redacted: all of the redacted text */
        if (!c->ssh->err && nr_cli_config(c, keep_volatile, &raw, &raw_len, &nvolatile) == 0 &&
            nr_redact(raw, raw_len, &red, &config, &config_len, &redacted) == 0 &&
            sha256_hex(config, config_len, hash) == 0) {
            json_object_set_new(d, "bytes", json_integer((json_int_t)config_len));
            json_object_set_new(d, "lines_redacted", json_integer((json_int_t)redacted));
            json_object_set_new(d, "volatile_lines_removed", json_integer((json_int_t)nvolatile));
        } else if (c->ssh->err) {
            nr_handler_details_failure(d, c->ssh);
            error = c->ssh->errstr;
            class = nr_ssh_fail_name(c->ssh->err);
            stage = nr_ssh_stage_name(c->ssh->stage);
            out->fail = nr_handler_fail_kind(c->ssh);
        } else {
            error = "could not redact or hash the configuration";
            class = "protocol";
            stage = "command";
            json_object_set_new(d, "error", json_string(error));
            json_object_set_new(d, "class", json_string(class));
            json_object_set_new(d, "stage", json_string(stage));
        }
    }
    nr_handler_details_device(d, ctx, cred);
    nr_secret_free(raw, raw_len);           /* it may hold a secret in clear */

    if (error == NULL) {
        free(out->config);
        out->config = config;
        out->config_len = config_len;
        memcpy(out->config_hash, hash, sizeof(hash));
        out->device_seen = true;
        out->success = true;
        config = NULL;
    } else {
        out->success = false;
    }
    free(config);

    if (out->success)
        NR_LOG(NR_EV_BACKUP_OK, job_id, dev->id, NR_S("device_name", device_name),
               NR_S("job_name", job_name), NR_I("bytes", config_len),
               NR_I("lines_redacted", redacted), NR_S("config_hash", hash));
    else
        NR_LOG(NR_EV_BACKUP_FAILED, job_id, dev->id, NR_S("device_name", device_name),
               NR_S("job_name", job_name), NR_S("class", class), NR_S("stage", stage),
               NR_S("error", error));
    /* The session ends before the result is complete: duration_ms covers it. */
    nr_cli_free(c);
    json_object_set_new(d, "duration_ms", nr_handler_jms(t0));
    nr_metrics_backup_observe(out->success, (double)(nr_mono_ns() - t0) / 1e9);
    json_decref(out->details);
    out->details = d;
}
