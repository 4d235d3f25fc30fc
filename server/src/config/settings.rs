//! The parts of the settings tree below [`super::Settings`]: connections, bodies, the
//! database, rate limits, entries, group commit and the read side, each reading its own
//! variables with their defaults and floors. It never reads a variable but through
//! `environment`.

use std::fmt;
use std::time::Duration;

use super::environment::{comma_list, ConfigError, Environment, Setting, MIN_TIMEOUT};
use super::redact::redact_url_password;
use crate::storage::setting::StorageSetting;

/// Shared rate limits: how the instances sharing one database split each key's limit
/// (see `ingest::shared_rate_limits`): which PostgreSQL holds the shared state, how
/// often each instance syncs, and how long one sync may take before the instance falls
/// back to its own local limit.
#[derive(Clone)]
pub struct SharedRateLimits {
    pub store_url: String,
    pub sync_interval: Duration,
    pub store_timeout: Duration,
}

impl fmt::Debug for SharedRateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRateLimits")
            .field("store_url", &redact_url_password(&self.store_url))
            .field("sync_interval", &self.sync_interval)
            .field("store_timeout", &self.store_timeout)
            .finish()
    }
}

impl SharedRateLimits {
    /// `None` unless `LOG_INGESTION_SHARED_RATE_LIMITS=on` (or its alias
    /// `LOG_INGESTION_RATE_LIMIT_SCOPE=cluster`); the store defaults to `database_url`.
    pub(super) fn read(env: &mut Environment<'_>, database_url: &str) -> Option<Self> {
        let shared = SharedRateLimits {
            store_url: env
                .text("LOG_INGESTION_RATE_LIMIT_STORE_URL")
                .unwrap_or_else(|| database_url.to_owned()),
            sync_interval: env.at_least(
                "LOG_INGESTION_RATE_LIMIT_SYNC_INTERVAL",
                Duration::from_millis(100),
                MIN_TIMEOUT,
            ),
            store_timeout: env.at_least(
                "LOG_INGESTION_RATE_LIMIT_STORE_TIMEOUT",
                Duration::from_millis(500),
                MIN_TIMEOUT,
            ),
        };
        let on = match env.optional::<bool>("LOG_INGESTION_SHARED_RATE_LIMITS") {
            Some(on) => on,
            None => {
                env.get("LOG_INGESTION_RATE_LIMIT_SCOPE", ScopeAlias(false))
                    .0
            }
        };
        on.then_some(shared)
    }
}

/// `LOG_INGESTION_RATE_LIMIT_SCOPE`, the alias of `LOG_INGESTION_SHARED_RATE_LIMITS`:
/// `cluster` is `on`, `instance` is `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ScopeAlias(bool);

