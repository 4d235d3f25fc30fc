//! Typed settings, read once from the environment (and an optional `.env`, loaded by
//! `main`). Owns parsing, defaults and the one error message for bad configuration.
//! It never performs I/O beyond reading variables (and the hostname, for the default
//! instance id) and never logs a secret: `Debug`
//! of [`Settings`] redacts the API keys and the database password.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::instance::InstanceId;
use crate::storage::StorageSetting;

/// Everything the server needs to run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub api_keys: ApiKeys,
    pub host: IpAddr,
    pub port: u16,
    pub rate_limit: RateLimitSettings,
    pub limits: EntryLimits,
    pub max_body_bytes: usize,
    pub max_batch_entries: usize,
    /// Server-wide cap on the (decompressed) body bytes of ingest requests in flight.
    pub max_inflight_bytes: usize,
    /// How long a request may wait for room under `max_inflight_bytes` before a 503.
    pub inflight_wait: Duration,
    pub retention_days: Option<u32>,
    pub group_commit: GroupCommitSettings,
    pub shutdown_deadline: Duration,
    /// Keys that may read logs (`LOG_INGESTION_ADMIN_API_KEYS`); empty means nobody can.
    pub admin_api_keys: Vec<ApiKey>,
    /// The read side's own connections and bounds.
    pub read: ReadSettings,
    /// How many connections, and for how long a request head may take.
    pub connections: ConnectionSettings,
    /// How long a request body may take to arrive.
    pub body_read: BodyReadSettings,
    /// How often TimescaleDB's policy jobs are checked (and run by the server when the
    /// scheduler fails them); see `storage::policy_jobs`.
    pub policy_check_interval: Duration,
    /// This process's name in logs, `/metrics`, `/health` and the rate-limit store.
    pub instance_id: InstanceId,
    /// Per-key limits shared by a fleet (`LOG_INGESTION_RATE_LIMIT_SCOPE=cluster`);
    /// `None` keeps each process's own limit.
    pub rate_limit_sharing: Option<RateLimitSharing>,
}

/// How instances of a fleet agree on each key's shares of its rate (see
/// `rate_limit_sharing`): which PostgreSQL holds the shared state, how often each
/// instance syncs, and how long one sync may take before the instance falls back to
/// its own local limit.
#[derive(Clone)]
pub struct RateLimitSharing {
    pub store_url: String,
    pub sync_interval: Duration,
    pub store_timeout: Duration,
}

impl fmt::Debug for RateLimitSharing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitSharing")
            .field("store_url", &redact_url_password(&self.store_url))
            .field("sync_interval", &self.sync_interval)
            .field("store_timeout", &self.store_timeout)
            .finish()
    }
}

/// Bounds on accepted connections, so slow or silent clients cannot hold sockets.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionSettings {
    /// Longest a request head may take to arrive, counted from the connection's start or
    /// from the end of its previous answer: it also closes idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections open at once that have not yet sent a request with a valid key.
    pub max_unauthenticated_connections: usize,
}

/// Bounds on reading one request body, so a stalled upload frees its share of the
/// in-flight budget.
#[derive(Clone, Copy, Debug)]
pub struct BodyReadSettings {
    /// Longest wait for the next piece of the body.
    pub idle_timeout: Duration,
    /// Longest the whole body may take: a floor on the rate of a trickling upload.
    pub total_timeout: Duration,
}

impl Default for BodyReadSettings {
    fn default() -> Self {
        BodyReadSettings {
            idle_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
        }
    }
}

/// How to reach PostgreSQL.
#[derive(Clone)]
pub struct DatabaseSettings {
    pub url: String,
    /// Where the read side queries (`LOG_INGESTION_READ_DATABASE_URL`, e.g. a streaming
    /// replica); `None` reads from `url`. Migrations and writes only ever use `url`.
    pub read_url: Option<String>,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// `LOG_INGESTION_STORAGE`: the storage mode asked for (auto by default).
    pub storage: StorageSetting,
    /// `LOG_INGESTION_INDEXED_METADATA_KEYS`: metadata keys with an expression index
    /// (`storage::declared_indexes`, which checks them at migrate).
    pub indexed_metadata_keys: Vec<String>,
    /// `LOG_INGESTION_MESSAGE_TRIGRAM_INDEX` (`on`/`off`): a trigram index for `q=`.
    pub message_trigram_index: bool,
}

