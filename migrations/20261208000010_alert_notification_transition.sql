-- Alerts (docs/alerts.md): each notification names the transition that wrote it, so the
-- history shows every transition with its deliveries. NULL for rows written before.
ALTER TABLE alert_notifications ADD COLUMN IF NOT EXISTS transition_id bigint;
CREATE INDEX IF NOT EXISTS alert_notifications_transition
    ON alert_notifications (transition_id) WHERE transition_id IS NOT NULL;
-- Delivery prunes delivered and failed rows older than its bound: an index scan of the
-- old rows, however many recent ones the outbox holds.
CREATE INDEX IF NOT EXISTS alert_notifications_finished
    ON alert_notifications ((coalesce(delivered_at, failed_at))) WHERE status <> 'pending';
