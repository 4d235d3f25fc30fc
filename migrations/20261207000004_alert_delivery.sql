-- Alerts (docs/alerts.md): what delivery reads besides its queue.
-- The pending rows of each (rule, series, channel) in order: the worker's claim takes
-- the oldest of each (its head) from here, so however many rows wait behind heads being
-- retried, finding the due heads costs an index entry per pending row.
CREATE INDEX IF NOT EXISTS alert_notifications_pending_series
    ON alert_notifications (rule_id, series_key, channel, id) WHERE status = 'pending';
-- /health and /metrics count the notifications failed within a recent window, every
-- poll interval on every instance: an index scan however many delivered rows pile up.
CREATE INDEX IF NOT EXISTS alert_notifications_failed
    ON alert_notifications (failed_at) WHERE status = 'failed';
