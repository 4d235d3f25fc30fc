//! `GET /api/v1/logs/tail`: a live tail over Server-Sent Events for the usual content
//! filters (service, level, min_level, q, meta.*; time bounds are ignored: a tail only
//! shows what arrives after it starts).
//!
//! How it follows the table: a task per stream polls `logs` by id every
//! `poll_interval` (default 250 ms), so an entry appears within about that long of its
//! commit. Each poll takes a read connection and gives it back before the next one
//! (a tail never holds a connection while it waits), under the read side's bounds. Ids are handed out before commit, so a smaller id can become visible after a
//! larger one; ids above the `frontier` are therefore re-checked until `settle` has
//! passed since they were first seen as the table's newest (ids already sent are
//! skipped), which catches entries whose transaction committed late.
//!
//! Slow consumers: events pass through a bounded channel (`buffer` events). When it is
//! full the stream is cut off with a final `cutoff` event instead of buffering more. The
//! task stops as soon as the client goes away, and every stream ends when the server
//! shuts down (`ReadContext::close_tails`). It never writes to the database.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::Utc;
use futures::stream::{self, Stream, StreamExt};
use serde_json::json;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::time::{Instant, MissedTickBehavior};

use super::error::ReadError;
use super::filters::LogFilter;
use super::rows::{LogRow, COLUMNS};
use super::{params_from, QueryPairs, ReadContext, ReadPool};

/// How tails poll and how much they may hold for a slow reader.
#[derive(Clone, Copy, Debug)]
pub struct TailSettings {
    pub poll_interval: Duration,
    /// Events held for a reader before it is cut off.
    pub buffer: usize,
    /// Rows read per poll at most.
    pub batch: i64,
    /// How long ids near the table's head stay under watch for late commits.
    pub settle: Duration,
    /// Tails open at once at most; more get 503.
    pub max_streams: usize,
}

impl Default for TailSettings {
    fn default() -> Self {
        TailSettings {
            poll_interval: Duration::from_millis(250),
            buffer: 256,
            batch: 500,
            settle: Duration::from_secs(2),
            max_streams: 32,
        }
    }
}

/// Consecutive failed polls (about five seconds at the default interval) before a tail
/// gives up with an `error` event.
const MAX_FAILED_POLLS: u32 = 20;

pub async fn tail(
    State(context): State<ReadContext>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ReadError> {
    let mut params = params_from(query)?;
    let filter = context.filter(&mut params, Utc::now());
    let resume_from = params
        .number("after_id", 0, i64::MAX)
        .or_else(|| last_event_id(&headers));
    params.finish().map_err(ReadError::InvalidQuery)?;

    if *context.closing.borrow() {
        return Err(ReadError::ShuttingDown);
    }
    let permit = Arc::clone(&context.tail_slots)
        .try_acquire_owned()
        .map_err(|_| ReadError::TooManyTails)?;
    let start = match resume_from {
        Some(id) => id,
        None => {
            let mut connection = context.reads.acquire().await?;
            connection.run(head).await?
        }
    };

    let settings = context.tail;
    let (sender, receiver) = mpsc::channel::<Event>(settings.buffer.max(1));
    let cut_off = Arc::new(AtomicBool::new(false));
    let follower = Follower {
        reads: context.reads.clone(),
        filter,
        settings,
        frontier: start,
        sent: BTreeSet::new(),
        heads: VecDeque::new(),
        sender,
        cut_off: Arc::clone(&cut_off),
        closing: context.closing.subscribe(),
        _permit: permit,
    };
    tokio::spawn(follower.run());

    let ready = Event::default()
        .event("ready")
        .data(json!({ "after_id": start }).to_string());
    let events = stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (event, receiver))
    });
    let farewell = stream::once(async move { cut_off.load(Ordering::Acquire) }).filter_map(
        |was_cut_off| async move {
            was_cut_off.then(|| {
                Event::default().event("cutoff").data(
                    json!({"error": "consumer too slow; reconnect with Last-Event-ID to resume"})
                        .to_string(),
                )
            })
        },
    );
    let stream = stream::once(async move { ready })
        .chain(events)
        .chain(farewell)
        .map(Ok::<Event, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn last_event_id(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|id: &i64| *id >= 0)
}

