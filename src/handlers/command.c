/*
 * command.c - the "command" job type: run the queue message's commands
 * (payload "commands": [...]) on the device's CLI, in order, in one
 * session, after paging off and enable as for a backup.
 *
 * Each output, and each command line as details show it, is redacted as a
 * configuration is (nr_handler_redaction: worker.redaction.patterns, the
 * passwords tried, the enable secret); outputs are bounded by
 * worker.max_output_bytes (beyond it the command fails, class "output
 * cap").  details:
 *   {"device_type": ..., "hostname": ..., "credential_id": 3, "username": ...,
 *    "outputs": [{"command": "show version", "output": "...", "bytes": 812,
 *                 "ms": 51.2, "lines_redacted": 0}, ...],
 *    "duration_ms": 230.1}
 * A failure stops at the failing command; details then also carry
 * "error", "class", "stage" and "failed_command", and the outputs so far.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "handlers_i.h"
#include "netraven/log.h"
#include "netraven/secret.h"

void nr_handler_command(const struct nr_handler_ctx *ctx, struct nr_result *out)
{
    const struct nr_device *dev = ctx->device;
    const struct nr_devtype *type = nr_devtype_find(dev->device_type);
    const struct nr_strlist *cmds = ctx->payload ? &ctx->payload->commands : NULL;
    const char *device_name = dev->hostname ? dev->hostname : dev->ip_address;
    const char *job_name = ctx->job && ctx->job->name ? ctx->job->name : "";
    long long job_id = ctx->job ? ctx->job->id : 0;
    const struct nr_credential *cred = NULL;
    uint64_t t0 = nr_mono_ns();
    json_t *d = json_object(), *outputs = json_array();
    struct nr_cli *c = NULL;
    struct nr_redaction red;
    const char *error = NULL, *class = NULL, *stage = NULL;
    size_t tried = 0, ran = 0;

    out->fail = NR_FAIL_NONE;

    if (cmds == NULL || cmds->n == 0) {
        error = "the job carries no commands (payload \"commands\")";
        class = "input";
        stage = "input";
    } else if (ctx->ncreds == 0) {
        error = "no credentials match this device";
        class = "auth";
        stage = "auth";
    }
    if (error) {
        json_object_set_new(d, "error", json_string(error));
        json_object_set_new(d, "class", json_string(class));
        json_object_set_new(d, "stage", json_string(stage));
    } else {
        c = nr_handler_cli_connect(ctx, type, out, &cred, &tried);
        json_object_set_new(d, "credentials_tried", json_integer((json_int_t)tried));
        nr_handler_details_logins(d, ctx, out);
        nr_handler_redaction(ctx, cred, tried, &red);
        for (size_t k = 0; k < cmds->n && !c->ssh->err; k++) {
            char *raw = NULL, *text = NULL;
            size_t raw_len = 0, text_len = 0, nred = 0;
            double ms = 0;
            /* shown redacted, like a config line: "username x secret y",
             * or a command that carries the login password */
            char *cmd = nr_redact_line(cmds->v[k], &red);

            if (nr_cli_run(c, cmds->v[k], &raw, &raw_len, &ms) < 0) {
                json_object_set_new(d, "failed_command", nr_handler_jstr(cmd));
                free(cmd);
                break;
            }
            if (nr_redact(raw, raw_len, &red, &text, &text_len, &nred) == 0) {
                json_t *o = json_stringn(text, text_len);

                json_array_append_new(outputs, json_pack("{s:o, s:o, s:I, s:f, s:I}",
                    "command", nr_handler_jstr(cmd),
                    "output", o ? o : json_string(""),
                    "bytes", (json_int_t)text_len,
                    "ms", round(ms * 1e3) / 1e3,
                    "lines_redacted", (json_int_t)nred));
                ran++;
            }
            nr_secret_free(raw, raw_len);   /* it may hold a secret in clear */
            free(text);
            free(cmd);
        }
        if (c->ssh->err) {
            nr_handler_details_failure(d, c->ssh);
            error = c->ssh->errstr;
            class = nr_ssh_fail_name(c->ssh->err);
            stage = nr_ssh_stage_name(c->ssh->stage);
            out->fail = nr_handler_fail_kind(c->ssh);
        }
    }
    nr_handler_details_device(d, ctx, cred);
    json_object_set_new(d, "outputs", outputs);
    out->success = error == NULL;
    out->device_seen = out->success;

    if (out->success)
        NR_LOG(NR_EV_COMMANDS_OK, job_id, dev->id, NR_S("device_name", device_name),
               NR_S("job_name", job_name), NR_I("count", ran));
    else
        NR_LOG(NR_EV_COMMANDS_FAILED, job_id, dev->id, NR_S("device_name", device_name),
               NR_S("job_name", job_name), NR_S("class", class), NR_S("stage", stage),
               NR_S("error", error), NR_I("count", ran));
    nr_cli_free(c);
    json_object_set_new(d, "duration_ms", nr_handler_jms(t0));
    json_decref(out->details);
    out->details = d;
}
