//! Alerts: rules evaluated over the stored entries and error groups, the state of each
//! (rule, series) kept in PostgreSQL, and the notifications every state transition
//! writes to the outbox (`alert_notifications`) in the same transaction, which the
//! delivery worker sends to the rule's channels (webhook, Slack). docs/alerts.md is
//! the user's reference.

pub mod backoff;
pub mod channels;
pub mod delivery;
pub mod delivery_status;
pub mod payload;
pub mod routes;
pub mod sender;
pub mod signature;