/// The newest id handed out by the table's identity sequence (0 before the first).
/// Read from the sequence, not `max(id)`: the sequence also counts ids whose
/// transactions have not committed yet, which is what the settle logic needs.
///
/// On a streaming replica (`LOG_INGESTION_READ_DATABASE_URL`) the sequence is what the
/// primary WAL-logged, which runs up to 32 ids ahead of the ids handed out: settling on
/// it would skip the entries that later get those ids. There the head is the newest id
/// replayed (`max(id)`, on the id index), so the settle window starts when an entry
/// becomes visible on the replica: a reader sees entries after the replica's lag, never
/// fewer.
async fn head(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CASE WHEN pg_is_in_recovery() \
             THEN (SELECT coalesce(max(id), 0) FROM logs) \
             ELSE (SELECT coalesce(max(last_value), 0) FROM pg_sequences \
                   WHERE format('%I.%I', schemaname, sequencename)::regclass \
                       = pg_get_serial_sequence('logs', 'id')::regclass) \
             END::bigint",
    )
    .fetch_one(conn)
    .await
}

/// One stream's polling task.
struct Follower {
    reads: ReadPool,
    filter: LogFilter,
    settings: TailSettings,
    /// Every id at or below this is settled: sent, filtered out, or never to appear.
    frontier: i64,
    /// Ids above the frontier already sent.
    sent: BTreeSet<i64>,
    /// The table's head as seen at each poll, oldest first, until it settles.
    heads: VecDeque<(Instant, i64)>,
    sender: mpsc::Sender<Event>,
    cut_off: Arc<AtomicBool>,
    closing: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

enum Delivery {
    Continue,
    Stop,
}

impl Follower {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.settings.poll_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failures = 0;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.sender.closed() => return,
                _ = self.closing.wait_for(|closing| *closing) => return,
            }
            match self.poll().await {
                Ok(Delivery::Continue) => failures = 0,
                Ok(Delivery::Stop) => return,
                // Every read slot taken (slow searches): skip this tick, not a failure of
                // storage. The tail catches up from its last id at the next free slot.
                Err(ReadError::Busy) => tracing::debug!("live tail poll skipped: read slots busy"),
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "live tail poll failed");
                    if failures >= MAX_FAILED_POLLS {
                        let event = Event::default()
                            .event("error")
                            .data(json!({"error": "Storage unavailable"}).to_string());
                        let _ = self.sender.try_send(event);
                        return;
                    }
                }
            }
        }
    }

    async fn poll(&mut self) -> Result<Delivery, ReadError> {
        let mut connection = self.reads.acquire().await?;
        let head = connection.run(head).await?;
        let sent: Vec<i64> = self.sent.iter().copied().collect();
        let mut sql =
            QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM logs WHERE id > "));
        // Bounded on both sides so the planner walks an index on id (when the table
        // has one) rather than a content index; rows above `head` come next poll.
        sql.push_bind(self.frontier)
            .push(" AND id <= ")
            .push_bind(head)
            .push(" AND id <> ALL(")
            .push_bind(sent)
            .push(")");
        self.filter.push_content_conditions(&mut sql);
        sql.push(" ORDER BY id LIMIT ")
            .push_bind(self.settings.batch);
        let rows: Vec<LogRow> = connection
            .run(|conn| sql.build_query_as().fetch_all(conn))
            .await?;
        drop(connection);

        let full_batch = rows.len() as i64 >= self.settings.batch;
        let last_read = rows.last().map(|row| row.id);
        for row in rows {
            let id = row.id;
            let event = match Event::default()
                .event("log")
                .id(id.to_string())
                .json_data(&row)
            {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(%error, id, "cannot encode a log entry for the live tail");
                    continue;
                }
            };
            match self.sender.try_send(event) {
                Ok(()) => {
                    self.sent.insert(id);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.cut_off.store(true, Ordering::Release);
                    tracing::info!("live tail consumer too slow; cutting it off");
                    return Ok(Delivery::Stop);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(Delivery::Stop),
            }
        }
        self.advance(head, full_batch, last_read);
        Ok(Delivery::Continue)
    }

    /// Moves the frontier to the newest head that has had `settle` to commit, but never
    /// past rows this poll did not get to read.
    fn advance(&mut self, head: i64, full_batch: bool, last_read: Option<i64>) {
        let now = Instant::now();
        self.heads.push_back((now, head));
        let mut settled = None;
        while let Some(&(seen, id)) = self.heads.front() {
            if now.duration_since(seen) < self.settings.settle {
                break;
            }
            settled = Some(id);
            self.heads.pop_front();
        }
        let Some(mut target) = settled else { return };
        if full_batch {
            if let Some(last) = last_read {
                target = target.min(last);
            }
        }
        if target > self.frontier {
            self.frontier = target;
            self.sent = self.sent.split_off(&(target + 1));
        }
    }
}
