//! Channels through the API: `GET /api/v1/alerts/channels`, `POST` (create),
//! `GET|PATCH|DELETE /api/v1/alerts/channels/{name}` (channels from the rules file are
//! read-only: 409) and `POST /api/v1/alerts/channels/{name}/test` (sends a test
//! notification now, outside the outbox). A channel's URL and secret are never returned
//! or logged (`ChannelView`). Changes are audited in their own transaction.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::PgPool;

use super::{refuse_beyond, AlertsApiError, AlertsContext, Answer};
use crate::alerts::channels::{self, Channel, ChannelView};
use crate::alerts::delivery::idempotency_key;
use crate::alerts::payload::{Alert, Notification};
use crate::alerts::sender::Sender;
use crate::auth::{audit, Actor};

/// The most channels there may be (the API's and the rules file's together).
pub(super) const MAX_CHANNELS_STORED: i64 = 1_000;

const NOT_FOUND: AlertsApiError = AlertsApiError::NotFound("Channel not found");

fn object(body: &Bytes) -> Result<Map<String, Value>, AlertsApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(AlertsApiError::InvalidBody(vec![
            "body: must be a JSON object".to_owned(),
        ])),
    }
}

async fn find(pool: &PgPool, name: &str) -> Answer<Channel> {
    if !channels::valid_name(name) {
        return Err(NOT_FOUND);
    }
    channels::by_name(pool, name).await?.ok_or(NOT_FOUND)
}

fn read_only(name: &str) -> AlertsApiError {
    AlertsApiError::Conflict(format!(
        "Channel {name} comes from the alert rules file and is read-only: change it there"
    ))
}

#[derive(Serialize)]
pub(super) struct ChannelList {
    channels: Vec<ChannelView>,
}

pub(super) async fn list(State(context): State<AlertsContext>) -> Answer<Json<ChannelList>> {
    let channels = channels::list(&context.writes).await?;
    Ok(Json(ChannelList {
        channels: channels.iter().map(Channel::view).collect(),
    }))
}

pub(super) async fn show(
    State(context): State<AlertsContext>,
    Path(name): Path<String>,
) -> Answer<Json<ChannelView>> {
    Ok(Json(find(&context.writes, &name).await?.view()))
}

pub(super) async fn create(
    State(context): State<AlertsContext>,
    actor: Actor,
    body: Bytes,
) -> Answer<(StatusCode, Json<ChannelView>)> {
    let new = channels::parse_new(&object(&body)?).map_err(AlertsApiError::InvalidBody)?;
    let mut tx = context.writes.begin().await?;
    refuse_beyond(
        &mut tx,
        crate::alerts::CHANNELS_CREATE_LOCK,
        "SELECT count(*) FROM alert_channels",
        MAX_CHANNELS_STORED,
        "channels",
    )
    .await?;
    let Some(channel) = channels::create(&mut tx, &new).await? else {
        return Err(AlertsApiError::Conflict(format!(
            "A channel named {} exists",
            new.name
        )));
    };
    let details = json!({
        "kind": channel.kind.as_str(),
        "host": host_of(&channel.url),
        "has_secret": new.secret.is_some(),
    });
    audit::record(
        &mut tx,
        &actor,
        "alert_channel.create",
        &target(&channel.name),
        details,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(channel = %channel.name, kind = channel.kind.as_str(), "alert channel created");
    Ok((StatusCode::CREATED, Json(channel.view())))
}

pub(super) async fn change(
    State(context): State<AlertsContext>,
    actor: Actor,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer<Json<ChannelView>> {
    let existing = find(&context.writes, &name).await?;
    if existing.source == "file" {
        return Err(read_only(&name));
    }
    let change = channels::parse_change(&object(&body)?).map_err(AlertsApiError::InvalidBody)?;
    let mut tx = context.writes.begin().await?;
    let changed = channels::update(&mut tx, &name, &change)
        .await?
        .ok_or(NOT_FOUND)?;
    // Which fields changed, never their values: the URL and the secret are credentials.
    let fields: Vec<&str> = [
        change.kind.map(|_| "kind"),
        change.url.as_ref().map(|_| "url"),
        change.secret.as_ref().map(|_| "secret"),
    ]
    .into_iter()
    .flatten()
    .collect();
    audit::record(
        &mut tx,
        &actor,
        "alert_channel.update",
        &target(&name),
        json!({"fields": fields, "host": host_of(&changed.url)}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(channel = %changed.name, "alert channel changed");
    Ok(Json(changed.view()))
}

pub(super) async fn remove(
    State(context): State<AlertsContext>,
    actor: Actor,
    Path(name): Path<String>,
) -> Answer<StatusCode> {
    let existing = find(&context.writes, &name).await?;
    if existing.source == "file" {
        return Err(read_only(&name));
    }
    let mut tx = context.writes.begin().await?;
    if !channels::delete(&mut tx, &name).await? {
        return Err(NOT_FOUND);
    }
    audit::record(
        &mut tx,
        &actor,
        "alert_channel.delete",
        &target(&name),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(channel = %name, "alert channel deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn target(name: &str) -> String {
    format!("alert_channel:{name}")
}

/// Where a channel's requests go — the URL's host and port, never its path or query,
/// which may hold a token — for the audit log.
fn host_of(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?;
    Some(match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// Sends a test notification to the channel now (not through the outbox) and answers
/// whether the receiver took it.
pub(super) async fn test(
    State(context): State<AlertsContext>,
    State(sender): State<Sender>,
    actor: Actor,
    Path(name): Path<String>,
) -> Answer<Json<Value>> {
    let channel = find(&context.writes, &name).await?;
    // Who made the server call where, before the call is made.
    let mut tx = context.writes.begin().await?;
    audit::record(
        &mut tx,
        &actor,
        "alert_channel.test",
        &target(&name),
        json!({"host": host_of(&channel.url)}),
    )
    .await?;
    tx.commit().await?;
    let now = Utc::now();
    let alert = json!({
        "status": "firing",
        "labels": {"alertname": "LogIngestionTestNotification", "channel": channel.name},
        "annotations": {
            "summary": "A test notification from log_ingestion",
            "description": "Sent from the channels API to check that this channel receives alerts."
        },
        "startsAt": now.to_rfc3339(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "0000000000000000",
    });
    let alert = Alert::parse(&alert)
        .map_err(|error| AlertsApiError::InvalidBody(vec![error.to_string()]))?;
    let notification = Notification {
        id: 0,
        rule_id: 0,
        rule_name: "LogIngestionTestNotification".to_owned(),
        series_key: String::new(),
        alert,
    };
    let key = format!(
        "{}-test-{}",
        idempotency_key(0),
        uuid::Uuid::new_v4().simple()
    );
    Ok(Json(
        match sender.send(&channel, &notification, &key).await {
            Ok(status) => json!({"delivered": true, "status": status}),
            Err(error) => json!({"delivered": false, "error": error}),
        },
    ))
}
