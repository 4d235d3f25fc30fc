//! Query filters, parsed once from the query string into a [`LogFilter`] that cannot be
//! invalid, and rendered as SQL conditions with bound parameters (never interpolated
//! text). It owns parameter names, their limits and their error messages; it never runs
//! a query and never knows about HTTP.
//!
//! Parameters (empty values count as absent, so a form can send every field):
//! - `service`: one or several, repeated or comma-separated.
//! - `level`: one or several; a level selects every spelling of its severity
//!   (`warn` selects WARN and WARNING). `min_level`: that severity and above.
//! - `since` / `until`: RFC 3339, `now`, or a relative age like `90s`, `15m`, `2h`, `7d`, `1w`.
//! - `q`: case-insensitive substring of the message (`%` and `_` match themselves).
//! - `meta.KEY=VALUE` (`meta.a.b=VALUE` for nested keys): metadata contains KEY with
//!   VALUE, where VALUE is read as JSON when it parses (also matching its text form, so
//!   `meta.user_id=42` finds both 42 and "42") and as a string otherwise.
//! - `request_id`: everything one request caused, in every process: entries whose
//!   metadata `request_id` is it, or (jobs it enqueued) whose `parent_request_id` is it
//!   -- the expression the `logs_request` index holds.
//! - `fingerprint`: one or several error fingerprints (entries of those error groups;
//!   the `logs_fingerprint` index).
//! - `trace_id` / `span_id`: the entries of one trace or span (32 or 16 hex digits, any
//!   case), by their columns' indexes (`storage::trace_fields`).
//!
//! One job a module: `params` hands out the query string's pairs, `shape` guards
//! `meta.*` nesting before anything is built, `parse` turns parameters into a
//! [`LogFilter`], `sql` renders it as conditions.

mod params;
mod parse;
mod shape;
mod sql;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use params::Params;
pub use parse::parse_age;
pub(crate) use parse::{parse_services, parse_time};
pub use shape::{check_shape, QueryLimits};

/// What to select, valid by construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub services: Vec<String>,
    /// Stored level spellings to match; `None` means every level.
    pub levels: Option<Vec<&'static str>>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// A ready ILIKE pattern (`%escaped text%`).
    pub message_pattern: Option<String>,
    /// Each entry: the metadata must contain at least one of these documents.
    pub metadata: Vec<Vec<Value>>,
    /// Entries of this request and of the jobs it enqueued.
    pub request_id: Option<String>,
    /// Error entries with one of these fingerprints.
    pub fingerprints: Vec<String>,
    /// Entries of this trace, and of this span (lowercase hex).
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// `(key, texts)` of `meta.KEY=VALUE` filters on declared keys
    /// (`storage::declared_keys`): also written as `meta_KEY = ANY(texts)` (the
    /// indexed texts of the filter's alternatives), which the key's index and
    /// TimescaleDB's bloom filters answer. The containment test above stays and decides;
    /// the column only narrows, and a row an alternative contains has one of these texts
    /// unless its value has no indexed text but equals an integer alternative as a
    /// number (a stored `42.0` for `meta.k=42`, docs/server.md).
    pub indexed_metadata: Vec<(String, Vec<String>)>,
}
