//! The delivery worker: sends the outbox (`alert_notifications`) to the channels.
//!
//! It claims due pending rows with `FOR UPDATE SKIP LOCKED` and a lease
//! (`claimed_until`), so any number of instances share the queue and each row is sent by
//! one of them; only the oldest pending row of each (rule, series, channel) is due, so a
//! series' notifications arrive in transition order (a failed row no longer blocks). A
//! claim never exceeds the free request slots (`concurrency`), and the lease outlasts the
//! request's timeout, so a live sender always records its outcome before anyone else may
//! take the row. The outcome is recorded only while the claim is still this worker's:
//! 2xx → `delivered`; else a retry at a backoff with full jitter (`backoff`), or
//! `failed` once the deadline has passed. A delivered row is never claimed again; a row
//! whose sender died mid-request is claimed again when its lease ends (the receiver may
//! then see it twice, with the same `Idempotency-Key`). It also reads the backlog for
//! `/health` and `/metrics` (`delivery_status`) and prunes old finished rows
//! (`outbox_pruning`). Asked to stop ([`DeliveryStop`]), it
//! claims nothing more and finishes the requests in flight, recording their outcomes, so
//! a graceful restart leaves no claim behind. It never evaluates rules and never writes
//! an outbox row it did not claim.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::backoff::{AfterFailure, RetryPolicy};
use super::channels::{Channel, ChannelKind};
use super::delivery_status::{read_backlog, DeliveryStatus};
use super::outbox_pruning;
use super::payload::{Alert, Notification};
use super::sender::Sender;
use crate::config::AlertDeliverySettings;

/// How much longer than the request's timeout a claim lasts: time to record the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// Attempts at recording an outcome when the database does not answer.
const RECORD_ATTEMPTS: u32 = 3;

