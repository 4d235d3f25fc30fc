//! What a phase measured and how it is printed: entries/s, latency percentiles, peak
//! RSS and where the CPU went (`log_ingestion_test_support::proc_stats`).

use std::fmt;
use std::time::Duration;

use log_ingestion_test_support::{proc_stats, Latencies, ServerProcess};

/// CPU seconds used so far by the server, this program, the database's backends and
/// the whole machine; the difference of two snapshots says where a phase's time went.
#[derive(Clone, Copy, Default)]
pub(crate) struct CpuSnapshot {
    pub(crate) server: Option<f64>,
    pub(crate) client: Option<f64>,
    pub(crate) postgres: Option<f64>,
    pub(crate) machine: Option<f64>,
}

impl CpuSnapshot {
    pub(crate) fn take(server: Option<&ServerProcess>, database: &str) -> Self {
        CpuSnapshot {
            server: server.and_then(ServerProcess::cpu_seconds),
            client: proc_stats::own_cpu_seconds(),
            postgres: proc_stats::postgres_backends_cpu_seconds(database),
            machine: proc_stats::machine_busy_seconds(),
        }
    }

    pub(crate) fn since(self, before: CpuSnapshot) -> CpuSnapshot {
        let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
        CpuSnapshot {
            server: diff(self.server, before.server),
            client: diff(self.client, before.client),
            postgres: diff(self.postgres, before.postgres),
            machine: diff(self.machine, before.machine),
        }
    }
}

/// What one phase measured.
pub(crate) struct PhaseReport {
    pub(crate) label: String,
    pub(crate) entries: u64,
    pub(crate) requests: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Latencies,
    pub(crate) peak_rss_kib: Option<u64>,
    pub(crate) cpu: CpuSnapshot,
}

impl PhaseReport {
    pub(crate) fn entries_per_second(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }

    /// Server CPU-seconds ÷ entries, in µs: far less sensitive to other load on the
    /// machine than entries/s.
    pub(crate) fn server_micros_per_entry(&self) -> Option<f64> {
        self.cpu
            .server
            .filter(|_| self.entries > 0)
            .map(|cpu| cpu * 1e6 / self.entries as f64)
    }

    /// PostgreSQL backends' CPU-seconds ÷ rows, in µs: what each row (and its share of
    /// its group's transaction) costs the database, comparable with the raw COPY.
    pub(crate) fn postgres_micros_per_entry(&self) -> Option<f64> {
        self.cpu
            .postgres
            .filter(|_| self.entries > 0)
            .map(|cpu| cpu * 1e6 / self.entries as f64)
    }

    pub(crate) fn percentile(&self, p: f64) -> Option<Duration> {
        self.latencies.percentile(p)
    }
}

impl fmt::Display for PhaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| {
            d.map(|d| format!("{:.2}", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "-".into())
        };
        let mib = self
            .peak_rss_kib
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "-".into());
        let secs = self.elapsed.as_secs_f64();
        let share = |cpu: Option<f64>| {
            cpu.map(|c| format!("{:.0}%", 100.0 * c / secs))
                .unwrap_or_else(|| "-".into())
        };
        write!(
            f,
            "{:<12} {:>9} {:>8} {:>8.2} {:>11.0} {:>9} {:>9} {:>10} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9}",
            self.label,
            self.entries,
            self.requests,
            secs,
            self.entries_per_second(),
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            mib,
            share(self.cpu.server),
            share(self.cpu.postgres),
            share(self.cpu.client),
            share(self.cpu.machine),
            self.server_micros_per_entry()
                .map_or_else(|| "-".into(), |us| format!("{us:.2}")),
            self.postgres_micros_per_entry()
                .map_or_else(|| "-".into(), |us| format!("{us:.2}")),
        )
    }
}

pub(crate) fn table_header() -> String {
    format!(
        "{:<12} {:>9} {:>8} {:>8} {:>11} {:>9} {:>9} {:>10} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9}",
        "phase",
        "entries",
        "requests",
        "secs",
        "entries/s",
        "p50 ms",
        "p99 ms",
        "peak RSS",
        "server",
        "pg",
        "client",
        "all",
        "srv µs/e",
        "pg µs/e"
    )
}

/// The median of `values`, which are left sorted (for printing each in order).
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

pub(crate) fn verdict(measuring: bool, met: bool) -> &'static str {
    match (measuring, met) {
        (false, _) => "not judged in a smoke run",
        (true, true) => "met",
        (true, false) => "MISSED",
    }
}
