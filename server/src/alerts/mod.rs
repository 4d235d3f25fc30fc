//! Alerts: rules evaluated over the stored entries and error groups, the state of each
//! (rule, series) kept in PostgreSQL, and the notifications every state transition
//! writes to the outbox (`alert_notifications`) in the same transaction, which the
//! delivery worker sends to the rule's channels (webhook, Slack). docs/alerts.md is
//! the user's reference.
//!
//! Rules (`rules`) are kept by the API (`api`: rules, silences, what fires, channels,
//! the outbox) and the rules file (`file`); every
//! instance runs the evaluator (`scheduler`), which claims due rules, measures them
//! (`evaluate`), steps each series' state machine (`state`) and writes the outcome
//! with the alert (`alert`) in one transaction (`transitions`).
//! Delivery: the worker (`delivery`) claims outbox rows, sends them (`sender`) in the
//! channel's format (`payload`, signed by `signature`) to the channels (`channels`), and
//! retries with `backoff`, pruning old finished rows (`outbox_pruning`);
//! `delivery_status` feeds `/health` and `/metrics`, and `evaluation_status` counts
//! evaluations and their failures for `/metrics`.

pub mod alert;
pub mod api;
pub mod backoff;
pub mod channels;
pub mod delivery;
pub mod delivery_status;
pub mod evaluate;
pub mod evaluation_status;
pub mod file;
pub mod outbox_pruning;
pub mod payload;
pub mod preview;
pub mod rules;
pub mod scheduler;
pub mod sender;
pub mod signature;
pub mod state;
pub mod transitions;

/// The advisory lock (transaction-scoped) held while rules are added, so that the
/// bound on their number holds under concurrent requests and file loads.
pub(crate) const RULES_CREATE_LOCK: i64 = 0x616c_6572_7472;
/// The same for channels added through the API.
pub(crate) const CHANNELS_CREATE_LOCK: i64 = 0x616c_6572_7463;
/// The same for silences.
pub(crate) const SILENCES_CREATE_LOCK: i64 = 0x616c_6572_7473;

/// Starts the alerts wing of one instance: loads the rules file when one is set (a bad
/// file stops the start), then the evaluator and the file's SIGHUP reloader.
pub async fn start(
    settings: &crate::config::AlertRuleSettings,
    writes: &sqlx::PgPool,
    read: &crate::read::ReadContext,
    external_url: &str,
    status: std::sync::Arc<evaluation_status::EvaluationStatus>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, file::RulesFileError> {
    if let Some(path) = &settings.rules_file {
        file::load(writes, read, path, external_url).await?;
    }
    let mut tasks = vec![scheduler::spawn(scheduler::Evaluator {
        writes: writes.clone(),
        read: read.clone(),
        settle_delay: chrono::Duration::from_std(settings.settle_delay)
            .unwrap_or_else(|_| chrono::Duration::seconds(30)),
        poll_interval: settings.poll_interval,
        external_url: external_url.to_owned(),
        status,
    })];
    if let Some(path) = &settings.rules_file {
        tasks.push(file::spawn_reloader(
            writes.clone(),
            read.clone(),
            path.clone(),
            external_url.to_owned(),
        ));
    }
    Ok(tasks)
}
