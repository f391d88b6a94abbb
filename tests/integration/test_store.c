/*
 * test_store.c - the store module against a real PostgreSQL
 * (NR_TEST_DATABASE_URL): the embedded schema and its migration, the typed
 * queries, and what a caller sees when the server is away or goes away.
 *
 * Tests that need a database as NetRaven's migrations or a fresh install
 * would leave it use a scratch schema of their own (search_path set in the
 * URL), so the shared test database is never dropped.
 */
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "netraven/store.h"
#include "../../src/store/store_i.h"

static PGconn *pg;

/* ---- helpers ------------------------------------------------------------ */

static struct nr_store *store_ok(const char *url)
{
    struct nr_store *s = nr_store_connect(url);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(s->err == 0, "connect failed: %s", s->errstr);
    ck_assert(nr_store_ok(s));
    return s;
}

/* NR_TEST_DATABASE_URL with search_path set to schema (a URI query
 * parameter; libpq passes it as the options startup parameter). */
static char *url_with_schema(const char *schema)
{
    const char *url = nrt_db_url();
    char *out = NULL;
    ck_assert_msg(strstr(url, "://") != NULL, "NR_TEST_DATABASE_URL is not a URI: %s", url);
    ck_assert(asprintf(&out, "%s%soptions=-csearch_path%%3D%s", url,
                       strchr(url, '?') ? "&" : "?", schema) > 0);
    return out;
}

/* An empty schema of this name, dropped first if a previous run left it. */
static void fresh_schema(const char *schema)
{
    PQclear(nrt_sql(pg, "DROP SCHEMA IF EXISTS %s CASCADE", schema));
    PQclear(nrt_sql(pg, "CREATE SCHEMA %s", schema));
}

static void drop_schema(const char *schema)
{
    PQclear(nrt_sql(pg, "DROP SCHEMA IF EXISTS %s CASCADE", schema));
}

static long long add_device(long long id, const char *hostname, const char *ip)
{
    return nrt_sql_int(pg, "INSERT INTO devices (id, hostname, ip_address, device_type, port)"
                           " VALUES (%lld, '%s', '%s', 'cisco_ios', 2222) RETURNING id",
                       id, hostname, ip);
}

static long long add_tag(const char *name)
{
    return nrt_sql_int(pg, "INSERT INTO tags (name, type) VALUES ('%s', 'custom') RETURNING id",
                       name);
}

static void tag_device(long long device, long long tag)
{
    PQclear(nrt_sql(pg, "INSERT INTO device_tag_association VALUES (%lld, %lld)", device, tag));
}

static void tag_job(long long job, long long tag)
{
    PQclear(nrt_sql(pg, "INSERT INTO job_tags VALUES (%lld, %lld)", job, tag));
}

static long long add_job(const char *name, const char *job_type, long long device_id)
{
    char dev[24] = "NULL";
    if (device_id > 0)
        snprintf(dev, sizeof(dev), "%lld", device_id);
    if (job_type == NULL)
        return nrt_sql_int(pg, "INSERT INTO jobs (name, device_id) VALUES ('%s', %s) RETURNING id",
                           name, dev);
    return nrt_sql_int(pg, "INSERT INTO jobs (name, job_type, device_id)"
                           " VALUES ('%s', '%s', %s) RETURNING id", name, job_type, dev);
}

static void load_job(struct nr_store *s, long long id, struct nr_job *j)
{
    int rc = nr_store_job_get(s, id, j);
    ck_assert_msg(rc == 0, "job_get(%lld) = %d: %s", id, rc, s->errstr);
}

/* The ids of the devices job_devices returns, as "1,2,3". */
static char *device_ids(struct nr_store *s, const struct nr_job *j,
                        const long long *only, size_t n_only)
{
    struct nr_device *v = (struct nr_device *)1;
    size_t n = 99;
    char buf[512] = "";
    int rc = nr_store_job_devices(s, j, only, n_only, &v, &n);

    ck_assert_msg(rc == 0, "job_devices = %d: %s", rc, s->errstr);
    ck_assert(n == 0 ? v == NULL : v != NULL);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof(buf) - len, "%s%lld", i ? "," : "", v[i].id);
        ck_assert_ptr_nonnull(v[i].hostname);
        ck_assert_str_eq(v[i].device_type, "cisco_ios");
    }
    nr_device_array_free(v, n);
    return strdup(buf);
}

static void assert_ids(struct nr_store *s, const struct nr_job *j, const long long *only,
                       size_t n_only, const char *want)
{
    char *got = device_ids(s, j, only, n_only);
    ck_assert_msg(strcmp(got, want) == 0, "job %lld devices: got [%s], want [%s]",
                  j->id, got, want);
    free(got);
}

/* A loopback TCP port nobody listens on (bound, then released). */
static int dead_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert(fd >= 0);
    ck_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static void setup(void)
{
    pg = nrt_pg();
    PQsetNoticeProcessor(pg, quiet, NULL);      /* DROP SCHEMA ... CASCADE chatter */
    struct nr_store *s = store_ok(nrt_db_url());
    ck_assert_msg(nr_store_migrate(s) == 0, "migrate: %s", s->errstr);
    nr_store_free(s);
    nrt_db_reset(pg);
}

static void teardown(void)
{
    PQfinish(pg);
    pg = NULL;
}

/* ---- schema and migration ----------------------------------------------- */

START_TEST(test_migrate_twice_is_idempotent)
{
    char *url = url_with_schema("nrt_store_fresh");
    struct nr_store *s;
    char *applied;

    fresh_schema("nrt_store_fresh");
    s = store_ok(url);
    ck_assert_int_eq(nr_store_migrate(s), 0);
    ck_assert_int_eq(s->err, 0);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM nrt_store_fresh.netraven_worker_migrations"),
                     (long long)nr_migrations_count);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM pg_tables"
                                     " WHERE schemaname = 'nrt_store_fresh'"), 14);
    applied = nrt_sql_str(pg, "SELECT string_agg(name || '@' || applied_at, ',' ORDER BY name)"
                              " FROM nrt_store_fresh.netraven_worker_migrations");
    /* A fresh database is stamped for NetRaven's alembic. */
    char *rev = nrt_sql_str(pg, "SELECT string_agg(version_num, ',')"
                                " FROM nrt_store_fresh.alembic_version");
    ck_assert_str_eq(rev, "a3992da91329");
    free(rev);

    /* Second run: nothing is applied again.  Had 001 run again, it would
     * have stamped the emptied alembic_version once more. */
    PQclear(nrt_sql(pg, "DELETE FROM nrt_store_fresh.alembic_version"));
    ck_assert_int_eq(nr_store_migrate(s), 0);
    ck_assert_int_eq(s->err, 0);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM nrt_store_fresh.alembic_version"), 0);
    char *again = nrt_sql_str(pg, "SELECT string_agg(name || '@' || applied_at, ',' ORDER BY name)"
                                  " FROM nrt_store_fresh.netraven_worker_migrations");
    ck_assert_str_eq(again, applied);

    /* And from a second connection too (and on the shared database). */
    struct nr_store *s2 = store_ok(url);
    ck_assert_int_eq(nr_store_migrate(s2), 0);
    nr_store_free(s2);
    s2 = store_ok(nrt_db_url());
    ck_assert_int_eq(nr_store_migrate(s2), 0);
    ck_assert_int_eq(nr_store_migrate(s2), 0);
    nr_store_free(s2);

    free(again);
    free(applied);
    nr_store_free(s);
    drop_schema("nrt_store_fresh");
    free(url);
}
END_TEST

