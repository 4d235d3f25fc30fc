-- Error occurrences carried by the statement that stores the rows (docs/errors.md, "How
-- counts stay exact"): the server appends its group commit's deltas to the COPY's own
-- text, as a comment `/* error_occurrences {ids};{counts};{firsts};{lasts} */` (four
-- array literals of numbers and timestamps), and this statement trigger hands them to
-- error_occurrences_written before the first row, inside the COPY's transaction. So a
-- group commit with error entries is one autocommit COPY, like one without: no BEGIN,
-- no separate call, no COMMIT. error_occurrences_written marks the transaction, so the
-- row trigger skips its rows; a statement without the comment (an operator's INSERT,
-- an instance of an earlier version) is counted as before. The WHEN test runs in C;
-- statements without the comment never call PL/pgSQL. The comment is cut out by
-- position, not by a regular expression (which cost more than appending the deltas).
--
-- Live-safe: CREATE OR REPLACE FUNCTION locks no table; CREATE OR REPLACE TRIGGER takes
-- the short SHARE ROW EXCLUSIVE lock on logs (under migrate's lock_timeout). A
-- statement-level trigger stays on the hypertable itself (no chunk copies).
CREATE OR REPLACE FUNCTION logs_error_occurrences_carried() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    -- From the array after the marker to the end of the comment.
    carried text := split_part(
        substr(current_query(), strpos(current_query(), '/* error_occurrences {') + 21),
        ' */', 1);
BEGIN
    IF carried <> '' THEN
        PERFORM error_occurrences_written(split_part(carried, ';', 1)::bigint[],
                                          split_part(carried, ';', 2)::bigint[],
                                          split_part(carried, ';', 3)::timestamptz[],
                                          split_part(carried, ';', 4)::timestamptz[]);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER logs_error_occurrences_carried BEFORE INSERT ON logs
    FOR EACH STATEMENT WHEN (strpos(current_query(), '/* error_occurrences {') > 0)
    EXECUTE FUNCTION logs_error_occurrences_carried();
