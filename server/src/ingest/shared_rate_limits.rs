//! Shared rate limits: splits each API key's limit between the instances sharing a
//! database, in proportion to the requests each instance sees for the key, through two
//! small UNLOGGED tables in PostgreSQL (the primary unless
//! `LOG_INGESTION_RATE_LIMIT_STORE_URL` names another).
//!
//! Why this shape: the hot path stays local (governor plus one atomic increment; see
//! `rate_limit`), and each instance makes one round trip per `sync_interval` (100 ms),
//! not one per request. Every sync writes this instance's heartbeat and its per-key
//! request rates of the last interval, and reads the other live instances' rates in the
//! same statement. An instance's share of key k is `(mine + 1) / (all + live × 1)`:
//! the `+1` gives an idle instance a sliver, so the shares of the live instances always
//! add up to one, a client pinned to one instance gets almost the whole limit there,
//! and a client spread over three gets a third on each.
//!
//! Each instance's rows are keyed by its id plus a random suffix drawn when the sync
//! starts ([`row_key`]), so two processes started with the same
//! `LOG_INGESTION_INSTANCE_ID` (one env file for a whole fleet) still count as two
//! instances and share the limit instead of each taking all of it; each says so in its
//! log and in `/metrics` (`log_ingestion_instance_id_shared`).
//!
//! When a sync fails or takes longer than `store_timeout`, every key goes back to the
//! instance's own full limit (never refuse everything, never unbounded: at most
//! instances × limit), `/metrics` says so (`log_ingestion_rate_limit_fallback 1`), and
//! the next successful sync restores the shares. This module never touches the request
//! path and never holds more than one connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::SharedRateLimits;
use crate::ingest::rate_limit::ApiRateLimiter;
use crate::instance::InstanceId;
use crate::metrics::Metrics;

/// Requests per second an instance is credited with on top of what it saw: the sliver
/// that keeps an idle instance able to admit its first request.
const IDLE_DEMAND: f64 = 1.0;
/// Rows of instances silent this long no longer count (a killed instance's share is
/// handed back to the others within this): at least a second, and always several sync
/// rounds (a slow store delays heartbeats by up to its timeout), so that peers never
/// drop out between two of their own syncs and each instance's share jumps to the whole.
fn live_window(settings: &SharedRateLimits) -> Duration {
    (settings.sync_interval * 3 + settings.store_timeout).max(Duration::from_secs(1))
}

const CREATE_TABLES: &str = "\
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('log_ingestion.rate_limit_store'));
CREATE UNLOGGED TABLE IF NOT EXISTS rate_limit_instances (
    instance_id text PRIMARY KEY,
    seen_at timestamptz NOT NULL
);
CREATE UNLOGGED TABLE IF NOT EXISTS rate_limit_demand (
    key_fingerprint text NOT NULL,
    instance_id text NOT NULL,
    requests_per_second float8 NOT NULL,
    seen_at timestamptz NOT NULL,
    PRIMARY KEY (key_fingerprint, instance_id)
);
COMMIT;";

/// One statement: heartbeat, this instance's rates, old rows out, the others' rates in
/// (a data-modifying CTE's rows are not visible to the outer query, which is why the
/// outer query reads only the other instances). `$1` is this process's row key, `$5`
/// its instance id: rows of other processes whose key starts with `$5/` share the id.
/// Each row says what it counts: `live` instances, `same_id` processes, or a key's
/// `demand`.
const SYNC: &str = "\
WITH beat AS (
    INSERT INTO rate_limit_instances (instance_id, seen_at) VALUES ($1, now())
    ON CONFLICT (instance_id) DO UPDATE SET seen_at = excluded.seen_at
), mine AS (
    INSERT INTO rate_limit_demand (key_fingerprint, instance_id, requests_per_second, seen_at)
    SELECT key, $1, rate, now() FROM unnest($2::text[], $3::float8[]) AS t(key, rate)
    ON CONFLICT (key_fingerprint, instance_id)
    DO UPDATE SET requests_per_second = excluded.requests_per_second, seen_at = excluded.seen_at
), gone AS (
    DELETE FROM rate_limit_demand WHERE seen_at < now() - interval '1 hour'
), gone_instances AS (
    -- Every start adds a row (a fresh suffix): keep the table to the living.
    DELETE FROM rate_limit_instances WHERE seen_at < now() - interval '1 hour'
)
SELECT 'live', NULL::text, count(*)::float8 FROM rate_limit_instances
    WHERE instance_id <> $1 AND seen_at > now() - $4 * interval '1 millisecond'
