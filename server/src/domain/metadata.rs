//! An entry's metadata: a JSON object within the size and depth caps, with sensitive
//! keys replaced by `"[FILTERED]"` at any depth and NUL made storable. Held as the JSON
//! text that will be stored. It never stores a value it has not filtered.

use serde_json::{Map, Value};

use super::text::storable_text;
use crate::config::EntryLimits;

/// What a sensitive key's value is stored as.
pub const FILTERED: &str = "[FILTERED]";

/// Key fragments that mark a value as sensitive, compared against the key lowercased
/// with everything but letters and digits removed (`API-Key`, `api_key` -> `apikey`).
const SENSITIVE_FRAGMENTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "creditcard",
    "cardnumber",
    "cvv",
    "ssn",
    "socialsecurity",
    "privatekey",
    "accesskey",
    "cookie",
    "sessionid",
];

/// Validated, filtered metadata as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata(String);

impl Metadata {
    /// `null` or absent metadata is `None`; anything but an object is an error.
    pub fn parse(value: Option<Value>, limits: &EntryLimits) -> Result<Option<Self>, String> {
        let object = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(object)) => object,
            Some(_) => return Err("metadata: must be a JSON object".to_owned()),
        };
        let depth = object_depth(&object);
        if depth > limits.max_metadata_depth {
            return Err(format!(
                "metadata: nested {depth} levels deep, at most {} allowed",
                limits.max_metadata_depth
            ));
        }
        let cleaned = Value::Object(clean_object(object));
        let text = cleaned.to_string();
        if text.len() > limits.max_metadata_bytes {
            return Err(format!(
                "metadata: {} bytes as JSON, at most {} allowed",
                text.len(),
                limits.max_metadata_bytes
            ));
        }
        Ok(Some(Metadata(text)))
    }

    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// Whether a metadata key names a secret.
pub fn is_sensitive_key(key: &str) -> bool {
    let normalized: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SENSITIVE_FRAGMENTS
        .iter()
        .any(|fragment| normalized.contains(fragment))
}

fn object_depth(object: &Map<String, Value>) -> usize {
    1 + object.values().map(value_depth).max().unwrap_or(0)
}

fn value_depth(value: &Value) -> usize {
    match value {
        Value::Object(object) => object_depth(object),
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn clean_object(object: Map<String, Value>) -> Map<String, Value> {
    object
        .into_iter()
        .map(|(key, value)| {
            let value = if is_sensitive_key(&key) {
                Value::String(FILTERED.to_owned())
            } else {
                clean_value(value)
            };
            (storable_text(key), value)
        })
        .collect()
}

fn clean_value(value: Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(clean_object(object)),
        Value::Array(items) => Value::Array(items.into_iter().map(clean_value).collect()),
        Value::String(text) => Value::String(storable_text(text)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Option<Metadata>, String> {
        Metadata::parse(Some(value), &EntryLimits::default())
    }

    #[test]
    fn sensitive_keys_are_filtered_at_any_depth() {
        let metadata = parse(json!({
            "user": {"Password": "p", "profile": {"API-Key": "k", "name": "n"}},
            "items": [{"credit_card": "4111"}],
            "authorization": {"nested": "object"}
        }))
        .unwrap()
        .unwrap();
        let stored: Value = serde_json::from_str(metadata.as_json()).unwrap();
        assert_eq!(stored["user"]["Password"], FILTERED);
        assert_eq!(stored["user"]["profile"]["API-Key"], FILTERED);
        assert_eq!(stored["user"]["profile"]["name"], "n");
        assert_eq!(stored["items"][0]["credit_card"], FILTERED);
        assert_eq!(stored["authorization"], FILTERED);
    }

    #[test]
    fn non_objects_are_rejected() {
        assert!(parse(json!([1, 2])).is_err());
        assert!(parse(json!("text")).is_err());
        assert_eq!(parse(Value::Null), Ok(None));
    }

    #[test]
    fn depth_beyond_the_cap_is_rejected() {
        let mut value = json!("leaf");
        for _ in 0..20 {
            value = json!({ "k": value });
        }
        assert!(parse(value).unwrap_err().contains("deep"));
    }

    #[test]
    fn size_beyond_the_cap_is_rejected() {
        let big = "x".repeat(70_000);
        assert!(parse(json!({ "big": big })).unwrap_err().contains("bytes"));
    }

    #[test]
    fn nul_in_keys_and_values_is_made_storable() {
        let metadata = parse(json!({"a\u{0}b": "c\u{0}d"})).unwrap().unwrap();
        assert!(!metadata.as_json().contains("\\u0000"));
    }
}
