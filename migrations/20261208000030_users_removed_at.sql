-- Removing a person (docs/server.md, "Sign-in") keeps their row, marked removed: the
-- SSO proxy does not add them again and sign-in refuses them until an admin adds them
-- back. A column without a default: instant on a live table.
ALTER TABLE users ADD COLUMN IF NOT EXISTS removed_at timestamptz;

-- A person's saved searches are theirs by user id, not by the `user:<email>` label.
CREATE INDEX IF NOT EXISTS saved_searches_owner_user_id ON saved_searches (owner_user_id);
