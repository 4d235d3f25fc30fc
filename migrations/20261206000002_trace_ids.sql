-- Trace context as first-class fields of an entry: OTLP senders and the gem (inside an
-- OpenTelemetry span) put `trace_id`, `span_id` and `trace_flags` at the top of the
-- metadata, and the server also writes them to these columns in its COPY
-- (server/src/storage/trace_fields.rs). Each id has a btree, so `trace_id=` and
-- `span_id=` on the query API are index lookups (and in TimescaleDB, whose compressed
-- chunks keep no partial or expression index, a column with a btree gets a bloom
-- filter per batch of rows once compressed). Partial in plain PostgreSQL: entries
-- without a trace cost nothing at insert.
ALTER TABLE logs ADD COLUMN IF NOT EXISTS trace_id text;
ALTER TABLE logs ADD COLUMN IF NOT EXISTS span_id text;
ALTER TABLE logs ADD COLUMN IF NOT EXISTS trace_flags smallint;
CREATE INDEX IF NOT EXISTS logs_trace_id ON logs (trace_id, timestamp DESC) WHERE trace_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS logs_span_id ON logs (span_id) WHERE span_id IS NOT NULL;
