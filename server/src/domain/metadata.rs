//! An entry's metadata: a JSON object within the size and depth caps, with sensitive
//! keys replaced by `"[FILTERED]"` at any depth and NUL made storable. Held as the JSON
//! text that will be stored. It never stores a value it has not filtered.

use serde_json::{Map, Value};

use super::text::storable_text;
use crate::config::EntryLimits;

/// What a sensitive key's value is stored as.
pub const FILTERED: &str = "[FILTERED]";

/// Words that mark a value as sensitive when they are one whole word of the key.
/// A key is split into words at anything but letters and digits, at camelCase humps
/// and between letters and digits (`userPassword`, `ACCESS_TOKEN`, `password2`), so
/// `tokens_used`, `class_name` or `is_snapshot` are ordinary keys.
const SENSITIVE_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "credential",
    "credentials",
    "cvv",
    "ssn",
    "cookie",
];

/// Compounds that mark a value as sensitive when the key, lowercased with everything
/// but letters and digits removed, equals or ends with one (`api_key`, `X-API-Key`,
/// `creditCardNumber`, `myapikey`).
const SENSITIVE_COMPOUNDS: &[&str] = &[
    "apikey",
    "xapikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "creditcard",
    "cardnumber",
    "socialsecurity",
    "socialsecuritynumber",
    "sessionid",
    "accesstoken",
    "authtoken",
    "refreshtoken",
    "clientsecret",
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
        // Checked before the recursive cleaning below, which it keeps shallow.
        let depth = object_depth(&object, limits.max_metadata_depth);
        if depth > limits.max_metadata_depth {
            return Err(format!(
                "metadata: nested more than {} levels deep, at most {} allowed",
                limits.max_metadata_depth, limits.max_metadata_depth
            ));
        }
        let cleaned = Value::Object(clean_object(object));
        // `serde_json::to_string`, not `Display`: the formatter's per-write calls
        // showed in the profile. Encoding a `Value` with string keys cannot fail.
        let text = serde_json::to_string(&cleaned)
            .map_err(|_| "metadata: cannot be encoded as JSON".to_owned())?;
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

/// Whether a metadata key names a secret: one of its words is a sensitive word, or
/// the whole key ends with a sensitive compound. Case never matters.
pub fn is_sensitive_key(key: &str) -> bool {
    ascii_key_is_sensitive(key).unwrap_or_else(|| words_are_sensitive(key))
}

/// The rule of `is_sensitive_key` over `key_words`: the reference, for any key.
fn words_are_sensitive(key: &str) -> bool {
    let words = key_words(key);
    if words
        .iter()
        .any(|word| SENSITIVE_WORDS.contains(&word.as_str()))
    {
        return true;
    }
    let normalized = words.concat();
    SENSITIVE_COMPOUNDS
        .iter()
        .any(|compound| normalized.ends_with(compound))
}

/// Keys up to this long take the allocation-free path when they are ASCII.
const MAX_ASCII_KEY_BYTES: usize = 64;

/// The same rule as `words_are_sensitive`, for short ASCII keys (nearly every key)
/// without allocating: the profile showed the per-key `Vec`s and `String`s of
/// `key_words` among the server's top costs. `None` for other keys. The two are
/// proved equal by a property test.
fn ascii_key_is_sensitive(key: &str) -> Option<bool> {
    let bytes = key.as_bytes();
    if bytes.len() > MAX_ASCII_KEY_BYTES || !bytes.is_ascii() {
        return None;
    }
    let mut normalized = [0u8; MAX_ASCII_KEY_BYTES];
    let (mut len, mut word_start) = (0, 0);
    let mut sensitive_word = false;
    let mut end_word = |normalized: &[u8], word_start: &mut usize, len: usize| {
        if len > *word_start {
            let word = &normalized[*word_start..len];
            sensitive_word |= SENSITIVE_WORDS.iter().any(|w| w.as_bytes() == word);
            *word_start = len;
        }
    };
    for (index, &c) in bytes.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            end_word(&normalized, &mut word_start, len);
            continue;
        }
        if let Some(&previous) = index.checked_sub(1).and_then(|i| bytes.get(i)) {
            let next = bytes.get(index + 1).copied();
            let hump = previous.is_ascii_lowercase() && c.is_ascii_uppercase();
            let acronym_end = previous.is_ascii_uppercase()
                && c.is_ascii_uppercase()
                && next.is_some_and(|n| n.is_ascii_lowercase());
            let digit_edge = previous.is_ascii_alphanumeric()
                && (previous.is_ascii_digit() != c.is_ascii_digit());
            if hump || acronym_end || digit_edge {
                end_word(&normalized, &mut word_start, len);
            }
        }
        normalized[len] = c.to_ascii_lowercase();
        len += 1;
    }
    end_word(&normalized, &mut word_start, len);
    let normalized = &normalized[..len];
    Some(
        sensitive_word
            || SENSITIVE_COMPOUNDS
                .iter()
                .any(|compound| normalized.ends_with(compound.as_bytes())),
    )
}

