/*
 * catalog.c - the event catalog as data: one row per NR_EVENT line of
 * events.def, indexed by enum nr_event, so that the call sites, the router
 * and the tests all read the same table.
 */
#include "netraven/log.h"

#define NR_EV_TYPE_JOB        NR_LOG_JOB
#define NR_EV_TYPE_CONNECTION NR_LOG_CONNECTION
#define NR_EV_TYPE_SESSION    NR_LOG_SESSION
#define NR_EV_TYPE_SYSTEM     NR_LOG_SYSTEM

#define NR_EV_LEVEL_DEBUG    NR_LOG_DEBUG
#define NR_EV_LEVEL_INFO     NR_LOG_INFO
#define NR_EV_LEVEL_WARNING  NR_LOG_WARNING
#define NR_EV_LEVEL_ERROR    NR_LOG_ERROR
#define NR_EV_LEVEL_CRITICAL NR_LOG_CRITICAL

const struct nr_event_def nr_events[NR_EV_COUNT] = {
#define NR_EVENT(id, type_, level_, src, audit_row, template_)                 \
    [NR_EV_##id] = {                                                         \
        .name   = #id,                                                       \
        .type   = NR_EV_TYPE_##type_,                                        \
        .level  = NR_EV_LEVEL_##level_,                                      \
        .source = src,                                                       \
        .audit  = audit_row,                                                 \
        .tmpl   = template_,                                                 \
    },
#include "netraven/events.def"
#undef NR_EVENT
};
