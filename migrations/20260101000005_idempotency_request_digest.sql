-- The SHA-256 of the (decoded) request body an idempotency record answered, as hex.
-- A reused key with a different body is refused (422) instead of replaying an answer
-- that belongs to another request. Nullable: records written before this column
-- existed have none and replay as before.
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS request_sha256 text;