impl DatabaseSettings {
    /// Only what `migrate` needs: no API keys required.
    pub fn from_env() -> Result<Self, ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let mut reader = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        let settings = Self::read(&mut reader);
        if reader.problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError {
                problems: reader.problems,
            })
        }
    }

    fn read(reader: &mut Reader<'_>) -> Self {
        DatabaseSettings {
            url: reader.required("DATABASE_URL"),
            read_url: reader.raw("LOG_INGESTION_READ_DATABASE_URL"),
            max_connections: reader.number("LOG_INGESTION_DATABASE_MAX_CONNECTIONS", 10, 1),
            acquire_timeout: reader.duration(
                "LOG_INGESTION_DATABASE_ACQUIRE_TIMEOUT",
                Duration::from_secs(5),
            ),
            storage: reader.storage_setting("LOG_INGESTION_STORAGE"),
            indexed_metadata_keys: reader
                .raw("LOG_INGESTION_INDEXED_METADATA_KEYS")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            message_trigram_index: reader.on_off("LOG_INGESTION_MESSAGE_TRIGRAM_INDEX"),
        }
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url_password(&self.url))
            .field(
                "read_url",
                &self.read_url.as_deref().map(redact_url_password),
            )
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("storage", &self.storage)
            .field("indexed_metadata_keys", &self.indexed_metadata_keys)
            .field("message_trigram_index", &self.message_trigram_index)
            .finish()
    }
}

/// Per-key request rate: `rps` sustained, `burst` at once.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitSettings {
    pub rps: u32,
    pub burst: u32,
}

/// The limits one entry must respect; used by `domain::LogEntry::parse`.
#[derive(Clone, Copy, Debug)]
pub struct EntryLimits {
    pub max_message_bytes: usize,
    pub max_metadata_bytes: usize,
    pub max_metadata_depth: usize,
    pub max_timestamp_age: Duration,
    pub max_timestamp_ahead: Duration,
}

impl Default for EntryLimits {
    fn default() -> Self {
        EntryLimits {
            max_message_bytes: 65_536,
            max_metadata_bytes: 65_536,
            max_metadata_depth: 16,
            max_timestamp_age: Duration::from_secs(5 * 365 * 86_400 + 2 * 86_400),
            max_timestamp_ahead: Duration::from_secs(3_600),
        }
    }
}

/// How long the group committer waits for company and how big a group may grow.
#[derive(Clone, Copy, Debug)]
pub struct GroupCommitSettings {
    pub linger: Duration,
    /// Writer tasks, each with its own transaction in flight.
    pub writers: usize,
    pub max_rows: usize,
    pub max_bytes: usize,
}

/// The read side's own resources, so that reading never takes the writers'
/// connections: a separate pool whose size is also the number of read queries at once,
/// how long a read waits for one of them before a 503, and a `statement_timeout` on
/// every read query.
#[derive(Clone, Copy, Debug)]
pub struct ReadSettings {
    pub max_connections: u32,
    pub queue_wait: Duration,
    pub statement_timeout: Duration,
}

impl Default for ReadSettings {
    fn default() -> Self {
        ReadSettings {
            max_connections: 4,
            queue_wait: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

impl ReadSettings {
    fn read(reader: &mut Reader<'_>) -> Self {
        let defaults = ReadSettings::default();
        let settings = ReadSettings {
            max_connections: reader.number(
                "LOG_INGESTION_READ_MAX_CONNECTIONS",
                defaults.max_connections,
                1,
            ),
            queue_wait: reader.duration("LOG_INGESTION_READ_QUEUE_WAIT", defaults.queue_wait),
            statement_timeout: reader.duration(
                "LOG_INGESTION_READ_STATEMENT_TIMEOUT",
                defaults.statement_timeout,
            ),
        };
        // PostgreSQL reads 0 as "no timeout": refuse it rather than unbound reads.
        if settings.statement_timeout < Duration::from_millis(1) {
            reader
                .problems
                .push("  LOG_INGESTION_READ_STATEMENT_TIMEOUT: must be at least 1ms".to_owned());
        }
        settings
    }
}

/// One configured API key. Its text is private; only a fingerprint (a SHA-256 prefix)
/// may leave this type, to scope idempotency keys and metrics without exposing it.
#[derive(Clone)]
pub struct ApiKey {
    secret: String,
    fingerprint: String,
}

impl ApiKey {
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        let digest = Sha256::digest(secret.as_bytes());
        let fingerprint = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        ApiKey {
            secret,
            fingerprint,
        }
    }

    /// The key's bytes, for the constant-time comparison in `auth` only.
    pub fn secret_bytes(&self) -> &[u8] {
        self.secret.as_bytes()
    }

    /// A stable, non-reversible identifier of the key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.fingerprint)
    }
}

/// The non-empty set of accepted API keys.
#[derive(Clone, Debug)]
pub struct ApiKeys(Vec<ApiKey>);

impl ApiKeys {
    pub fn new(keys: Vec<ApiKey>) -> Result<Self, ConfigError> {
        if keys.is_empty() {
            return Err(ConfigError::single(
                "LOG_INGESTION_API_KEYS",
                "must name at least one API key",
            ));
        }
        Ok(ApiKeys(keys))
    }

