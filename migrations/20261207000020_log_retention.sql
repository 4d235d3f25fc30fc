-- How long rows of `logs` are kept, as `migrate` declares it from
-- LOG_INGESTION_RETENTION_DAYS (docs/operations.md): no row keeps them forever. Every
-- `serve` instance follows this row (plain mode deletes by it; TimescaleDB mode has
-- retention policies `migrate` installs with it), whatever its own setting says.
CREATE TABLE IF NOT EXISTS log_retention (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    days      integer NOT NULL CHECK (days > 0)
);
