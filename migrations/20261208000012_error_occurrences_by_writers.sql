-- Error occurrences appended by the writer, once per group commit (docs/errors.md, "How
-- counts stay exact"): the server calls error_occurrences_written in the transaction
-- that stores the rows, with one delta per (group, minute) it tallied while encoding
-- them, instead of the row trigger appending one delta per error row (a PL/pgSQL call
-- and an insert each: most of the price of grouping). The call marks its transaction
-- (a transaction-local setting), and the row trigger skips the rows of a marked
-- transaction, so nothing is counted twice; rows stored by anything else (an
-- operator's INSERT, an instance of an earlier version while a fleet is upgraded) are
-- still counted by the trigger.
--
-- Live-safe: CREATE OR REPLACE FUNCTION locks no table; CREATE OR REPLACE TRIGGER takes
-- the same short SHARE ROW EXCLUSIVE lock on logs as CREATE TRIGGER (under migrate's
-- lock_timeout), swaps the condition in place (no moment without the trigger), and
-- TimescaleDB replaces it on every chunk.
CREATE OR REPLACE FUNCTION error_occurrences_written(
    ids bigint[], counts bigint[], firsts timestamptz[], lasts timestamptz[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('log_ingestion.error_occurrences', 'written', true);
    -- A group that does not exist (any more) is not counted, as by the trigger.
    INSERT INTO error_group_deltas (group_id, bucket, count, first_seen, last_seen)
    SELECT d.id, date_bin('1 minute', d.first, timestamptz '2000-01-01 00:00:00+00'),
           d.n, d.first, d.last
    FROM unnest(ids, counts, firsts, lasts) AS d (id, n, first, last)
    WHERE EXISTS (SELECT 1 FROM error_groups g WHERE g.id = d.id);
END
$$;

CREATE OR REPLACE TRIGGER logs_error_occurrence AFTER INSERT ON logs
    FOR EACH ROW WHEN (NEW.fingerprint IS NOT NULL
                       AND current_setting('log_ingestion.error_occurrences', true)
                           IS DISTINCT FROM 'written')
    EXECUTE FUNCTION logs_error_occurrence();