    pub fn iter(&self) -> impl Iterator<Item = &ApiKey> {
        self.0.iter()
    }
}

/// Bad configuration: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn single(variable: &str, problem: &str) -> Self {
        ConfigError {
            problems: vec![format!("  {variable}: {problem}")],
        }
    }
}

impl Settings {
    /// Reads settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply variables without touching
    /// the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut reader = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        let database = DatabaseSettings::read(&mut reader);
        // Fleet settings (issue 11): instance identity and shared rate limits.
        let instance_id = reader.instance_id();
        let rate_limit_sharing = reader.rate_limit_sharing(&database.url);
        let keys: Vec<ApiKey> = reader
            .required("LOG_INGESTION_API_KEYS")
            .split(',')
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(ApiKey::new)
            .collect();
        let defaults = EntryLimits::default();
        let settings = Settings {
            database,
            instance_id,
            rate_limit_sharing,
            api_keys: ApiKeys(Vec::new()),
            host: reader.parsed("LOG_INGESTION_HOST", IpAddr::from([127, 0, 0, 1])),
            port: reader.parsed("LOG_INGESTION_PORT", 8080),
            rate_limit: RateLimitSettings {
                rps: reader.number("LOG_INGESTION_RATE_LIMIT_RPS", 100, 1),
                burst: reader.number("LOG_INGESTION_RATE_LIMIT_BURST", 200, 1),
            },
            limits: EntryLimits {
                max_message_bytes: reader.number(
                    "LOG_INGESTION_MAX_MESSAGE_BYTES",
                    defaults.max_message_bytes,
                    1,
                ),
                max_metadata_bytes: reader.number(
                    "LOG_INGESTION_MAX_METADATA_BYTES",
                    defaults.max_metadata_bytes,
                    2,
                ),
                max_metadata_depth: reader.number(
                    "LOG_INGESTION_MAX_METADATA_DEPTH",
                    defaults.max_metadata_depth,
                    1,
                ),
                max_timestamp_age: reader.duration(
                    "LOG_INGESTION_MAX_TIMESTAMP_AGE",
                    defaults.max_timestamp_age,
                ),
                max_timestamp_ahead: reader.duration(
                    "LOG_INGESTION_MAX_TIMESTAMP_AHEAD",
                    defaults.max_timestamp_ahead,
                ),
            },
            max_body_bytes: reader.number("LOG_INGESTION_MAX_BODY_BYTES", 10 * 1024 * 1024, 1024),
            max_batch_entries: reader.number("LOG_INGESTION_MAX_BATCH_ENTRIES", 5_000, 1),
            // Parsing holds ~5 bytes of memory per body byte (~2 KB per realistic entry);
            // at 16 MiB the load benchmark's 1000-entry batches peaked at 84 MiB with 64
            // connections and 124 MiB with 512, under its 150 MB target.
            max_inflight_bytes: reader.number(
                "LOG_INGESTION_MAX_INFLIGHT_BYTES",
                16 * 1024 * 1024,
                1024,
            ),
            inflight_wait: reader
                .duration("LOG_INGESTION_INFLIGHT_WAIT", Duration::from_millis(500)),
            retention_days: reader.optional_number("LOG_INGESTION_RETENTION_DAYS", 1),
            group_commit: GroupCommitSettings {
                // Grouping comes from writers being busy: requests that arrive during a
                // commit form the next group. A linger only delays a lone request (it
                // cost ~30% of batch-100 throughput at 2ms in the load benchmark).
                linger: reader.duration("LOG_INGESTION_GROUP_COMMIT_LINGER", Duration::ZERO),
                writers: reader.number("LOG_INGESTION_GROUP_COMMIT_WRITERS", 2, 1),
                max_rows: reader.number("LOG_INGESTION_GROUP_COMMIT_MAX_ROWS", 10_000, 1),
                max_bytes: reader.number(
                    "LOG_INGESTION_GROUP_COMMIT_MAX_BYTES",
                    16 * 1024 * 1024,
                    1024,
                ),
            },
            shutdown_deadline: reader
                .duration("LOG_INGESTION_SHUTDOWN_DEADLINE", Duration::from_secs(30)),
            admin_api_keys: reader
                .raw("LOG_INGESTION_ADMIN_API_KEYS")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|key| !key.is_empty())
                        .map(ApiKey::new)
                        .collect()
                })
                .unwrap_or_default(),
            read: ReadSettings::read(&mut reader),
            // Request-shape bounds (issue 8): connections and body reads.
            connections: ConnectionSettings {
                header_read_timeout: reader.positive_duration(
                    "LOG_INGESTION_HEADER_READ_TIMEOUT",
                    Duration::from_secs(10),
                ),
                max_connections: reader.number("LOG_INGESTION_MAX_CONNECTIONS", 4_096, 1),
                max_unauthenticated_connections: reader.number(
                    "LOG_INGESTION_MAX_UNAUTHENTICATED_CONNECTIONS",
                    512,
                    1,
                ),
            },
            body_read: BodyReadSettings {
                idle_timeout: reader.positive_duration(
                    "LOG_INGESTION_BODY_IDLE_TIMEOUT",
                    BodyReadSettings::default().idle_timeout,
                ),
                total_timeout: reader.positive_duration(
                    "LOG_INGESTION_BODY_READ_TIMEOUT",
                    BodyReadSettings::default().total_timeout,
                ),
            },
            // A floor, not a feature: a zero period would spin (and tokio refuses it).
            policy_check_interval: reader.duration_at_least(
                "LOG_INGESTION_POLICY_CHECK_INTERVAL",
                Duration::from_secs(300),
                Duration::from_millis(100),
            ),
        };
        let api_keys = match ApiKeys::new(keys) {
            Ok(keys) => Some(keys),
            Err(error) => {
                if lookup("LOG_INGESTION_API_KEYS").is_some() {
                    reader.problems.extend(error.problems);
                }
                None
            }
        };
        match (reader.problems.is_empty(), api_keys) {
            (true, Some(api_keys)) => Ok(Settings {
                api_keys,
                ..settings
            }),
            _ => Err(ConfigError {
                problems: reader.problems,
            }),
        }
    }

    /// The address to listen on.
    pub fn listen_address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    fn required(&mut self, name: &str) -> String {
        match self.raw(name) {
            Some(value) => value,
            None => {
                self.problems
                    .push(format!("  {name}: is required but not set"));
                String::new()
            }
        }
    }

    fn parsed<T: std::str::FromStr>(&mut self, name: &str, default: T) -> T {
        match self.raw(name) {
            None => default,
            Some(value) => match value.parse() {
                Ok(parsed) => parsed,
                Err(_) => {
                    self.problems
                        .push(format!("  {name}: cannot parse {value:?}"));
                    default
                }
            },
        }
    }

    fn number<T>(&mut self, name: &str, default: T, min: T) -> T
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        match self.optional_number(name, min) {
            Some(value) => value,
            None => default,
        }
    }

    fn optional_number<T>(&mut self, name: &str, min: T) -> Option<T>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let value = self.raw(name)?;
        match value.parse::<T>() {
            Ok(parsed) if parsed >= min => Some(parsed),
            Ok(_) => {
                self.problems
                    .push(format!("  {name}: must be at least {min} (got {value})"));
                None
            }
            Err(_) => {
                self.problems
                    .push(format!("  {name}: must be a whole number (got {value:?})"));
                None
            }
        }
    }

    /// `on` or `off` (default off).
    fn on_off(&mut self, name: &str) -> bool {
        match self.raw(name).as_deref().map(str::trim) {
            None | Some("off") => false,
            Some("on") => true,
            Some(other) => {
                self.problems
                    .push(format!("  {name}: must be on or off (got {other:?})"));
                false
            }
        }
    }

    fn storage_setting(&mut self, name: &str) -> StorageSetting {
        let Some(value) = self.raw(name) else {
            return StorageSetting::default();
        };
        value.parse().unwrap_or_else(|()| {
            self.problems.push(format!(
                "  {name}: must be {} (got {value:?})",
                StorageSetting::CHOICES
            ));
            StorageSetting::default()
        })
    }

    fn duration_at_least(&mut self, name: &str, default: Duration, min: Duration) -> Duration {
        let value = self.duration(name, default);
        if value < min {
            self.problems.push(format!(
                "  {name}: must be at least {min:?} (got {value:?})"
            ));
            return default;
        }
        value
    }

    fn duration(&mut self, name: &str, default: Duration) -> Duration {
        match self.raw(name) {
            None => default,
            Some(value) => match parse_duration(&value) {
                Some(parsed) => parsed,
                None => {
                    self.problems.push(format!(
                        "  {name}: must be a duration like 500ms, 30s, 10m, 12h, 30d or 5y (got {value:?})"
                    ));
                    default
                }
            },
        }
    }
}

