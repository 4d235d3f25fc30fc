-- Alerts (docs/alerts.md): the outbox between evaluation and delivery. Every state
-- transition of a (rule, series) writes one row per channel of the rule, in the same
-- transaction as the new state; the delivery worker sends the rows and records the
-- outcome here. A row is the single record of one notification: it is sent until it
-- is delivered or its deadline passes, and a delivered row is never sent again.
CREATE TABLE IF NOT EXISTS alert_notifications (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id         bigint      NOT NULL,
    rule_name       text        NOT NULL,
    series_key      text        NOT NULL,
    -- 'firing', 'resolved', or 'reminder' (a repeat of firing while it lasts).
    transition      text        NOT NULL CHECK (transition IN ('firing', 'resolved', 'reminder')),
    channel         text        NOT NULL,
    -- The alert in the channel-neutral form evaluation writes (docs/alerts.md):
    -- status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint, value.
    alert           jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Delivery's columns.
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_until   timestamptz,
    delivered_at    timestamptz,
    failed_at       timestamptz,
    last_error      text
);
-- The worker's queue: what is still to send, oldest first.
CREATE INDEX IF NOT EXISTS alert_notifications_pending
    ON alert_notifications (next_attempt_at, id) WHERE status = 'pending';
-- A series' notifications in transition order (order of delivery per channel).
CREATE INDEX IF NOT EXISTS alert_notifications_series
    ON alert_notifications (rule_id, series_key, channel, id);