UNION ALL
SELECT 'same_id', NULL::text, count(*)::float8 FROM rate_limit_instances
    WHERE instance_id <> $1 AND starts_with(instance_id, $5 || '/')
        AND seen_at > now() - $4 * interval '1 millisecond'
UNION ALL
SELECT 'demand', key_fingerprint, sum(requests_per_second) FROM rate_limit_demand
    WHERE instance_id <> $1 AND seen_at > now() - $4 * interval '1 millisecond'
    GROUP BY key_fingerprint";

/// This process's row key in the store: its instance id, a slash, and 16 random hex
/// digits drawn once per start. Unique by construction, whatever the id: the id is
/// configured (and may be shared by mistake), the suffix is not.
pub fn row_key(instance: &InstanceId) -> String {
    format!("{instance}/{:016x}", rand::random::<u64>())
}

/// This instance's share of a key's limit, from its own request rate for the key, the
/// other live instances' summed rate, and how many other instances are live: each
/// instance is credited [`IDLE_DEMAND`] on top of what it saw, so the shares of the live
/// instances add up to one and an idle instance keeps a sliver.
pub fn share_of(mine: f64, theirs: f64, other_instances: f64) -> f64 {
    (mine + IDLE_DEMAND) / (mine + theirs + IDLE_DEMAND * (1.0 + other_instances))
}

/// What the other live instances reported.
struct Others {
    live: f64,
    /// Live processes other than this one that use this instance's id.
    same_id: f64,
    /// Requests per second, by key index.
    demand: Vec<f64>,
}

/// Starts the sync task for `limiter`, whose keys have `fingerprints` (by index).
pub fn spawn(
    settings: SharedRateLimits,
    instance: InstanceId,
    fingerprints: Vec<String>,
    limiter: Arc<ApiRateLimiter>,
    metrics: Arc<Metrics>,
) -> Result<JoinHandle<()>, sqlx::Error> {
    let options: PgConnectOptions = settings.store_url.parse()?;
    let store = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(settings.store_timeout)
        .connect_lazy_with(options.application_name("log-ingestion-rate-limit"));
    metrics.shared_rate_limits_enabled();
    let syncer = Syncer {
        store,
        row_key: row_key(&instance),
        instance,
        fingerprints,
        limiter,
        metrics,
        settings,
        schema_ready: false,
        reported: Vec::new(),
        failing: false,
        sharing_id: false,
    };
    Ok(tokio::spawn(syncer.run()))
}

struct Syncer {
    store: PgPool,
    instance: InstanceId,
    /// This process's rows' key (see [`row_key`]).
    row_key: String,
    fingerprints: Vec<String>,
    limiter: Arc<ApiRateLimiter>,
    metrics: Arc<Metrics>,
    settings: SharedRateLimits,
    schema_ready: bool,
    /// Keys whose last reported rate was not zero (so a zero is written once).
    reported: Vec<bool>,
    failing: bool,
    /// Whether another live process was last seen with this instance's id.
    sharing_id: bool,
}

