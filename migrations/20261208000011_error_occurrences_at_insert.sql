-- Error occurrences counted by the statement that stores them (docs/errors.md, "How
-- counts stay exact"): every row of logs with a fingerprint appends one delta (count 1,
-- its minute) for its group, in the row's own transaction, so a group commit's COPY
-- stays one autocommit statement and still counts exactly the rows it stores. The
-- writer creates a row's group before it stores the row; a row whose group does not
-- exist is not counted. AFTER, not BEFORE: COPY keeps inserting rows in batches, and
-- rows without a fingerprint only cost the WHEN test. TimescaleDB keeps row triggers on
-- a hypertable's chunks.
CREATE OR REPLACE FUNCTION logs_error_occurrence() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO error_group_deltas (group_id, bucket, count, first_seen, last_seen)
    SELECT g.id, date_bin('1 minute', NEW.timestamp, timestamptz '2000-01-01 00:00:00+00'),
           1, NEW.timestamp, NEW.timestamp
    FROM error_groups g
    WHERE g.service = NEW.service AND g.fingerprint = NEW.fingerprint;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS logs_error_occurrence ON logs;
CREATE TRIGGER logs_error_occurrence AFTER INSERT ON logs
    FOR EACH ROW WHEN (NEW.fingerprint IS NOT NULL)
    EXECUTE FUNCTION logs_error_occurrence();
