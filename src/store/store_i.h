/*
 * store_i.h - what the files of the store module share and nobody else
 * uses: the embedded schema files and the script runner of store.c.
 */
#ifndef NR_STORE_I_H
#define NR_STORE_I_H

#include <libpq-fe.h>

#include "netraven/store.h"

/* One file of sql/, embedded at build time by sql/embed.py. */
struct nr_migration {
    const char *name;       /* file name, e.g. "001_netraven_schema.sql" */
    const char *sql;        /* its whole text */
};

/* Generated (build/sql/sql_embed.c), sorted by name. */
extern const struct nr_migration nr_migrations[];
extern const size_t nr_migrations_count;

/* A script of several statements without parameters (PQexec), for the
 * embedded schema only.  Same contract as nr_store_query (store.h); on
 * failure errstr is prefixed with what and, when the server gave a
 * position, the script's line number ("001_x.sql:12: ERROR: ..."). */
PGresult *nr_store_script(struct nr_store *s, const char *what, const char *sql);

#endif /* NR_STORE_I_H */
