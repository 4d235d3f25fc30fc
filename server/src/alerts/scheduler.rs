//! The evaluator every instance runs: it claims one due rule at a time in the database
//! (`FOR UPDATE SKIP LOCKED` on `alert_rules`, due by `next_eval_at`), so a fleet
//! evaluates each rule once per interval; measures it over the window ending at now −
//! the settle delay; steps each series; and writes the new state, the transitions and
//! the outbox rows in the transaction that holds the claim. An instance killed
//! mid-evaluation leaves nothing behind (its transaction rolls back; another instance
//! claims the rule). A rule that cannot be evaluated records why and is tried again
//! at its next interval; it never holds up the others.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::{PgPool, Row};
use tokio::task::JoinHandle;

use super::evaluate::{self, EvaluationError, Known};
use super::evaluation_status::{EvaluationStatus, FailureReason};
use super::rules::Rule;
use super::state::{self, Timing};
use super::transitions::{self, Context};
use crate::read::ReadContext;

/// What the evaluator needs.
#[derive(Clone)]
pub struct Evaluator {
    pub writes: PgPool,
    pub read: ReadContext,
    pub settle_delay: Duration,
    pub poll_interval: StdDuration,
    /// The explorer's base URL in alerts, without a trailing slash.
    pub external_url: String,
    /// Evaluations and their failures, for `/metrics`.
    pub status: std::sync::Arc<EvaluationStatus>,
}

/// Rules one instance evaluates at once (each with its own claim, transaction and read
/// connection): half the default read pool, so searches on the explorer keep theirs.
const CONCURRENT_EVALUATIONS: usize = 2;

/// Starts the evaluation loops; aborting the task stops them all.
pub fn spawn(evaluator: Evaluator) -> JoinHandle<()> {
    tokio::spawn(async move {
        let loops = (0..CONCURRENT_EVALUATIONS).map(|_| evaluator.clone().run());
        futures::future::join_all(loops).await;
    })
}

impl Evaluator {
    async fn run(self) {
        loop {
            match self.evaluate_next().await {
                Ok(true) => tokio::task::yield_now().await,
                Ok(false) => tokio::time::sleep(self.poll_interval).await,
                Err(error) => {
                    tracing::warn!(%error, "alert rules: cannot claim or record a rule");
                    tokio::time::sleep(self.poll_interval).await;
                }
            }
        }
    }

    /// Claims one due rule and evaluates it; `false` when none is due.
    pub async fn evaluate_next(&self) -> Result<bool, sqlx::Error> {
        let mut tx = self.writes.begin().await?;
        let claimed = sqlx::query(
            "SELECT id, definition, interval_seconds, clock_timestamp() AS now FROM alert_rules \
             WHERE enabled AND next_eval_at <= clock_timestamp() \
             ORDER BY next_eval_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(claimed) = claimed else {
            tx.rollback().await?;
            return Ok(false);
        };
        let rule_id: i64 = claimed.try_get("id")?;
        let definition: Value = claimed.try_get("definition")?;
        let interval: i32 = claimed.try_get("interval_seconds")?;
        let now: DateTime<Utc> = claimed.try_get("now")?;
        let next = now + Duration::seconds(i64::from(interval));
        let outcome = match Rule::parse(&definition, None) {
            Ok(rule) => self.evaluate(&mut tx, rule_id, &rule, now).await,
            Err(problems) => Ok(Err(EvaluationError::Rule(problems.join("; ")))),
        };
        self.status.evaluated();
        let (error, warning) = match outcome {
            Ok(Ok(warning)) => (None, warning),
            Ok(Err(error)) => {
                self.status.failed(FailureReason::of(&error));
                tracing::warn!(rule_id, %error, "alert rule evaluation failed");
                (Some(error.to_string()), None)
            }
            Err(database) => {
                // The transaction is lost: record the failure on its own and move the
                // rule to its next interval, so it does not hold up the others.
                drop(tx);
                self.status.failed(FailureReason::Database);
                tracing::warn!(rule_id, error = %database, "alert rule evaluation failed");
                sqlx::query(
                    "UPDATE alert_rules SET last_eval_at = $2, next_eval_at = $3, last_error = $4 \
                     WHERE id = $1",
                )
                .bind(rule_id)
                .bind(now)
                .bind(next)
                .bind(format!("writing the state failed: {database}"))
                .execute(&self.writes)
                .await?;
                return Ok(true);
            }
        };
        sqlx::query(
            "UPDATE alert_rules SET last_eval_at = $2, next_eval_at = $3, last_error = $4, \
             last_warning = $5 WHERE id = $1",
        )
        .bind(rule_id)
        .bind(now)
        .bind(next)
        .bind(error)
        .bind(warning)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Measures `rule` and writes its series' steps in `tx`. The outer error is the
    /// database's (the transaction is lost); the inner one the rule's own failure.
    /// `Some(warning)` when series were left out by the cap.
    async fn evaluate(
        &self,
        tx: &mut sqlx::PgConnection,
        rule_id: i64,
        rule: &Rule,
        now: DateTime<Utc>,
    ) -> Result<Result<Option<String>, EvaluationError>, sqlx::Error> {
        let window_end = now - self.settle_delay;
        let window_start = window_end - rule.window;
        let stored = transitions::load(&mut *tx, rule_id).await?;
        let known: Vec<Known<'_>> = stored
            .iter()
            .map(|s| Known {
                key: &s.key,
                labels: &s.labels,
            })
            .collect();
        let observations =
            match evaluate::measure(&self.read, rule, window_start, window_end, &known).await {
                Ok(observations) => observations,
                Err(error) => return Ok(Err(error)),
            };
        let silences = transitions::silences(&mut *tx, rule_id, now).await?;
        let by_key: BTreeMap<&str, &transitions::StoredSeries> =
            stored.iter().map(|s| (s.key.as_str(), s)).collect();
        let (tracked, new): (Vec<_>, Vec<_>) = observations
            .into_iter()
            .partition(|o| by_key.contains_key(o.key.as_str()));
        let new: Vec<_> = new.into_iter().filter(|o| o.holds).collect();
        let cap = usize::try_from(rule.max_series).unwrap_or(usize::MAX);
        let (admitted, left_out) = state::admit(stored.len(), new, cap);
        let timing = Timing {
            hold: rule.hold,
            keep_firing_for: rule.keep_firing_for,
            repeat_interval: rule.repeat_interval,
        };
        let context = Context {
            rule_id,
            rule,
            now,
            window_end,
            external_url: &self.external_url,
        };
        for observation in tracked.iter().chain(admitted.iter()) {
            let previous = by_key.get(observation.key.as_str()).map(|s| &s.series);
            let silenced = silences
                .iter()
                .any(|s| s.as_deref().is_none_or(|key| key == observation.key));
            let step = state::step(
                previous,
                observation.holds.then_some(observation.value),
                now,
                timing,
                silenced,
            );
            let labels = by_key
                .get(observation.key.as_str())
                .map(|s| &s.labels)
                .unwrap_or(&observation.labels);
            transitions::write(
                &mut *tx,
                &context,
                &transitions::SeriesStep {
                    key: &observation.key,
                    labels,
                    previous,
                    step: &step,
                    value: observation.value,
                    silenced,
                },
            )
            .await?;
        }
        Ok(Ok((left_out > 0).then(|| {
            format!(
                "{left_out} series whose condition holds were left out: the rule tracks at most {} (max_series)",
                rule.max_series
            )
        })))
    }
}
