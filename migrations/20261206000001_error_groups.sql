-- Errors as groups (docs/errors.md). Every error entry carries its fingerprint
-- (server/src/errors/fingerprint.rs), written with the row; its group is upserted in
-- the same transaction (server/src/storage/error_groups.rs), so a group's count is
-- exactly its stored occurrences.
--
-- A nullable column without a default: no table rewrite, and allowed on a TimescaleDB
-- hypertable with compressed chunks.
ALTER TABLE logs ADD COLUMN IF NOT EXISTS fingerprint text;
-- "This group's occurrences, newest first" and `fingerprint=` on /api/v1/logs.
-- Partial: entries that are not errors (most) cost nothing at insert.
CREATE INDEX IF NOT EXISTS logs_fingerprint ON logs (fingerprint, timestamp DESC)
    WHERE fingerprint IS NOT NULL;

-- One row per (service, fingerprint). first_seen/last_seen are entry timestamps;
-- count is every stored occurrence. A group merged into another keeps its row (new
-- occurrences of its fingerprint still count here) and points at the target with
-- merged_into; readers add it to the target's.
CREATE TABLE IF NOT EXISTS error_groups (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service            text        NOT NULL,
    fingerprint        text        NOT NULL,
    title              text        NOT NULL,
    exception_class    text,
    message_template   text        NOT NULL,
    first_seen         timestamptz NOT NULL,
    last_seen          timestamptz NOT NULL,
    count              bigint      NOT NULL,
    sample_log_id      bigint,
    status             text        NOT NULL DEFAULT 'unresolved'
                       CHECK (status IN ('unresolved', 'resolved', 'ignored')),
    resolved_at        timestamptz,
    regressed_at       timestamptz,
    -- An ignore ends at the first occurrence that brings count to this, or that
    -- arrives at or after this time.
    ignore_until_count bigint,
    ignore_until_time  timestamptz,
    merged_into        bigint      REFERENCES error_groups (id),
    UNIQUE (service, fingerprint)
) WITH (fillfactor = 70);
CREATE INDEX IF NOT EXISTS error_groups_last_seen ON error_groups (last_seen DESC);
CREATE INDEX IF NOT EXISTS error_groups_merged_into ON error_groups (merged_into)
    WHERE merged_into IS NOT NULL;

-- Occurrences per group per minute (entry timestamp, aligned like logs_per_minute):
-- the list's trends and counts in a range, and a group's buckets. fillfactor 70: the
-- current minute's rows are updated by every commit that has the error (HOT updates).
CREATE TABLE IF NOT EXISTS error_group_minutes (
    group_id bigint      NOT NULL,
    bucket   timestamptz NOT NULL,
    count    bigint      NOT NULL,
    PRIMARY KEY (group_id, bucket)
) WITH (fillfactor = 70);
