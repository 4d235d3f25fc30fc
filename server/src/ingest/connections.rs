//! The accepted sockets' budget: how many connections may be open at once, and how many
//! of them may be open without having shown a valid API key yet (a connection that
//! only connects, or trickles a request head, holds one of those until the header read
//! timeout closes it). When that second budget is full a newcomer is still admitted:
//! the oldest connection without a key is told to close instead, so idle sockets cannot
//! hold valid clients out. (An attacker opening connections faster than a client sends
//! its request head can still evict that client's fresh connection before its key
//! arrives: the client sees a closed connection or a 503 and retries; a connection that
//! has shown a key is never evicted.) A request whose connection was evicted is refused,
//! never served, so nothing is stored without an answer. It owns the slots, the
//! eviction order and the `ConnectionTrust` handle the auth layers use to move a
//! connection out of the unauthenticated budget.
//! It never reads from a socket, never closes one itself (the connection's task does,
//! on the eviction signal) and never decides whether a key is valid.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Why a freshly accepted connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// `LOG_INGESTION_MAX_CONNECTIONS` connections are open.
    ConnectionCap,
}

impl ConnectionRefusal {
    /// The reason label of `log_ingestion_connections_closed_total`.
    pub fn reason(self) -> &'static str {
        match self {
            ConnectionRefusal::ConnectionCap => "connection_cap",
        }
    }
}

/// The reason label of `log_ingestion_connections_closed_total` for a connection closed
/// because a newer one needed its unauthenticated slot.
pub const UNAUTHENTICATED_EVICTED: &str = "unauthenticated_evicted";

/// The server-wide connection budget; clones share it.
#[derive(Clone, Debug)]
pub struct ConnectionBudget {
    open: Arc<Semaphore>,
    unauthenticated: Arc<Mutex<Unauthenticated>>,
}

/// The connections that have not shown a key yet, oldest first (admission numbers only
/// grow), each with the sender that tells its task to close it.
#[derive(Debug)]
struct Unauthenticated {
    max: usize,
    next_number: u64,
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

fn lock(unauthenticated: &Mutex<Unauthenticated>) -> MutexGuard<'_, Unauthenticated> {
    // Nothing in the critical sections can panic half-way; a poisoned lock holds a
    // consistent map.
    unauthenticated
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// One admitted connection's share, returned when the connection ends.
#[derive(Debug)]
pub struct ConnectionSlot {
    _open: OwnedSemaphorePermit,
    trust: ConnectionTrust,
    evicted: Option<oneshot::Receiver<()>>,
}

impl ConnectionSlot {
    /// The handle to put on every request of this connection.
    pub fn trust(&self) -> ConnectionTrust {
        self.trust.clone()
    }

