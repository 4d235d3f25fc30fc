-- People (docs/server.md, "Sign-in"): who signs in to the explorer, their sessions,
-- what they changed, and the searches they save. Admin API keys keep working for
-- scripts; a change made with one is audited under the key's fingerprint.
CREATE TABLE IF NOT EXISTS users (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Lower-cased; the sign-in name (an e-mail address for SSO users).
    email           text        NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 1 AND 320),
    role            text        NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    -- argon2id PHC string; NULL for users who only come through the SSO proxy.
    password_hash   text,
    -- 'password' (created by the CLI or an admin) or 'proxy' (created on first SSO sign-in).
    source          text        NOT NULL DEFAULT 'password' CHECK (source IN ('password', 'proxy')),
    failed_sign_ins integer     NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sessions (
    -- SHA-256 of the cookie's token: a stolen table does not sign anyone in.
    token_hash   bytea       PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user_id ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);

CREATE TABLE IF NOT EXISTS audit_log (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    -- Who: 'user:<email>' or 'key:<fingerprint>'; user_id kept when a person.
    actor      text        NOT NULL,
    user_id    bigint      REFERENCES users (id) ON DELETE SET NULL,
    -- What: e.g. 'error_group.resolve', 'alert_rule.update', 'user.add', 'saved_search.delete'.
    action     text        NOT NULL,
    target     text        NOT NULL,
    details    jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at DESC, id DESC);

CREATE TABLE IF NOT EXISTS saved_searches (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The stable short link: /s/<short_id>.
    short_id      text        NOT NULL UNIQUE,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description   text        NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    -- The explorer's query string (filters and time range, relative or absolute).
    search        text        NOT NULL CHECK (length(search) <= 8192),
    owner         text        NOT NULL,
    owner_user_id bigint      REFERENCES users (id) ON DELETE SET NULL,
    shared        boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS saved_searches_owner ON saved_searches (owner);
