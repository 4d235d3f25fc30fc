-- Alerts (docs/alerts.md): where notifications go. A rule names its channels; the
-- delivery worker formats each notification for its channel's kind. Channels come
-- from the API ('api') or from the alert rules file ('file', read-only in the API).
-- url and secret are secrets: never logged, never returned by the API.
CREATE TABLE IF NOT EXISTS alert_channels (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    kind       text        NOT NULL CHECK (kind IN ('webhook', 'slack')),
    url        text        NOT NULL,
    -- HMAC-SHA256 key of the webhook signature header; NULL: not signed.
    secret     text,
    source     text        NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'file')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