    /// Resolves when a newer connection took this one's unauthenticated slot (the
    /// connection must then be closed); never resolves once it has shown a key. Call
    /// once: later calls never resolve.
    pub fn evicted(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let receiver = self.evicted.take();
        async move {
            let evicted = match receiver {
                Some(receiver) => receiver.await.is_ok(),
                None => false,
            };
            // A dropped sender means authenticated (or the budget is gone): never.
            if !evicted {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        // Leaves the eviction order (whether it was still in it no longer matters).
        let _ = self.trust.authenticated();
    }
}

/// Put in each request's extensions: the auth layers call
/// [`ConnectionTrust::authenticated`] once a request shows a valid key, which frees the
/// connection's unauthenticated slot for good (and so makes it unevictable) -- unless
/// the connection was evicted first, which the request must then be refused for.
#[derive(Clone, Debug, Default)]
pub struct ConnectionTrust(Arc<Mutex<Trust>>);

#[derive(Debug, Default)]
enum Trust {
    /// Waiting for a valid key, at this place in the eviction order.
    Waiting(Registration),
    /// Showed a valid key (or was never registered: requests built in tests).
    #[default]
    Trusted,
    /// A newer connection took its place before it showed a key.
    Evicted,
}

/// A connection's place in the eviction order.
#[derive(Debug)]
struct Registration {
    unauthenticated: Arc<Mutex<Unauthenticated>>,
    number: u64,
}

impl ConnectionTrust {
    /// Marks the connection as having shown a valid key; false when it was evicted
    /// before (its request must not be served: the socket is being closed).
    pub fn authenticated(&self) -> bool {
        let mut trust = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let registration = match std::mem::take(&mut *trust) {
            Trust::Waiting(registration) => registration,
            Trust::Trusted => return true,
            Trust::Evicted => {
                *trust = Trust::Evicted;
                return false;
            }
        };
        let still_waiting = lock(&registration.unauthenticated)
            .waiting
            .remove(&registration.number)
            .is_some();
        *trust = if still_waiting {
            Trust::Trusted
        } else {
            Trust::Evicted
        };
        still_waiting
    }

    /// Marks the connection a request arrived on as authenticated, if it has a handle
    /// (requests built in tests without the server's connection loop have none); false
    /// when that connection was evicted first.
    pub fn mark_request(extensions: &axum::http::Extensions) -> bool {
        extensions
            .get::<ConnectionTrust>()
            .is_none_or(ConnectionTrust::authenticated)
    }
}

impl ConnectionBudget {
    /// At most `max_open` connections, of which at most `max_unauthenticated` have not
    /// shown a valid key (both at least one).
    pub fn new(max_open: usize, max_unauthenticated: usize) -> Self {
        let clamp = |n: usize| n.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionBudget {
            open: Arc::new(Semaphore::new(clamp(max_open))),
            unauthenticated: Arc::new(Mutex::new(Unauthenticated {
                max: clamp(max_unauthenticated),
                next_number: 0,
                waiting: BTreeMap::new(),
            })),
        }
    }

    /// A slot for a connection just accepted, or why it must be closed now. Never waits:
    /// a full connection budget closes the new connection rather than queueing it
    /// unseen; a full unauthenticated budget evicts its oldest member instead.
    pub fn admit(&self) -> Result<ConnectionSlot, ConnectionRefusal> {
        let open = Arc::clone(&self.open)
            .try_acquire_owned()
            .map_err(|_| ConnectionRefusal::ConnectionCap)?;
        let (sender, receiver) = oneshot::channel();
        let number = {
            let mut unauthenticated = lock(&self.unauthenticated);
            while unauthenticated.waiting.len() >= unauthenticated.max {
                match unauthenticated.waiting.pop_first() {
                    // The receiver is gone when that connection just ended: nothing to do.
                    Some((_, oldest)) => {
                        let _ = oldest.send(());
                    }
                    None => break,
                }
            }
            let number = unauthenticated.next_number;
            unauthenticated.next_number += 1;
            unauthenticated.waiting.insert(number, sender);
            number
        };
        Ok(ConnectionSlot {
            _open: open,
            trust: ConnectionTrust(Arc::new(Mutex::new(Trust::Waiting(Registration {
                unauthenticated: Arc::clone(&self.unauthenticated),
                number,
            })))),
            evicted: Some(receiver),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn is_evicted(slot: &mut ConnectionSlot) -> bool {
        slot.evicted().now_or_never().is_some()
    }

    #[test]
    fn a_full_unauthenticated_budget_evicts_its_oldest_member() {
        let budget = ConnectionBudget::new(10, 2);
        let mut first = budget.admit().unwrap();
        let mut second = budget.admit().unwrap();
        let mut third = budget.admit().unwrap();
        assert!(is_evicted(&mut first), "the oldest goes");
        assert!(!is_evicted(&mut second));
        assert!(!is_evicted(&mut third));
    }

    #[test]
    fn an_authenticated_connection_is_never_evicted_and_frees_its_place() {
        let budget = ConnectionBudget::new(10, 1);
        let mut first = budget.admit().unwrap();
        assert!(first.trust().authenticated());
        assert!(first.trust().authenticated(), "a later request on it too");
        let mut second = budget.admit().unwrap();
        assert!(!is_evicted(&mut first));
        assert_eq!(
            lock(&budget.unauthenticated).waiting.len(),
            1,
            "the authenticated one freed its place"
        );
        let _third = budget.admit().unwrap();
        // (`evicted` hands its signal out once, so each slot is asked once.)
        assert!(is_evicted(&mut second));
    }

    #[test]
    fn a_request_on_an_evicted_connection_is_not_authenticated() {
        let budget = ConnectionBudget::new(10, 1);
        let first = budget.admit().unwrap();
        let _second = budget.admit().unwrap();
        // Its request shows a valid key after the eviction signal went out, before
        // the connection was dropped: it must be refused, not served.
        assert!(!first.trust().authenticated());
        assert!(!first.trust().authenticated(), "and stays refused");
    }

    #[test]
    fn the_connection_cap_still_refuses() {
        let budget = ConnectionBudget::new(2, 10);
        let _first = budget.admit().unwrap();
        let _second = budget.admit().unwrap();
        assert_eq!(
            budget.admit().unwrap_err(),
            ConnectionRefusal::ConnectionCap
        );
    }

    #[test]
    fn a_closed_connection_returns_both_slots() {
        let budget = ConnectionBudget::new(1, 1);
        drop(budget.admit().unwrap());
        assert!(lock(&budget.unauthenticated).waiting.is_empty());
        assert!(budget.admit().is_ok());
    }
}
