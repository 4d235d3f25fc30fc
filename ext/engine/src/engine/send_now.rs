//! `send_now` and `send_once`: one entry sent past the queue on the engine's threads,
//! the caller's thread waiting for its answer within a timeout and a cancel token.

use super::*;

/// A successful `send_now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// The 2xx status the server answered.
    pub status: u16,
    /// Attempts made (1 when the first one succeeded).
    pub attempts: u32,
}

/// Why `send_now` did not deliver its entry. Each variant is one `ErrorKind` (`kind`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The entry could not be encoded (`status` None), or the server refused it (a 4xx
    /// other than 401/403/408/429, or a 3xx).
    #[error("the entry is invalid: {message}")]
    Invalid {
        status: Option<u16>,
        message: String,
    },
    #[error("the engine is shut down")]
    Shutdown,
    #[error("the send did not finish within its timeout")]
    TimedOut,
    #[error("the send was cancelled")]
    Cancelled,
    #[error("gave up after {attempts} attempts: {message}")]
    RetriesExhausted { attempts: u32, message: String },
    #[error("the server refused the API key: {message}")]
    Unauthorized { status: u16, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl DeliveryError {
    /// The failure's name in the one vocabulary (what `on_error` receives as `kind`).
    pub const fn kind(&self) -> ErrorKind {
        match self {
            DeliveryError::Invalid { .. } => ErrorKind::Invalid,
            DeliveryError::Shutdown => ErrorKind::Shutdown,
            DeliveryError::TimedOut => ErrorKind::TimedOut,
            DeliveryError::Cancelled => ErrorKind::Cancelled,
            DeliveryError::RetriesExhausted { .. } => ErrorKind::RetriesExhausted,
            DeliveryError::Unauthorized { .. } => ErrorKind::Unauthorized,
            DeliveryError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn from_failure(failure: Failure) -> DeliveryError {
        match failure.kind {
            ErrorKind::Unauthorized => DeliveryError::Unauthorized {
                status: failure.status.unwrap_or(0),
                message: failure.message,
            },
            ErrorKind::Invalid => DeliveryError::Invalid {
                status: failure.status,
                message: failure.message,
            },
            ErrorKind::RetriesExhausted => DeliveryError::RetriesExhausted {
                attempts: failure.attempts,
                message: failure.message,
            },
            ErrorKind::Shutdown => DeliveryError::Shutdown,
            _ => DeliveryError::Internal(failure.message),
        }
    }
}

impl Engine {
    /// Sends one entry to `POST /api/v1/logs` now, bypassing the queue, with the retry
    /// policy; blocks the calling thread until it is answered, `timeout` passes or
    /// `cancel` trips. While a 429 pause is in force (`Stats::rate_limited_until`) it
    /// waits for the pause to end before sending, within that same timeout. Counts
    /// `sent` and `retried`; a failure is returned, not reported.
    pub fn send_now(
        &self,
        entry: Entry,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<SendOutcome, DeliveryError> {
        self.send_single(entry, timeout, cancel, Retries::ByPolicy)
    }

    /// `send_now` with one attempt and no retry: a refused connection answers at once, an
    /// unreachable host within `open_timeout`, a silent server within `read_timeout`
    /// (a reachability check such as `rails logs:test`). A retryable failure is
    /// `DeliveryError::RetriesExhausted` with one attempt.
    pub fn send_once(
        &self,
        entry: Entry,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<SendOutcome, DeliveryError> {
        self.send_single(entry, timeout, cancel, Retries::Never)
    }

    fn send_single(
        &self,
        entry: Entry,
        timeout: Duration,
        cancel: &Cancel,
        retries: Retries,
    ) -> Result<SendOutcome, DeliveryError> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(DeliveryError::Shutdown);
        }
        let json = entry.encode().map_err(|e| DeliveryError::Invalid {
            status: None,
            message: e.to_string(),
        })?;
        let request = PreparedRequest::single(&json, self.shared.config.gzip)
            .map_err(|e| DeliveryError::Internal(e.to_string()))?;
        let (message, work) = self.run_send_now(request, retries, timeout, cancel);
        if matches!(
            message,
            SendNowMessage::Cancelled | SendNowMessage::TimedOut
        ) {
            work.abort();
        }
        self.settle_send_now(message)
    }

    /// Runs one `send_with_retries` on the engine's runtime and waits for what ends
    /// the wait first: its answer, the task ending without one, `cancel`, or `timeout`.
    fn run_send_now(
        &self,
        request: PreparedRequest,
        retries: Retries,
        timeout: Duration,
        cancel: &Cancel,
    ) -> (SendNowMessage, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel::<SendNowMessage>();
        let shared = Arc::clone(&self.shared);
        let reply = SendNowReply(Some(sender.clone()));
        let work = self.handle.spawn(async move {
            let result = delivery::send_with_retries(&shared, &request, retries).await;
            reply.answer(result);
        });
        let _hook = cancel.on_cancel(move || {
            let _ = sender.send(SendNowMessage::Cancelled);
        });
        if cancel.is_cancelled() {
            return (SendNowMessage::Cancelled, work);
        }
        let message = receiver
            .recv_timeout(timeout)
            .unwrap_or(SendNowMessage::TimedOut);
        (message, work)
    }

    /// Counts a `send_now` and turns what ended its wait into its result.
    fn settle_send_now(&self, message: SendNowMessage) -> Result<SendOutcome, DeliveryError> {
        match message {
            SendNowMessage::Answered(Ok(answer)) => {
                Counters::add(&self.shared.counters.sent, 1);
                Ok(SendOutcome {
                    status: answer.status,
                    attempts: answer.attempts,
                })
            }
            SendNowMessage::Answered(Err(failure)) => {
                // `stats().last_error` tells the truth about a failed send_now too
                // (`rails logs:test` prints it).
                self.shared.counters.set_last_error(failure.message.clone());
                Err(DeliveryError::from_failure(failure))
            }
            SendNowMessage::Ended if self.shutting_down() => Err(DeliveryError::Shutdown),
            SendNowMessage::Ended => Err(DeliveryError::Internal(
                "send_now's task ended without an answer (it panicked)".to_owned(),
            )),
            SendNowMessage::Cancelled => Err(DeliveryError::Cancelled),
            SendNowMessage::TimedOut => Err(DeliveryError::TimedOut),
        }
    }
}

/// What ends a `send_now` wait.
pub(super) enum SendNowMessage {
    Answered(Result<Answer, Failure>),
    /// The send task was dropped unfinished: it panicked, or shutdown stopped the runtime.
    Ended,
    Cancelled,
    TimedOut,
}

/// Carries a `send_now` task's result to the waiting caller. If the task ends without
/// answering (a panic, or the runtime dropping it at shutdown) it says so as it is
/// dropped, so the caller never waits out its timeout for nothing.
pub(super) struct SendNowReply(Option<mpsc::Sender<SendNowMessage>>);

impl SendNowReply {
    fn answer(mut self, result: Result<Answer, Failure>) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(SendNowMessage::Answered(result));
        }
    }
}

impl Drop for SendNowReply {
    fn drop(&mut self) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(SendNowMessage::Ended);
        }
    }
}