impl Reader<'_> {
    fn instance_id(&mut self) -> InstanceId {
        let configured = self.raw("LOG_INGESTION_INSTANCE_ID");
        InstanceId::resolve(configured.as_deref()).unwrap_or_else(|problem| {
            self.problems
                .push(format!("  LOG_INGESTION_INSTANCE_ID: {problem}"));
            InstanceId::for_this_process()
        })
    }

    fn rate_limit_sharing(&mut self, database_url: &str) -> Option<RateLimitSharing> {
        let scope = self.raw("LOG_INGESTION_RATE_LIMIT_SCOPE");
        let sharing = RateLimitSharing {
            store_url: self
                .raw("LOG_INGESTION_RATE_LIMIT_STORE_URL")
                .unwrap_or_else(|| database_url.to_owned()),
            sync_interval: self.positive_duration(
                "LOG_INGESTION_RATE_LIMIT_SYNC_INTERVAL",
                Duration::from_millis(100),
            ),
            store_timeout: self.positive_duration(
                "LOG_INGESTION_RATE_LIMIT_STORE_TIMEOUT",
                Duration::from_millis(500),
            ),
        };
        match scope.as_deref() {
            None | Some("instance") => None,
            Some("cluster") => Some(sharing),
            Some(other) => {
                self.problems.push(format!(
                    "  LOG_INGESTION_RATE_LIMIT_SCOPE: must be instance or cluster (got {})",
                    crate::client_text::quoted(other)
                ));
                None
            }
        }
    }

    /// A duration that must not be zero (a zero timeout would refuse everything).
    fn positive_duration(&mut self, name: &str, default: Duration) -> Duration {
        let value = self.duration(name, default);
        if value.is_zero() {
            self.problems
                .push(format!("  {name}: must be longer than zero"));
            return default;
        }
        value
    }
}

