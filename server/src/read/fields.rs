//! `GET /api/v1/logs/fields?field=…&…`: the most frequent values of one field (`service`,
//! `level`, or a metadata key `meta.KEY` / `meta.KEY.NESTED`) among the entries matching
//! the filters of `/api/v1/logs`, with counts and shares. Owns the field names it
//! accepts and the tally. It counts the newest [`SAMPLE`] matching entries (read over a
//! page's windows, so a wide range costs what its newest entries cost) and says whether
//! that was all of them; values are compared on their first [`MAX_VALUE_CHARS`]
//! characters, so no stored value can make the tally large.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};

use super::error::ReadError;
use super::search::newest_values;
use super::{params_from, QueryPairs, ReadContext};

/// Entries a tally reads at most: the newest of the search.
pub const SAMPLE: i64 = 10_000;
/// Values returned by default and at most.
const DEFAULT_TOP: i64 = 10;
const MAX_TOP: i64 = 100;
/// Characters of a value that are compared and returned; longer values are cut and
/// marked `truncated`.
const MAX_VALUE_CHARS: i32 = 200;
/// Segments of a metadata path and bytes of each.
const MAX_PATH_SEGMENTS: usize = 8;
const MAX_SEGMENT_BYTES: usize = 100;

/// What is tallied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Service,
    Level,
    /// A metadata key, by path.
    Metadata(Vec<String>),
}

impl Field {
    fn parse(text: &str) -> Result<Field, String> {
        match text {
            "service" => return Ok(Field::Service),
            "level" => return Ok(Field::Level),
            _ => {}
        }
        let Some(path) = text.strip_prefix("meta.") else {
            return Err(format!(
                "field: service, level or meta.KEY (got {:?})",
                crate::ingest::client_text::truncated(text, 60)
            ));
        };
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(format!(
                "field: at most {MAX_PATH_SEGMENTS} key segments (meta.a.b…)"
            ));
        }
        if segments.iter().any(|segment| {
            segment.is_empty() || segment.len() > MAX_SEGMENT_BYTES || segment.contains('\0')
        }) {
            return Err(format!(
                "field: each key segment of meta.KEY must be 1 to {MAX_SEGMENT_BYTES} bytes without NUL"
            ));
        }
        Ok(Field::Metadata(segments))
    }

    /// Appends the text expression of this field, cut to [`MAX_VALUE_CHARS`] + 1 so a
    /// cut value can be told from one that fits.
    fn push_value(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        sql.push("left(");
        match self {
            Field::Service => {
                sql.push("service");
            }
            Field::Level => {
                sql.push("level");
            }
            Field::Metadata(path) => {
                sql.push("metadata #>> ").push_bind(path.clone());
            }
        }
        sql.push(", ").push_bind(MAX_VALUE_CHARS + 1).push(")");
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct FieldValue {
    value: String,
    count: u64,
    /// `count` ÷ the entries examined.
    share: f64,
    /// The stored value is longer than what is shown (and compared).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

#[derive(Debug, Serialize)]
pub struct FieldValues {
    field: String,
    values: Vec<FieldValue>,
    /// Matching entries examined: all of them when `sampled` is false.
    examined: u64,
    /// Of those, entries without the field (metadata without the key, or `null`).
    missing: u64,
    /// Distinct values among the examined entries.
    distinct: u64,
    /// Only the newest `examined` matching entries were counted: more match.
    sampled: bool,
}

pub async fn fields(
    State(context): State<ReadContext>,
    query: QueryPairs,
) -> Result<Json<FieldValues>, ReadError> {
    let mut params = params_from(query)?;
    let now = Utc::now();
    let filter = context.filter(&mut params, now);
    let name = params.one("field");
    let field = match name.as_deref().map(Field::parse) {
        Some(Ok(field)) => Some(field),
        Some(Err(problem)) => {
            params.problem(problem);
            None
        }
        None => {
            params.problem("field: required (service, level or meta.KEY)");
            None
        }
    };
    let top = params.number("top", 1, MAX_TOP).unwrap_or(DEFAULT_TOP);
    params.finish().map_err(ReadError::InvalidQuery)?;
    let (Some(field), Some(name)) = (field, name) else {
        return Err(ReadError::invalid("field: required"));
    };

    let mut connection = context.reads().acquire().await?;
    let push_value = |sql: &mut QueryBuilder<'_, Postgres>| field.push_value(sql);
    let values = newest_values(&mut connection, &filter, &push_value, SAMPLE + 1, now).await?;
    drop(connection);
    Ok(Json(tally(name, values, top as usize)))
}

/// Counts `values` (the newest first; one more than [`SAMPLE`] tells that more match)
/// and keeps the `top` most frequent, ties in value order.
fn tally(field: String, mut values: Vec<Option<String>>, top: usize) -> FieldValues {
    let sampled = values.len() as i64 > SAMPLE;
    values.truncate(SAMPLE as usize);
    let examined = values.len() as u64;
    let mut missing = 0;
    let mut counts: HashMap<String, u64> = HashMap::new();
    for value in values {
        match value {
            Some(value) => *counts.entry(value).or_default() += 1,
            None => missing += 1,
        }
    }
    let distinct = counts.len() as u64;
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(top);
    let values = ranked
        .into_iter()
        .map(|(mut value, count)| {
            let truncated = value.chars().count() > MAX_VALUE_CHARS as usize;
            if truncated {
                value = value.chars().take(MAX_VALUE_CHARS as usize).collect();
            }
            FieldValue {
                value,
                count,
                share: count as f64 / examined.max(1) as f64,
                truncated,
            }
        })
        .collect();
    FieldValues {
        field,
        values,
        examined,
        missing,
        distinct,
        sampled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_service_level_or_a_metadata_path() {
        assert_eq!(Field::parse("service"), Ok(Field::Service));
        assert_eq!(Field::parse("level"), Ok(Field::Level));
        assert_eq!(
            Field::parse("meta.http.status"),
            Ok(Field::Metadata(vec!["http".into(), "status".into()]))
        );
        assert!(Field::parse("message").is_err());
        assert!(Field::parse("meta.").is_err());
        assert!(Field::parse("meta.a..b").is_err());
        assert!(Field::parse(&format!("meta.{}", "a.".repeat(9) + "a")).is_err());
        assert!(Field::parse(&format!("meta.{}", "k".repeat(101))).is_err());
    }

    #[test]
    fn the_tally_ranks_counts_shares_and_says_when_it_sampled() {
        let values = vec![
            Some("b".to_owned()),
            Some("a".to_owned()),
            None,
            Some("b".to_owned()),
        ];
        let result = tally("meta.k".into(), values, 10);
        assert_eq!(result.examined, 4);
        assert_eq!(result.missing, 1);
        assert_eq!(result.distinct, 2);
        assert!(!result.sampled);
        assert_eq!(result.values[0].value, "b");
        assert_eq!(result.values[0].count, 2);
        assert!((result.values[0].share - 0.5).abs() < 1e-9);
        assert_eq!(result.values[1].value, "a");

        let many = vec![Some("x".to_owned()); SAMPLE as usize + 1];
        let result = tally("service".into(), many, 1);
        assert!(result.sampled);
        assert_eq!(result.examined, SAMPLE as u64);
    }

    #[test]
    fn long_values_are_cut_and_marked() {
        let long = "é".repeat(MAX_VALUE_CHARS as usize + 1);
        let result = tally("meta.k".into(), vec![Some(long)], 10);
        assert!(result.values[0].truncated);
        assert_eq!(
            result.values[0].value.chars().count(),
            MAX_VALUE_CHARS as usize
        );
    }
}