/* Part of a NetRaven database already there (as its alembic made it, and
 * at another revision): migrate adds what is missing, keeps the rest. */
START_TEST(test_migrate_over_existing_netraven_tables)
{
    char *url = url_with_schema("nrt_store_over");
    struct nr_store *s;

    fresh_schema("nrt_store_over");
    PQclear(nrt_sql(pg,
        "SET search_path = nrt_store_over;"
        "CREATE TYPE device_source AS ENUM ('local', 'imported');"
        "CREATE TABLE devices (id SERIAL NOT NULL, hostname VARCHAR NOT NULL,"
        " ip_address VARCHAR NOT NULL, device_type VARCHAR NOT NULL, description VARCHAR,"
        " port INTEGER DEFAULT '22', serial_number VARCHAR, model VARCHAR,"
        " source device_source DEFAULT 'local' NOT NULL, notes TEXT,"
        " created_at TIMESTAMP WITH TIME ZONE DEFAULT now(), last_seen TIMESTAMP WITH TIME ZONE,"
        " last_updated TIMESTAMP WITH TIME ZONE DEFAULT now(), updated_by VARCHAR,"
        " PRIMARY KEY (id), UNIQUE (ip_address), UNIQUE (hostname));"
        "CREATE UNIQUE INDEX ix_devices_hostname ON devices (hostname);"
        "INSERT INTO devices (hostname, ip_address, device_type) VALUES ('keep', '192.0.2.9', 'linux');"
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,"
        " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));"
        "INSERT INTO alembic_version VALUES ('fffffffffff1');"
        "SET search_path = DEFAULT"));

    s = store_ok(url);
    ck_assert_msg(nr_store_migrate(s) == 0, "migrate: %s", s->errstr);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM pg_tables"
                                     " WHERE schemaname = 'nrt_store_over'"), 14);
    char *rev = nrt_sql_str(pg, "SELECT string_agg(version_num, ',') FROM nrt_store_over.alembic_version");
    ck_assert_str_eq(rev, "fffffffffff1");
    free(rev);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM nrt_store_over.devices"
                                     " WHERE hostname = 'keep'"), 1);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM pg_type t JOIN pg_namespace n"
                                     " ON n.oid = t.typnamespace WHERE t.typname = 'device_source'"
                                     " AND n.nspname = 'nrt_store_over'"), 1);
    nr_store_free(s);
    drop_schema("nrt_store_over");
    free(url);
}
END_TEST

struct migrate_arg {
    const char *url;
    int rc;
    char errstr[256];
};

static void *migrate_thread(void *p)
{
    struct migrate_arg *a = p;
    struct nr_store *s = nr_store_connect(a->url);
    a->rc = s->err ? s->err : nr_store_migrate(s);
    memcpy(a->errstr, s->errstr, sizeof(a->errstr));
    nr_store_free(s);
    return NULL;
}

/* Workers starting together: the advisory lock lets one apply, the others
 * wait and find it done (without it, concurrent CREATEs fail). */
