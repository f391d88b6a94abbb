-- 001_netraven_schema.sql - the NetRaven database, as NetRaven's own alembic
-- migration (revision a3992da91329, "Initial schema definition") creates it.
--
-- Two promises:
--   * On an empty database this creates the same tables, columns, types,
--     defaults, constraint names, indexes and foreign keys (with their ON
--     DELETE rules) as `alembic upgrade head` does, so that NetRaven's API
--     runs against a database made here.  It also stamps alembic_version, so
--     that the API's entrypoint (`alembic upgrade head`) sees the schema as
--     already at that revision instead of failing on existing tables.
--   * On a database NetRaven's migrations already created, it changes
--     nothing: every statement is guarded (IF NOT EXISTS, or a DO block).
--
-- Constraints are named explicitly with the names PostgreSQL gives the
-- anonymous constraints alembic emits (<table>_pkey, <table>_<col>_key,
-- <table>_<col>_fkey), so the two databases match name for name.
--
-- Defaults that NetRaven sets only in Python (credentials.priority = 100,
-- credentials.success_rate = 1.0, jobs.is_enabled on the ORM side, ...) are
-- not server defaults in NetRaven's database, so they are not here either:
-- readers must treat NULL as that default.
--
-- netraven-worker's migrate runs this file inside one transaction and then
-- records it in netraven_worker_migrations.

DO $$
BEGIN
    IF to_regtype('device_source') IS NULL THEN
        CREATE TYPE device_source AS ENUM ('local', 'imported');
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS credentials (
    id           serial NOT NULL,
    username     varchar NOT NULL,
    password     varchar NOT NULL,          -- Fernet token (legacy rows: plain)
    priority     integer,                   -- lower wins; ORM default 100
    last_used    timestamp with time zone,
    success_rate double precision,          -- ORM default 1.0
    description  varchar,
    is_system    boolean DEFAULT false,
    CONSTRAINT credentials_pkey PRIMARY KEY (id)
);

CREATE TABLE IF NOT EXISTS devices (
    id            serial NOT NULL,
    hostname      varchar NOT NULL,
    ip_address    varchar NOT NULL,
    device_type   varchar NOT NULL,         -- Netmiko device type name
    description   varchar,
    port          integer DEFAULT '22',
    serial_number varchar,
    model         varchar,
    source        device_source DEFAULT 'local' NOT NULL,
    notes         text,
    created_at    timestamp with time zone DEFAULT now(),
    last_seen     timestamp with time zone,
    last_updated  timestamp with time zone DEFAULT now(),
    updated_by    varchar,
    CONSTRAINT devices_pkey PRIMARY KEY (id),
    CONSTRAINT devices_ip_address_key UNIQUE (ip_address),
    CONSTRAINT devices_hostname_key UNIQUE (hostname)
);
-- NetRaven has both the unique constraint and this unique index on hostname.
CREATE UNIQUE INDEX IF NOT EXISTS ix_devices_hostname ON devices (hostname);

