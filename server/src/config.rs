//! Typed settings, read once from the environment (and an optional `.env`, loaded by
//! `main`). Owns the variables' names, defaults and floors (each settings struct reads
//! its own, next to its definition), their parsing (`humantime` for durations) and the
//! one error message that lists every bad variable. It never performs I/O beyond
//! reading variables (and the hostname, for the default instance id) and never logs a
//! secret: `Debug` of [`Settings`] redacts the API keys and the database passwords.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::instance::InstanceId;
use crate::storage::StorageSetting;

/// The shortest timeout or interval accepted: zero would refuse everything or spin,
/// and PostgreSQL reads a zero `statement_timeout` as "none".
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

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
    /// `LOG_INGESTION_WORKER_THREADS`: the async runtime's worker threads.
    pub worker_threads: usize,
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
/// `ingest::rate_limit_sharing`): which PostgreSQL holds the shared state, how often each
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

impl ConnectionSettings {
    // Request-shape bounds.
    fn read(env: &mut Environment<'_>) -> Self {
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
    fn read(env: &mut Environment<'_>) -> Self {
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
    /// `LOG_INGESTION_INDEXED_METADATA_KEYS`: metadata keys to declare, each with a
    /// column and its index (`storage::declared_indexes`, which checks them at migrate).
    pub indexed_metadata_keys: Vec<String>,
    /// `LOG_INGESTION_MESSAGE_TRIGRAM_INDEX` (`on`/`off`): a trigram index for `q=`.
    pub message_trigram_index: bool,
    /// `LOG_INGESTION_SCHEMA_REFRESH_INTERVAL`: how often `serve` reads the declared
    /// metadata keys again from the database (`storage::schema`).
    pub schema_refresh_interval: Duration,
    /// `LOG_INGESTION_MIGRATE_LOCK_TIMEOUT`: how long a `migrate` statement waits for a
    /// lock that writers hold before it gives up, naming who holds it.
    pub migrate_lock_timeout: Duration,
}

impl DatabaseSettings {
    /// Only what `migrate` needs: no API keys required.
    pub fn from_env() -> Result<Self, ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let mut env = Environment::new(&lookup);
        let settings = Self::read(&mut env);
        env.finish(settings)
    }

    fn read(env: &mut Environment<'_>) -> Self {
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
            indexed_metadata_keys: env
                .text("LOG_INGESTION_INDEXED_METADATA_KEYS")
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
            .field("schema_refresh_interval", &self.schema_refresh_interval)
            .field("migrate_lock_timeout", &self.migrate_lock_timeout)
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

impl EntryLimits {
    fn read(env: &mut Environment<'_>) -> Self {
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
    fn read(env: &mut Environment<'_>, pool_connections: u32) -> Self {
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
    fn read(env: &mut Environment<'_>) -> Self {
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
    /// the process environment. Every variable is read and checked before any problem
    /// is reported, so one message lists them all.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Environment::new(&lookup);
        let settings = Self::read(&mut env);
        env.finish(settings)
    }

    /// The settings table: each part reads its own variables, with defaults and floors.
    fn read(env: &mut Environment<'_>) -> Self {
        const MIB: usize = 1024 * 1024;
        let database = DatabaseSettings::read(env);
        Settings {
            api_keys: env.api_keys(),
            admin_api_keys: env
                .text("LOG_INGESTION_ADMIN_API_KEYS")
                .map(|list| key_list(&list))
                .unwrap_or_default(),
            host: env.get("LOG_INGESTION_HOST", IpAddr::from([127, 0, 0, 1])),
            port: env.get("LOG_INGESTION_PORT", 8080),
            rate_limit: RateLimitSettings {
                rps: env.at_least("LOG_INGESTION_RATE_LIMIT_RPS", 100, 1),
                burst: env.at_least("LOG_INGESTION_RATE_LIMIT_BURST", 200, 1),
            },
            limits: EntryLimits::read(env),
            max_body_bytes: env.at_least("LOG_INGESTION_MAX_BODY_BYTES", 10 * MIB, 1024),
            max_batch_entries: env.at_least("LOG_INGESTION_MAX_BATCH_ENTRIES", 5_000, 1),
            // Parsing holds ~5 bytes of memory per body byte (~2 KB per realistic entry);
            // at 16 MiB the load benchmark's 1000-entry batches peaked at 84 MiB with 64
            // connections and 124 MiB with 512, under its 150 MB target.
            max_inflight_bytes: env.at_least("LOG_INGESTION_MAX_INFLIGHT_BYTES", 16 * MIB, 1024),
            inflight_wait: env.get("LOG_INGESTION_INFLIGHT_WAIT", Duration::from_millis(500)),
            retention_days: env.optional_at_least("LOG_INGESTION_RETENTION_DAYS", 1),
            group_commit: GroupCommitSettings::read(env, database.max_connections),
            worker_threads: env.at_least(
                "LOG_INGESTION_WORKER_THREADS",
                default_worker_threads(),
                1,
            ),
            shutdown_deadline: env.get("LOG_INGESTION_SHUTDOWN_DEADLINE", Duration::from_secs(30)),
            read: ReadSettings::read(env),
            connections: ConnectionSettings::read(env),
            body_read: BodyReadSettings::read(env),
            // A floor, not a feature: a zero period would spin (and tokio refuses it).
            policy_check_interval: env.at_least(
                "LOG_INGESTION_POLICY_CHECK_INTERVAL",
                Duration::from_secs(300),
                Duration::from_millis(100),
            ),
            // Fleet settings: instance identity and shared rate limits.
            instance_id: env.instance_id(),
            rate_limit_sharing: env.rate_limit_sharing(&database.url),
            database,
        }
    }

    /// The address to listen on.
    pub fn listen_address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

/// Half the machine's cores, at least one. One worker parses ~400k entries/s at
/// batch 100 (about 2.5 µs each), more than a PostgreSQL primary takes by `COPY`, while
/// every extra idle worker is woken to look for work on each request: on a 2-core
/// machine one worker instead of two cut the server's CPU per entry by ~0.4 µs
/// (docs/performance.md). Decompression and bodies over 256 KiB run on the blocking
/// pool, not on the workers.
fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |cores| cores.get() / 2)
        .max(1)
}

/// `LOG_INGESTION_RATE_LIMIT_SCOPE`: whose limit a key's requests count against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RateLimitScope {
    Instance,
    Cluster,
}

/// The items of a comma-separated list, trimmed; blanks between commas are skipped.
pub fn comma_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// A comma-separated list of keys.
fn key_list(list: &str) -> Vec<ApiKey> {
    comma_list(list).map(ApiKey::new).collect()
}

/// The variables as read through a lookup, and every problem found so far. A bad value
/// is reported and replaced by its default so that reading goes on to the next one.
struct Environment<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl<'a> Environment<'a> {
    fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Environment {
            lookup,
            problems: Vec::new(),
        }
    }

    /// `value` when nothing was wrong, else every problem in one error.
    fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }

    fn problem(&mut self, name: &str, problem: impl fmt::Display) {
        self.problems.push(format!("  {name}: {problem}"));
    }

    /// The variable's text, trimmed; blank counts as unset.
    fn text(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    fn required(&mut self, name: &str) -> String {
        self.text(name).unwrap_or_else(|| {
            self.problem(name, "is required but not set");
            String::new()
        })
    }

    /// The parsed variable, `None` when unset or bad (a bad one is a problem).
    fn optional<T: Setting>(&mut self, name: &str) -> Option<T> {
        let text = self.text(name)?;
        match T::parse(&text) {
            Some(value) => Some(value),
            None => {
                let quoted = crate::ingest::client_text::quoted(&text);
                self.problem(name, format_args!("must be {} (got {quoted})", T::EXPECTED));
                None
            }
        }
    }

    fn get<T: Setting>(&mut self, name: &str, default: T) -> T {
        self.optional(name).unwrap_or(default)
    }

    /// The parsed variable when it is at least `min`; below it is a problem.
    fn optional_at_least<T: Setting + PartialOrd>(&mut self, name: &str, min: T) -> Option<T> {
        let value: T = self.optional(name)?;
        if value < min {
            let (min, value) = (min.show(), value.show());
            self.problem(name, format_args!("must be at least {min} (got {value})"));
            return None;
        }
        Some(value)
    }

    fn at_least<T: Setting + PartialOrd>(&mut self, name: &str, default: T, min: T) -> T {
        self.optional_at_least(name, min).unwrap_or(default)
    }

    /// Required; a list of only blanks is its own problem (`ApiKeys::new`'s).
    fn api_keys(&mut self) -> ApiKeys {
        let keys = key_list(&self.required("LOG_INGESTION_API_KEYS"));
        ApiKeys::new(keys).unwrap_or_else(|error| {
            if self.text("LOG_INGESTION_API_KEYS").is_some() {
                self.problems.extend(error.problems);
            }
            ApiKeys(Vec::new())
        })
    }

    fn instance_id(&mut self) -> InstanceId {
        let configured = self.text("LOG_INGESTION_INSTANCE_ID");
        InstanceId::resolve(configured.as_deref()).unwrap_or_else(|problem| {
            self.problem("LOG_INGESTION_INSTANCE_ID", problem);
            InstanceId::for_this_process()
        })
    }

    fn rate_limit_sharing(&mut self, database_url: &str) -> Option<RateLimitSharing> {
        let sharing = RateLimitSharing {
            store_url: self
                .text("LOG_INGESTION_RATE_LIMIT_STORE_URL")
                .unwrap_or_else(|| database_url.to_owned()),
            sync_interval: self.at_least(
                "LOG_INGESTION_RATE_LIMIT_SYNC_INTERVAL",
                Duration::from_millis(100),
                MIN_TIMEOUT,
            ),
            store_timeout: self.at_least(
                "LOG_INGESTION_RATE_LIMIT_STORE_TIMEOUT",
                Duration::from_millis(500),
                MIN_TIMEOUT,
            ),
        };
        match self.get("LOG_INGESTION_RATE_LIMIT_SCOPE", RateLimitScope::Instance) {
            RateLimitScope::Instance => None,
            RateLimitScope::Cluster => Some(sharing),
        }
    }
}

/// How one kind of setting is written: its parser, what "must be ..." says when the
/// text does not parse, and how a value (or a floor) is shown in a problem.
trait Setting: Sized {
    const EXPECTED: &'static str;
    fn parse(text: &str) -> Option<Self>;
    fn show(&self) -> String;
}

macro_rules! from_str_settings {
    ($($type:ty => $expected:expr),* $(,)?) => {$(
        impl Setting for $type {
            const EXPECTED: &'static str = $expected;
            fn parse(text: &str) -> Option<Self> {
                text.parse().ok()
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

from_str_settings!(
    u16 => "a whole number",
    u32 => "a whole number",
    usize => "a whole number",
    IpAddr => "an IP address",
    StorageSetting => StorageSetting::CHOICES,
);

/// `humantime`'s durations: `500ms`, `30s`, `10m`, `12h`, `30d`, `5y` (365.25 days) or
/// combinations such as `1h 30m`; a bare number is seconds, as it always was here.
impl Setting for Duration {
    const EXPECTED: &'static str = "a duration like 500ms, 30s, 10m, 12h, 30d or 5y";
    fn parse(text: &str) -> Option<Self> {
        if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
            return text.parse().ok().map(Duration::from_secs);
        }
        humantime::parse_duration(text).ok()
    }
    fn show(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

/// Switches: `on` or `off`.
impl Setting for bool {
    const EXPECTED: &'static str = "on or off";
    fn parse(text: &str) -> Option<Self> {
        match text {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        }
    }
    fn show(&self) -> String {
        if *self { "on" } else { "off" }.to_owned()
    }
}

impl Setting for RateLimitScope {
    const EXPECTED: &'static str = "instance or cluster";
    fn parse(text: &str) -> Option<Self> {
        match text {
            "instance" => Some(RateLimitScope::Instance),
            "cluster" => Some(RateLimitScope::Cluster),
            _ => None,
        }
    }
    fn show(&self) -> String {
        format!("{self:?}").to_lowercase()
    }
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

    /// The two required variables, then `extra`.
    fn required_and(extra: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut pairs = vec![
            ("DATABASE_URL", "postgres://localhost/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
        ];
        pairs.extend_from_slice(extra);
        settings_from(&pairs)
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
        let chosen = required_and(&[("LOG_INGESTION_STORAGE", "timescaledb")]).unwrap();
        assert_eq!(chosen.database.storage, StorageSetting::Timescale);
        let error = required_and(&[("LOG_INGESTION_STORAGE", "timescale")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("LOG_INGESTION_STORAGE: must be auto, timescaledb or postgresql"),
            "{error}"
        );
    }

    #[test]
    fn the_policy_check_interval_has_a_floor() {
        let error = required_and(&[("LOG_INGESTION_POLICY_CHECK_INTERVAL", "0s")])
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
    fn worker_threads_default_to_half_the_cores_and_take_at_least_one() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(
            required_and(&[]).unwrap().worker_threads,
            (cores / 2).max(1)
        );
        let three = required_and(&[("LOG_INGESTION_WORKER_THREADS", "3")]).unwrap();
        assert_eq!(three.worker_threads, 3);
        let error = required_and(&[("LOG_INGESTION_WORKER_THREADS", "0")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("LOG_INGESTION_WORKER_THREADS"), "{error}");
    }

    #[test]
    fn writers_must_leave_the_pool_a_connection() {
        let with = |writers: &str, pool: &str| {
            required_and(&[
                ("LOG_INGESTION_GROUP_COMMIT_WRITERS", writers),
                ("LOG_INGESTION_DATABASE_MAX_CONNECTIONS", pool),
            ])
        };
        let error = with("4", "4").unwrap_err().to_string();
        assert!(
            error.contains("LOG_INGESTION_GROUP_COMMIT_WRITERS: must be below"),
            "{error}"
        );
        assert_eq!(with("3", "4").map(|s| s.group_commit.writers).ok(), Some(3));
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
        let error = required_and(&[
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
    fn read_side_indexes_are_a_key_list_and_a_switch() {
        let settings = required_and(&[
            (
                "LOG_INGESTION_INDEXED_METADATA_KEYS",
                " user_id, ,request_id ",
            ),
            ("LOG_INGESTION_MESSAGE_TRIGRAM_INDEX", "on"),
        ])
        .unwrap();
        assert_eq!(
            settings.database.indexed_metadata_keys,
            ["user_id", "request_id"]
        );
        assert!(settings.database.message_trigram_index);
        let error = required_and(&[("LOG_INGESTION_MESSAGE_TRIGRAM_INDEX", "yes")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("LOG_INGESTION_MESSAGE_TRIGRAM_INDEX: must be on or off"),
            "{error}"
        );
    }

    #[test]
    fn durations_are_humantime_or_bare_seconds() {
        let settings = required_and(&[
            ("LOG_INGESTION_MAX_TIMESTAMP_AGE", "1d"),
            ("LOG_INGESTION_INFLIGHT_WAIT", "250ms"),
            ("LOG_INGESTION_SHUTDOWN_DEADLINE", "1m 30s"),
            ("LOG_INGESTION_BODY_READ_TIMEOUT", "90"),
        ])
        .unwrap();
        assert_eq!(
            settings.limits.max_timestamp_age,
            Duration::from_secs(86_400)
        );
        assert_eq!(settings.inflight_wait, Duration::from_millis(250));
        assert_eq!(settings.shutdown_deadline, Duration::from_secs(90));
        // A bare number is seconds (configurations written before humantime keep working).
        assert_eq!(settings.body_read.total_timeout, Duration::from_secs(90));
        let error = required_and(&[
            ("LOG_INGESTION_MAX_TIMESTAMP_AGE", "1 fortnight"),
            ("LOG_INGESTION_INFLIGHT_WAIT", "90 parsecs"),
        ])
        .unwrap_err()
        .to_string();
        for name in [
            "LOG_INGESTION_MAX_TIMESTAMP_AGE",
            "LOG_INGESTION_INFLIGHT_WAIT",
        ] {
            assert!(
                error.contains(&format!(
                    "{name}: must be a duration like 500ms, 30s, 10m, 12h, 30d or 5y"
                )),
                "{name} missing from {error}"
            );
        }
    }

    #[test]
    fn each_problem_names_what_was_expected_and_what_was_given() {
        let error = required_and(&[
            ("LOG_INGESTION_MAX_BATCH_ENTRIES", "many"),
            ("LOG_INGESTION_MAX_BODY_BYTES", "10"),
            ("LOG_INGESTION_RETENTION_DAYS", "0"),
            ("LOG_INGESTION_HOST", "localhost"),
        ])
        .unwrap_err();
        assert_eq!(
            error.problems,
            [
                "  LOG_INGESTION_HOST: must be an IP address (got \"localhost\")",
                "  LOG_INGESTION_MAX_BODY_BYTES: must be at least 1024 (got 10)",
                "  LOG_INGESTION_MAX_BATCH_ENTRIES: must be a whole number (got \"many\")",
                "  LOG_INGESTION_RETENTION_DAYS: must be at least 1 (got 0)",
            ]
        );
        assert!(error.to_string().starts_with("invalid configuration:\n  "));
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
        let settings = required_and(&[]).unwrap();
        assert_eq!(settings.read.max_connections, 4);
        assert_eq!(settings.read.queue_wait, Duration::from_secs(1));
        assert_eq!(settings.read.statement_timeout, Duration::from_secs(10));
        let error = required_and(&[
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
