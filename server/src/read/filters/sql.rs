//! A [`LogFilter`] as SQL conditions with bound parameters (never interpolated text),
//! declared-key columns included.

use std::borrow::Cow;

use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::LogFilter;
use crate::storage::declared_keys::{self, indexed_text, Scalar};

/// The request an entry belongs to: its own, else the one that enqueued its job. Written
/// exactly as in the `logs_request` index (migrations/), so the planner uses it.
const REQUEST_EXPRESSION: &str =
    "COALESCE(metadata->>'request_id', metadata->>'parent_request_id')";

impl LogFilter {
    /// The same filter with its `meta.KEY=VALUE` filters on a key in `keys` also written
    /// for that key's column. Only one-segment keys whose value has an indexed text (a
    /// string of 1 to 200 bytes, a boolean, an integer). (A stored `42.0` matches
    /// `meta.user_id=42` by containment but has no indexed text: declared keys find
    /// integers stored as integers.)
    pub fn with_metadata_indexes(mut self, keys: &[String]) -> Self {
        if keys.is_empty() {
            return self;
        }
        for alternatives in &self.metadata {
            if let Some(indexed) = indexed_alternatives(alternatives, keys) {
                self.indexed_metadata.push(indexed);
            }
        }
        self
    }

    /// Appends ` AND ...` for every filter, time bounds included.
    pub fn push_conditions(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        self.push_time_conditions(sql);
        self.push_content_conditions(sql);
    }

    /// Appends ` AND ...` for the time bounds only.
    pub fn push_time_conditions(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        if let Some(since) = self.since {
            sql.push(" AND timestamp >= ").push_bind(since);
        }
        if let Some(until) = self.until {
            sql.push(" AND timestamp < ").push_bind(until);
        }
    }

    /// Appends ` AND ...` for everything but the time bounds.
    pub fn push_content_conditions(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        // A single value is written as `=` so the planner can walk the
        // (service, timestamp DESC) index in order; several use `= ANY`.
        match self.services.as_slice() {
            [] => {}
            [one] => {
                sql.push(" AND service = ").push_bind(one.clone());
            }
            many => {
                sql.push(" AND service = ANY(")
                    .push_bind(many.to_vec())
                    .push(")");
            }
        }
        match self.levels.as_deref() {
            None => {}
            Some([one]) => {
                sql.push(" AND level = ").push_bind(one.to_string());
            }
            Some(many) => {
                let levels: Vec<String> = many.iter().map(|l| l.to_string()).collect();
                sql.push(" AND level = ANY(").push_bind(levels).push(")");
            }
        }
        if let Some(pattern) = &self.message_pattern {
            sql.push(" AND message ILIKE ").push_bind(pattern.clone());
        }
        if let Some(request_id) = &self.request_id {
            sql.push(" AND ")
                .push(REQUEST_EXPRESSION)
                .push(" = ")
                .push_bind(request_id.clone());
        }
        match self.fingerprints.as_slice() {
            [] => {}
            [one] => {
                sql.push(" AND fingerprint = ").push_bind(one.clone());
            }
            many => {
                sql.push(" AND fingerprint = ANY(")
                    .push_bind(many.to_vec())
                    .push(")");
            }
        }
        if let Some(trace_id) = &self.trace_id {
            sql.push(" AND trace_id = ").push_bind(trace_id.clone());
        }
        if let Some(span_id) = &self.span_id {
            sql.push(" AND span_id = ").push_bind(span_id.clone());
        }
        for (key, texts) in &self.indexed_metadata {
            sql.push(" AND ").push(declared_keys::column(key));
            match texts.as_slice() {
                [one] => sql.push(" = ").push_bind(one.clone()),
                many => sql.push(" = ANY(").push_bind(many.to_vec()).push(")"),
            };
        }
        for alternatives in &self.metadata {
            sql.push(" AND (");
            for (i, document) in alternatives.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.push("metadata @> ")
                    .push_bind(Json(document.clone()))
                    .push("::jsonb");
            }
            sql.push(")");
        }
    }
}

/// The declared key and the indexed texts of one `meta.KEY=VALUE` filter's
/// alternatives (the value as JSON, and as text), or `None` when the key is not declared
/// or one alternative has no indexed text: the column must not exclude a row any
/// alternative would match.
fn indexed_alternatives(alternatives: &[Value], keys: &[String]) -> Option<(String, Vec<String>)> {
    let mut declared_key: Option<&String> = None;
    let mut texts: Vec<String> = Vec::new();
    for alternative in alternatives {
        let Value::Object(document) = alternative else {
            return None;
        };
        let (key, value) = document.iter().next()?;
        if document.len() != 1
            || !keys.contains(key)
            || declared_keys::key_problem(key).is_some()
            || declared_key.is_some_and(|first| first != key)
        {
            return None;
        }
        declared_key = Some(key);
        let number;
        let scalar = match value {
            Value::String(text) => Scalar::Text(Cow::Borrowed(text)),
            Value::Bool(flag) => Scalar::Bool(*flag),
            Value::Number(n) => {
                number = n.to_string();
                Scalar::Number(Cow::Borrowed(&number))
            }
            _ => return None,
        };
        let text = indexed_text(scalar)?.into_owned();
        if !texts.contains(&text) {
            texts.push(text);
        }
    }
    Some((declared_key?.clone(), texts))
}
