//! The readers of a rule's fields: each checks one field's type and bounds and adds a
//! problem naming the field when it is wrong.

use super::*;

/// Collects the problems of one body, each prefixed with its field's path.
pub(super) struct Problems(pub(super) Vec<String>);

impl Problems {
    pub(super) fn add(&mut self, field: &str, problem: impl std::fmt::Display) {
        self.0.push(format!("{field}: {problem}"));
    }
}

pub(super) fn valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && name.trim() == name
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '.' | ':' | '/' | '-'))
}

/// A key quoted for a problem, cut short.
pub(super) fn quoted(key: &str) -> String {
    format!(
        "{:?}",
        crate::ingest::client_text::truncated(key, MAX_KEY_CHARS)
    )
}

pub(super) fn forbid(
    fields: &Map<String, Value>,
    field: &str,
    kind: Kind,
    problems: &mut Problems,
) {
    if fields.get(field).is_some_and(|v| !v.is_null()) {
        problems.add(field, format!("not for {} rules", kind.as_str()));
    }
}

pub(super) fn integer(
    fields: &Map<String, Value>,
    field: &str,
    min: i64,
    max: i64,
    problems: &mut Problems,
) -> Option<i64> {
    let value = fields.get(field)?;
    match value.as_i64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            problems.add(field, format!("must be a whole number from {min} to {max}"));
            None
        }
    }
}

/// A duration field (`30s`, `5m`, `2h`, `1d`, `1w`; `0s` where zero is allowed).
pub(super) fn duration(
    fields: &Map<String, Value>,
    field: &str,
    min: Duration,
    max: Duration,
    problems: &mut Problems,
) -> Option<Duration> {
    let value = fields.get(field)?;
    let parsed = value.as_str().and_then(|text| {
        if text == "0" {
            Some(Duration::zero())
        } else {
            parse_age(text)
        }
    });
    match parsed {
        Some(d) if d >= min && d <= max => Some(d),
        _ => {
            problems.add(
                field,
                format!(
                    "must be a duration like 30s, 5m, 2h or 1d, from {} to {}",
                    show_duration(min),
                    show_duration(max)
                ),
            );
            None
        }
    }
}

pub(super) fn search_field(
    fields: &Map<String, Value>,
    field: &str,
    problems: &mut Problems,
    required: bool,
) -> Search {
    let Some(value) = fields.get(field) else {
        if required {
            problems.add(
                field,
                "is required: filter parameters as GET /api/v1/logs takes them",
            );
        }
        return Search::default();
    };
    let Some(object) = value.as_object() else {
        problems.add(
            field,
            "must be an object of GET /api/v1/logs filter parameters",
        );
        return Search::default();
    };
    if object.len() > MAX_SEARCH_PARAMS {
        problems.add(field, format!("at most {MAX_SEARCH_PARAMS} parameters"));
        return Search::default();
    }
    let mut pairs = Vec::new();
    for (key, value) in object {
        let path = format!(
            "{field}.{}",
            crate::ingest::client_text::truncated(key, MAX_KEY_CHARS)
        );
        if NOT_IN_A_SEARCH.contains(&key.as_str()) {
            problems.add(
                &path,
                "not in a rule's search (the rule's window sets the time range)",
            );
            continue;
        }
        let values: Vec<String> = match value {
            Value::String(text) => vec![text.clone()],
            Value::Number(n) => vec![n.to_string()],
            Value::Bool(b) => vec![b.to_string()],
            Value::Array(items) if items.len() <= MAX_SEARCH_PARAMS => items
                .iter()
                .filter_map(|item| match item {
                    Value::String(text) => Some(text.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .collect(),
            _ => {
                problems.add(
                    &path,
                    "must be a string, a number, a boolean, or a list of them",
                );
                continue;
            }
        };
        if values
            .iter()
            .any(|v| v.chars().count() > MAX_SEARCH_VALUE_CHARS)
        {
            problems.add(
                &path,
                format!("a value has at most {MAX_SEARCH_VALUE_CHARS} characters"),
            );
            continue;
        }
        pairs.extend(values.into_iter().map(|v| (key.clone(), v)));
    }
    let search = Search { pairs };
    // The read side's parser decides, with its own messages.
    let now = Utc::now();
    if let Err(problem) = search.filter(now - Duration::minutes(1), now) {
        for one in problem.split("; ") {
            problems.add(field, one);
        }
    }
    search
}

/// `labels` or `annotations`: an object of string values with identifier keys.
pub(super) fn string_map(
    fields: &Map<String, Value>,
    field: &str,
    max_value_chars: usize,
    problems: &mut Problems,
) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let Some(value) = fields.get(field) else {
        return map;
    };
    let Some(object) = value.as_object() else {
        problems.add(field, "must be an object of strings");
        return map;
    };
    if object.len() > MAX_LABELS {
        problems.add(field, format!("at most {MAX_LABELS} entries"));
        return map;
    }
    for (key, value) in object {
        let valid_key = key.chars().count() <= MAX_KEY_CHARS
            && key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            problems.add(
                &format!("{field}.{}", quoted(key)),
                format!(
                    "a key is 1 to {MAX_KEY_CHARS} letters, digits or _, not starting with a digit"
                ),
            );
            continue;
        }
        match value {
            Value::String(text)
                if text.chars().count() <= max_value_chars && !text.contains('\0') =>
            {
                map.insert(key.clone(), text.clone());
            }
            _ => problems.add(
                &format!("{field}.{key}"),
                format!("must be a string of at most {max_value_chars} characters"),
            ),
        }
    }
    map
}

pub(super) fn channel_names(fields: &Map<String, Value>, problems: &mut Problems) -> Vec<String> {
    let Some(value) = fields.get("channels") else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        problems.add("channels", "must be a list of channel names");
        return Vec::new();
    };
    if items.len() > MAX_CHANNELS {
        problems.add("channels", format!("at most {MAX_CHANNELS} channels"));
        return Vec::new();
    }
    let mut names: Vec<String> = Vec::new();
    for item in items {
        match item.as_str() {
            Some(name) if valid_channel_name(name) => {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
            _ => problems.add(
                "channels",
                format!(
                    "{} is not a channel name (1 to {MAX_CHANNEL_CHARS} of a-z, 0-9, _ and -)",
                    crate::ingest::client_text::truncated(&item.to_string(), MAX_KEY_CHARS)
                ),
            ),
        }
    }
    names
}

/// `[a-z0-9_-]{1,64}`, as channels are named.
pub fn valid_channel_name(name: &str) -> bool {
    (1..=MAX_CHANNEL_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
