//! The accepted sockets' budget: how many connections may be open at once, and how many
//! of them may be open without having shown a valid API key yet (a connection that
//! only connects, or trickles a request head, holds one of those until the header read
//! timeout closes it). It owns the slots and the `ConnectionTrust` handle the auth
//! layers use to move a connection out of the unauthenticated budget.
//! It never reads from a socket and never decides whether a key is valid.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a freshly accepted connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// `LOG_INGESTION_MAX_CONNECTIONS` connections are open.
    ConnectionCap,
    /// `LOG_INGESTION_MAX_UNAUTHENTICATED_CONNECTIONS` connections have not shown a key.
    UnauthenticatedCap,
}

impl ConnectionRefusal {
    /// The reason label of `log_ingestion_connections_closed_total`.
    pub fn reason(self) -> &'static str {
        match self {
            ConnectionRefusal::ConnectionCap => "connection_cap",
            ConnectionRefusal::UnauthenticatedCap => "unauthenticated_cap",
        }
    }
}

/// The server-wide connection budget; clones share it.
#[derive(Clone, Debug)]
pub struct ConnectionBudget {
    open: Arc<Semaphore>,
    unauthenticated: Arc<Semaphore>,
}

/// One admitted connection's share, returned when the connection ends.
#[derive(Debug)]
pub struct ConnectionSlot {
    _open: OwnedSemaphorePermit,
    trust: ConnectionTrust,
}

impl ConnectionSlot {
    /// The handle to put on every request of this connection.
    pub fn trust(&self) -> ConnectionTrust {
        self.trust.clone()
    }
}

/// Put in each request's extensions: the auth layers call
/// [`ConnectionTrust::authenticated`] once a request shows a valid key, which frees the
/// connection's unauthenticated slot for good.
#[derive(Clone, Debug, Default)]
pub struct ConnectionTrust(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl ConnectionTrust {
    pub fn authenticated(&self) {
        if let Ok(mut slot) = self.0.lock() {
            slot.take();
        }
    }

    /// Marks the connection a request arrived on as authenticated, if it has a handle
    /// (requests built in tests without the server's connection loop have none).
    pub fn mark_request(extensions: &axum::http::Extensions) {
        if let Some(trust) = extensions.get::<ConnectionTrust>() {
            trust.authenticated();
        }
    }
}

impl ConnectionBudget {
    /// At most `max_open` connections, of which at most `max_unauthenticated` have not
    /// shown a valid key (both at least one).
    pub fn new(max_open: usize, max_unauthenticated: usize) -> Self {
        let clamp = |n: usize| n.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionBudget {
            open: Arc::new(Semaphore::new(clamp(max_open))),
            unauthenticated: Arc::new(Semaphore::new(clamp(max_unauthenticated))),
        }
    }

    /// A slot for a connection just accepted, or why it must be closed now. Never waits:
    /// a full budget closes the new connection rather than queueing it unseen.
    pub fn admit(&self) -> Result<ConnectionSlot, ConnectionRefusal> {
        let open = Arc::clone(&self.open)
            .try_acquire_owned()
            .map_err(|_| ConnectionRefusal::ConnectionCap)?;
        let unauthenticated = Arc::clone(&self.unauthenticated)
            .try_acquire_owned()
            .map_err(|_| ConnectionRefusal::UnauthenticatedCap)?;
        Ok(ConnectionSlot {
            _open: open,
            trust: ConnectionTrust(Arc::new(Mutex::new(Some(unauthenticated)))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthenticated_connections_are_capped_apart_from_all_connections() {
        let budget = ConnectionBudget::new(3, 1);
        let first = budget.admit().unwrap();
        assert_eq!(
            budget.admit().unwrap_err(),
            ConnectionRefusal::UnauthenticatedCap
        );
        first.trust().authenticated();
        let second = budget.admit().unwrap();
        second.trust().authenticated();
        let _third = budget.admit().unwrap();
        assert_eq!(
            budget.admit().unwrap_err(),
            ConnectionRefusal::ConnectionCap
        );
        drop(first);
        assert!(
            budget.admit().is_err(),
            "the third still holds the unauthenticated slot"
        );
    }

    #[test]
    fn a_closed_connection_returns_both_slots() {
        let budget = ConnectionBudget::new(1, 1);
        drop(budget.admit().unwrap());
        assert!(budget.admit().is_ok());
    }
}