START_TEST(test_migrate_concurrent)
{
    enum { N = 4 };
    char *url = url_with_schema("nrt_store_race");
    struct migrate_arg a[N];
    pthread_t t[N];

    fresh_schema("nrt_store_race");
    for (int i = 0; i < N; i++) {
        a[i] = (struct migrate_arg){ .url = url };
        ck_assert_int_eq(pthread_create(&t[i], NULL, migrate_thread, &a[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++)
        ck_assert_msg(a[i].rc == 0, "worker %d: %d %s", i, a[i].rc, a[i].errstr);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM nrt_store_race.netraven_worker_migrations"),
                     (long long)nr_migrations_count);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM nrt_store_race.alembic_version"), 1);
    drop_schema("nrt_store_race");
    free(url);
}
END_TEST

/* docs/netraven.md §2 (and NetRaven's alembic revision a3992da91329):
 * every table and column with its type, length, nullability and default. */
static const struct col {
    const char *table, *column, *type;
    int         maxlen;         /* character_maximum_length, 0 = none */
    const char *nullable;       /* "YES" / "NO" */
    const char *dflt;           /* substring of column_default, NULL = no default */
} contract_cols[] = {
    { "jobs", "id", "integer", 0, "NO", "nextval(" },
    { "jobs", "name", "character varying", 0, "NO", NULL },
    { "jobs", "job_type", "character varying", 0, "NO", "'backup'" },
    { "jobs", "description", "character varying", 0, "YES", NULL },
    { "jobs", "status", "character varying", 0, "NO", "'PENDING'" },
    { "jobs", "scheduled_for", "timestamp with time zone", 0, "YES", NULL },
    { "jobs", "started_at", "timestamp with time zone", 0, "YES", NULL },
    { "jobs", "completed_at", "timestamp with time zone", 0, "YES", NULL },
    { "jobs", "is_enabled", "boolean", 0, "YES", "true" },
    { "jobs", "is_system_job", "boolean", 0, "YES", "false" },
    { "jobs", "schedule_type", "character varying", 0, "YES", NULL },
    { "jobs", "interval_seconds", "integer", 0, "YES", NULL },
    { "jobs", "cron_string", "character varying", 0, "YES", NULL },
    { "jobs", "device_id", "integer", 0, "YES", NULL },
    { "devices", "id", "integer", 0, "NO", "nextval(" },
    { "devices", "hostname", "character varying", 0, "NO", NULL },
    { "devices", "ip_address", "character varying", 0, "NO", NULL },
    { "devices", "device_type", "character varying", 0, "NO", NULL },
    { "devices", "description", "character varying", 0, "YES", NULL },
    { "devices", "port", "integer", 0, "YES", "22" },
    { "devices", "serial_number", "character varying", 0, "YES", NULL },
    { "devices", "model", "character varying", 0, "YES", NULL },
    { "devices", "source", "USER-DEFINED", 0, "NO", "'local'::device_source" },
    { "devices", "notes", "text", 0, "YES", NULL },
    { "devices", "created_at", "timestamp with time zone", 0, "YES", "now()" },
    { "devices", "last_seen", "timestamp with time zone", 0, "YES", NULL },
    { "devices", "last_updated", "timestamp with time zone", 0, "YES", "now()" },
    { "devices", "updated_by", "character varying", 0, "YES", NULL },
    { "tags", "id", "integer", 0, "NO", "nextval(" },
    { "tags", "name", "character varying", 0, "NO", NULL },
    { "tags", "type", "character varying", 0, "YES", NULL },
    { "tags", "description", "character varying", 0, "YES", NULL },
    { "device_tag_association", "device_id", "integer", 0, "NO", NULL },
    { "device_tag_association", "tag_id", "integer", 0, "NO", NULL },
    { "job_tags", "job_id", "integer", 0, "NO", NULL },
    { "job_tags", "tag_id", "integer", 0, "NO", NULL },
    { "credentials", "id", "integer", 0, "NO", "nextval(" },
    { "credentials", "username", "character varying", 0, "NO", NULL },
    { "credentials", "password", "character varying", 0, "NO", NULL },
    /* priority 100 and success_rate 1.0 are ORM-side defaults only. */
    { "credentials", "priority", "integer", 0, "YES", NULL },
    { "credentials", "last_used", "timestamp with time zone", 0, "YES", NULL },
    { "credentials", "success_rate", "double precision", 0, "YES", NULL },
    { "credentials", "description", "character varying", 0, "YES", NULL },
    { "credentials", "is_system", "boolean", 0, "YES", "false" },
    { "credential_tag_association", "credential_id", "integer", 0, "NO", NULL },
    { "credential_tag_association", "tag_id", "integer", 0, "NO", NULL },
    { "job_results", "id", "integer", 0, "NO", "nextval(" },
    { "job_results", "job_id", "integer", 0, "NO", NULL },
    { "job_results", "device_id", "integer", 0, "NO", NULL },
    { "job_results", "job_type", "character varying", 32, "NO", NULL },
    { "job_results", "status", "character varying", 16, "NO", NULL },
    { "job_results", "result_time", "timestamp with time zone", 0, "NO", NULL },
    { "job_results", "details", "jsonb", 0, "YES", NULL },
    { "job_results", "created_at", "timestamp with time zone", 0, "NO", "now()" },
    { "device_configurations", "id", "integer", 0, "NO", "nextval(" },
    { "device_configurations", "device_id", "integer", 0, "NO", NULL },
    { "device_configurations", "config_data", "text", 0, "NO", NULL },
    { "device_configurations", "retrieved_at", "timestamp with time zone", 0, "NO", "now()" },
    { "device_configurations", "config_metadata", "jsonb", 0, "YES", NULL },
    { "device_configurations", "data_hash", "text", 0, "NO", NULL },
    { "logs", "id", "integer", 0, "NO", "nextval(" },
    { "logs", "timestamp", "timestamp with time zone", 0, "NO", "now()" },
    { "logs", "log_type", "character varying", 32, "NO", NULL },
    { "logs", "level", "character varying", 16, "NO", NULL },
    { "logs", "job_id", "integer", 0, "YES", NULL },
    { "logs", "device_id", "integer", 0, "YES", NULL },
    { "logs", "source", "character varying", 64, "YES", NULL },
    { "logs", "message", "text", 0, "NO", NULL },
    { "logs", "meta", "jsonb", 0, "YES", NULL },
    { "system_settings", "id", "integer", 0, "NO", "nextval(" },
    { "system_settings", "key", "character varying", 0, "NO", NULL },
    { "system_settings", "value", "jsonb", 0, "NO", NULL },
    { "system_settings", "description", "character varying", 0, "YES", NULL },
    { "users", "id", "integer", 0, "NO", "nextval(" },
    { "users", "username", "character varying", 0, "NO", NULL },
    { "users", "email", "character varying", 0, "NO", NULL },
    { "users", "hashed_password", "character varying", 0, "NO", NULL },
    { "users", "is_active", "boolean", 0, "NO", "true" },
    { "users", "role", "character varying", 0, "NO", "'user'" },
    { "users", "full_name", "character varying", 100, "YES", NULL },
    { "users", "created_at", "timestamp with time zone", 0, "NO", "now()" },
    { "users", "updated_at", "timestamp with time zone", 0, "NO", "now()" },
    { "alembic_version", "version_num", "character varying", 32, "NO", NULL },
};

START_TEST(test_schema_matches_contract)
{
    const char *tables[] = { "jobs", "devices", "tags", "device_tag_association", "job_tags",
                             "credentials", "credential_tag_association", "job_results",
                             "device_configurations", "logs", "system_settings", "users",
                             "alembic_version" };

    for (size_t i = 0; i < sizeof(contract_cols) / sizeof(contract_cols[0]); i++) {
        const struct col *c = &contract_cols[i];
        PGresult *r = nrt_sql(pg,
            "SELECT data_type, coalesce(character_maximum_length, 0), is_nullable,"
            " column_default FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = '%s'"
            " AND column_name = '%s'", c->table, c->column);
        ck_assert_msg(PQntuples(r) == 1, "%s.%s does not exist", c->table, c->column);
        ck_assert_msg(strcmp(PQgetvalue(r, 0, 0), c->type) == 0, "%s.%s is %s, not %s",
                      c->table, c->column, PQgetvalue(r, 0, 0), c->type);
        ck_assert_msg(atoi(PQgetvalue(r, 0, 1)) == c->maxlen, "%s.%s length %s, not %d",
                      c->table, c->column, PQgetvalue(r, 0, 1), c->maxlen);
        ck_assert_msg(strcmp(PQgetvalue(r, 0, 2), c->nullable) == 0, "%s.%s nullable %s",
                      c->table, c->column, PQgetvalue(r, 0, 2));
        if (c->dflt == NULL)
            ck_assert_msg(PQgetisnull(r, 0, 3), "%s.%s has default %s", c->table, c->column,
                          PQgetvalue(r, 0, 3));
        else
            ck_assert_msg(strstr(PQgetvalue(r, 0, 3), c->dflt) != NULL,
                          "%s.%s default is '%s', want '%s'", c->table, c->column,
                          PQgetvalue(r, 0, 3), c->dflt);
        PQclear(r);
    }
    /* No column beyond those listed (the worker's ledger aside). */
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        long long want = 0;
        for (size_t k = 0; k < sizeof(contract_cols) / sizeof(contract_cols[0]); k++)
            want += strcmp(contract_cols[k].table, tables[i]) == 0;
        ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM information_schema.columns"
                                         " WHERE table_schema = current_schema()"
                                         " AND table_name = '%s'", tables[i]), want);
    }

    char *labels = nrt_sql_str(pg, "SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)"
                                   " FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
                                   " WHERE t.typname = 'device_source'"
                                   " AND t.typnamespace = current_schema()::regnamespace");
    ck_assert_str_eq(labels, "local,imported");
    free(labels);
}
END_TEST

