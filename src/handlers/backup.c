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
 * written from out->failure (failure.h), which the dispatcher reads.
 * "logins" lists every credential tried and whether the device took it.
 * The opening, the login, the failure and the closing line are the SSH
 * job's (nr_sshjob_*, ssh_job.c); the work here is the config.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "handlers_i.h"
#include "netraven/log.h"
#include "netraven/metrics.h"
#include "netraven/secret.h"

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
    struct nr_sshjob j;
    char *raw = NULL, *config = NULL, hash[65] = "";
    size_t raw_len = 0, config_len = 0, redacted = 0, nvolatile = 0;
    bool keep_volatile;
    char *commands;

    nr_sshjob_begin(&j, ctx, out);
    keep_volatile = j.type->id < NR_DEVTYPE_COUNT &&
                    ctx->cfg->worker.device_types[j.type->id].keep_volatile;
    commands = nr_devtype_commands(j.type);
    json_object_set_new(j.d, "command", json_string(commands));
    free(commands);

    /* stored text, hash, bytes, lines_redacted: all of the redacted text */
    if (nr_sshjob_login(&j)) {
        if (nr_cli_config(j.c, keep_volatile, &raw, &raw_len, &nvolatile) == 0 &&
            nr_redact(raw, raw_len, &j.red, &config, &config_len, &redacted) == 0 &&
            sha256_hex(config, config_len, hash) == 0) {
            json_object_set_new(j.d, "bytes", json_integer((json_int_t)config_len));
            json_object_set_new(j.d, "lines_redacted", json_integer((json_int_t)redacted));
            json_object_set_new(j.d, "volatile_lines_removed",
                                json_integer((json_int_t)nvolatile));
        } else if (j.c->ssh->err == NR_SSH_OK) {
            nr_sshjob_fail(&j, NR_FAILURE_INTERNAL, "command",
                           "could not redact or hash the configuration");
        }
    }
    nr_secret_free(raw, raw_len);           /* it may hold a secret in clear */

    if (nr_sshjob_ok(&j)) {
        free(out->config);
        out->config = config;
        out->config_len = config_len;
        memcpy(out->config_hash, hash, sizeof(hash));
        config = NULL;
    }
    free(config);

    const struct nr_kv done[] = {
        NR_I("bytes", config_len), NR_I("lines_redacted", redacted), NR_S("config_hash", hash),
    };
    bool ok = nr_sshjob_ok(&j);

    nr_sshjob_end(&j, NR_EV_BACKUP_OK, NR_EV_BACKUP_FAILED, ok ? done : NULL,
                  ok ? NR_ARRAY_LEN(done) : 0);
    nr_metrics_backup_observe(out->success, nr_sshjob_seconds(&j));
}