impl Syncer {
    async fn run(mut self) {
        self.reported = vec![false; self.fingerprints.len()];
        let mut ticker = tokio::time::interval(self.settings.sync_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last = Instant::now();
        loop {
            ticker.tick().await;
            let now = Instant::now();
            let elapsed = now.duration_since(last).as_secs_f64().max(1e-3);
            last = now;
            let counts = self.limiter.take_demand();
            let mine: Vec<f64> = counts.iter().map(|&n| n as f64 / elapsed).collect();
            let started = Instant::now();
            let outcome = tokio::time::timeout(self.settings.store_timeout, self.sync(&mine)).await;
            match outcome {
                Ok(Ok(others)) => {
                    self.metrics.rate_limit_synced(
                        started.elapsed(),
                        others.live as u64,
                        others.same_id as u64,
                    );
                    self.warn_of_a_shared_id(others.same_id);
                    for (key, rate) in mine.iter().enumerate() {
                        let theirs = others.demand.get(key).copied().unwrap_or(0.0);
                        self.limiter
                            .set_share(key, share_of(*rate, theirs, others.live));
                    }
                    if self.failing {
                        tracing::info!("rate-limit store reachable again: limits are shared");
                        self.failing = false;
                    }
                }
                failure => {
                    let error = match failure {
                        Ok(Err(error)) => error.to_string(),
                        _ => format!("no answer within {:?}", self.settings.store_timeout),
                    };
                    self.limiter.reset_shares();
                    self.metrics.rate_limit_sync_failed();
                    self.schema_ready = false;
                    if !self.failing {
                        tracing::warn!(
                            %error,
                            "rate-limit store unavailable: each key falls back to this instance's own limit"
                        );
                        self.failing = true;
                    }
                }
            }
        }
    }

    /// Says once (and again after it stopped) that another live process uses this
    /// instance's id: limits stay right, but logs and `/metrics` of both carry one name.
    fn warn_of_a_shared_id(&mut self, same_id: f64) {
        let sharing = same_id > 0.0;
        if sharing && !self.sharing_id {
            tracing::warn!(
                instance = %self.instance,
                others = same_id,
                "another live process uses this LOG_INGESTION_INSTANCE_ID: each still gets its own share of the limits, \
                 but logs and /metrics of both carry the same name; give each instance its own id"
            );
        }
        self.sharing_id = sharing;
    }

    async fn sync(&mut self, mine: &[f64]) -> Result<Others, sqlx::Error> {
        if !self.schema_ready {
            sqlx::raw_sql(CREATE_TABLES).execute(&self.store).await?;
            self.schema_ready = true;
        }
        let mut keys = Vec::new();
        let mut rates = Vec::new();
        for (index, rate) in mine.iter().enumerate() {
            let nonzero = *rate > 0.0;
            if nonzero || self.reported.get(index).copied().unwrap_or(false) {
                if let Some(fingerprint) = self.fingerprints.get(index) {
                    keys.push(fingerprint.clone());
                    rates.push(*rate);
                }
            }
            if let Some(flag) = self.reported.get_mut(index) {
                *flag = nonzero;
            }
        }
        let rows: Vec<(String, Option<String>, f64)> = sqlx::query_as(SYNC)
            .bind(&self.row_key)
            .bind(&keys)
            .bind(&rates)
            .bind(live_window(&self.settings).as_secs_f64() * 1000.0)
            .bind(self.instance.as_str())
            .fetch_all(&self.store)
            .await?;
        let mut others = Others {
            live: 0.0,
            same_id: 0.0,
            demand: vec![0.0; self.fingerprints.len()],
        };
        let index_of: HashMap<&str, usize> = self
            .fingerprints
            .iter()
            .enumerate()
            .map(|(index, fingerprint)| (fingerprint.as_str(), index))
            .collect();
        for (kind, key, value) in rows {
            match (kind.as_str(), key) {
                ("live", _) => others.live = value,
                ("same_id", _) => others.same_id = value,
                (_, Some(fingerprint)) => {
                    if let Some(&index) = index_of.get(fingerprint.as_str()) {
                        others.demand[index] = value;
                    }
                }
                _ => {}
            }
        }
        Ok(others)
    }
}

#[cfg(test)]
mod tests {
    use super::{row_key, share_of};
    use crate::instance::InstanceId;

    #[test]
    fn two_starts_with_one_id_get_two_row_keys() {
        let id = InstanceId::parse("web-1").unwrap();
        let (first, second) = (row_key(&id), row_key(&id));
        assert_ne!(first, second);
        assert!(first.starts_with("web-1/"), "{first}");
        assert_eq!(first.len(), "web-1/".len() + 16);
    }

    #[test]
    fn a_lone_instance_has_the_whole_limit() {
        assert_eq!(share_of(0.0, 0.0, 0.0), 1.0);
        assert_eq!(share_of(500.0, 0.0, 0.0), 1.0);
    }

    #[test]
    fn shares_follow_demand_and_add_up_to_one() {
        // A client pinned to one of three instances.
        let pinned = share_of(300.0, 0.0, 2.0);
        let idle = share_of(0.0, 300.0, 2.0);
        assert!(pinned > 0.99, "{pinned}");
        assert!((pinned + 2.0 * idle - 1.0).abs() < 1e-9);
        // A client spread evenly over three.
        let even = share_of(100.0, 200.0, 2.0);
        assert!((even - 1.0 / 3.0).abs() < 1e-9, "{even}");
        // Nobody busy: equal slivers.
        assert!((share_of(0.0, 0.0, 2.0) - 1.0 / 3.0).abs() < 1e-9);
    }
}