START_TEST(test_schema_keys_and_indexes)
{
    static const struct { const char *table, *column, *ref, *rule; } fks[] = {
        { "jobs", "device_id", "devices", "SET NULL" },
        { "device_tag_association", "device_id", "devices", "CASCADE" },
        { "device_tag_association", "tag_id", "tags", "CASCADE" },
        { "job_tags", "job_id", "jobs", "CASCADE" },
        { "job_tags", "tag_id", "tags", "CASCADE" },
        { "credential_tag_association", "credential_id", "credentials", "CASCADE" },
        { "credential_tag_association", "tag_id", "tags", "CASCADE" },
        { "job_results", "job_id", "jobs", "CASCADE" },
        { "job_results", "device_id", "devices", "CASCADE" },
        { "device_configurations", "device_id", "devices", "CASCADE" },
        { "logs", "job_id", "jobs", "CASCADE" },
        { "logs", "device_id", "devices", "CASCADE" },
    };
    static const struct { const char *table, *def; } idx[] = {
        { "logs", "idx_logs_job_id ON %s.logs USING btree (job_id)" },
        { "logs", "idx_logs_device_id ON %s.logs USING btree (device_id)" },
        { "logs", "idx_logs_log_type ON %s.logs USING btree (log_type)" },
        { "logs", "idx_logs_level ON %s.logs USING btree (level)" },
        { "logs", "idx_logs_timestamp ON %s.logs USING btree (\"timestamp\")" },
        { "devices", "UNIQUE INDEX devices_hostname_key ON %s.devices USING btree (hostname)" },
        { "devices", "UNIQUE INDEX devices_ip_address_key ON %s.devices USING btree (ip_address)" },
        { "devices", "UNIQUE INDEX ix_devices_hostname ON %s.devices USING btree (hostname)" },
        { "tags", "UNIQUE INDEX ix_tags_name ON %s.tags USING btree (name)" },
        { "system_settings", "UNIQUE INDEX ix_system_settings_key ON %s.system_settings USING btree (key)" },
        { "jobs", "ix_jobs_device_id ON %s.jobs USING btree (device_id)" },
        { "jobs", "ix_jobs_status ON %s.jobs USING btree (status)" },
        { "job_results", "idx_job_results_job_id ON %s.job_results USING btree (job_id)" },
        { "device_configurations", "idx_device_configurations_fts ON %s.device_configurations"
                                   " USING gin (to_tsvector(''english''::regconfig, config_data))" },
        { "users", "UNIQUE INDEX users_username_key ON %s.users USING btree (username)" },
        { "users", "UNIQUE INDEX users_email_key ON %s.users USING btree (email)" },
        /* the worker's own (sql/002_worker_indexes.sql): the dedup lookup */
        { "device_configurations", "INDEX ix_device_configurations_device_latest ON "
          "%s.device_configurations USING btree (device_id, retrieved_at DESC, id DESC)" },
    };
    char *schema = nrt_sql_str(pg, "SELECT current_schema()");

    for (size_t i = 0; i < sizeof(fks) / sizeof(fks[0]); i++) {
        char *got = nrt_sql_str(pg,
            "SELECT string_agg(c.confrelid::regclass::text || ' ' ||"
            " CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL'"
            " WHEN 'a' THEN 'NO ACTION' ELSE c.confdeltype::text END, ',')"
            " FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid"
            " AND a.attnum = c.conkey[1]"
            " WHERE c.contype = 'f' AND c.conrelid = '%s'::regclass AND a.attname = '%s'"
            " AND cardinality(c.conkey) = 1", fks[i].table, fks[i].column);
        char want[128];
        snprintf(want, sizeof(want), "%s %s", fks[i].ref, fks[i].rule);
        ck_assert_msg(got != NULL && strcmp(got, want) == 0, "FK %s.%s: got %s, want %s",
                      fks[i].table, fks[i].column, got ? got : "(none)", want);
        free(got);
    }
    for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
        char def[256];
        snprintf(def, sizeof(def), idx[i].def, schema);
        ck_assert_msg(nrt_sql_int(pg, "SELECT count(*) FROM pg_indexes WHERE schemaname ="
                                      " current_schema() AND tablename = '%s'"
                                      " AND indexdef LIKE '%%%s'", idx[i].table, def) == 1,
                      "no index: %s", def);
    }
    /* Primary keys of the association tables are both columns. */
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT cardinality(conkey) FROM pg_constraint"
                                     " WHERE conname = 'job_tags_pkey'"
                                     " AND connamespace = current_schema()::regnamespace"), 2);
    free(schema);
}
END_TEST

START_TEST(test_script_error_names_file_and_line)
{
    struct nr_store *s = store_ok(nrt_db_url());
    PGresult *r = nr_store_script(s, "009_bad.sql", "SELECT 1;\n\nSELEC 2;\n");

    ck_assert_ptr_null(r);
    ck_assert_int_eq(s->err, NR_ERR);
    ck_assert_msg(strncmp(s->errstr, "009_bad.sql:3: ", 15) == 0, "errstr: %s", s->errstr);
    ck_assert_msg(strstr(s->errstr, "syntax error") != NULL, "errstr: %s", s->errstr);
    ck_assert(nr_store_ok(s));
    nr_store_free(s);
}
END_TEST

/* ---- jobs ---------------------------------------------------------------- */

START_TEST(test_job_get)
{
    struct nr_store *s = store_ok(nrt_db_url());
    long long dev = add_device(7, "r7", "192.0.2.7");
    long long j1 = add_job("nightly", "reachability", dev);
    long long j2 = add_job("backup-all", NULL, 0);
    struct nr_job j;

    PQclear(nrt_sql(pg, "UPDATE jobs SET is_enabled = false WHERE id = %lld", j2));

    load_job(s, j1, &j);
    ck_assert_int_eq(j.id, j1);
    ck_assert_str_eq(j.name, "nightly");
    ck_assert_str_eq(j.job_type, "reachability");
    ck_assert_str_eq(j.status, "PENDING");
    ck_assert_int_eq(j.device_id, dev);
    ck_assert(j.is_enabled);
    nr_job_clear(&j);
    ck_assert_ptr_null(j.name);

    load_job(s, j2, &j);
    ck_assert_str_eq(j.job_type, "backup");         /* the column's default */
    ck_assert_int_eq(j.device_id, 0);
    ck_assert(!j.is_enabled);
    nr_job_clear(&j);

    /* Not found: NR_NOTFOUND, *out untouched, no error recorded. */
    memset(&j, 0x5a, sizeof(j));
    ck_assert_int_eq(nr_store_job_get(s, 424242, &j), NR_NOTFOUND);
    ck_assert_int_eq(s->err, 0);
    ck_assert_int_eq(j.id, 0x5a5a5a5a5a5a5a5aLL);
    ck_assert_int_eq(nr_store_job_get(s, 1LL << 40, &j), NR_NOTFOUND);  /* beyond int4 */
    nr_store_free(s);
}
END_TEST

START_TEST(test_job_start_finish)
{
    struct nr_store *s = store_ok(nrt_db_url());
    long long id = add_job("timed", "reachability", 0);

    PQclear(nrt_sql(pg, "UPDATE jobs SET status = 'COMPLETED_FAILURE',"
                        " started_at = '2001-01-01Z', completed_at = '2001-01-01Z'"
                        " WHERE id = %lld", id));
    ck_assert_int_eq(nr_store_job_start(s, id), 0);
    char *row = nrt_sql_str(pg, "SELECT status || ' ' || (started_at > now() - interval '1 minute'"
                                " AND started_at <= now()) || ' ' || (completed_at IS NULL)"
                                " FROM jobs WHERE id = %lld", id);
    ck_assert_str_eq(row, "RUNNING true true");
    free(row);

    usleep(20 * 1000);
    ck_assert_int_eq(nr_store_job_finish(s, id, "COMPLETED_PARTIAL_FAILURE"), 0);
    row = nrt_sql_str(pg, "SELECT status || ' ' || (completed_at > started_at)"
                          " || ' ' || (completed_at <= now())"
                          " || ' ' || (started_at > now() - interval '1 minute')"
                          " FROM jobs WHERE id = %lld", id);
    ck_assert_str_eq(row, "COMPLETED_PARTIAL_FAILURE true true true");
    free(row);

    ck_assert_int_eq(nr_store_job_finish(s, id, NULL), NR_EINVAL);
    ck_assert_int_eq(nr_store_job_finish(s, id, "COMPLETED_SUCCESS"), 0);
    ck_assert_int_eq(s->err, 0);
    nr_store_free(s);
}
END_TEST

/* ---- devices ------------------------------------------------------------- */

