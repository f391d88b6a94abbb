-- 002_worker_indexes.sql - indexes the worker's own queries need, beyond
-- NetRaven's schema.  Additive only (no table, column or constraint
-- changes), so NetRaven's API and migrations are unaffected.

-- Each backup compares its hash with the device's newest snapshot.  Without
-- this index that lookup reads every snapshot row of every device, a cost
-- that grows with the history (millions of rows after a year of nightly
-- backups of 5,000 devices).
CREATE INDEX IF NOT EXISTS ix_device_configurations_device_latest
    ON device_configurations (device_id, retrieved_at DESC, id DESC);
