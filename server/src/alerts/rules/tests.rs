//! Rule parsing: defaults, bounds, and one problem per bad field.

use super::*;

fn checkout_errors() -> Value {
    json!({
        "name": "checkout errors",
        "kind": "count",
        "search": {"service": "checkout", "min_level": "error"},
        "op": ">",
        "threshold": 10,
        "window": "5m",
        "for": "2m",
        "labels": {"team": "payments"},
        "annotations": {"summary": "checkout is failing"},
        "channels": ["ops-webhook"],
    })
}

#[test]
fn a_count_rule_reads_with_its_defaults_and_round_trips() {
    let rule = Rule::parse(&checkout_errors(), Some(&[])).unwrap();
    assert_eq!(rule.kind, Kind::Count);
    assert_eq!(rule.interval, Duration::minutes(1));
    assert_eq!(rule.hold, Duration::minutes(2));
    assert_eq!(rule.repeat_interval, Duration::hours(4));
    assert_eq!(rule.max_series, DEFAULT_MAX_SERIES);
    assert_eq!(Rule::parse(&rule.to_json(), None).unwrap(), rule);
}

#[test]
fn every_bad_field_is_named() {
    let mut body = checkout_errors();
    body["window"] = json!("5 minutes");
    body["threshold"] = json!("ten");
    body["search"]["level"] = json!("loud");
    body["search"]["since"] = json!("1h");
    body["channels"] = json!(["Ops Webhook"]);
    body["labels"]["alertname"] = json!("x");
    body["colour"] = json!("red");
    let problems = Rule::parse(&body, Some(&[])).unwrap_err();
    for field in [
        "window:",
        "threshold:",
        "search: level:",
        "search.since:",
        "channels:",
        "labels.alertname:",
        "\"colour\": unknown field",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(field)),
            "{field} in {problems:?}"
        );
    }
}

#[test]
fn kinds_refuse_the_fields_they_do_not_use() {
    let problems = Rule::parse(
        &json!({"name": "n", "kind": "new_error", "window": "5m", "threshold": 3,
                "search": {"service": "a"}, "group_by": "service"}),
        Some(&[]),
    )
    .unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:?}");
    let ratio = Rule::parse(
        &json!({"name": "n", "kind": "ratio", "window": "5m", "threshold": 0.1,
                "search": {"level": "error"}}),
        Some(&[]),
    )
    .unwrap_err();
    assert!(
        ratio.iter().any(|p| p.starts_with("base_search:")),
        "{ratio:?}"
    );
}

#[test]
fn group_by_a_metadata_key_must_be_declared() {
    let mut body = checkout_errors();
    body["group_by"] = json!("meta.tenant");
    let problems = Rule::parse(&body, Some(&["region".to_owned()])).unwrap_err();
    assert!(
        problems[0].starts_with("group_by: meta.tenant is not a declared"),
        "{problems:?}"
    );
    let rule = Rule::parse(&body, Some(&["tenant".to_owned()])).unwrap();
    assert_eq!(rule.group_by, Some(GroupBy::Meta("tenant".to_owned())));
}

#[test]
fn sizes_are_bounded() {
    let mut body = checkout_errors();
    body["name"] = json!("n".repeat(MAX_NAME_CHARS + 1));
    body["annotations"]["summary"] = json!("s".repeat(MAX_ANNOTATION_VALUE_CHARS + 1));
    body["channels"] = json!((0..=MAX_CHANNELS)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>());
    body["max_series"] = json!(MAX_SERIES + 1);
    body["interval"] = json!("2d");
    let problems = Rule::parse(&body, Some(&[])).unwrap_err();
    assert_eq!(problems.len(), 5, "{problems:?}");
}