/// Tells a running worker to finish: no new claims, the requests in flight complete.
#[derive(Clone, Debug, Default)]
pub struct DeliveryStop {
    stopping: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl DeliveryStop {
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// Starts the worker (claims only when `settings.enabled`; the backlog is read either
/// way); it ends once stopped and its requests in flight are done.
pub fn spawn(
    pool: PgPool,
    settings: AlertDeliverySettings,
    sender: Sender,
    status: Arc<DeliveryStatus>,
) -> (JoinHandle<()>, DeliveryStop) {
    let stop = DeliveryStop::default();
    let policy = RetryPolicy {
        base: settings.backoff_base,
        max: settings.backoff_max,
        deadline: settings.deadline,
    };
    let lease = settings.request_timeout + LEASE_MARGIN;
    let worker = Worker {
        pool,
        settings,
        sender,
        status,
        policy,
        lease,
        wake: Arc::new(Notify::new()),
    };
    (tokio::spawn(Arc::new(worker).run(stop.clone())), stop)
}

struct Worker {
    pool: PgPool,
    settings: AlertDeliverySettings,
    sender: Sender,
    status: Arc<DeliveryStatus>,
    policy: RetryPolicy,
    lease: Duration,
    /// Signalled when a send finishes: the series' next row may be due now.
    wake: Arc<Notify>,
}

/// A claimed row, its channel (if one has its name) and the claim.
struct Claimed {
    id: i64,
    rule_id: i64,
    rule_name: String,
    series_key: String,
    channel_name: String,
    alert: Value,
    created_at: DateTime<Utc>,
    attempts: i32,
    /// The lease's end, also the claim's token: an outcome is recorded only where it
    /// still matches.
    claimed_until: DateTime<Utc>,
    channel: Option<Channel>,
    /// The database's clock at the claim, and when that was on ours.
    database_now: DateTime<Utc>,
    claimed_at: Instant,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: i64,
    rule_id: i64,
    rule_name: String,
    series_key: String,
    channel: String,
    alert: Value,
    created_at: DateTime<Utc>,
    attempts: i32,
    claimed_until: DateTime<Utc>,
    database_now: DateTime<Utc>,
    channel_id: Option<i64>,
    channel_kind: Option<String>,
    channel_url: Option<String>,
    channel_secret: Option<String>,
    channel_source: Option<String>,
    channel_created_at: Option<DateTime<Utc>>,
    channel_updated_at: Option<DateTime<Utc>>,
}

/// The claim: the oldest pending row of each (rule, series, channel) is its head (read
/// from the partial index of pending rows, so rows waiting behind a head that is being
/// retried cost an index entry each, not a probe), and a head is due when its next
/// attempt has come and no live lease holds it.
const CLAIM: &str = "
WITH heads AS (
    SELECT DISTINCT ON (rule_id, series_key, channel) id
    FROM alert_notifications WHERE status = 'pending'
    ORDER BY rule_id, series_key, channel, id
), due AS (
    SELECT n.id FROM alert_notifications n JOIN heads ON heads.id = n.id
    WHERE n.status = 'pending'
      AND n.next_attempt_at <= now()
      AND (n.claimed_until IS NULL OR n.claimed_until <= now())
    ORDER BY n.next_attempt_at, n.id
    LIMIT $1
    FOR UPDATE OF n SKIP LOCKED
), claimed AS (
    UPDATE alert_notifications n
    SET claimed_until = now() + make_interval(secs => $2), attempts = n.attempts + 1
    FROM due WHERE n.id = due.id
    RETURNING n.id, n.rule_id, n.rule_name, n.series_key, n.channel, n.alert, n.created_at,
              n.attempts, n.claimed_until
)
SELECT claimed.id, claimed.rule_id, claimed.rule_name, claimed.series_key, claimed.channel,
       claimed.alert, claimed.created_at, claimed.attempts, claimed.claimed_until,
       now() AS database_now, c.id AS channel_id, c.kind AS channel_kind,
       c.url AS channel_url, c.secret AS channel_secret, c.source AS channel_source,
       c.created_at AS channel_created_at, c.updated_at AS channel_updated_at
FROM claimed LEFT JOIN alert_channels c ON c.name = claimed.channel
ORDER BY claimed.id";

impl Worker {
    async fn run(self: Arc<Self>, stop: DeliveryStop) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut sends = JoinSet::new();
        let mut backlog_read: Option<Instant> = None;
        let mut pruned: Option<Instant> = None;
        let prune_every =
            outbox_pruning::every(self.settings.retention, self.settings.poll_interval);
        while !stop.stopping() {
            while sends.try_join_next().is_some() {}
            if backlog_read.is_none_or(|at| at.elapsed() >= self.settings.poll_interval) {
                self.refresh_backlog().await;
                backlog_read = Some(Instant::now());
            }
            if pruned.is_none_or(|at| at.elapsed() >= prune_every) {
                match outbox_pruning::prune(&self.pool, self.settings.retention).await {
                    Ok(0) => {}
                    Ok(rows) => tracing::debug!(rows, "pruned old alert notifications"),
                    Err(error) => tracing::warn!(%error, "cannot prune old alert notifications"),
                }
                pruned = Some(Instant::now());
            }
            let mut more = false;
            if self.settings.enabled {
                let free = slots.available_permits();
                if free > 0 {
                    let claimed = self.claim(free).await;
                    more = claimed.len() == free;
                    for row in claimed {
                        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                            return;
                        };
                        sends.spawn(Arc::clone(&self).deliver(row, slot));
                    }
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                () = self.wake.notified() => {}
                () = stop.wake.notified() => {}
            }
        }
        while sends.join_next().await.is_some() {}
    }

    async fn refresh_backlog(&self) {
        match read_backlog(&self.pool, self.settings.failed_window).await {
            Ok(backlog) => self.status.set_backlog(backlog),
            Err(error) => tracing::warn!(%error, "cannot read the alert notification backlog"),
        }
    }

    async fn claim(&self, limit: usize) -> Vec<Claimed> {
        let rows: Vec<ClaimRow> = match sqlx::query_as(CLAIM)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(self.lease.as_secs_f64())
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "cannot claim alert notifications");
                return Vec::new();
            }
        };
        let claimed_at = Instant::now();
        rows.into_iter()
            .map(|row| {
                let channel = match (
                    row.channel_id,
                    row.channel_kind,
                    row.channel_url,
                    row.channel_source,
                    row.channel_created_at,
                    row.channel_updated_at,
                ) {
                    (
                        Some(id),
                        Some(kind),
                        Some(url),
                        Some(source),
                        Some(created_at),
                        Some(updated_at),
                    ) => Some(Channel {
                        id,
                        name: row.channel.clone(),
                        kind: ChannelKind::parse(&kind).unwrap_or(ChannelKind::Webhook),
                        url,
                        secret: row.channel_secret,
                        source,
                        created_at,
                        updated_at,
                    }),
                    _ => None,
                };
                Claimed {
                    id: row.id,
                    rule_id: row.rule_id,
                    rule_name: row.rule_name,
                    series_key: row.series_key,
                    channel_name: row.channel,
                    alert: row.alert,
                    created_at: row.created_at,
                    attempts: row.attempts,
                    claimed_until: row.claimed_until,
                    database_now: row.database_now,
                    channel,
                    claimed_at,
                }
            })
            .collect()
    }

    /// Sends one claimed row and records the outcome; frees its slot and wakes the loop.
    async fn deliver(self: Arc<Self>, row: Claimed, slot: OwnedSemaphorePermit) {
        let outcome = self.attempt(&row).await;
        drop(slot);
        let recorded = match outcome {
            Attempt::Delivered => self.record_delivered(&row).await,
            Attempt::Unusable(error) => self.record_failed(&row, &error).await,
            Attempt::Failed(error) => {
                let now = row.database_now
                    + chrono::Duration::from_std(row.claimed_at.elapsed())
                        .unwrap_or(chrono::Duration::zero());
                let attempts = u32::try_from(row.attempts).unwrap_or(1);
                let fraction = rand::rng().random::<f64>();
                match self
                    .policy
                    .after_failure(attempts, row.created_at, now, fraction)
                {
                    AfterFailure::RetryAt(at) => self.record_retry(&row, at, &error).await,
                    AfterFailure::GiveUp => self.record_failed(&row, &error).await,
                }
            }
        };
        if !recorded {
            // Another instance took the row over after our lease ended, or the
            // database did not answer: the row is sent again when its lease ends.
            tracing::warn!(
                notification = row.id,
                channel = %row.channel_name,
                "the outcome of an alert notification could not be recorded"
            );
        }
        self.wake.notify_one();
    }

    async fn attempt(&self, row: &Claimed) -> Attempt {
        let Some(channel) = &row.channel else {
            return Attempt::Failed(format!("no channel named {:?}", row.channel_name));
        };
        let alert = match Alert::parse(&row.alert) {
            Ok(alert) => alert,
            Err(error) => return Attempt::Unusable(error.to_string()),
        };
        let notification = Notification {
            id: row.id,
            rule_id: row.rule_id,
            rule_name: row.rule_name.clone(),
            series_key: row.series_key.clone(),
            alert,
        };
        match self
            .sender
            .send(channel, &notification, &idempotency_key(row.id))
            .await
        {
            Ok(_) => Attempt::Delivered,
            Err(error) => {
                tracing::info!(
                    notification = row.id,
                    channel = %row.channel_name,
                    attempts = row.attempts,
                    %error,
                    "alert notification not delivered"
                );
                Attempt::Failed(error)
            }
        }
    }

    async fn record_delivered(&self, row: &Claimed) -> bool {
        let recorded = self
            .record(
                row,
                "UPDATE alert_notifications SET status = 'delivered', delivered_at = now(), \
                     claimed_until = NULL, last_error = NULL \
                 WHERE id = $1 AND status = 'pending' AND claimed_until = $2",
                None,
                None,
            )
            .await;
        if recorded {
            self.status.delivered();
        }
        recorded
    }

    async fn record_retry(&self, row: &Claimed, at: DateTime<Utc>, error: &str) -> bool {
        let recorded = self
            .record(
                row,
                "UPDATE alert_notifications SET next_attempt_at = $4, claimed_until = NULL, \
                     last_error = $3 \
                 WHERE id = $1 AND status = 'pending' AND claimed_until = $2",
                Some(error),
                Some(at),
            )
            .await;
        if recorded {
            self.status.retried();
        }
        recorded
    }

    async fn record_failed(&self, row: &Claimed, error: &str) -> bool {
        let recorded = self
            .record(
                row,
                "UPDATE alert_notifications SET status = 'failed', failed_at = now(), \
                     claimed_until = NULL, last_error = $3 \
                 WHERE id = $1 AND status = 'pending' AND claimed_until = $2",
                Some(error),
                None,
            )
            .await;
        if recorded {
            tracing::warn!(
                notification = row.id,
                channel = %row.channel_name,
                attempts = row.attempts,
                error,
                "alert notification failed"
            );
            self.status.failed();
            // /health reports it without waiting for the next read.
            self.refresh_backlog().await;
        }
        recorded
    }

    /// Runs one outcome update while the claim is ours; whether it matched the row.
    async fn record(
        &self,
        row: &Claimed,
        statement: &str,
        error: Option<&str>,
        at: Option<DateTime<Utc>>,
    ) -> bool {
        for attempt in 0..RECORD_ATTEMPTS {
            let mut query = sqlx::query(statement).bind(row.id).bind(row.claimed_until);
            if let Some(error) = error {
                query = query.bind(error);
            }
            if let Some(at) = at {
                query = query.bind(at);
            }
            match query.execute(&self.pool).await {
                Ok(done) => return done.rows_affected() == 1,
                Err(error) => {
                    tracing::warn!(%error, notification = row.id, "cannot record an alert notification's outcome");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        false
    }
}

enum Attempt {
    Delivered,
    /// Tried again later, until the deadline.
    Failed(String),
    /// Never deliverable (the alert is not in the expected form): failed at once.
    Unusable(String),
}

/// The `Idempotency-Key` of a notification: the same on every attempt, from any instance.
pub fn idempotency_key(id: i64) -> String {
    format!("log-ingestion-notification-{id}")
}
