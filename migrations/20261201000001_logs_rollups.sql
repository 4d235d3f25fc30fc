-- Entry counts per service and level per minute (`logs_per_minute`) and per hour
-- (`logs_per_hour`), so the histogram over days and the service list read thousands of
-- rollup rows instead of millions of entries (issue 15; server/src/storage/rollup.rs
-- explains the design). Bucket starts are aligned to 2000-01-01T00:00:00Z, in UTC
-- whatever the session's TimeZone (date_bin, not date_trunc).
--
-- Plain PostgreSQL: two tables kept by statement-level triggers on `logs`, so every
-- writer -- the server's COPY, an operator's INSERT, retention's DELETE, a TRUNCATE --
-- changes the counts in the same transaction as the rows: counts never disagree with
-- rows. Readers sum `entries` over every row of a key. Each key has up to four rows,
-- `shard` = the writing backend's pid mod 4: the group committer's concurrent
-- transactions all count into the current minute, and with one row per key the
-- second would wait on the first's row locks until it commits, serializing their
-- commits (batch-100 ingest fell from 27.9k to 17.9k entries/s in the load benchmark);
-- with four, two writers collide a quarter of the time. Rows are upserted in key order,
-- so colliding writers lock in the same order and cannot deadlock.
--
-- TimescaleDB: transition tables are not allowed on hypertables; there the rollups are
-- continuous aggregates of the same names and columns, created by the server after
-- the hypertable (storage/rollup.rs), which drops whatever this migration created.
-- So nothing here runs when `logs` is already a hypertable.
DO $migration$
DECLARE
    hypertable boolean := false;
