-- TimescaleDB mode, when the extension can be created here; otherwise a notice and
-- plain PostgreSQL mode. Each step is guarded so that a build without a feature
-- (the Apache-licensed build has no compression policies) keeps the steps it can do.
-- Retention is installed at start from LOG_INGESTION_RETENTION_DAYS (storage/retention.rs).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        RAISE NOTICE 'timescaledb is not available: plain PostgreSQL mode';
        RETURN;
    END IF;
    BEGIN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'cannot create extension timescaledb (%): plain PostgreSQL mode', SQLERRM;
        RETURN;
    END;
    BEGIN
        PERFORM create_hypertable('logs', 'timestamp',
                                  chunk_time_interval => interval '1 day',
                                  if_not_exists => true,
                                  migrate_data => true);
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'cannot make logs a hypertable (%): plain PostgreSQL mode', SQLERRM;
        RETURN;
    END;
    BEGIN
        EXECUTE 'ALTER TABLE logs SET (timescaledb.compress, '
             || 'timescaledb.compress_segmentby = ''service'', '
             || 'timescaledb.compress_orderby = ''timestamp DESC'')';
        PERFORM add_compression_policy('logs', interval '7 days', if_not_exists => true);
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'compression not available (%): hypertable without compression', SQLERRM;
    END;
END
$$;
