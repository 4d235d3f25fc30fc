//! A rule body may name a saved search instead of spelling its search out:
//! `"saved_search": "<short id>"` takes the filters of a saved search the caller may see
//! (its time range left out: the rule's window replaces it) as the rule's `search`, and
//! keeps the short id in the rule's annotations (`saved_search`) so the rule shows where
//! its search came from. The search is copied when the rule is saved: changing the saved
//! search later does not change the rule.

use serde_json::{Map, Value};
use sqlx::PgConnection;

use super::AlertsApiError;
use crate::auth::Actor;
use crate::saved_searches::store::{self, StoreError};

/// The field naming a saved search.
const FIELD: &str = "saved_search";
/// Parameters of a saved search that a rule's window replaces.
const TIME_PARAMETERS: [&str; 4] = ["since", "until", "cursor", "limit"];

/// `body` with its `saved_search` (if any) replaced by that search's filters.
pub(super) async fn resolve(
    conn: &mut PgConnection,
    actor: &Actor,
    mut body: Value,
) -> Result<Value, AlertsApiError> {
    let Some(fields) = body.as_object_mut() else {
        return Ok(body);
    };
    let Some(named) = fields.remove(FIELD) else {
        return Ok(body);
    };
    let refuse = |problem: String| AlertsApiError::InvalidBody(vec![format!("{FIELD}: {problem}")]);
    let Value::String(short_id) = named else {
        return Err(refuse(
            "must be a saved search's short id (a string)".into(),
        ));
    };
    if fields.contains_key("search") {
        return Err(refuse(
            "give either search or saved_search, not both".into(),
        ));
    }
    let saved = match store::find_by_short_id(conn, actor, &short_id).await {
        Ok(saved) => saved,
        Err(StoreError::Database(error)) => return Err(error.into()),
        Err(_) => {
            return Err(refuse(
                "no saved search with this id is visible to you".into(),
            ))
        }
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&saved.search)
        .map_err(|_| refuse("the saved search's query string cannot be read".into()))?;
    fields.insert("search".into(), Value::Object(search_object(pairs)));
    let annotations = fields
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(annotations) = annotations.as_object_mut() {
        annotations
            .entry(FIELD)
            .or_insert(Value::String(saved.short_id));
    }
    Ok(body)
}

/// The rule's `search` object: each filter once, a repeated one as a list.
fn search_object(pairs: Vec<(String, String)>) -> Map<String, Value> {
    let mut search = Map::new();
    for (key, value) in pairs {
        if TIME_PARAMETERS.contains(&key.as_str()) {
            continue;
        }
        match search.get_mut(&key) {
            None => {
                search.insert(key, Value::String(value));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                search.insert(key, Value::Array(vec![first, Value::String(value)]));
            }
        }
    }
    search
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parameters_are_left_out_and_repeats_become_lists() {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(
            "service=checkout&level=error&level=fatal&since=1h&limit=50&q=timeout",
        )
        .unwrap();
        let search = search_object(pairs);
        assert_eq!(
            Value::Object(search),
            serde_json::json!({"service": "checkout", "level": ["error", "fatal"], "q": "timeout"})
        );
    }
}