/// Parses `500ms`, `30s`, `10m`, `12h`, `30d`, `5y` (365 days) or bare seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits.parse().ok()?;
    let seconds_per_unit: u64 = match unit.trim() {
        "ms" => return Some(Duration::from_millis(amount)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    amount
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
}

/// Masks the password of a database URL (`postgres://user:***@host/db`) so that
/// `Debug` output of the settings is safe to log.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings_from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_only_required_variables_are_set() {
        let settings = settings_from(&[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("LOG_INGESTION_API_KEYS", "a, b"),
        ])
        .unwrap();
        assert_eq!(settings.port, 8080);
        assert_eq!(settings.rate_limit.rps, 100);
        assert_eq!(settings.rate_limit.burst, 200);
        assert_eq!(settings.limits.max_message_bytes, 65_536);
        assert_eq!(settings.api_keys.iter().count(), 2);
        assert!(settings.retention_days.is_none());
        assert_eq!(
            settings.connections.header_read_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(settings.body_read.total_timeout, Duration::from_secs(60));
        assert_eq!(settings.database.storage, StorageSetting::Auto);
        assert_eq!(settings.policy_check_interval, Duration::from_secs(300));
    }

    #[test]
    fn the_storage_mode_is_one_of_three_names() {
        let chosen = settings_from(&[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
            ("LOG_INGESTION_STORAGE", "timescaledb"),
        ])
        .unwrap();
        assert_eq!(chosen.database.storage, StorageSetting::Timescale);
        let error = settings_from(&[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
            ("LOG_INGESTION_STORAGE", "timescale"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("LOG_INGESTION_STORAGE: must be auto, timescaledb or postgresql"),
            "{error}"
        );
    }

    #[test]
    fn the_policy_check_interval_has_a_floor() {
        let error = settings_from(&[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
            ("LOG_INGESTION_POLICY_CHECK_INTERVAL", "0s"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("LOG_INGESTION_POLICY_CHECK_INTERVAL: must be at least 100ms"),
            "{error}"
        );
    }

    #[test]
    fn every_problem_is_reported_in_one_message() {
        let error = settings_from(&[
            ("LOG_INGESTION_PORT", "eighty"),
            ("LOG_INGESTION_RATE_LIMIT_RPS", "0"),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("DATABASE_URL"), "{error}");
        assert!(error.contains("LOG_INGESTION_API_KEYS"), "{error}");
        assert!(error.contains("LOG_INGESTION_PORT"), "{error}");
        assert!(error.contains("LOG_INGESTION_RATE_LIMIT_RPS"), "{error}");
    }

    #[test]
    fn a_list_of_blank_keys_is_rejected() {
        let error = settings_from(&[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("LOG_INGESTION_API_KEYS", " , ,"),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("LOG_INGESTION_API_KEYS"), "{error}");
    }

    #[test]
    fn zero_timeouts_are_refused_by_name() {
        let error = settings_from(&[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
            ("LOG_INGESTION_HEADER_READ_TIMEOUT", "0s"),
            ("LOG_INGESTION_BODY_IDLE_TIMEOUT", "0ms"),
            ("LOG_INGESTION_MAX_UNAUTHENTICATED_CONNECTIONS", "0"),
        ])
        .unwrap_err()
        .to_string();
        for name in [
            "LOG_INGESTION_HEADER_READ_TIMEOUT",
            "LOG_INGESTION_BODY_IDLE_TIMEOUT",
            "LOG_INGESTION_MAX_UNAUTHENTICATED_CONNECTIONS",
        ] {
            assert!(error.contains(name), "{name} missing from {error}");
        }
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(
            parse_duration("5y"),
            Some(Duration::from_secs(5 * 365 * 86_400))
        );
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1 fortnight"), None);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let settings = settings_from(&[
            ("DATABASE_URL", "postgres://user:hunter2@localhost/x"),
            ("LOG_INGESTION_API_KEYS", "super-secret-key"),
        ])
        .unwrap();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("super-secret-key"), "{shown}");
    }

    #[test]
    fn the_read_side_has_small_bounded_defaults_and_refuses_an_unbounded_timeout() {
        let base = [
            ("DATABASE_URL", "postgres://localhost/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
        ];
        let settings = settings_from(&base).unwrap();
        assert_eq!(settings.read.max_connections, 4);
        assert_eq!(settings.read.queue_wait, Duration::from_secs(1));
        assert_eq!(settings.read.statement_timeout, Duration::from_secs(10));
        let error = settings_from(&[
            base[0],
            base[1],
            ("LOG_INGESTION_READ_STATEMENT_TIMEOUT", "0s"),
            ("LOG_INGESTION_READ_MAX_CONNECTIONS", "0"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("LOG_INGESTION_READ_STATEMENT_TIMEOUT"),
            "{error}"
        );
        assert!(
            error.contains("LOG_INGESTION_READ_MAX_CONNECTIONS"),
            "{error}"
        );
    }

    #[test]
    fn fleet_settings_default_to_one_instance_reading_the_primary() {
        let settings = settings_from(&[
            ("DATABASE_URL", "postgres://primary/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
        ])
        .unwrap();
        assert!(settings.database.read_url.is_none());
        assert!(settings.rate_limit_sharing.is_none());
        assert!(settings
            .instance_id
            .as_str()
            .ends_with(&std::process::id().to_string()));
    }

    #[test]
    fn fleet_settings_are_read_and_checked() {
        let settings = settings_from(&[
            ("DATABASE_URL", "postgres://primary/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
            ("LOG_INGESTION_READ_DATABASE_URL", "postgres://replica/x"),
            ("LOG_INGESTION_INSTANCE_ID", "web-2"),
            ("LOG_INGESTION_RATE_LIMIT_SCOPE", "cluster"),
        ])
        .unwrap();
        assert_eq!(
            settings.database.read_url.as_deref(),
            Some("postgres://replica/x")
        );
        assert_eq!(settings.instance_id.as_str(), "web-2");
        let sharing = settings.rate_limit_sharing.unwrap();
        assert_eq!(sharing.store_url, "postgres://primary/x");
        assert_eq!(sharing.sync_interval, Duration::from_millis(100));

        let error = settings_from(&[
            ("DATABASE_URL", "postgres://primary/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
            ("LOG_INGESTION_INSTANCE_ID", "web 2"),
            ("LOG_INGESTION_RATE_LIMIT_SCOPE", "global"),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("LOG_INGESTION_INSTANCE_ID"), "{error}");
        assert!(error.contains("LOG_INGESTION_RATE_LIMIT_SCOPE"), "{error}");
    }
}
