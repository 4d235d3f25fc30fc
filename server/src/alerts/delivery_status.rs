//! How alert delivery fares, for `/metrics` and `/health`: this instance's counters
//! (delivered, failed, retried) and the fleet's backlog as the delivery worker last read
//! it from the outbox (pending notifications, the oldest one's age, those failed within
//! the window). Recording and rendering never do I/O; [`read_backlog`] is the worker's.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::config::AlertDeliverySettings;

/// The outbox as last read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Backlog {
    pub pending: i64,
    /// Seconds since the oldest pending notification was created (0 when none).
    pub oldest_pending_seconds: f64,
    /// Notifications failed within `LOG_INGESTION_ALERT_DELIVERY_FAILED_WINDOW`.
    pub failed_recently: i64,
}

#[derive(Debug)]
pub struct DeliveryStatus {
    registry: Registry,
    delivered: Counter,
    failed: Counter,
    retries: Counter,
    backlog: Mutex<Option<Backlog>>,
}

impl Default for DeliveryStatus {
    fn default() -> Self {
        let mut registry = Registry::default();
        let delivered = Counter::default();
        let failed = Counter::default();
        let retries = Counter::default();
        registry.register(
            "log_ingestion_alert_notifications_delivered",
            "Alert notifications this instance delivered (the receiver answered 2xx)",
            delivered.clone(),
        );
        registry.register(
            "log_ingestion_alert_notifications_failed",
            "Alert notifications this instance marked failed (deadline passed or unusable alert)",
            failed.clone(),
        );
        registry.register(
            "log_ingestion_alert_notification_retries",
            "Failed attempts this instance scheduled to be tried again",
            retries.clone(),
        );
        DeliveryStatus {
            registry,
            delivered,
            failed,
            retries,
            backlog: Mutex::new(None),
        }
    }
}

impl DeliveryStatus {
    pub fn delivered(&self) {
        self.delivered.inc();
    }

    pub fn failed(&self) {
        self.failed.inc();
    }

    pub fn retried(&self) {
        self.retries.inc();
    }

    pub fn set_backlog(&self, backlog: Backlog) {
        if let Ok(mut slot) = self.backlog.lock() {
            *slot = Some(backlog);
        }
    }

    pub fn backlog(&self) -> Option<Backlog> {
        self.backlog.lock().ok().and_then(|slot| *slot)
    }

    /// Appends the counters and the backlog's gauges (once read) to `out`.
    pub fn render(&self, out: &mut String) {
        let _ = prometheus_text::encode(out, &self.registry);
        let Some(backlog) = self.backlog() else {
            return;
        };
        let mut registry = Registry::default();
        let pending = Gauge::<i64>::default();
        pending.set(backlog.pending);
        let oldest = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        oldest.set(backlog.oldest_pending_seconds);
        let failed_recently = Gauge::<i64>::default();
        failed_recently.set(backlog.failed_recently);
        registry.register(
            "log_ingestion_alert_notifications_pending",
            "Alert notifications waiting to be delivered (all instances)",
            pending,
        );
        registry.register(
            "log_ingestion_alert_notification_oldest_pending_seconds",
            "Age of the oldest pending alert notification (0 when none)",
            oldest,
        );
        registry.register(
            "log_ingestion_alert_notifications_failed_recently",
            "Alert notifications failed within LOG_INGESTION_ALERT_DELIVERY_FAILED_WINDOW (all instances)",
            failed_recently,
        );
        let _ = prometheus_text::encode(out, &registry);
    }

    /// `Some` with the reasons when delivery is degraded: a notification failed within
    /// the window, or the oldest pending one is older than the bound.
    pub fn degraded(&self, settings: &AlertDeliverySettings) -> Option<Value> {
        let backlog = self.backlog()?;
        let mut reasons = Vec::new();
        if backlog.failed_recently > 0 {
            reasons.push(format!(
                "{} alert notification(s) failed within {}",
                backlog.failed_recently,
                humantime::format_duration(settings.failed_window)
            ));
        }
        if backlog.oldest_pending_seconds > settings.max_pending_age.as_secs_f64() {
            reasons.push(format!(
                "the oldest pending alert notification waits for {:.0}s (bound {})",
                backlog.oldest_pending_seconds,
                humantime::format_duration(settings.max_pending_age)
            ));
        }
        if reasons.is_empty() {
            return None;
        }
        Some(json!({
            "pending": backlog.pending,
            "oldest_pending_seconds": backlog.oldest_pending_seconds.round(),
            "failed_recently": backlog.failed_recently,
            "reasons": reasons,
        }))
    }
}

/// Reads the backlog (two index scans on the partial indexes of pending and failed rows).
pub async fn read_backlog(pool: &PgPool, failed_window: Duration) -> Result<Backlog, sqlx::Error> {
    let (pending, oldest): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 \
         FROM alert_notifications WHERE status = 'pending'",
    )
    .fetch_one(pool)
    .await?;
    let failed_recently: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alert_notifications \
         WHERE status = 'failed' AND failed_at > now() - make_interval(secs => $1)",
    )
    .bind(failed_window.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(Backlog {
        pending,
        oldest_pending_seconds: oldest.unwrap_or(0.0).max(0.0),
        failed_recently,
    })
}