START_TEST(test_job_devices_by_device_id)
{
    struct nr_store *s = store_ok(nrt_db_url());
    long long d1 = add_device(11, "a", "192.0.2.11");
    long long d2 = add_device(12, "b", "192.0.2.12");
    long long t = add_tag("core");
    long long id = add_job("one", "reachability", d2);
    struct nr_job j;
    struct nr_device *v;
    size_t n;

    /* The job's tags do not matter once device_id is set. */
    tag_device(d1, t);
    tag_job(id, t);
    load_job(s, id, &j);
    assert_ids(s, &j, NULL, 0, "12");

    long long only_d2[] = { d2, 999 }, only_d1[] = { d1 };
    assert_ids(s, &j, only_d2, 2, "12");
    assert_ids(s, &j, only_d1, 1, "");

    ck_assert_int_eq(nr_store_job_devices(s, &j, NULL, 0, &v, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(v[0].hostname, "b");
    ck_assert_str_eq(v[0].ip_address, "192.0.2.12");
    ck_assert_str_eq(v[0].device_type, "cisco_ios");
    ck_assert_int_eq(v[0].port, 2222);
    nr_device_array_free(v, n);
    nr_device_array_free(NULL, 0);
    nr_job_clear(&j);
    nr_store_free(s);
}
END_TEST

START_TEST(test_job_devices_by_tags)
{
    struct nr_store *s = store_ok(nrt_db_url());
    /* Ids out of insertion order, to see ORDER BY id at work. */
    long long d30 = add_device(30, "c30", "192.0.2.30");
    long long d10 = add_device(10, "c10", "192.0.2.10");
    long long d20 = add_device(20, "c20", "192.0.2.20");
    long long d40 = add_device(40, "c40", "192.0.2.40");
    long long d50 = add_device(50, "c50", "192.0.2.50");
    long long t1 = add_tag("site-a"), t2 = add_tag("site-b"), t3 = add_tag("other");
    long long id = add_job("by-tags", "config_backup", 0);
    long long bare = add_job("no-targets", "config_backup", 0);
    struct nr_job j, jb;

    (void)d40;                     /* untagged: never a target */
    tag_device(d30, t1);
    tag_device(d10, t1);
    tag_device(d10, t2);           /* in both of the job's tags: listed once */
    tag_device(d20, t2);
    tag_device(d50, t3);           /* a tag the job does not have */
    tag_job(id, t1);
    tag_job(id, t2);

    load_job(s, id, &j);
    assert_ids(s, &j, NULL, 0, "10,20,30");

    long long only[] = { 30, 40, 10, 10 };
    assert_ids(s, &j, only, 4, "10,30");
    long long none[] = { 50 };
    assert_ids(s, &j, none, 1, "");
    /* An empty restriction is no restriction. */
    assert_ids(s, &j, only, 0, "10,20,30");

    load_job(s, bare, &jb);
    assert_ids(s, &jb, NULL, 0, "");

    /* NULL port reads as NetRaven's default. */
    PQclear(nrt_sql(pg, "UPDATE devices SET port = NULL WHERE id = %lld", d20));
    struct nr_device *v;
    size_t n;
    ck_assert_int_eq(nr_store_job_devices(s, &j, NULL, 0, &v, &n), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(v[1].id, 20);
    ck_assert_int_eq(v[1].port, 22);
    ck_assert_str_eq(v[1].hostname, "c20");
    nr_device_array_free(v, n);

    nr_job_clear(&j);
    nr_job_clear(&jb);
    nr_store_free(s);
}
END_TEST

START_TEST(test_device_seen)
{
    struct nr_store *s = store_ok(nrt_db_url());
    long long d = add_device(5, "seen", "192.0.2.5");

    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM devices WHERE last_seen IS NULL"), 1);
    ck_assert_int_eq(nr_store_device_seen(s, d), 0);
    char *ok = nrt_sql_str(pg, "SELECT (last_seen > now() - interval '1 minute'"
                               " AND last_seen <= now())::text FROM devices WHERE id = %lld", d);
    ck_assert_str_eq(ok, "true");
    free(ok);
    ck_assert_int_eq(nr_store_device_seen(s, 31337), 0);   /* no such device: nothing to do */
    nr_store_free(s);
}
END_TEST

/* ---- results ------------------------------------------------------------- */

START_TEST(test_result_add)
{
    struct nr_store *s = store_ok(nrt_db_url());
    long long d = add_device(3, "res", "192.0.2.3");
    long long id = add_job("results", "reachability", d);

    ck_assert_int_eq(nr_store_result_add(s, id, d, "reachability", true,
        "{\"success\": true, \"probes\": {\"icmp\": \"ok\", \"tcp_22\": \"open\"},"
        " \"note\": \"caf\xc3\xa9 'quoted'\"}"), 0);
    char *row = nrt_sql_str(pg,
        "SELECT job_id || '|' || device_id || '|' || job_type || '|' || status || '|'"
        " || jsonb_typeof(details) || '|' || (details->'probes'->>'tcp_22') || '|'"
        " || (details->>'note') || '|' || (details->>'success') || '|'"
        " || (result_time > now() - interval '1 minute') || '|'"
        " || (created_at > now() - interval '1 minute')"
        " FROM job_results WHERE job_id = %lld", id);
    char want[256];
    snprintf(want, sizeof(want), "%lld|%lld|reachability|success|object|open|caf\xc3\xa9 'quoted'"
             "|true|true|true", id, d);
    ck_assert_str_eq(row, want);
    free(row);

    /* Failure, no job type (the column's default meaning), no details. */
    ck_assert_int_eq(nr_store_result_add(s, id, d, NULL, false, NULL), 0);
    row = nrt_sql_str(pg, "SELECT job_type || '|' || status || '|' || (details IS NULL)"
                          " FROM job_results WHERE job_id = %lld ORDER BY id DESC LIMIT 1", id);
    ck_assert_str_eq(row, "backup|failure|true");
    free(row);

    /* Bad JSON is a query error, not a lost connection; the next call clears it. */
    ck_assert_int_eq(nr_store_result_add(s, id, d, "reachability", true, "{not json"), NR_ERR);
    ck_assert_int_eq(s->err, NR_ERR);
    ck_assert_msg(strstr(s->errstr, "result_add: ") == s->errstr, "errstr: %s", s->errstr);
    ck_assert_msg(strstr(s->errstr, "json") != NULL, "errstr: %s", s->errstr);
    ck_assert_msg(strchr(s->errstr, '\n') == NULL, "errstr not trimmed: %s", s->errstr);
    ck_assert(nr_store_ok(s));
    /* A job that does not exist violates the foreign key. */
    ck_assert_int_eq(nr_store_result_add(s, 999999, d, "reachability", true, "{}"), NR_ERR);
    ck_assert_msg(strstr(s->errstr, "foreign key") != NULL, "errstr: %s", s->errstr);
    ck_assert_int_eq(nr_store_result_add(s, id, d, "reachability", true, "{}"), 0);
    ck_assert_int_eq(s->err, 0);
    ck_assert_str_eq(s->errstr, "");
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM job_results"), 3);
    nr_store_free(s);
}
END_TEST

/* ---- pipelined transactions ---------------------------------------------- */

/* What the callbacks of a pipeline saw, in order. */
struct seen_results {
    int  calls;
    char order[512];
};

static void note_result(void *arg, const PGresult *r)
{
    struct seen_results *sr = arg;
    size_t len = strlen(sr->order);

    sr->calls++;
    snprintf(sr->order + len, sizeof(sr->order) - len, "%s%s", len ? "," : "",
             PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "-");
}

/* n result rows for job/device, sent into s's pipeline; the k-th carries
 * details {"k": k}; the one at bad_at (if any) names a job that does not
 * exist.  Each callback appends what its RETURNING said. */
static void send_results(struct nr_store *s, long long job, long long dev, int n, int bad_at,
                         struct seen_results *sr)
{
    for (int k = 0; k < n; k++) {
        char jid[24], did[24], det[32];
        const char *v[3] = { jid, did, det };
        snprintf(jid, sizeof(jid), "%lld", k == bad_at ? 999999LL : job);
        snprintf(did, sizeof(did), "%lld", dev);
        snprintf(det, sizeof(det), "{\"k\": %d}", k);
        nr_store_pipe_send(s, "result_k",
                           "INSERT INTO job_results (job_id, device_id, job_type, status,"
                           " result_time, details, created_at)"
                           " VALUES ($1::bigint, $2::bigint, 'backup', 'success', now(),"
                           " $3::jsonb, now()) RETURNING details->>'k'",
                           3, v, note_result, sr);
    }
}

START_TEST(test_pipe_commits_across_syncs)
{
    struct nr_store *s = store_ok(nrt_db_url());
    long long d = add_device(40, "pipe", "192.0.2.40");
    long long id = add_job("pipe", "backup", d);
    struct seen_results sr = { 0 };
    int n = 2 * NR_STORE_PIPE_SYNC + 7;        /* three syncs' worth */
    char want[512] = "";

    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    ck_assert(!nr_store_ok(s));                 /* mid-pipeline: no other statement */
    send_results(s, id, d, n, -1, &sr);
    /* the answers of the first two syncs were read while sending */
    ck_assert_int_eq(sr.calls, 2 * NR_STORE_PIPE_SYNC - 1);
    ck_assert_int_eq(nr_store_pipe_commit(s), 0);
    ck_assert_int_eq(s->err, 0);
    ck_assert(nr_store_ok(s));
    ck_assert_int_eq(sr.calls, n);
    for (int k = 0; k < n; k++) {
        size_t len = strlen(want);
        snprintf(want + len, sizeof(want) - len, "%s%d", k ? "," : "", k);
    }
    ck_assert_str_eq(sr.order, want);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM job_results WHERE job_id = %lld", id),
                     n);
    /* the connection is back to one statement at a time */
    ck_assert_int_eq(nr_store_device_seen(s, d), 0);
    /* and an empty pipeline commits too */
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    ck_assert_int_eq(nr_store_pipe_commit(s), 0);
    nr_store_free(s);
}
END_TEST

/* A statement that fails after a sync whose statements had succeeded:
 * nothing of the transaction stays, the failure names its statement, and
 * the connection goes on. */
START_TEST(test_pipe_failure_rolls_back_all)
{
    struct nr_store *s = store_ok(nrt_db_url());
    long long d = add_device(41, "pipefail", "192.0.2.41");
    long long id = add_job("pipefail", "backup", d);
    struct seen_results sr = { 0 };

    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    /* BEGIN and k = 0..62 are the first sync's, all good; k = 67 fails in
     * the second, read while sending k = 126; k >= 127 are not sent */
    send_results(s, id, d, 2 * NR_STORE_PIPE_SYNC + 10, NR_STORE_PIPE_SYNC + 3, &sr);
    ck_assert_int_eq(s->err, NR_ERR);
    ck_assert_int_eq(sr.calls, NR_STORE_PIPE_SYNC - 1 + 4);
    ck_assert_int_eq(nr_store_pipe_commit(s), NR_ERR);
    ck_assert_int_eq(s->err, NR_ERR);
    ck_assert_msg(strncmp(s->errstr, "result_k: ", 10) == 0, "errstr: %s", s->errstr);
    ck_assert_msg(strstr(s->errstr, "foreign key") != NULL, "errstr: %s", s->errstr);
    ck_assert(nr_store_ok(s));
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM job_results"), 0);
    /* a send after the failure sends nothing and says so */
    ck_assert_int_eq(nr_store_pipe_send(s, "late", "SELECT 1", 0, NULL, NULL, NULL), NR_EINVAL);
    /* the next transaction, and the next plain statement, work */
    memset(&sr, 0, sizeof(sr));
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    send_results(s, id, d, 3, -1, &sr);
    ck_assert_int_eq(nr_store_pipe_commit(s), 0);
    ck_assert_str_eq(sr.order, "0,1,2");
    ck_assert_int_eq(nr_store_result_add(s, id, d, "backup", true, "{}"), 0);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM job_results"), 4);

    /* a failure in the last stretch (no sync before the COMMIT's) */
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    send_results(s, id, d, 5, 4, &sr);
    ck_assert_int_eq(s->err, 0);                /* not read yet */
    ck_assert_int_eq(nr_store_pipe_commit(s), NR_ERR);
    ck_assert_msg(strstr(s->errstr, "foreign key") != NULL, "errstr: %s", s->errstr);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM job_results"), 4);
    ck_assert(nr_store_ok(s));
    nr_store_free(s);
}
END_TEST

/* The server goes away with a pipeline half sent: NR_EIO, nothing
 * written, and a reset brings back a connection that takes both kinds. */
START_TEST(test_pipe_backend_killed)
{
    struct nr_store *s = store_ok(nrt_db_url());
    long long d = add_device(42, "pipekill", "192.0.2.42");
    long long id = add_job("pipekill", "backup", d);
    struct seen_results sr = { 0 };
    int pid = PQbackendPID(s->conn);

    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    send_results(s, id, d, 10, -1, &sr);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT pg_terminate_backend(%d)::int", pid), 1);
    ck_assert(nrt_wait_sql(pg, "0", 10, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid));
    send_results(s, id, d, NR_STORE_PIPE_SYNC, -1, &sr);
    ck_assert_int_eq(nr_store_pipe_commit(s), NR_EIO);
    ck_assert_int_eq(s->err, NR_EIO);
    ck_assert_msg(s->errstr[0] != '\0', "no errstr");
    ck_assert(!nr_store_ok(s));
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM job_results"), 0);
    ck_assert_int_eq(nr_store_job_start(s, id), NR_EIO);

    ck_assert_int_eq(nr_store_reset(s), 0);
    ck_assert(nr_store_ok(s));
    ck_assert_int_eq(nr_store_job_start(s, id), 0);
    memset(&sr, 0, sizeof(sr));
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    send_results(s, id, d, 2, -1, &sr);
    ck_assert_int_eq(nr_store_pipe_commit(s), 0);
    ck_assert_str_eq(sr.order, "0,1");
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM job_results"), 2);
    nr_store_free(s);
}
END_TEST

static void note_count(void *arg, const PGresult *r)
{
    *(long long *)arg = atoll(PQgetvalue(r, 0, 0));
}

/* How many statements of this session are prepared under name, asked in
 * a pipeline of its own. */
static long long prepared_as(struct nr_store *s, const char *name)
{
    const char *v[1] = { name };
    long long n = -1;

    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    nr_store_pipe_send(s, "prepared", "SELECT count(*) FROM pg_prepared_statements"
                       " WHERE name = $1", 1, v, note_count, &n);
    ck_assert_msg(nr_store_pipe_commit(s) == 0, "prepared: %s", s->errstr);
    return n;
}

/* A statement sent by exec is prepared once per session, kept across a
 * failed transaction, prepared again after a reset, after the server lost
 * it, and after its Prepare failed. */
START_TEST(test_pipe_exec_prepares_once)
{
    static const struct nr_store_stmt add = { .name = "nrt_add", .nparams = 2,
        .sql = "INSERT INTO job_results (job_id, device_id, job_type, status, result_time,"
               " details, created_at) VALUES ($1::bigint, $2::bigint, 'backup', 'success',"
               " now(), '{}', now()) RETURNING id" };
    static const struct nr_store_stmt bad = { .name = "nrt_bad", .nparams = 0,
        .sql = "SELEKT 1" };
    struct nr_store *s = store_ok(nrt_db_url());
    long long d = add_device(45, "prep", "192.0.2.45");
    long long id = add_job("prep", "backup", d);
    char jid[24], did[24];
    const char *v[2] = { jid, did };
    struct seen_results sr = { 0 };

    snprintf(jid, sizeof(jid), "%lld", id);
    snprintf(did, sizeof(did), "%lld", d);
    ck_assert_int_eq(prepared_as(s, "nrt_add"), 0);
    /* many sends, crossing a sync, one Prepare */
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    for (int k = 0; k < NR_STORE_PIPE_SYNC + 5; k++)
        ck_assert_int_eq(nr_store_pipe_exec(s, "add", &add, v, note_result, &sr), 0);
    ck_assert_int_eq(nr_store_pipe_commit(s), 0);
    ck_assert_int_eq(sr.calls, NR_STORE_PIPE_SYNC + 5);
    ck_assert_int_eq(prepared_as(s, "nrt_add"), 1);

    /* kept across a transaction that failed after it */
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    nr_store_pipe_exec(s, "add", &add, v, NULL, NULL);
    send_results(s, id, d, 1, 0, &sr);
    ck_assert_int_eq(nr_store_pipe_commit(s), NR_ERR);
    ck_assert_int_eq(prepared_as(s, "nrt_add"), 1);

    /* the server lost it (as behind a pooler): one failed transaction,
     * then prepared again */
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    nr_store_pipe_send(s, "deallocate", "DEALLOCATE ALL", 0, NULL, NULL, NULL);
    nr_store_pipe_exec(s, "add", &add, v, NULL, NULL);
    ck_assert_int_eq(nr_store_pipe_commit(s), NR_ERR);
    ck_assert_msg(strstr(s->errstr, "add: ") == s->errstr, "errstr: %s", s->errstr);
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    ck_assert_int_eq(nr_store_pipe_exec(s, "add", &add, v, NULL, NULL), 0);
    ck_assert_int_eq(nr_store_pipe_commit(s), 0);
    ck_assert_int_eq(prepared_as(s, "nrt_add"), 1);

    /* a reset starts a new session: prepared again on first use */
    int pid = PQbackendPID(s->conn);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT pg_terminate_backend(%d)::int", pid), 1);
    ck_assert(nrt_wait_sql(pg, "0", 10, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid));
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    nr_store_pipe_exec(s, "add", &add, v, NULL, NULL);
    ck_assert_int_eq(nr_store_pipe_commit(s), NR_EIO);
    ck_assert_int_eq(nr_store_reset(s), 0);
    ck_assert_int_eq(prepared_as(s, "nrt_add"), 0);
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    ck_assert_int_eq(nr_store_pipe_exec(s, "add", &add, v, NULL, NULL), 0);
    ck_assert_int_eq(nr_store_pipe_commit(s), 0);
    ck_assert_int_eq(prepared_as(s, "nrt_add"), 1);

    /* a Prepare that fails says why, each time it is tried */
    for (int t = 0; t < 2; t++) {
        ck_assert_int_eq(nr_store_pipe_begin(s), 0);
        nr_store_pipe_exec(s, "bad", &bad, NULL, NULL, NULL);
        ck_assert_int_eq(nr_store_pipe_commit(s), NR_ERR);
        ck_assert_msg(strstr(s->errstr, "bad: ") == s->errstr && strstr(s->errstr, "syntax"),
                      "errstr: %s", s->errstr);
    }
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM job_results"),
                     NR_STORE_PIPE_SYNC + 5 + 2);
    nr_store_free(s);
}
END_TEST

static void note_saved(void *arg, const PGresult *r)
{
    *(int *)arg = nr_store_outcome_saved(r);
}

/* One outcome statement: the snapshot unless the newest has its hash,
 * last_seen when asked, the result row with deduplicated and sha256. */
START_TEST(test_outcome_send)
{
    struct nr_store *s = store_ok(nrt_db_url());
    long long d = add_device(43, "outcome", "192.0.2.43");
    long long d2 = add_device(44, "outcome2", "192.0.2.44");
    long long id = add_job("outcome", "backup", d);
    int saved[5] = { -9, -9, -9, -9, -9 };
    struct nr_store_outcome o = {
        .job_id = id, .device_id = d, .job_type = NULL, .success = true,
        .details_json = "{\"duration_ms\": 12.5}", .seen = true,
        .config = "hostname outcome\n", .hash = "aaaa", .config_meta = "{\"bytes\": 17}",
    };

    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    ck_assert_int_eq(nr_store_outcome_send(s, &o, note_saved, &saved[0]), 0);   /* new */
    o.details_json = "{}";
    ck_assert_int_eq(nr_store_outcome_send(s, &o, note_saved, &saved[1]), 0);   /* same hash */
    o.hash = "bbbb";
    o.config = "hostname outcome-2\n";
    ck_assert_int_eq(nr_store_outcome_send(s, &o, note_saved, &saved[2]), 0);   /* changed */
    /* no config, not seen, a failure; on the other device */
    struct nr_store_outcome f = { .job_id = id, .device_id = d2, .job_type = "reachability",
                                  .success = false, .details_json = "{\"error\": \"x\"}" };
    ck_assert_int_eq(nr_store_outcome_send(s, &f, note_saved, &saved[3]), 0);
    ck_assert_int_eq(nr_store_pipe_commit(s), 0);

    ck_assert_int_eq(saved[0], NR_OK);
    ck_assert_int_eq(saved[1], NR_SNAPSHOT_SAME);
    ck_assert_int_eq(saved[2], NR_OK);
    ck_assert_int_eq(saved[3], NR_SNAPSHOT_SAME);
    char *rows = nrt_sql_str(pg,
        "SELECT string_agg(job_type || ':' || status || ':' || details::text, ' | ' ORDER BY id)"
        " FROM job_results WHERE job_id = %lld", id);
    ck_assert_str_eq(rows,
        "backup:success:{\"sha256\": \"aaaa\", \"duration_ms\": 12.5, \"deduplicated\": false}"
        " | backup:success:{\"sha256\": \"aaaa\", \"deduplicated\": true}"
        " | backup:success:{\"sha256\": \"bbbb\", \"deduplicated\": false}"
        " | reachability:failure:{\"error\": \"x\"}");
    free(rows);
    char *snaps = nrt_sql_str(pg,
        "SELECT string_agg(data_hash || ':' || config_data || ':' || config_metadata::text,"
        " ' | ' ORDER BY id) FROM device_configurations WHERE device_id = %lld", d);
    ck_assert_str_eq(snaps, "aaaa:hostname outcome\n:{\"bytes\": 17}"
                            " | bbbb:hostname outcome-2\n:{\"bytes\": 17}");
    free(snaps);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM device_configurations"
                                     " WHERE device_id = %lld", d2), 0);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM devices WHERE last_seen IS NOT NULL"
                                     " AND id = %lld", d), 1);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM devices WHERE last_seen IS NULL"
                                     " AND id = %lld", d2), 1);

    /* a later transaction compares with the newest snapshot too */
    o.hash = "bbbb";
    ck_assert_int_eq(nr_store_pipe_begin(s), 0);
    ck_assert_int_eq(nr_store_outcome_send(s, &o, note_saved, &saved[4]), 0);
    ck_assert_int_eq(nr_store_pipe_commit(s), 0);
    ck_assert_int_eq(saved[4], NR_SNAPSHOT_SAME);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM device_configurations"), 2);
    nr_store_free(s);
}
END_TEST

