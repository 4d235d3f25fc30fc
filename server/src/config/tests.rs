//! The settings as read from variables: defaults, floors, problems and redaction.

use super::*;
use crate::storage::setting::StorageSetting;
use std::collections::HashMap;

fn settings_from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(|name| map.get(name).cloned())
}

/// The two required variables, then `extra`.
fn required_and(extra: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut pairs = vec![
        ("DATABASE_URL", "postgres://localhost/x"),
        ("LOG_INGESTION_API_KEYS", "a"),
    ];
    pairs.extend_from_slice(extra);
    settings_from(&pairs)
}

#[test]
fn defaults_apply_when_only_required_variables_are_set() {
    let settings = settings_from(&[
        ("DATABASE_URL", "postgres://localhost/x"),
        ("LOG_INGESTION_API_KEYS", "a, b"),
    ])
    .unwrap();
    assert_eq!(settings.port, 8080);
    assert_eq!(settings.rate_limit.rps, 100);
    assert_eq!(settings.rate_limit.burst, 200);
    assert_eq!(settings.limits.max_message_bytes, 65_536);
    assert_eq!(settings.api_keys.iter().count(), 2);
    assert!(settings.database.retention_days.is_none());
    assert_eq!(
        settings.connections.header_read_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(settings.body_read.total_timeout, Duration::from_secs(60));
    assert_eq!(settings.database.storage, StorageSetting::Auto);
    assert_eq!(settings.policy_check_interval, Duration::from_secs(300));
}

#[test]
fn the_storage_mode_is_one_of_three_names() {
    let chosen = required_and(&[("LOG_INGESTION_STORAGE", "timescaledb")]).unwrap();
    assert_eq!(chosen.database.storage, StorageSetting::Timescale);
    let error = required_and(&[("LOG_INGESTION_STORAGE", "timescale")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("LOG_INGESTION_STORAGE: must be auto, timescaledb or postgresql"),
        "{error}"
    );
}

#[test]
fn the_policy_check_interval_has_a_floor() {
    let error = required_and(&[("LOG_INGESTION_POLICY_CHECK_INTERVAL", "0s")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("LOG_INGESTION_POLICY_CHECK_INTERVAL: must be at least 100ms"),
        "{error}"
    );
}

#[test]
fn every_problem_is_reported_in_one_message() {
    let error = settings_from(&[
        ("LOG_INGESTION_PORT", "eighty"),
        ("LOG_INGESTION_RATE_LIMIT_RPS", "0"),
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("DATABASE_URL"), "{error}");
    assert!(error.contains("LOG_INGESTION_API_KEYS"), "{error}");
    assert!(error.contains("LOG_INGESTION_PORT"), "{error}");
    assert!(error.contains("LOG_INGESTION_RATE_LIMIT_RPS"), "{error}");
}

#[test]
fn worker_threads_default_to_half_the_cores_and_take_at_least_one() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        required_and(&[]).unwrap().worker_threads,
        (cores / 2).max(1)
    );
    let three = required_and(&[("LOG_INGESTION_WORKER_THREADS", "3")]).unwrap();
    assert_eq!(three.worker_threads, 3);
    let error = required_and(&[("LOG_INGESTION_WORKER_THREADS", "0")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("LOG_INGESTION_WORKER_THREADS"), "{error}");
}

#[test]
fn writers_must_leave_the_pool_a_connection() {
    let with = |writers: &str, pool: &str| {
        required_and(&[
            ("LOG_INGESTION_GROUP_COMMIT_WRITERS", writers),
            ("LOG_INGESTION_DATABASE_MAX_CONNECTIONS", pool),
        ])
    };
    let error = with("4", "4").unwrap_err().to_string();
    assert!(
        error.contains("LOG_INGESTION_GROUP_COMMIT_WRITERS: must be below"),
        "{error}"
    );
    assert_eq!(with("3", "4").map(|s| s.group_commit.writers).ok(), Some(3));
}

#[test]
fn a_list_of_blank_keys_is_rejected() {
    let error = settings_from(&[
        ("DATABASE_URL", "postgres://localhost/x"),
        ("LOG_INGESTION_API_KEYS", " , ,"),
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("LOG_INGESTION_API_KEYS"), "{error}");
}

#[test]
fn zero_timeouts_are_refused_by_name() {
    let error = required_and(&[
        ("LOG_INGESTION_HEADER_READ_TIMEOUT", "0s"),
        ("LOG_INGESTION_BODY_IDLE_TIMEOUT", "0ms"),
        ("LOG_INGESTION_MAX_UNAUTHENTICATED_CONNECTIONS", "0"),
    ])
    .unwrap_err()
    .to_string();
    for name in [
        "LOG_INGESTION_HEADER_READ_TIMEOUT",
        "LOG_INGESTION_BODY_IDLE_TIMEOUT",
        "LOG_INGESTION_MAX_UNAUTHENTICATED_CONNECTIONS",
    ] {
        assert!(error.contains(name), "{name} missing from {error}");
    }
}

#[test]
fn declared_keys_are_read_under_their_older_name_too_and_the_new_one_wins() {
    let keys = |pairs: &[(&str, &str)]| required_and(pairs).unwrap().database.declared_keys;
    assert_eq!(keys(&[("LOG_INGESTION_DECLARED_KEYS", "a,b")]), ["a", "b"]);
    assert_eq!(keys(&[("LOG_INGESTION_INDEXED_METADATA_KEYS", "c")]), ["c"]);
    assert_eq!(
        keys(&[
            ("LOG_INGESTION_INDEXED_METADATA_KEYS", "c"),
            ("LOG_INGESTION_DECLARED_KEYS", "a"),
        ]),
        ["a"]
    );
    assert!(keys(&[]).is_empty());
}

#[test]
fn read_side_indexes_are_a_key_list_and_a_switch() {
    let settings = required_and(&[
        ("LOG_INGESTION_DECLARED_KEYS", " user_id, ,request_id "),
        ("LOG_INGESTION_MESSAGE_TRIGRAM_INDEX", "on"),
    ])
    .unwrap();
    assert_eq!(settings.database.declared_keys, ["user_id", "request_id"]);
    assert!(settings.database.message_trigram_index);
    let error = required_and(&[("LOG_INGESTION_MESSAGE_TRIGRAM_INDEX", "yes")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("LOG_INGESTION_MESSAGE_TRIGRAM_INDEX: must be on or off"),
        "{error}"
    );
}

#[test]
fn durations_are_humantime_or_bare_seconds() {
    let settings = required_and(&[
        ("LOG_INGESTION_MAX_TIMESTAMP_AGE", "1d"),
        ("LOG_INGESTION_INFLIGHT_WAIT", "250ms"),
        ("LOG_INGESTION_SHUTDOWN_DEADLINE", "1m 30s"),
        ("LOG_INGESTION_BODY_READ_TIMEOUT", "90"),
    ])
    .unwrap();
    assert_eq!(
        settings.limits.max_timestamp_age,
        Duration::from_secs(86_400)
    );
    assert_eq!(settings.inflight_wait, Duration::from_millis(250));
    assert_eq!(settings.shutdown_deadline, Duration::from_secs(90));
    // A bare number is seconds (configurations written before humantime keep working).
    assert_eq!(settings.body_read.total_timeout, Duration::from_secs(90));
    let error = required_and(&[
        ("LOG_INGESTION_MAX_TIMESTAMP_AGE", "1 fortnight"),
        ("LOG_INGESTION_INFLIGHT_WAIT", "90 parsecs"),
    ])
    .unwrap_err()
    .to_string();
    for name in [
        "LOG_INGESTION_MAX_TIMESTAMP_AGE",
        "LOG_INGESTION_INFLIGHT_WAIT",
    ] {
        assert!(
            error.contains(&format!(
                "{name}: must be a duration like 500ms, 30s, 10m, 12h, 30d or 5y"
            )),
            "{name} missing from {error}"
        );
    }
}

#[test]
fn each_problem_names_what_was_expected_and_what_was_given() {
    let error = required_and(&[
        ("LOG_INGESTION_MAX_BATCH_ENTRIES", "many"),
        ("LOG_INGESTION_MAX_BODY_BYTES", "10"),
        ("LOG_INGESTION_RETENTION_DAYS", "0"),
        ("LOG_INGESTION_HOST", "localhost"),
    ])
    .unwrap_err();
    assert_eq!(
        error.problems,
        [
            "  LOG_INGESTION_RETENTION_DAYS: must be at least 1 (got 0)",
            "  LOG_INGESTION_HOST: must be an IP address (got \"localhost\")",
            "  LOG_INGESTION_MAX_BODY_BYTES: must be at least 1024 (got 10)",
            "  LOG_INGESTION_MAX_BATCH_ENTRIES: must be a whole number (got \"many\")",
        ]
    );
    assert!(error.to_string().starts_with("invalid configuration:\n  "));
}

#[test]
fn debug_output_never_shows_secrets() {
    let settings = settings_from(&[
        ("DATABASE_URL", "postgres://user:hunter2@localhost/x"),
        ("LOG_INGESTION_API_KEYS", "super-secret-key"),
    ])
    .unwrap();
    let shown = format!("{settings:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("super-secret-key"), "{shown}");
}

#[test]
fn the_read_side_has_small_bounded_defaults_and_refuses_an_unbounded_timeout() {
    let settings = required_and(&[]).unwrap();
    assert_eq!(settings.read.max_connections, 4);
    assert_eq!(settings.read.queue_wait, Duration::from_secs(1));
    assert_eq!(settings.read.statement_timeout, Duration::from_secs(10));
    let error = required_and(&[
        ("LOG_INGESTION_READ_STATEMENT_TIMEOUT", "0s"),
        ("LOG_INGESTION_READ_MAX_CONNECTIONS", "0"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("LOG_INGESTION_READ_STATEMENT_TIMEOUT"),
        "{error}"
    );
    assert!(
        error.contains("LOG_INGESTION_READ_MAX_CONNECTIONS"),
        "{error}"
    );
}

#[test]
fn instance_settings_default_to_one_instance_reading_the_primary() {
    let settings = settings_from(&[
        ("DATABASE_URL", "postgres://primary/x"),
        ("LOG_INGESTION_API_KEYS", "a"),
    ])
    .unwrap();
    assert!(settings.database.read_url.is_none());
    assert!(settings.shared_rate_limits.is_none());
    assert!(settings
        .instance_id
        .as_str()
        .ends_with(&std::process::id().to_string()));
}

#[test]
fn instance_settings_are_read_and_checked() {
    let settings = settings_from(&[
        ("DATABASE_URL", "postgres://primary/x"),
        ("LOG_INGESTION_API_KEYS", "a"),
        ("LOG_INGESTION_READ_DATABASE_URL", "postgres://replica/x"),
        ("LOG_INGESTION_INSTANCE_ID", "web-2"),
        ("LOG_INGESTION_SHARED_RATE_LIMITS", "on"),
    ])
    .unwrap();
    assert_eq!(
        settings.database.read_url.as_deref(),
        Some("postgres://replica/x")
    );
    assert_eq!(settings.instance_id.as_str(), "web-2");
    let shared = settings.shared_rate_limits.unwrap();
    assert_eq!(shared.store_url, "postgres://primary/x");
    assert_eq!(shared.sync_interval, Duration::from_millis(100));

    let error = settings_from(&[
        ("DATABASE_URL", "postgres://primary/x"),
        ("LOG_INGESTION_API_KEYS", "a"),
        ("LOG_INGESTION_INSTANCE_ID", "web 2"),
        ("LOG_INGESTION_SHARED_RATE_LIMITS", "cluster"),
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("LOG_INGESTION_INSTANCE_ID"), "{error}");
    assert!(
        error.contains("LOG_INGESTION_SHARED_RATE_LIMITS"),
        "{error}"
    );
}

#[test]
fn shared_rate_limits_are_also_read_under_their_older_name() {
    let shared = |vars: &[(&str, &str)]| {
        let mut all = vec![
            ("DATABASE_URL", "postgres://primary/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
        ];
        all.extend_from_slice(vars);
        settings_from(&all).unwrap().shared_rate_limits.is_some()
    };
    assert!(!shared(&[]));
    assert!(shared(&[("LOG_INGESTION_RATE_LIMIT_SCOPE", "cluster")]));
    assert!(!shared(&[("LOG_INGESTION_RATE_LIMIT_SCOPE", "instance")]));
    // The current name wins.
    assert!(!shared(&[
        ("LOG_INGESTION_SHARED_RATE_LIMITS", "off"),
        ("LOG_INGESTION_RATE_LIMIT_SCOPE", "cluster"),
    ]));
    let error = settings_from(&[
        ("DATABASE_URL", "postgres://primary/x"),
        ("LOG_INGESTION_API_KEYS", "a"),
        ("LOG_INGESTION_RATE_LIMIT_SCOPE", "global"),
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("LOG_INGESTION_RATE_LIMIT_SCOPE"), "{error}");
}
