//! The recording methods the rest of the server calls: cheap, and never failing.

use std::time::Duration;

use super::labels::{Protocol, Reason, Route};
use super::Metrics;

impl Metrics {
    pub fn entries_accepted(&self, count: u64) {
        self.entries_accepted.inc_by(count);
    }

    /// Entries committed that arrived by `protocol` (`json` or `otlp`).
    pub fn entries_by_protocol(&self, protocol: &'static str, count: u64) {
        self.entries_by_protocol
            .get_or_create(&Protocol { protocol })
            .inc_by(count);
    }

    /// Entries of an otherwise accepted batch that failed validation.
    pub fn entries_rejected(&self, count: u64) {
        self.entries_rejected
            .get_or_create(&Reason {
                reason: "validation",
            })
            .inc_by(count);
    }

    /// A whole request refused, by the reason label of its `ApiError`.
    pub fn request_rejected(&self, reason: &'static str) {
        match reason {
            "rate_limited" => self.rate_limited.inc(),
            "server_busy" => self.server_busy.inc(),
            _ => 0,
        };
        self.requests_rejected
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// A connection the server closed on its own: `connection_cap` (at accept),
    /// `unauthenticated_evicted` (a newer one took its slot) or `header_timeout`.
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&Reason { reason })
            .inc();
    }

    pub fn database_error(&self) {
        self.database_errors.inc();
    }

    /// A group commit writer replaced its kept connection, found dead at a group's
    /// first exchange, and wrote the group on a fresh one.
    pub fn writer_reconnected(&self) {
        self.writer_reconnects.inc();
    }

    /// A read query cancelled because its request went away.
    pub fn read_query_cancelled(&self) {
        self.read_queries_cancelled.inc();
    }

    /// Names this process in `log_ingestion_instance_info` (first call wins).
    pub fn set_instance(&self, instance: &str) {
        let _ = self.instance.set(instance.to_owned());
    }

    pub fn request_finished(&self, method: &str, route: &str, elapsed: Duration) {
        let labels = Route {
            method: method.to_owned(),
            route: route.to_owned(),
        };
        self.request_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn group_committed(&self, rows: usize, elapsed: Duration) {
        self.commit_rows.observe(rows as f64);
        self.commit_duration.observe(elapsed.as_secs_f64());
    }
}
