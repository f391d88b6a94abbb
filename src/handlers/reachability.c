/*
 * reachability.c - the "reachability" job type (docs/netraven.md §3.3):
 * ICMP echo plus TCP 22 and 443 to the device's address, all at once; the
 * device is reachable when any of them answers.
 *
 * details, written to job_results.details by the run:
 *   {"reachable": true, "ip": "192.0.2.1",
 *    "probes": {"icmp":    {"status": "ok", "latency_ms": 0.12, "detail": "echo reply ..."},
 *               "tcp_22":  {"status": "refused", "latency_ms": null, "detail": "..."},
 *               "tcp_443": {...}},
 *    "duration_ms": 1.3}
 * latency_ms is null for a probe that got no answer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers_i.h"
#include "netraven/handler.h"
#include "netraven/log.h"
#include "netraven/probe.h"


/* Milliseconds to the microsecond: more digits would be noise. */
static json_t *json_ms(double ms)
{
    return json_real(round(ms * 1e3) / 1e3);
}

static json_t *probe_json(const struct nr_probe_result *r)
{
    return json_pack("{s:s, s:o, s:o}",
                     "status", nr_probe_status_name(r->status),
                     "latency_ms", r->latency_ms >= 0 ? json_ms(r->latency_ms) : json_null(),
                     "detail", nr_handler_jstr(r->detail));
}

/* "icmp", "tcp_22" for the details; "icmp", "tcp/22" for the log line. */
static void probe_key(const struct nr_probe_result *r, char *buf, size_t len, char sep)
{
    if (r->kind == NR_PROBE_ICMP)
        snprintf(buf, len, "icmp");
    else
        snprintf(buf, len, "tcp%c%d", sep, r->port);
}

void nr_handler_reachability(const struct nr_handler_ctx *ctx, struct nr_result *out)
{
    const struct nr_device *dev = ctx->device;
    const char *ip = dev->ip_address ? dev->ip_address : "";
    const char *device_name = dev->hostname ? dev->hostname : ip;
    const char *job_name = ctx->job && ctx->job->name ? ctx->job->name : "";
    long long job_id = ctx->job ? ctx->job->id : 0;
    double timeout = ctx->cfg ? ctx->cfg->worker.connection_timeout : 0;
    struct nr_probe_result res[NR_REACH_PROBES];
    char summary[256] = "";
    size_t used = 0;
    json_t *details, *probes;
    double t0, duration_ms;
    int answered;

    NR_LOG(NR_EV_REACH_ENTERED, job_id, dev->id,
           NR_S("device_name", device_name), NR_S("job_name", job_name));

    if (!(timeout > 0))         /* a configuration that was not loaded: keys.def's */
        timeout = nr_config_default()->worker.connection_timeout;
    t0 = nr_mono_ms();
    answered = nr_probe_reachability(ip, timeout, res);
    duration_ms = nr_mono_ms() - t0;

    probes = json_object();
    for (size_t i = 0; i < NR_REACH_PROBES; i++) {
        char key[16];
        int w;

        probe_key(&res[i], key, sizeof(key), '_');
        json_object_set_new(probes, key, probe_json(&res[i]));

        probe_key(&res[i], key, sizeof(key), '/');
        w = snprintf(summary + used, sizeof(summary) - used, "%s%s %s",
                     i ? ", " : "", key, nr_probe_status_name(res[i].status));
        if (w > 0 && (size_t)w < sizeof(summary) - used)
            used += (size_t)w;
    }
    details = json_pack("{s:b, s:o, s:o, s:o}",
                        "reachable", answered > 0,
                        "ip", nr_handler_jstr(ip),
                        "probes", probes,
                        "duration_ms", json_ms(duration_ms));

    json_decref(out->details);
    out->details = details;
    out->success = answered > 0;

    if (out->success)
        NR_LOG(NR_EV_REACH_OK, job_id, dev->id,
               NR_S("device_name", device_name), NR_S("job_name", job_name),
               NR_S("ip", ip), NR_S("probes", summary),
               NR_D("duration_ms", duration_ms));
    else
        NR_LOG(NR_EV_REACH_FAILED, job_id, dev->id,
               NR_S("device_name", device_name), NR_S("job_name", job_name),
               NR_S("ip", ip), NR_S("error", summary),
               NR_D("duration_ms", duration_ms));
}