BEGIN
    IF to_regclass('_timescaledb_catalog.hypertable') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM _timescaledb_catalog.hypertable
                                WHERE table_name = ''logs'' AND schema_name = current_schema())'
            INTO hypertable;
    END IF;
    IF hypertable THEN
        RAISE NOTICE 'logs is a hypertable: its rollups are continuous aggregates (created by the server)';
        RETURN;
    END IF;

    -- fillfactor 70: a current bucket's rows are updated by every commit, and free room
    -- on their page keeps those updates HOT (no index entry, no page hop).
    CREATE TABLE IF NOT EXISTS logs_per_minute (
        bucket  timestamptz NOT NULL,
        service text        NOT NULL,
        level   text        NOT NULL,
        shard   smallint    NOT NULL DEFAULT 0,
        entries bigint      NOT NULL,
        PRIMARY KEY (bucket, service, level, shard)
    ) WITH (fillfactor = 70);
    CREATE TABLE IF NOT EXISTS logs_per_hour (
        bucket  timestamptz NOT NULL,
        service text        NOT NULL,
        level   text        NOT NULL,
        shard   smallint    NOT NULL DEFAULT 0,
        entries bigint      NOT NULL,
        PRIMARY KEY (bucket, service, level, shard)
    ) WITH (fillfactor = 70);

    -- One function for every row-changing statement: an UPDATE (nothing in the server
    -- updates rows, but an operator may) removes the old rows' counts and adds the new.
    CREATE OR REPLACE FUNCTION logs_rollup_changed() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            -- A negative count in this backend's shard: the key's sum is what is left.
            INSERT INTO logs_per_minute AS r (bucket, service, level, shard, entries)
            SELECT date_bin('1 minute', timestamp, timestamptz '2000-01-01 00:00:00+00'),
                   service, level, pg_backend_pid() % 4, -count(*)
            FROM removed GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (bucket, service, level, shard) DO UPDATE SET entries = r.entries + EXCLUDED.entries;
            -- Keys left with no entries go.
            DELETE FROM logs_per_minute AS r
            USING (SELECT k.bucket, k.service, k.level FROM logs_per_minute AS k
                   WHERE (k.bucket, k.service, k.level) IN (
                       SELECT date_bin('1 minute', timestamp, timestamptz '2000-01-01 00:00:00+00'),
                              service, level
                       FROM removed)
                   GROUP BY 1, 2, 3 HAVING sum(k.entries) = 0) AS emptied
            WHERE (r.bucket, r.service, r.level) = (emptied.bucket, emptied.service, emptied.level);
            -- A negative count in this backend's shard: the key's sum is what is left.
            INSERT INTO logs_per_hour AS r (bucket, service, level, shard, entries)
            SELECT date_bin('1 hour', timestamp, timestamptz '2000-01-01 00:00:00+00'),
                   service, level, pg_backend_pid() % 4, -count(*)
            FROM removed GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (bucket, service, level, shard) DO UPDATE SET entries = r.entries + EXCLUDED.entries;
            -- Keys left with no entries go.
            DELETE FROM logs_per_hour AS r
            USING (SELECT k.bucket, k.service, k.level FROM logs_per_hour AS k
                   WHERE (k.bucket, k.service, k.level) IN (
                       SELECT date_bin('1 hour', timestamp, timestamptz '2000-01-01 00:00:00+00'),
                              service, level
                       FROM removed)
                   GROUP BY 1, 2, 3 HAVING sum(k.entries) = 0) AS emptied
            WHERE (r.bucket, r.service, r.level) = (emptied.bucket, emptied.service, emptied.level);
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO logs_per_minute AS r (bucket, service, level, shard, entries)
            SELECT date_bin('1 minute', timestamp, timestamptz '2000-01-01 00:00:00+00'),
                   service, level, pg_backend_pid() % 4, count(*)
            FROM added GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (bucket, service, level, shard) DO UPDATE SET entries = r.entries + EXCLUDED.entries;
            INSERT INTO logs_per_hour AS r (bucket, service, level, shard, entries)
            SELECT date_bin('1 hour', timestamp, timestamptz '2000-01-01 00:00:00+00'),
                   service, level, pg_backend_pid() % 4, count(*)
            FROM added GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (bucket, service, level, shard) DO UPDATE SET entries = r.entries + EXCLUDED.entries;
        END IF;
        RETURN NULL;
    END
    $fn$;

    CREATE OR REPLACE FUNCTION logs_rollup_truncated() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
    BEGIN
        TRUNCATE logs_per_minute, logs_per_hour;
        RETURN NULL;
    END
    $fn$;

    DROP TRIGGER IF EXISTS logs_rollup_added ON logs;
    CREATE TRIGGER logs_rollup_added AFTER INSERT ON logs
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION logs_rollup_changed();
    DROP TRIGGER IF EXISTS logs_rollup_updated ON logs;
    CREATE TRIGGER logs_rollup_updated AFTER UPDATE ON logs
        REFERENCING OLD TABLE AS removed NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION logs_rollup_changed();
    DROP TRIGGER IF EXISTS logs_rollup_removed ON logs;
    CREATE TRIGGER logs_rollup_removed AFTER DELETE ON logs
        REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION logs_rollup_changed();
    DROP TRIGGER IF EXISTS logs_rollup_truncated ON logs;
    CREATE TRIGGER logs_rollup_truncated AFTER TRUNCATE ON logs
        FOR EACH STATEMENT EXECUTE FUNCTION logs_rollup_truncated();

    -- Rows written before this migration (one scan of `logs`, once), in bucket order:
    -- a range of buckets is then a few pages of the table, as live inserts leave it.
    TRUNCATE logs_per_minute, logs_per_hour;
    INSERT INTO logs_per_minute (bucket, service, level, entries)
    SELECT date_bin('1 minute', timestamp, timestamptz '2000-01-01 00:00:00+00'), service, level, count(*)
    FROM logs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
    INSERT INTO logs_per_hour (bucket, service, level, entries)
    SELECT date_bin('1 hour', bucket, timestamptz '2000-01-01 00:00:00+00'), service, level, sum(entries)
    FROM logs_per_minute GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
END
$migration$;