/* ---- connection ---------------------------------------------------------- */

START_TEST(test_connect_driver_suffix_and_app_name)
{
    const char *url = nrt_db_url();
    const char *rest = strstr(url, "://");
    char *sqla = NULL;
    struct nr_store *s;

    ck_assert_ptr_nonnull(rest);
    ck_assert(asprintf(&sqla, "postgresql+psycopg2%s", rest) > 0);
    s = store_ok(sqla);
    char *app = nrt_sql_str(pg, "SELECT application_name FROM pg_stat_activity WHERE pid = %d",
                            PQbackendPID(s->conn));
    ck_assert_str_eq(app, "netraven-worker");
    free(app);
    struct nr_job j;
    ck_assert_int_eq(nr_store_job_get(s, 1, &j), NR_NOTFOUND);
    nr_store_free(s);
    nr_store_free(NULL);
    free(sqla);
}
END_TEST

START_TEST(test_connect_failure_hides_password)
{
    static const char *const forms[] = {
        "postgresql+psycopg2://netraven:Sup3r-S3cret@127.0.0.1:%d/netraven",
        "postgresql://netraven:Sup3r-S3cret@127.0.0.1:%d/netraven?sslmode=disable",
        "host=127.0.0.1 port=%d user=netraven password=Sup3r-S3cret dbname=netraven",
    };
    int port = dead_port();
    struct nr_job j;

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char url[256];
        snprintf(url, sizeof(url), forms[i], port);
        struct nr_store *s = nr_store_connect(url);
        ck_assert_ptr_nonnull(s);
        ck_assert_int_eq(s->err, NR_EIO);
        ck_assert(!nr_store_ok(s));
        ck_assert_msg(s->errstr[0] != '\0', "no errstr");
        ck_assert_msg(strstr(s->errstr, "Sup3r-S3cret") == NULL, "password leaked: %s", s->errstr);
        ck_assert_msg(strchr(s->errstr, '\n') == NULL, "errstr not trimmed: %s", s->errstr);
        /* Calls on a failed store fail cleanly. */
        ck_assert_int_eq(nr_store_job_get(s, 1, &j), NR_EIO);
        ck_assert_int_eq(nr_store_migrate(s), NR_EIO);
        ck_assert_int_eq(nr_store_reset(s), NR_EIO);
        ck_assert_msg(strstr(s->errstr, "Sup3r-S3cret") == NULL, "password leaked: %s", s->errstr);
        nr_store_free(s);
    }

    /* libpq quotes a badly percent-encoded URI component in its message. */
    struct nr_store *s = nr_store_connect("postgresql://u:Pa%zzW0rd@127.0.0.1:1/x");
    ck_assert_int_eq(s->err, NR_EIO);
    ck_assert_msg(strstr(s->errstr, "Pa%zzW0rd") == NULL, "password leaked: %s", s->errstr);
    nr_store_free(s);

    s = nr_store_connect(NULL);
    ck_assert_int_eq(s->err, NR_EINVAL);
    ck_assert(!nr_store_ok(s));
    nr_store_free(s);
}
END_TEST

