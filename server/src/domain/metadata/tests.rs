//! The metadata reader's tests: value and key checks, the sensitive-key filter, the depth and size caps,
//! the stored text and the exception details noted while reading.

use super::*;
use serde_json::{json, Value};

fn parse_with(value: Value, limits: &EntryLimits) -> Result<Option<Metadata>, String> {
    let raw = serde_json::value::to_raw_value(&value).unwrap();
    Metadata::parse(Some(&raw), limits)
}

fn parse(value: Value) -> Result<Option<Metadata>, String> {
    parse_with(value, &EntryLimits::default())
}

fn parse_text(text: &str) -> Result<Option<Metadata>, String> {
    let raw = RawValue::from_string(text.to_owned()).unwrap();
    Metadata::parse(Some(&raw), &EntryLimits::default())
}

#[test]
fn values_json_text_cannot_hold_are_refused_in_the_decoders_words() {
    let surrogate = parse_text(r#"{"a":"\ud800"}"#).unwrap_err();
    assert!(
        surrogate.starts_with("metadata: invalid \\u escape")
            && surrogate.contains("valid Unicode"),
        "{surrogate}"
    );
    let huge = parse_text(r#"{"n":1e400}"#).unwrap_err();
    assert!(huge.starts_with("metadata: number out of range"), "{huge}");
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
    let depth_allowed = |value: Value, depth: usize| {
        let limits = EntryLimits {
            max_metadata_depth: depth,
            ..EntryLimits::default()
        };
        parse_with(value, &limits).is_ok()
    };
    assert!(depth_allowed(json!({"a": 1}), 1));
    let three = json!({"a": [{"b": 1}], "c": {}});
    assert!(depth_allowed(three.clone(), 3));
    assert!(!depth_allowed(three, 2));
    // Under a sensitive key too: the value is read before it is dropped.
    assert!(!depth_allowed(json!({"password": {"a": {"b": 1}}}), 2));
    // Far past serde's own nesting limit, stopped at the cap with the cap's text.
    let deep = format!("{}1{}", r#"{"k":["#.repeat(5_000), "]}".repeat(5_000));
    let raw = RawValue::from_string(deep).unwrap();
    let problem = Metadata::parse(Some(&raw), &EntryLimits::default()).unwrap_err();
    assert!(problem.contains("nested more than 16 levels"), "{problem}");
}

#[test]
fn the_stored_text_is_what_encoding_the_value_wrote() {
    let value = json!({
        "n": [1, -2, 1.5, 1e300, 18446744073709551615u64, null, true, false],
        "s": "quote \" backslash \\ tab \t é 😀 \u{1}",
        "o": {"e": {}, "a": []},
    });
    let stored = parse(value.clone()).unwrap().unwrap();
    let reparsed: Value = serde_json::from_str(stored.as_json()).unwrap();
    assert_eq!(reparsed, value);
    // A value of sorted keys (as a `Value` holds them) is written byte for byte.
    assert_eq!(stored.as_json(), serde_json::to_string(&value).unwrap());
    let raw = RawValue::from_string(r#"{ "b" : 1.0e2 , "a" : "\u00e9" }"#.into()).unwrap();
    let stored = Metadata::parse(Some(&raw), &EntryLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(stored.as_json(), r#"{"b":100.0,"a":"é"}"#);
}

#[test]
fn size_beyond_the_cap_is_rejected() {
    let big = "x".repeat(70_000);
    assert!(parse(json!({ "big": big })).unwrap_err().contains("bytes"));
}

#[test]
fn exception_details_are_noted_in_the_one_read_and_match_a_read_of_the_stored_text() {
    let metadata = parse(json!({
        "exception": {"class": "KeyError", "message": "key \"a\" not found",
                      "backtrace": ["gems/x.rb:1:in `y'", "", "app/a.rb:2:in `b'"],
                      "token": "t"},
        "exception.type": "Flat",
        "kind": "exception",
        "fingerprint": ["a", 1],
        "password": {"exception": {"class": "Hidden"}},
    }))
    .unwrap()
    .unwrap();
    let noted = metadata.error_details();
    assert_eq!(noted.class().as_deref(), Some("KeyError"));
    assert_eq!(noted.message().as_deref(), Some("key \"a\" not found"));
    assert_eq!(noted.kind().as_deref(), Some("exception"));
    assert_eq!(noted.explicit_fingerprint(), Some(r#"["a",1]"#));
    let frames: Vec<String> = noted.frames().map(|f| f.into_owned()).collect();
    assert_eq!(frames, ["gems/x.rb:1:in `y'", "app/a.rb:2:in `b'"]);
    let read = error_details_of(metadata.as_json());
    assert_eq!(read.class(), noted.class());
    assert_eq!(read.frames().count(), 2);
    // Nothing noted under a sensitive key, and a string of lines is a backtrace too.
    let lines = parse(json!({"exception.stacktrace": "a.rb:1\n\nb.rb:2", "x": 1}))
        .unwrap()
        .unwrap();
    let details = lines.error_details();
    assert_eq!(details.class(), None);
    assert_eq!(details.frames().count(), 2);
    assert!(details.any_exception());
    let plain = parse(json!({"request_id": "r"})).unwrap().unwrap();
    assert!(!plain.error_details().any_exception());
}

#[test]
fn nul_in_keys_and_values_is_made_storable() {
    let metadata = parse(json!({"a\u{0}b": "c\u{0}d"})).unwrap().unwrap();
    assert!(!metadata.as_json().contains("\\u0000"));
}
