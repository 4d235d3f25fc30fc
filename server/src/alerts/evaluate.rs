//! What a rule measures over one window, per series: the queries of each kind. Counts
//! come from the rollups (`read::counts`) when the search is service/level only and the
//! series are per service or none; any other search reads `logs` itself. Error kinds
//! read `error_groups`. Every query runs on the read side's connections (so on the
//! read replica when one is set), with its limits and statement timeout. It decides
//! whether each series' condition holds; it never writes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::rules::{GroupBy, Kind, Rule, Search};
use crate::read::counts;
use crate::read::error::ReadError;
use crate::read::ReadContext;

/// Why a rule could not be measured (recorded on the rule, shown by the API).
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    #[error("the stored rule is invalid: {0}")]
    Rule(String),
    #[error("the search is invalid: {0}")]
    Search(String),
    #[error("reading failed: {0}")]
    Read(#[from] ReadError),
}

/// One series at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub key: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub holds: bool,
}

/// A known series (pending or firing) and its labels, so that one missing from the
/// results is still observed.
pub struct Known<'a> {
    pub key: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// The series of `rule` over `[since, until)`: the ones the queries found (those whose
/// condition holds first), then `known` series they did not find.
pub async fn measure(
    read: &ReadContext,
    rule: &Rule,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    known: &[Known<'_>],
) -> Result<Vec<Observation>, EvaluationError> {
    // Enough rows for every series the cap can admit, holding ones first.
    let limit = rule.max_series * 2 + known.len() as i64 + 1;
    let mut observations = match rule.kind {
        Kind::Count => {
            let counts = grouped_counts(read, rule, &rule.search, since, until, limit).await?;
            let mut found: Vec<Observation> = counts
                .into_iter()
                .map(|(group, n)| {
                    observation(
                        rule,
                        group,
                        n as f64,
                        rule.op.holds(n as f64, rule.threshold),
                    )
                })
                .collect();
            if rule.group_by.is_none() && found.is_empty() {
                found.push(observation(
                    rule,
                    None,
                    0.0,
                    rule.op.holds(0.0, rule.threshold),
                ));
            }
            found
        }
        Kind::Absence => {
            let n: i64 = grouped_counts(read, rule, &rule.search, since, until, limit)
                .await?
                .into_iter()
                .map(|(_, n)| n)
                .sum();
            vec![observation(rule, None, n as f64, n == 0)]
        }
        Kind::Ratio => {
            let base = grouped_counts(read, rule, &rule.base_search, since, until, limit).await?;
            let matching: HashMap<Option<String>, i64> =
                grouped_counts(read, rule, &rule.search, since, until, i64::MAX)
                    .await?
                    .into_iter()
                    .collect();
            base.into_iter()
                .map(|(group, total)| {
                    let n = matching.get(&group).copied().unwrap_or(0);
                    let ratio = if total > 0 {
                        n as f64 / total as f64
                    } else {
                        0.0
                    };
                    let holds = total >= rule.min_base_count
                        && total > 0
                        && rule.op.holds(ratio, rule.threshold);
                    observation(rule, group, ratio, holds)
                })
                .collect()
        }
        Kind::NewError | Kind::RegressedError => {
            error_groups(read, rule, since, until, limit).await?
        }
    };
    observations.sort_by_key(|o| !o.holds);
    for series in known {
        if !observations.iter().any(|o| o.key == series.key) {
            let holds = match rule.kind {
                Kind::Count => rule.op.holds(0.0, rule.threshold),
                _ => false,
            };
            observations.push(Observation {
                key: series.key.to_owned(),
                labels: series.labels.clone(),
                value: 0.0,
                holds,
            });
        }
    }
    Ok(observations)
}

/// The series key and labels of a group value (`None`: the rule has no `group_by`).
fn observation(rule: &Rule, group: Option<String>, value: f64, holds: bool) -> Observation {
    let (key, labels) = match (&rule.group_by, group) {
        (Some(group_by), Some(value)) => (
            format!("{}={value}", group_by.label()),
            BTreeMap::from([(group_by.label().to_owned(), value)]),
        ),
        _ => (String::new(), BTreeMap::new()),
    };
    Observation {
        key,
        labels,
        value,
        holds,
    }
}

/// Entries matching `search` in the window per group value (`None` without
/// `group_by`), at most `limit` groups, ordered so that those whose condition holds
/// come first.
async fn grouped_counts(
    read: &ReadContext,
    rule: &Rule,
    search: &Search,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(Option<String>, i64)>, EvaluationError> {
    let filter = read.indexed(
        search
            .filter(since, until)
            .map_err(EvaluationError::Search)?,
    );
    let mut sql: QueryBuilder<'_, Postgres> = QueryBuilder::new("SELECT ");
    let from_rollups =
        counts::answerable(&filter) && matches!(rule.group_by, None | Some(GroupBy::Service));
    match &rule.group_by {
        None => sql.push("NULL::text"),
        Some(GroupBy::Service) => sql.push("service"),
        Some(GroupBy::Meta(key)) => sql
            .push("COALESCE(metadata->>")
            .push_bind(key.clone())
            .push(", '')"),
    };
    if from_rollups {
        sql.push(" AS g, COALESCE(sum(n), 0)::int8 AS n FROM ");
        counts::push_counted(&mut sql, &filter, None);
        sql.push(" AS c");
    } else {
        sql.push(" AS g, count(*)::int8 AS n FROM logs WHERE TRUE");
        filter.push_conditions(&mut sql);
    }
    let ascending = matches!(rule.op, super::rules::Op::Below | super::rules::Op::AtMost)
        && rule.kind == Kind::Count;
    sql.push(" GROUP BY 1 ORDER BY 2 ")
        .push(if ascending { "ASC" } else { "DESC" })
        .push(", 1 LIMIT ")
        .push_bind(limit);
    let mut connection = read.reads().acquire().await?;
    let rows = connection
        .run(|conn: &mut PgConnection| sql.build().fetch_all(conn))
        .await?;
    rows.iter()
        .map(|row| {
            let group: Option<String> = row.try_get("g").map_err(ReadError::from)?;
            let n: i64 = row.try_get("n").map_err(ReadError::from)?;
            Ok((group, n))
        })
        .collect()
}

/// Error groups first seen (new_error) or regressed (regressed_error) in the window:
/// one series per group, labelled with its service, fingerprint and id.
async fn error_groups(
    read: &ReadContext,
    rule: &Rule,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Observation>, EvaluationError> {
    let column = if rule.kind == Kind::NewError {
        "first_seen"
    } else {
        "regressed_at"
    };
    let mut sql: QueryBuilder<'_, Postgres> = QueryBuilder::new(
        "SELECT id, service, fingerprint, title, count FROM error_groups WHERE merged_into IS NULL AND ",
    );
    sql.push(column)
        .push(" >= ")
        .push_bind(since)
        .push(" AND ")
        .push(column)
        .push(" < ")
        .push_bind(until);
    if let Some(service) = &rule.service {
        sql.push(" AND service = ").push_bind(service.clone());
    }
    sql.push(" ORDER BY ")
        .push(column)
        .push(", id LIMIT ")
        .push_bind(limit);
    let mut connection = read.reads().acquire().await?;
    let rows = connection
        .run(|conn: &mut PgConnection| sql.build().fetch_all(conn))
        .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("id").map_err(ReadError::from)?;
            let service: String = row.try_get("service").map_err(ReadError::from)?;
            let fingerprint: String = row.try_get("fingerprint").map_err(ReadError::from)?;
            let title: String = row.try_get("title").map_err(ReadError::from)?;
            let count: i64 = row.try_get("count").map_err(ReadError::from)?;
            Ok(Observation {
                key: format!("error_group={id}"),
                labels: BTreeMap::from([
                    ("service".to_owned(), service),
                    ("fingerprint".to_owned(), fingerprint),
                    ("error_group".to_owned(), id.to_string()),
                    (
                        "error_title".to_owned(),
                        crate::ingest::client_text::truncated(&title, 256),
                    ),
                ]),
                value: count as f64,
                holds: true,
            })
        })
        .collect()
}
