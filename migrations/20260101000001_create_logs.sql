-- The logs table and its plain-PostgreSQL indexes. Lean on purpose: every index is
-- paid for on each insert. No GIN over all metadata (about 4x the ingest cost);
-- add an expression index for a metadata key you query often instead.
-- No primary key: TimescaleDB requires unique indexes to include the time column,
-- and nothing looks a row up by id alone.
CREATE TABLE IF NOT EXISTS logs (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    timestamp   timestamptz NOT NULL,
    service     text        NOT NULL,
    level       text        NOT NULL,
    message     text        NOT NULL,
    metadata    jsonb,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Time-range scans: rows arrive roughly in time order, so BRIN is tiny and cheap.
CREATE INDEX IF NOT EXISTS logs_timestamp_brin ON logs USING brin (timestamp);
-- "this service's recent logs" and "recent errors".
CREATE INDEX IF NOT EXISTS logs_service_timestamp ON logs (service, timestamp DESC);
CREATE INDEX IF NOT EXISTS logs_level_timestamp ON logs (level, timestamp DESC);

-- Answers to requests sent with an Idempotency-Key, kept for a day (see storage/idempotency.rs).
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope      text        NOT NULL,
    key        text        NOT NULL,
    status     smallint    NOT NULL,
    response   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);