CREATE TABLE IF NOT EXISTS system_settings (
    id          serial NOT NULL,
    key         varchar NOT NULL,
    value       jsonb NOT NULL,
    description varchar,
    CONSTRAINT system_settings_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_system_settings_key ON system_settings (key);

CREATE TABLE IF NOT EXISTS tags (
    id          serial NOT NULL,
    name        varchar NOT NULL,
    type        varchar,
    description varchar,
    CONSTRAINT tags_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_tags_name ON tags (name);

CREATE TABLE IF NOT EXISTS credential_tag_association (
    credential_id integer NOT NULL,
    tag_id        integer NOT NULL,
    CONSTRAINT credential_tag_association_pkey PRIMARY KEY (credential_id, tag_id),
    CONSTRAINT credential_tag_association_credential_id_fkey
        FOREIGN KEY (credential_id) REFERENCES credentials (id) ON DELETE CASCADE,
    CONSTRAINT credential_tag_association_tag_id_fkey
        FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS device_configurations (
    id              serial NOT NULL,
    device_id       integer NOT NULL,
    config_data     text NOT NULL,
    retrieved_at    timestamp with time zone DEFAULT now() NOT NULL,
    config_metadata jsonb,                  -- at least job_id, hostname
    data_hash       text NOT NULL,          -- sha256 hex of config_data
    CONSTRAINT device_configurations_pkey PRIMARY KEY (id),
    CONSTRAINT device_configurations_device_id_fkey
        FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE
);
-- Full-text search over stored configs (the API's config search).
CREATE INDEX IF NOT EXISTS idx_device_configurations_fts
    ON device_configurations USING gin (to_tsvector('english', config_data));

CREATE TABLE IF NOT EXISTS device_tag_association (
    device_id integer NOT NULL,
    tag_id    integer NOT NULL,
    CONSTRAINT device_tag_association_pkey PRIMARY KEY (device_id, tag_id),
    CONSTRAINT device_tag_association_device_id_fkey
        FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE,
    CONSTRAINT device_tag_association_tag_id_fkey
        FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS jobs (
    id               serial NOT NULL,
    name             varchar NOT NULL,
    job_type         varchar DEFAULT 'backup' NOT NULL,
    description      varchar,
    status           varchar DEFAULT 'PENDING' NOT NULL,
    scheduled_for    timestamp with time zone,
    started_at       timestamp with time zone,
    completed_at     timestamp with time zone,
    is_enabled       boolean DEFAULT true,
    is_system_job    boolean DEFAULT false,
    schedule_type    varchar,               -- 'interval', 'cron', 'onetime'
    interval_seconds integer,
    cron_string      varchar,
    device_id        integer,
    CONSTRAINT jobs_pkey PRIMARY KEY (id),
    CONSTRAINT jobs_device_id_fkey
        FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE SET NULL
);
CREATE INDEX IF NOT EXISTS ix_jobs_is_enabled ON jobs (is_enabled);
CREATE INDEX IF NOT EXISTS ix_jobs_name ON jobs (name);
CREATE INDEX IF NOT EXISTS ix_jobs_scheduled_for ON jobs (scheduled_for);
CREATE INDEX IF NOT EXISTS ix_jobs_status ON jobs (status);
CREATE INDEX IF NOT EXISTS ix_jobs_device_id ON jobs (device_id);

CREATE TABLE IF NOT EXISTS job_tags (
    job_id integer NOT NULL,
    tag_id integer NOT NULL,
    CONSTRAINT job_tags_pkey PRIMARY KEY (job_id, tag_id),
    CONSTRAINT job_tags_job_id_fkey
        FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE,
    CONSTRAINT job_tags_tag_id_fkey
        FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS logs (
    id          serial NOT NULL,
    "timestamp" timestamp with time zone DEFAULT now() NOT NULL,
    log_type    varchar(32) NOT NULL,       -- job, connection, session, system
    level       varchar(16) NOT NULL,       -- debug .. critical
    job_id      integer,
    device_id   integer,
    source      varchar(64),
    message     text NOT NULL,
    meta        jsonb,
    CONSTRAINT logs_pkey PRIMARY KEY (id),
    CONSTRAINT logs_job_id_fkey
        FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE,
    CONSTRAINT logs_device_id_fkey
        FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_logs_job_id ON logs (job_id);
CREATE INDEX IF NOT EXISTS idx_logs_device_id ON logs (device_id);
CREATE INDEX IF NOT EXISTS idx_logs_log_type ON logs (log_type);
CREATE INDEX IF NOT EXISTS idx_logs_level ON logs (level);
CREATE INDEX IF NOT EXISTS idx_logs_timestamp ON logs ("timestamp");

CREATE TABLE IF NOT EXISTS users (
    id              serial NOT NULL,
    username        varchar NOT NULL,
    email           varchar NOT NULL,
    hashed_password varchar NOT NULL,
    is_active       boolean DEFAULT true NOT NULL,
    role            varchar DEFAULT 'user' NOT NULL,
    full_name       varchar(100),
    created_at      timestamp with time zone DEFAULT now() NOT NULL,
    updated_at      timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE IF NOT EXISTS job_results (
    id          serial NOT NULL,
    job_id      integer NOT NULL,
    device_id   integer NOT NULL,
    job_type    varchar(32) NOT NULL,
    status      varchar(16) NOT NULL,       -- 'success' / 'failure'
    result_time timestamp with time zone NOT NULL,
    details     jsonb,
    created_at  timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT job_results_pkey PRIMARY KEY (id),
    CONSTRAINT job_results_job_id_fkey
        FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE,
    CONSTRAINT job_results_device_id_fkey
        FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_job_results_device_id ON job_results (device_id);
CREATE INDEX IF NOT EXISTS idx_job_results_job_id ON job_results (job_id);
CREATE INDEX IF NOT EXISTS idx_job_results_job_type ON job_results (job_type);
CREATE INDEX IF NOT EXISTS idx_job_results_status ON job_results (status);
CREATE INDEX IF NOT EXISTS idx_job_results_result_time ON job_results (result_time);

-- Alembic's bookkeeping, exactly as alembic creates it.  Stamped only when
-- empty: a database NetRaven migrated keeps its own revision.
CREATE TABLE IF NOT EXISTS alembic_version (
    version_num varchar(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version (version_num)
    SELECT 'a3992da91329'
    WHERE NOT EXISTS (SELECT 1 FROM alembic_version);
