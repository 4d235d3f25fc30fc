//! One request's attempts: the retry loop around it (the policy's waits, timed from its
//! first attempt, and a 429's pause for every sender) and the judgement of each attempt
//! by its HTTP status or transport failure.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Answer, EngineState, Failure};
use crate::reports::ErrorKind;
use crate::retry::{
    cause_of_status, classify_status, parse_retry_after, GiveUp, RetryCause, RetryState, Verdict,
};
use crate::stats::Counters;
use crate::transport::{Attempt, Endpoint, FailureKind, PreparedRequest};

/// Whether a failed attempt is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retries {
    /// As the retry policy says (every batch; `send_now`).
    ByPolicy,
    /// Never: one attempt, its failure is the answer (`send_once`, a reachability check).
    Never,
}

/// Sends `request` until it is answered 2xx, refused for good, or the retry policy
/// gives it up (by count for failures that may be its own, by `max_retry_elapsed` for
/// all) -- or after its first attempt with `Retries::Never`. The body and idempotency
/// key are the same on every attempt; each attempt first waits out a 429 pause,
/// whoever's request caused it.
pub(crate) async fn send_with_retries(
    shared: &EngineState,
    request: &PreparedRequest,
    retries: Retries,
) -> Result<Answer, Failure> {
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut failed_retries = 0u32;
    loop {
        shared.pause.wait().await;
        attempts += 1;
        let attempt = shared.transport.send(request).await;
        let failed = match judge(shared, request, attempt, attempts) {
            Judged::Done(result) => return result,
            Judged::Retryable(failed) => failed,
        };
        // A 429 is the server asking for a pause, not an outage; a failure while
        // shutting down belongs to shutdown's own report, a single attempt's to its caller.
        if failed.status != Some(429) && !shared.is_shutting_down() && retries != Retries::Never {
            shared.delivery_failing(&failed.message);
        }
        if retries == Retries::Never {
            return Err(failed.not_retried(attempts));
        }
        if failed.cause == RetryCause::Failed {
            failed_retries += 1;
        }
        let retry = RetryState {
            retry: attempts,
            failed_retries,
            elapsed: started.elapsed(),
        };
        let delay = shared.policy.delay_before_retry(
            retry,
            failed.cause,
            failed.retry_after,
            rand::random(),
        );
        if failed.status == Some(429) {
            shared.pause_after_429(delay.ok(), failed.retry_after);
        }
        let refused = failed.is_refused();
        if refused && shared.is_shutting_down() {
            return Err(failed.given_up_at_shutdown(attempts));
        }
        match delay {
            Ok(delay) => {
                Counters::add(&shared.counters.retried, 1);
                shared.counters.set_last_error(failed.message.clone());
                tracing::debug!(attempts, ?delay, "{}; retrying", failed.message);
                shared.wait_before_retry(delay, refused).await;
            }
            Err(give_up) => {
                return Err(failed.given_up(give_up, attempts, started, shared.policy.max_elapsed))
            }
        }
    }
}

/// What one attempt came to: an end (a 2xx, or a refusal retrying cannot help), or a
/// failure the retry policy decides about.
enum Judged {
    Done(Result<Answer, Failure>),
    Retryable(FailedAttempt),
}

/// Judges one attempt by its HTTP status (or its transport failure). A 2xx also ends
/// a 429 pause and re-arms the 401/403 report.
fn judge(
    shared: &EngineState,
    request: &PreparedRequest,
    attempt: Attempt,
    attempts: u32,
) -> Judged {
    let (status, retry_after, body) = match attempt {
        Attempt::Answered {
            status,
            retry_after,
            body,
        } => (status, retry_after, body),
        Attempt::Failed { kind, message } => {
            return Judged::Retryable(FailedAttempt {
                status: None,
                cause: match kind {
                    FailureKind::Connect => RetryCause::Unavailable,
                    FailureKind::Timeout | FailureKind::Other => RetryCause::Failed,
                },
                retry_after: None,
                message: format!("{} sending to {}: {message}", kind.as_str(), path(request)),
            })
        }
    };
    let kind = match classify_status(status) {
        Verdict::Delivered => {
            shared.delivery_succeeded();
            shared.resume_sending();
            shared.unauthorized_reported.store(false, Ordering::Relaxed);
            return Judged::Done(Ok(Answer {
                status,
                body,
                attempts,
            }));
        }
        Verdict::Retryable => {
            return Judged::Retryable(FailedAttempt {
                status: Some(status),
                cause: cause_of_status(status),
                retry_after: retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
                message: describe_answer(request, status, &body),
            })
        }
        Verdict::Unauthorized => ErrorKind::Unauthorized,
        Verdict::Invalid => ErrorKind::Invalid,
    };
    Judged::Done(Err(Failure {
        kind,
        status: Some(status),
        message: describe_answer(request, status, &body),
        attempts,
    }))
}

/// One attempt that may be retried: what the retry policy and the reports need of it.
struct FailedAttempt {
    status: Option<u16>,
    cause: RetryCause,
    retry_after: Option<Duration>,
    message: String,
}

impl FailedAttempt {
    /// No answer and unavailable: the connection was refused.
    fn is_refused(&self) -> bool {
        self.status.is_none() && self.cause == RetryCause::Unavailable
    }

    fn not_retried(self, attempts: u32) -> Failure {
        Failure {
            kind: ErrorKind::RetriesExhausted,
            status: self.status,
            message: format!("{} (one attempt, not retried)", self.message),
            attempts,
        }
    }

    fn given_up_at_shutdown(self, attempts: u32) -> Failure {
        Failure {
            kind: ErrorKind::Shutdown,
            status: self.status,
            message: format!(
                "{} (the service refused the connection while the process was shutting down: \
                 given up at once instead of waiting out the shutdown timeout)",
                self.message
            ),
            attempts,
        }
    }

    fn given_up(
        self,
        give_up: GiveUp,
        attempts: u32,
        started: Instant,
        max_elapsed: Duration,
    ) -> Failure {
        let message = match give_up {
            GiveUp::Retries => self.message,
            GiveUp::Elapsed => format!(
                "{} (retried for {:.1}s; max_retry_elapsed is {max_elapsed:?})",
                self.message,
                started.elapsed().as_secs_f64(),
            ),
        };
        Failure {
            kind: ErrorKind::RetriesExhausted,
            status: self.status,
            message,
            attempts,
        }
    }
}

fn path(request: &PreparedRequest) -> &'static str {
    match request.endpoint {
        Endpoint::Batch => log_ingestion_wire::BATCH_PATH,
        Endpoint::Single => log_ingestion_wire::SINGLE_PATH,
    }
}

fn describe_answer(request: &PreparedRequest, status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(300).collect();
    format!("HTTP {status} from {}: {}", path(request), text.trim())
}
