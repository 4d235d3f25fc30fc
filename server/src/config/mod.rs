//! Typed settings, read once from the environment (and an optional `.env`, loaded by
//! `main`): the settings tree. [`Settings`] is its root; each part (`settings`) reads its
//! own variables, with their names, defaults and floors, next to its definition; the
//! reader of variables and the one error that lists every bad one are `environment`'s.
//! It never performs I/O beyond reading variables (and the hostname, for the default
//! instance id) and never logs a secret: `Debug` of [`Settings`] redacts the API keys
//! (`auth::ApiKey`) and the database passwords (`redact`).

mod alert_delivery;
#[cfg(test)]
mod documented;
mod environment;
mod networks;
mod redact;
mod settings;
mod sign_in;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::Duration;

use crate::auth::{ApiKey, ApiKeys};
use crate::instance::InstanceId;
use environment::{key_list, Environment};

pub use alert_delivery::AlertDeliverySettings;
pub use environment::{comma_list, ConfigError};
pub use networks::Cidr;
pub use settings::{
    AlertRuleSettings, BodyReadSettings, ConnectionSettings, DatabaseSettings, EntryLimits,
    GroupCommitSettings, RateLimitSettings, ReadSettings, SharedRateLimits,
};
pub use sign_in::{SignInSettings, TrustedProxySettings};

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
    /// Per-key limits shared by the instances (`LOG_INGESTION_SHARED_RATE_LIMITS=on`);
    /// `None` keeps each process's own limit.
    pub shared_rate_limits: Option<SharedRateLimits>,
    /// The alert delivery worker (`alerts::delivery`).
    pub alert_delivery: AlertDeliverySettings,
    /// Alert rules: settle delay, polling, the rules file, links.
    pub alert_rules: AlertRuleSettings,
    /// Sessions, sign-in throttling and the SSO proxy (`auth`).
    pub sign_in: SignInSettings,
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
            // Instance identity and shared rate limits.
            instance_id: env.instance_id(),
            shared_rate_limits: SharedRateLimits::read(env, &database.url),
            alert_delivery: AlertDeliverySettings::read(env),
            alert_rules: AlertRuleSettings::read(env),
            sign_in: SignInSettings::read(env),
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
