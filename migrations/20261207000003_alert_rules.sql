-- Alerts (docs/alerts.md): the rules, the state of each (rule, series), silences, and
-- the history of transitions. The evaluator claims due rules with
-- `FOR UPDATE SKIP LOCKED` on alert_rules (next_eval_at), so a fleet evaluates each rule
-- once; a rule's new series state, its transitions and its outbox rows
-- (alert_notifications) are written in the transaction that holds the claim.
CREATE TABLE IF NOT EXISTS alert_rules (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text        NOT NULL UNIQUE,
    -- 'api' (managed through the API) or 'file' (LOG_INGESTION_ALERT_RULES_FILE,
    -- read-only in the API).
    source           text        NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'file')),
    -- The validated rule as the API shows it (server/src/alerts/rules.rs).
    definition       jsonb       NOT NULL,
    enabled          boolean     NOT NULL DEFAULT true,
    interval_seconds integer     NOT NULL CHECK (interval_seconds > 0),
    next_eval_at     timestamptz NOT NULL DEFAULT now(),
    last_eval_at     timestamptz,
    -- Why the last evaluation failed (NULL: it worked), and what it had to leave out
    -- (series over the rule's cap).
    last_error       text,
    last_warning     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- The evaluator's queue: enabled rules by when they are due.
CREATE INDEX IF NOT EXISTS alert_rules_due ON alert_rules (next_eval_at) WHERE enabled;

-- One row per (rule, series) that is pending or firing; an inactive series has no row.
CREATE TABLE IF NOT EXISTS alert_series (
    rule_id         bigint      NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    series_key      text        NOT NULL,
    labels          jsonb       NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'firing')),
    -- When the condition started to hold (pending since).
    active_since    timestamptz NOT NULL,
    -- When the series started firing; NULL while pending.
    fired_at        timestamptz,
    -- The last evaluation at which the condition held (keep_firing_for counts from it).
    last_active_at  timestamptz NOT NULL,
    -- The last firing or reminder notification written to the outbox; NULL: none yet
    -- (pending, or firing while silenced).
    last_notified_at timestamptz,
    value           double precision,
    PRIMARY KEY (rule_id, series_key)
);

-- A silence suppresses the notifications of a rule (series_key NULL) or of one series
-- until a time; transitions are still recorded.
CREATE TABLE IF NOT EXISTS alert_silences (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id    bigint      NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    series_key text,
    until      timestamptz NOT NULL,
    reason     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_silences_rule ON alert_silences (rule_id, until);

-- Every transition of every series, notified or not (silenced, or a rule without
-- channels), newest last.
CREATE TABLE IF NOT EXISTS alert_transitions (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id    bigint      NOT NULL,
    rule_name  text        NOT NULL,
    series_key text        NOT NULL,
    transition text        NOT NULL
               CHECK (transition IN ('pending', 'firing', 'reminder', 'resolved', 'inactive')),
    value      double precision,
    at         timestamptz NOT NULL,
    -- Whether notifications were written to the outbox for it.
    notified   boolean     NOT NULL,
    silenced   boolean     NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS alert_transitions_rule ON alert_transitions (rule_id, id);
