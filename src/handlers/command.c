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
 * The opening, the login, the failure and the closing line are the SSH
 * job's (nr_sshjob_*, ssh_job.c); the work here is the commands.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "handlers_i.h"
#include "netraven/log.h"
#include "netraven/secret.h"

void nr_handler_command(const struct nr_handler_ctx *ctx, struct nr_result *out)
{
    const struct nr_strlist *cmds = ctx->payload ? &ctx->payload->commands : NULL;
    json_t *outputs = json_array();
    struct nr_sshjob j;
    size_t ran = 0;

    nr_sshjob_begin(&j, ctx, out);
    if (cmds == NULL || cmds->n == 0)
        nr_sshjob_fail(&j, NR_FAILURE_INPUT, "input",
                       "the job carries no commands (payload \"commands\")");
    if (nr_sshjob_login(&j)) {
        for (size_t k = 0; k < cmds->n && !j.c->ssh->err; k++) {
            char *raw = NULL, *text = NULL;
            size_t raw_len = 0, text_len = 0, nred = 0;
            double ms = 0;
            /* shown redacted, like a config line: "username x secret y",
             * or a command that carries the login password */
            char *cmd = nr_redact_line(cmds->v[k], &j.red);

            if (nr_cli_run(j.c, cmds->v[k], &raw, &raw_len, &ms) < 0) {
                json_object_set_new(j.d, "failed_command", nr_handler_jstr(cmd));
                free(cmd);
                break;
            }
            if (nr_redact(raw, raw_len, &j.red, &text, &text_len, &nred) == 0) {
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
    }
    json_object_set_new(j.d, "outputs", outputs);

    const struct nr_kv count[] = { NR_I("count", ran) };

    nr_sshjob_end(&j, NR_EV_COMMANDS_OK, NR_EV_COMMANDS_FAILED, count, NR_ARRAY_LEN(count));
}
