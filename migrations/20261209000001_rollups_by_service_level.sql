-- The rollups by service and level first: a filter on a service and a level that matches
-- few entries (the errors of one service this month) reads only its own rollup rows,
-- where the primary key (bucket first) reads every key of every bucket of the range
-- (server/src/read/sparse.rs reads them). Plain PostgreSQL only: in TimescaleDB mode the
-- rollups are continuous aggregates, indexed the same way by the server's `migrate`
-- (storage/rollup.rs). The rollup tables hold a row per minute (hour), service, level
-- and shard, so the build takes seconds, with ingest waiting meanwhile.
DO $migration$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class WHERE relname = 'logs_per_minute' AND relkind = 'r'
               AND relnamespace = current_schema()::regnamespace) THEN
        CREATE INDEX IF NOT EXISTS logs_per_minute_service_level
            ON logs_per_minute (service, level, bucket);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class WHERE relname = 'logs_per_hour' AND relkind = 'r'
               AND relnamespace = current_schema()::regnamespace) THEN
        CREATE INDEX IF NOT EXISTS logs_per_hour_service_level
            ON logs_per_hour (service, level, bucket);
    END IF;
END
$migration$;