/// A key's words, lowercased: split at anything but letters and digits, at a
/// lowercase-to-uppercase hump (`apiKey`), at the end of an acronym (`APIKey`) and
/// between letters and digits.
fn key_words(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (index, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if let Some(&previous) = index.checked_sub(1).and_then(|i| chars.get(i)) {
            let next = chars.get(index + 1).copied();
            let hump = previous.is_lowercase() && c.is_uppercase();
            let acronym_end =
                previous.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase);
            let digit_edge =
                previous.is_alphanumeric() && (previous.is_numeric() != c.is_numeric());
            if (hump || acronym_end || digit_edge) && !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// How deeply `object` nests (an object of scalars is 1), counted without recursion
/// and only as far as `limit + 1`: past the cap the exact depth does not matter.
fn object_depth(object: &Map<String, Value>, limit: usize) -> usize {
    let mut deepest = 1;
    let mut pending: Vec<(&Value, usize)> = object.values().map(|value| (value, 1)).collect();
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(object) => Box::new(object.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        let depth = depth + 1;
        deepest = deepest.max(depth);
        if deepest > limit {
            return deepest;
        }
        pending.extend(children.map(|child| (child, depth)));
    }
    deepest
}

/// Filters and makes storable in place: rebuilding every map cost an allocation per
/// key. Only a map with a NUL in a key (rare) is rebuilt, under the keys' storable
/// spelling. Recursion is safe: the depth was checked first.
fn clean_object(mut object: Map<String, Value>) -> Map<String, Value> {
    if object.keys().any(|key| key.contains('\0')) {
        return object
            .into_iter()
            .map(|(key, mut value)| {
                clean_entry(&key, &mut value);
                (storable_text(key), value)
            })
            .collect();
    }
    for (key, value) in object.iter_mut() {
        clean_entry(key, value);
    }
    object
}

fn clean_entry(key: &str, value: &mut Value) {
    if is_sensitive_key(key) {
        *value = Value::String(FILTERED.to_owned());
    } else {
        clean_value(value);
    }
}

fn clean_value(value: &mut Value) {
    match value {
        Value::Object(object) => *object = clean_object(std::mem::take(object)),
        Value::Array(items) => items.iter_mut().for_each(clean_value),
        Value::String(text) if text.contains('\0') => {
            *text = storable_text(std::mem::take(text));
        }
        _ => {}
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
    fn keys_split_into_words_at_separators_humps_acronyms_and_digits() {
        assert_eq!(key_words("X-API-Key"), ["x", "api", "key"]);
        assert_eq!(key_words("creditCardNumber"), ["credit", "card", "number"]);
        assert_eq!(key_words("APIKey"), ["api", "key"]);
        assert_eq!(key_words("password2"), ["password", "2"]);
        assert_eq!(key_words("__a__"), ["a"]);
    }

    #[test]
    fn sensitive_keys_in_any_spelling_are_sensitive() {
        for key in [
            "api_key",
            "apiKey",
            "APIKey",
            "X-API-Key",
            "x_api_key",
            "credit_card",
            "creditCardNumber",
            "card_number",
            "user_password",
            "Password",
            "PASSWORD",
            "Authorization",
            "session_id",
            "sessionId",
            "ACCESS_TOKEN",
            "refreshToken",
            "client_secret",
            "ssn",
            "cvv",
            "Set-Cookie",
            "passwd",
            "private_key",
            "aws_secret_access_key",
            "social_security_number",
        ] {
            assert!(is_sensitive_key(key), "{key} should be sensitive");
        }
    }

    #[test]
    fn ordinary_keys_containing_sensitive_fragments_are_kept() {
        // `passport_country` is kept on purpose: `passport` is not `password`.
        for key in [
            "class_name",
            "business_name",
            "is_snapshot",
            "tokens_used",
            "passport_country",
            "tokenizer",
            "secretary",
            "key",
            "session",
            "card_type",
            "api_version",
        ] {
            assert!(!is_sensitive_key(key), "{key} should be kept");
        }
    }

    #[test]
    fn ordinary_keys_keep_their_values() {
        let metadata = parse(json!({
            "class_name": "User",
            "business_name": "Acme",
            "is_snapshot": true,
            "tokens_used": 42,
            "passport_country": "NL",
            "nested": {"api_key": "k", "class_name": "Admin"}
        }))
        .unwrap()
        .unwrap();
        let stored: Value = serde_json::from_str(metadata.as_json()).unwrap();
        assert_eq!(stored["class_name"], "User");
        assert_eq!(stored["business_name"], "Acme");
        assert_eq!(stored["is_snapshot"], true);
        assert_eq!(stored["tokens_used"], 42);
        assert_eq!(stored["passport_country"], "NL");
        assert_eq!(stored["nested"]["class_name"], "Admin");
        assert_eq!(stored["nested"]["api_key"], FILTERED);
    }

    proptest::proptest! {
        #[test]
        fn the_ascii_path_agrees_with_the_word_rule(
            key in "[a-zA-Z0-9_ .-]{0,70}|(api|API|Key|key|_|secret|Token|TOKEN|SSN|PWD|Id|ID|session|2|x|-|card|Number|my|My){0,8}",
        ) {
            if let Some(fast) = ascii_key_is_sensitive(&key) {
                proptest::prop_assert_eq!(fast, words_are_sensitive(&key), "{}", key);
            }
        }
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
    fn depth_counts_objects_and_arrays_alike() {
        let object = |value: Value| match value {
            Value::Object(object) => object,
            _ => unreachable!(),
        };
        assert_eq!(object_depth(&object(json!({"a": 1})), 16), 1);
        assert_eq!(
            object_depth(&object(json!({"a": [{"b": 1}], "c": {}})), 16),
            3
        );
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!({ "k": [deep] });
        }
        // Counting stops just past the limit.
        assert_eq!(object_depth(&object(deep), 5), 6);
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
