//! Preview: when a rule would have fired over the last 24 hours, computed from the
//! minute rollup (so only count, ratio and absence rules whose searches are service and
//! level only, per service or not grouped; others are refused). Windows and the
//! interval are taken in whole minutes, and the rule's state machine (`state`) is run
//! over the evaluations. It reads through the read side's connections and never writes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{json, Value};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::rules::{GroupBy, Kind, Rule, Search};
use super::state::{self, Timing, Transition};
use crate::read::counts;
use crate::read::error::ReadError;
use crate::read::ReadContext;

/// How far back a preview looks.
const SPAN: Duration = Duration::hours(24);

/// Why a rule cannot be previewed.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("{0}")]
    NotPreviewable(String),
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Minute counts per series value over `[start, start + minutes)`.
type Counts = HashMap<Option<String>, Vec<i64>>;

/// The rule's firing periods per series over the last 24 hours, ending at `now`.
pub async fn preview(
    read: &ReadContext,
    rule: &Rule,
    now: DateTime<Utc>,
) -> Result<Value, PreviewError> {
    if !matches!(rule.kind, Kind::Count | Kind::Ratio | Kind::Absence)
        || matches!(rule.group_by, Some(GroupBy::Meta(_)))
    {
        return Err(PreviewError::NotPreviewable(
            "preview: only count, ratio and absence rules, not grouped by a metadata key, can be previewed (from the rollups)".to_owned(),
        ));
    }
    let end = now
        .duration_trunc(Duration::minutes(1))
        .map_err(|e| PreviewError::NotPreviewable(e.to_string()))?;
    let window = whole_minutes(rule.window);
    let step = whole_minutes(rule.interval);
    let minutes = SPAN.num_minutes() + window;
    let start = end - Duration::minutes(minutes);
    let matching = minute_counts(read, rule, &rule.search, start, minutes).await?;
    let base = if rule.kind == Kind::Ratio {
        Some(minute_counts(read, rule, &rule.base_search, start, minutes).await?)
    } else {
        None
    };
    let mut groups: Vec<Option<String>> = match &base {
        Some(base) => base.keys().cloned().collect(),
        None => matching.keys().cloned().collect(),
    };
    if rule.group_by.is_none() && groups.is_empty() {
        groups.push(None);
    }
    groups.sort();
    let timing = Timing {
        hold: rule.hold,
        keep_firing_for: rule.keep_firing_for,
        repeat_interval: Duration::zero(),
    };
    let prefix = |counts: Option<&Vec<i64>>| -> Vec<i64> {
        let mut sums = vec![0i64; minutes as usize + 1];
        if let Some(counts) = counts {
            for (i, n) in counts.iter().enumerate() {
                sums[i + 1] = sums[i] + n;
            }
        }
        sums
    };
    let mut series_out = Vec::new();
    let mut left_out = 0usize;
    for group in groups {
        if series_out.len() as i64 >= rule.max_series {
            left_out += 1;
            continue;
        }
        let matching_sums = prefix(matching.get(&group));
        let base_sums = base.as_ref().map(|b| prefix(b.get(&group)));
        let mut current: Option<state::Series> = None;
        let mut periods: Vec<Value> = Vec::new();
        let mut fired_at: Option<DateTime<Utc>> = None;
        let mut at = window;
        while at <= minutes {
            let time = start + Duration::minutes(at);
            let sum = |sums: &Vec<i64>| sums[at as usize] - sums[(at - window) as usize];
            let n = sum(&matching_sums);
            let measured = match rule.kind {
                Kind::Count => rule.op.holds(n as f64, rule.threshold).then_some(n as f64),
                Kind::Absence => (n == 0).then_some(0.0),
                _ => {
                    let total = base_sums.as_ref().map(sum).unwrap_or(0);
                    let ratio = if total > 0 {
                        n as f64 / total as f64
                    } else {
                        0.0
                    };
                    (total > 0
                        && total >= rule.min_base_count
                        && rule.op.holds(ratio, rule.threshold))
                    .then_some(ratio)
                }
            };
            let step_now = state::step(current.as_ref(), measured, time, timing, false);
            match step_now.transition {
                Some(Transition::Firing) => fired_at = Some(time),
                Some(Transition::Resolved) => {
                    periods.push(json!({"firing_from": fired_at, "resolved_at": time}));
                    fired_at = None;
                }
                _ => {}
            }
            current = step_now.next;
            at += step;
        }
        if let Some(from) = fired_at {
            periods.push(json!({"firing_from": from, "resolved_at": null}));
        }
        let labels: BTreeMap<String, String> = match (&rule.group_by, &group) {
            (Some(group_by), Some(value)) => {
                BTreeMap::from([(group_by.label().to_owned(), value.clone())])
            }
            _ => BTreeMap::new(),
        };
        if !periods.is_empty() || rule.group_by.is_none() {
            series_out.push(json!({"labels": labels, "firing": periods}));
        }
    }
    Ok(json!({
        "from": start + Duration::minutes(window),
        "until": end,
        "resolution": "1m",
        "window_minutes": window,
        "interval_minutes": step,
        "series": series_out,
        "series_left_out": left_out,
    }))
}

fn whole_minutes(duration: Duration) -> i64 {
    ((duration.num_seconds() + 59) / 60).max(1)
}

/// Entries matching `search` per series and minute, from the minute rollup.
async fn minute_counts(
    read: &ReadContext,
    rule: &Rule,
    search: &Search,
    start: DateTime<Utc>,
    minutes: i64,
) -> Result<Counts, PreviewError> {
    let end = start + Duration::minutes(minutes);
    let filter = search
        .filter(start, end)
        .map_err(|problem| PreviewError::NotPreviewable(format!("search: {problem}")))?;
    if !counts::answerable(&filter) {
        return Err(PreviewError::NotPreviewable(
            "preview: only searches on service and level can be previewed (from the rollups); q, meta.* and the like need the rows".to_owned(),
        ));
    }
    let mut sql: QueryBuilder<'_, Postgres> = QueryBuilder::new("SELECT ");
    sql.push(if rule.group_by.is_some() {
        "service"
    } else {
        "NULL::text"
    });
    sql.push(" AS g, t, sum(n)::int8 AS n FROM ");
    // Widths of one minute: the minute rollup only.
    counts::push_counted(&mut sql, &filter, Some(60));
    sql.push(" AS c GROUP BY 1, 2 LIMIT 2000000");
    let mut connection = read.reads().acquire().await?;
    let rows = connection
        .run(|conn: &mut PgConnection| sql.build().fetch_all(conn))
        .await?;
    let mut found: Counts = HashMap::new();
    for row in rows {
        let group: Option<String> = row.try_get("g").map_err(ReadError::from)?;
        let t: DateTime<Utc> = row.try_get("t").map_err(ReadError::from)?;
        let n: i64 = row.try_get("n").map_err(ReadError::from)?;
        let index = (t - start).num_minutes();
        if (0..minutes).contains(&index) {
            found
                .entry(group)
                .or_insert_with(|| vec![0; minutes as usize])[index as usize] += n;
        }
    }
    Ok(found)
}