impl Setting for ScopeAlias {
    const EXPECTED: &'static str = "instance or cluster";
    fn parse(text: &str) -> Option<Self> {
        match text {
            "instance" => Some(ScopeAlias(false)),
            "cluster" => Some(ScopeAlias(true)),
            _ => None,
        }
    }
    fn show(&self) -> String {
        if self.0 { "cluster" } else { "instance" }.to_owned()
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

impl ConnectionSettings {
    // Request-shape bounds.
    pub(super) fn read(env: &mut Environment<'_>) -> Self {
        ConnectionSettings {
            header_read_timeout: env.at_least(
                "LOG_INGESTION_HEADER_READ_TIMEOUT",
                Duration::from_secs(10),
                MIN_TIMEOUT,
            ),
            max_connections: env.at_least("LOG_INGESTION_MAX_CONNECTIONS", 4_096, 1),
            max_unauthenticated_connections: env.at_least(
                "LOG_INGESTION_MAX_UNAUTHENTICATED_CONNECTIONS",
                512,
                1,
            ),
        }
    }
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

impl BodyReadSettings {
    pub(super) fn read(env: &mut Environment<'_>) -> Self {
        let default = Self::default();
        BodyReadSettings {
            idle_timeout: env.at_least(
                "LOG_INGESTION_BODY_IDLE_TIMEOUT",
                default.idle_timeout,
                MIN_TIMEOUT,
            ),
            total_timeout: env.at_least(
                "LOG_INGESTION_BODY_READ_TIMEOUT",
                default.total_timeout,
                MIN_TIMEOUT,
            ),
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
    /// `LOG_INGESTION_DECLARED_KEYS` (or its older name
    /// `LOG_INGESTION_INDEXED_METADATA_KEYS`): metadata keys to declare, each with a
    /// column and its index (`storage::declared_keys`, which checks them at migrate).
    pub declared_keys: Vec<String>,
    /// `LOG_INGESTION_MESSAGE_TRIGRAM_INDEX` (`on`/`off`): a trigram index for `q=`.
    pub message_trigram_index: bool,
    /// `LOG_INGESTION_SCHEMA_REFRESH_INTERVAL`: how often `serve` reads the declared
    /// metadata keys again from the database (`storage::schema`).
    pub schema_refresh_interval: Duration,
    /// `LOG_INGESTION_MIGRATE_LOCK_TIMEOUT`: how long a `migrate` statement waits for a
    /// lock that writers hold before it gives up, naming who holds it.
    pub migrate_lock_timeout: Duration,
    /// `LOG_INGESTION_RETENTION_DAYS`: how long rows are kept, as `migrate` declares it
    /// (`storage::retention`); `serve` follows what the database declares.
    pub retention_days: Option<u32>,
}

impl DatabaseSettings {
    /// Only what `migrate` needs: no API keys required.
    pub fn from_env() -> Result<Self, ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let mut env = Environment::new(&lookup);
        let settings = Self::read(&mut env);
        env.finish(settings)
    }

    pub(super) fn read(env: &mut Environment<'_>) -> Self {
        DatabaseSettings {
            url: env.required("DATABASE_URL"),
            read_url: env.text("LOG_INGESTION_READ_DATABASE_URL"),
            max_connections: env.at_least("LOG_INGESTION_DATABASE_MAX_CONNECTIONS", 10, 1),
            acquire_timeout: env.at_least(
                "LOG_INGESTION_DATABASE_ACQUIRE_TIMEOUT",
                Duration::from_secs(5),
                MIN_TIMEOUT,
            ),
            storage: env.get("LOG_INGESTION_STORAGE", StorageSetting::default()),
            declared_keys: env
                .text("LOG_INGESTION_DECLARED_KEYS")
                .or_else(|| env.text("LOG_INGESTION_INDEXED_METADATA_KEYS"))
                .map(|list| comma_list(&list).map(str::to_owned).collect())
                .unwrap_or_default(),
            message_trigram_index: env.get("LOG_INGESTION_MESSAGE_TRIGRAM_INDEX", false),
            schema_refresh_interval: env.at_least(
                "LOG_INGESTION_SCHEMA_REFRESH_INTERVAL",
                Duration::from_secs(2),
                Duration::from_millis(100),
            ),
            migrate_lock_timeout: env.at_least(
                "LOG_INGESTION_MIGRATE_LOCK_TIMEOUT",
                Duration::from_secs(5),
                Duration::from_millis(10),
            ),
            retention_days: env.optional_at_least("LOG_INGESTION_RETENTION_DAYS", 1),
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
            .field("declared_keys", &self.declared_keys)
            .field("message_trigram_index", &self.message_trigram_index)
            .field("schema_refresh_interval", &self.schema_refresh_interval)
            .field("migrate_lock_timeout", &self.migrate_lock_timeout)
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

/// Per-key request rate: `rps` sustained, `burst` at once.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitSettings {
    pub rps: u32,
    pub burst: u32,
}

/// The limits one entry must respect (`domain::LogEntry::from_json` checks them).
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
            max_message_bytes: log_ingestion_wire::limits::DEFAULT_MAX_MESSAGE_BYTES,
            max_metadata_bytes: log_ingestion_wire::limits::DEFAULT_MAX_METADATA_BYTES,
            max_metadata_depth: log_ingestion_wire::limits::DEFAULT_MAX_METADATA_DEPTH,
            max_timestamp_age: Duration::from_secs(5 * 365 * 86_400 + 2 * 86_400),
            max_timestamp_ahead: Duration::from_secs(3_600),
        }
    }
}

impl EntryLimits {
    pub(super) fn read(env: &mut Environment<'_>) -> Self {
        let default = Self::default();
        EntryLimits {
            max_message_bytes: env.at_least(
                "LOG_INGESTION_MAX_MESSAGE_BYTES",
                default.max_message_bytes,
                1,
            ),
            max_metadata_bytes: env.at_least(
                "LOG_INGESTION_MAX_METADATA_BYTES",
                default.max_metadata_bytes,
                2,
            ),
            max_metadata_depth: env.at_least(
                "LOG_INGESTION_MAX_METADATA_DEPTH",
                default.max_metadata_depth,
                1,
            ),
            max_timestamp_age: env
                .get("LOG_INGESTION_MAX_TIMESTAMP_AGE", default.max_timestamp_age),
            max_timestamp_ahead: env.get(
                "LOG_INGESTION_MAX_TIMESTAMP_AHEAD",
                default.max_timestamp_ahead,
            ),
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

impl GroupCommitSettings {
    /// `pool_connections` is the write pool's size: each writer keeps one of its
    /// connections, and at least one must stay for health checks and maintenance.
    pub(super) fn read(env: &mut Environment<'_>, pool_connections: u32) -> Self {
        let settings = GroupCommitSettings {
            // Grouping comes from writers being busy: requests that arrive during a
            // commit form the next group. A linger only delays a lone request (it
            // cost ~30% of batch-100 throughput at 2ms in the load benchmark).
            linger: env.get("LOG_INGESTION_GROUP_COMMIT_LINGER", Duration::ZERO),
            writers: env.at_least("LOG_INGESTION_GROUP_COMMIT_WRITERS", 2, 1),
            max_rows: env.at_least("LOG_INGESTION_GROUP_COMMIT_MAX_ROWS", 10_000, 1),
            max_bytes: env.at_least(
                "LOG_INGESTION_GROUP_COMMIT_MAX_BYTES",
                16 * 1024 * 1024,
                1024,
            ),
        };
        if settings.writers >= pool_connections as usize {
            env.problem(
                "LOG_INGESTION_GROUP_COMMIT_WRITERS",
                format_args!(
                    "must be below LOG_INGESTION_DATABASE_MAX_CONNECTIONS ({pool_connections}): each writer keeps one connection, and health checks and maintenance need one (got {})",
                    settings.writers
                ),
            );
        }
        settings
    }
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
    pub(super) fn read(env: &mut Environment<'_>) -> Self {
        let default = Self::default();
        ReadSettings {
            max_connections: env.at_least(
                "LOG_INGESTION_READ_MAX_CONNECTIONS",
                default.max_connections,
                1,
            ),
            queue_wait: env.get("LOG_INGESTION_READ_QUEUE_WAIT", default.queue_wait),
            statement_timeout: env.at_least(
                "LOG_INGESTION_READ_STATEMENT_TIMEOUT",
                default.statement_timeout,
                MIN_TIMEOUT,
            ),
        }
    }
}

/// Alert rules and their evaluation (docs/alerts.md): how long late entries may take to
/// arrive before a window is read, how often an instance looks for due rules, the rules
/// file, and the base of the explorer links in alerts.
#[derive(Clone, Debug)]
pub struct AlertRuleSettings {
    /// Windows end this long before now (`LOG_INGESTION_ALERT_SETTLE_DELAY`).
    pub settle_delay: Duration,
    /// How often an instance looks for due rules (`LOG_INGESTION_ALERT_POLL_INTERVAL`).
    pub poll_interval: Duration,
    /// `LOG_INGESTION_ALERT_RULES_FILE`: rules and channels loaded at start and on SIGHUP.
    pub rules_file: Option<std::path::PathBuf>,
    /// `LOG_INGESTION_EXTERNAL_URL`: how users reach this server (alerts link to the
    /// explorer under it); `None`: `http://` and the listen address.
    pub external_url: Option<String>,
}

impl Default for AlertRuleSettings {
    fn default() -> Self {
        AlertRuleSettings {
            settle_delay: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            rules_file: None,
            external_url: None,
        }
    }
}

impl AlertRuleSettings {
    pub(super) fn read(env: &mut Environment<'_>) -> Self {
        let default = Self::default();
        let external_url = env.text("LOG_INGESTION_EXTERNAL_URL");
        if let Some(url) = &external_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                env.problem(
                    "LOG_INGESTION_EXTERNAL_URL",
                    "must start with http:// or https://",
                );
            }
        }
        AlertRuleSettings {
            settle_delay: env.get("LOG_INGESTION_ALERT_SETTLE_DELAY", default.settle_delay),
            poll_interval: env.at_least(
                "LOG_INGESTION_ALERT_POLL_INTERVAL",
                default.poll_interval,
                Duration::from_millis(50),
            ),
            rules_file: env
                .text("LOG_INGESTION_ALERT_RULES_FILE")
                .map(std::path::PathBuf::from),
            external_url: external_url.map(|url| url.trim_end_matches('/').to_owned()),
        }
    }
}
