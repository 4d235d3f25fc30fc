//! Writes what the state machine decided, inside the caller's transaction: a series'
//! new state (`alert_series`), its transition (`alert_transitions`) and, when it is
//! notified, one outbox row per channel of the rule (`alert_notifications`) with the
//! channel-neutral alert. Committing that transaction is what makes a transition
//! happen exactly once. It never decides a transition and never sends anything.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};

use super::alert::{self, AlertFacts};
use super::rules::Rule;
use super::state::{Phase, Series, Step, Transition};

/// A stored series with its labels.
#[derive(Debug, Clone)]
pub struct StoredSeries {
    pub key: String,
    pub labels: BTreeMap<String, String>,
    pub series: Series,
}

/// The rule's pending and firing series, locked by the caller's claim on the rule.
pub async fn load(conn: &mut PgConnection, rule_id: i64) -> Result<Vec<StoredSeries>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT series_key, labels, state, active_since, fired_at, last_active_at, \
         last_notified_at, value FROM alert_series WHERE rule_id = $1 ORDER BY series_key",
    )
    .bind(rule_id)
    .fetch_all(conn)
    .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let Json(labels): Json<BTreeMap<String, String>> = row.try_get("labels")?;
        let state: String = row.try_get("state")?;
        let value: Option<f64> = row.try_get("value")?;
        found.push(StoredSeries {
            key: row.try_get("series_key")?,
            labels,
            series: Series {
                phase: Phase::parse(&state).unwrap_or(Phase::Pending),
                active_since: row.try_get("active_since")?,
                fired_at: row.try_get("fired_at")?,
                last_active_at: row.try_get("last_active_at")?,
                last_notified_at: row.try_get("last_notified_at")?,
                value: value.unwrap_or(0.0),
            },
        });
    }
    Ok(found)
}

/// The series keys silenced now: `None` in the list silences the whole rule.
pub async fn silences(
    conn: &mut PgConnection,
    rule_id: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Option<String>>, sqlx::Error> {
    sqlx::query_scalar("SELECT series_key FROM alert_silences WHERE rule_id = $1 AND until > $2")
        .bind(rule_id)
        .bind(now)
        .fetch_all(conn)
        .await
}

/// Where a step happened.
pub struct Context<'a> {
    pub rule_id: i64,
    pub rule: &'a Rule,
    pub now: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub external_url: &'a str,
}

/// One series' step, to write.
pub struct SeriesStep<'a> {
    pub key: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// Its state before the step.
    pub previous: Option<&'a Series>,
    pub step: &'a Step,
    /// The value measured at this evaluation.
    pub value: f64,
    pub silenced: bool,
}

/// Writes one series' step.
pub async fn write(
    conn: &mut PgConnection,
    context: &Context<'_>,
    series_step: &SeriesStep<'_>,
) -> Result<(), sqlx::Error> {
    let SeriesStep {
        key,
        labels,
        previous,
        step,
        value,
        silenced,
    } = *series_step;
    match &step.next {
        Some(series) => {
            sqlx::query(
                "INSERT INTO alert_series (rule_id, series_key, labels, state, active_since, \
                 fired_at, last_active_at, last_notified_at, value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (rule_id, series_key) DO UPDATE SET labels = EXCLUDED.labels, \
                 state = EXCLUDED.state, active_since = EXCLUDED.active_since, \
                 fired_at = EXCLUDED.fired_at, last_active_at = EXCLUDED.last_active_at, \
                 last_notified_at = EXCLUDED.last_notified_at, value = EXCLUDED.value",
            )
            .bind(context.rule_id)
            .bind(key)
            .bind(Json(labels))
            .bind(series.phase.as_str())
            .bind(series.active_since)
            .bind(series.fired_at)
            .bind(series.last_active_at)
            .bind(series.last_notified_at)
            .bind(finite(series.value))
            .execute(&mut *conn)
            .await?;
        }
        None if previous.is_some() => {
            sqlx::query("DELETE FROM alert_series WHERE rule_id = $1 AND series_key = $2")
                .bind(context.rule_id)
                .bind(key)
                .execute(&mut *conn)
                .await?;
        }
        None => {}
    }
    let Some(transition) = step.transition else {
        return Ok(());
    };
    let notified = step.notify && !context.rule.channels.is_empty();
    let transition_id: i64 = sqlx::query_scalar(
        "INSERT INTO alert_transitions (rule_id, rule_name, series_key, transition, value, at, \
         notified, silenced) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(context.rule_id)
    .bind(&context.rule.name)
    .bind(key)
    .bind(transition.as_str())
    .bind(finite(value))
    .bind(context.now)
    .bind(notified)
    .bind(silenced)
    .fetch_one(&mut *conn)
    .await?;
    if !notified {
        return Ok(());
    }
    let (outbox, resolved) = match transition {
        Transition::Firing => ("firing", false),
        Transition::Reminder => ("reminder", false),
        Transition::Resolved => ("resolved", true),
        Transition::Pending | Transition::Inactive => return Ok(()),
    };
    let fired_at = step
        .next
        .as_ref()
        .and_then(|s| s.fired_at)
        .or(previous.and_then(|s| s.fired_at))
        .unwrap_or(context.now);
    let alert = alert::build(&AlertFacts {
        rule_id: context.rule_id,
        rule: context.rule,
        series_key: key,
        series_labels: labels,
        resolved,
        reminder: transition == Transition::Reminder,
        starts_at: fired_at,
        ends_at: resolved.then_some(context.now),
        window_end: context.window_end,
        value,
        external_url: context.external_url,
    });
    sqlx::query(
        "INSERT INTO alert_notifications (rule_id, rule_name, series_key, transition, channel, alert, \
         transition_id) SELECT $1, $2, $3, $4, channel, $6, $7 FROM unnest($5::text[]) AS channel",
    )
    .bind(context.rule_id)
    .bind(&context.rule.name)
    .bind(key)
    .bind(outbox)
    .bind(&context.rule.channels)
    .bind(Json(alert))
    .bind(transition_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Resolves every firing series of a rule (it is deleted or disabled): the receivers
/// told it fires are told it ended; pending series end quietly.
pub async fn resolve_all(
    conn: &mut PgConnection,
    context: &Context<'_>,
) -> Result<(), sqlx::Error> {
    for stored in load(conn, context.rule_id).await? {
        let step = Step {
            next: None,
            transition: Some(match stored.series.phase {
                Phase::Firing => Transition::Resolved,
                Phase::Pending => Transition::Inactive,
            }),
            notify: stored.series.phase == Phase::Firing
                && stored.series.last_notified_at.is_some(),
        };
        write(
            conn,
            context,
            &SeriesStep {
                key: &stored.key,
                labels: &stored.labels,
                previous: Some(&stored.series),
                step: &step,
                value: stored.series.value,
                silenced: false,
            },
        )
        .await?;
    }
    Ok(())
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}