START_TEST(test_reset_after_backend_killed)
{
    struct nr_store *s = store_ok(nrt_db_url());
    long long id = add_job("survivor", "reachability", 0);
    struct nr_job j;
    int pid = PQbackendPID(s->conn);

    load_job(s, id, &j);
    nr_job_clear(&j);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT pg_terminate_backend(%d)::int", pid), 1);
    ck_assert(nrt_wait_sql(pg, "0", 10, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid));

    ck_assert_int_eq(nr_store_job_get(s, id, &j), NR_EIO);
    ck_assert_int_eq(s->err, NR_EIO);
    ck_assert_msg(s->errstr[0] != '\0', "no errstr");
    ck_assert(!nr_store_ok(s));
    /* Until reset, every call fails at once with NR_EIO. */
    ck_assert_int_eq(nr_store_job_start(s, id), NR_EIO);
    ck_assert_int_eq(nr_store_result_add(s, id, 1, "x", true, "{}"), NR_EIO);

    ck_assert_int_eq(nr_store_reset(s), 0);
    ck_assert_int_eq(s->err, 0);
    ck_assert(nr_store_ok(s));
    ck_assert_int_ne(PQbackendPID(s->conn), pid);
    load_job(s, id, &j);
    ck_assert_str_eq(j.name, "survivor");
    nr_job_clear(&j);
    ck_assert_int_eq(nr_store_job_start(s, id), 0);
    char *app = nrt_sql_str(pg, "SELECT application_name FROM pg_stat_activity WHERE pid = %d",
                            PQbackendPID(s->conn));
    ck_assert_str_eq(app, "netraven-worker");
    free(app);
    nr_store_free(s);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *su = suite_create("store");
    TCase *schema = tcase_create("schema");
    TCase *queries = tcase_create("queries");
    TCase *conn = tcase_create("connection");

    tcase_add_checked_fixture(schema, setup, teardown);
    nrt_add_test(schema, test_migrate_twice_is_idempotent);
    nrt_add_test(schema, test_migrate_over_existing_netraven_tables);
    nrt_add_test(schema, test_migrate_concurrent);
    nrt_add_test(schema, test_schema_matches_contract);
    nrt_add_test(schema, test_schema_keys_and_indexes);
    nrt_add_test(schema, test_script_error_names_file_and_line);
    suite_add_tcase(su, schema);

    tcase_add_checked_fixture(queries, setup, teardown);
    nrt_add_test(queries, test_job_get);
    nrt_add_test(queries, test_job_start_finish);
    nrt_add_test(queries, test_job_devices_by_device_id);
    nrt_add_test(queries, test_job_devices_by_tags);
    nrt_add_test(queries, test_device_seen);
    nrt_add_test(queries, test_result_add);
    nrt_add_test(queries, test_pipe_commits_across_syncs);
    nrt_add_test(queries, test_pipe_failure_rolls_back_all);
    nrt_add_test(queries, test_outcome_send);
    nrt_add_test(queries, test_pipe_exec_prepares_once);
    suite_add_tcase(su, queries);

    tcase_add_checked_fixture(conn, setup, teardown);
    nrt_add_test(conn, test_connect_driver_suffix_and_app_name);
    nrt_add_test(conn, test_connect_failure_hides_password);
    nrt_add_test(conn, test_reset_after_backend_killed);
    nrt_add_test(conn, test_pipe_backend_killed);
    suite_add_tcase(su, conn);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
