-- Error counts kept without a hot row (docs/errors.md, "How counts stay exact"). A
-- group commit with error entries appends one row per (group, minute) here, in the
-- transaction that stores the entries: an insert only, so concurrent commits never wait
-- for one another on a group's row. A fold (server/src/storage/error_fold.rs), run
-- shortly after commits and before every read or change of groups, moves them into
-- error_groups and error_group_minutes in one transaction and decides regressions
-- there. No index and no key: rows are only appended and then deleted all at once.
CREATE TABLE IF NOT EXISTS error_group_deltas (
    group_id    bigint      NOT NULL,
    bucket      timestamptz NOT NULL,
    count       bigint      NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    -- When the occurrences were stored (their transaction's start): a regression's time
    -- and the clock an ignore until a time is compared with.
    recorded_at timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);

-- A group is created (count 0, no occurrence yet) just before the first commit that
-- holds one of its occurrences, so that commit only appends a delta; its first and last
-- seen are set by the fold. Readers leave out groups with no occurrence.
ALTER TABLE error_groups ALTER COLUMN first_seen DROP NOT NULL;
ALTER TABLE error_groups ALTER COLUMN last_seen DROP NOT NULL;
