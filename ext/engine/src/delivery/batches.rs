//! The delivery loop: when a batch is sent (full, interval elapsed, flush), one batch in
//! flight at a time, and the supervision that restarts the loop after a panic.

use std::sync::Arc;

use tokio::time::Instant;

use super::retries::{send_with_retries, Retries};
use super::{EngineState, Failure, LeftBatch};
use crate::queue::Batch;
use crate::reports::ErrorKind;
use crate::stats::Counters;
use crate::transport::PreparedRequest;

/// Runs the delivery loop until it is stopped; restarts it after a panic, counting the
/// batch that was in flight as lost.
pub(crate) async fn supervise(shared: Arc<EngineState>) {
    loop {
        let run = tokio::spawn(delivery_loop(Arc::clone(&shared)));
        match run.await {
            Ok(()) => return,
            Err(error) if error.is_panic() => {
                let lost = shared.queue.in_flight_len();
                Counters::add(&shared.counters.dropped_internal, lost);
                Counters::add(&shared.counters.failed_batches, 1);
                let message = format!(
                    "log delivery panicked ({}); {lost} entries lost, delivery restarted",
                    panic_message(error.into_panic())
                );
                shared.report(ErrorKind::Internal, message, lost);
                shared.queue.finish_batch();
            }
            Err(_) => return,
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

async fn delivery_loop(shared: Arc<EngineState>) {
    let interval = shared.config.batch_interval;
    let mut tick = Instant::now() + interval;
    loop {
        shared.report_queue_drops();
        let ready = shared.queue.readiness();
        if ready.stopping {
            return;
        }
        let now = Instant::now();
        let due = now >= tick;
        if ready.len > 0 && (ready.full || ready.urgent || due) {
            if let Some(batch) = shared.queue.take_batch() {
                deliver_batch(&shared, batch).await;
                shared.queue.finish_batch();
            }
            if due {
                tick = Instant::now() + interval;
            }
            continue;
        }
        if due {
            tick = now + interval;
        }
        tokio::select! {
            _ = shared.queue.work().notified() => {}
            _ = tokio::time::sleep_until(tick) => {}
        }
    }
}

async fn deliver_batch(shared: &EngineState, batch: Batch) {
    #[cfg(test)]
    if super::PANIC_ON_NEXT_BATCH.swap(false, std::sync::atomic::Ordering::SeqCst) {
        panic!("injected delivery panic");
    }
    if shared.refused_at_exit() {
        shared.leave_at_exit(LeftBatch::Unsent(batch.entries), None);
        return;
    }
    let count = batch.entries.len() as u64;
    let prepared = if shared.config.enable_batching {
        PreparedRequest::batch(&batch.entries, shared.config.gzip)
    } else {
        match batch.entries.first() {
            Some(entry) => PreparedRequest::single(entry, shared.config.gzip),
            None => return,
        }
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            shared.record_failure(
                count,
                Failure {
                    kind: ErrorKind::Internal,
                    status: None,
                    message: format!("could not build the request body: {error}"),
                    attempts: 0,
                },
            );
            return;
        }
    };
    drop(batch);
    *shared.in_flight() = Some(prepared.clone());
    let result = send_with_retries(shared, &prepared, Retries::ByPolicy).await;
    *shared.in_flight() = None;
    match result {
        Ok(answer) => {
            shared.record_answer(&prepared, &answer);
        }
        // Refused while shutting down: kept for the spool, counted and reported by shutdown.
        Err(failure) if failure.kind == ErrorKind::Shutdown => {
            let why = format!("{} refused the connection", shared.config.base_url());
            shared.leave_at_exit(LeftBatch::Sent(prepared), Some(why));
        }
        Err(failure) => shared.record_failure(count, failure),
    }
}
