-- Alerts (docs/alerts.md): what delivery reads besides its queue. /health and /metrics
-- count the notifications failed within a recent window, every few seconds on every
-- instance: this keeps that an index scan however many delivered rows pile up.
CREATE INDEX IF NOT EXISTS alert_notifications_failed
    ON alert_notifications (failed_at) WHERE status = 'failed';
