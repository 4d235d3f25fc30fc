-- "Everything this request caused": the explorer's request view and `request_id=` on
-- the query API select entries by the request they belong to -- their own
-- `request_id`, or for a job's entries the `parent_request_id` of the request that
-- enqueued it (the gem's LogIngestion::Context). The expression must stay written
-- exactly as REQUEST_EXPRESSION in server/src/read/filters.rs. Partial: entries without
-- either key (most non-Rails logs) cost nothing at insert and take no space. Entries
-- that carry one pay for it: about a fifth of batch ingest throughput when every entry
-- has a random request id (README, "Storage"); the key alone, without the time, keeps
-- the index small -- a request has few entries, sorted after the lookup.
CREATE INDEX IF NOT EXISTS logs_request
    ON logs ((COALESCE(metadata->>'request_id', metadata->>'parent_request_id')))
    WHERE COALESCE(metadata->>'request_id', metadata->>'parent_request_id') IS NOT NULL;
