//! PostgreSQL's CPU per row through the server beside a raw `COPY`'s, in the same run:
//! each batch-100 phase against the raw `COPY` measured right before it (the median of
//! the pairs), and every other batch size against the median raw `COPY`. Owns that
//! comparison and its targets; the figures come from the phases' reports.

use crate::report::{median, verdict, PhaseReport};

/// The server's PostgreSQL CPU per row at most this many times a raw `COPY`'s.
const TARGETS: [(usize, f64); 2] = [(100, 1.15), (1_000, 1.05)];

/// The phases' PostgreSQL CPU per row, as they are measured.
#[derive(Default)]
pub(crate) struct PgPerRow {
    /// (batch size, server's µs per row, the paired raw COPY's µs per row if paired).
    phases: Vec<(usize, f64, Option<f64>)>,
    copies: Vec<f64>,
}

impl PgPerRow {
    pub(crate) fn copy(&mut self, copy: &PhaseReport) {
        self.copies.extend(copy.postgres_micros_per_entry());
    }

    /// A server phase; `paired`: the raw COPY measured right before it.
    pub(crate) fn phase(
        &mut self,
        batch_size: usize,
        phase: &PhaseReport,
        paired: Option<&PhaseReport>,
    ) {
        if let Some(micros) = phase.postgres_micros_per_entry() {
            let copy = paired.and_then(PhaseReport::postgres_micros_per_entry);
            self.phases.push((batch_size, micros, copy));
        }
    }

    /// One line per batch size: the ratio (median of the pairs, or against the median
    /// raw COPY), each phase's, and the target.
    pub(crate) fn print(&self, measuring: bool) {
        let mut copies = self.copies.clone();
        let Some(copy_median) = median(&mut copies) else {
            return;
        };
        let mut sizes: Vec<usize> = self.phases.iter().map(|p| p.0).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let mut ratios: Vec<f64> = self
                .phases
                .iter()
                .filter(|p| p.0 == size)
                .map(|&(_, micros, copy)| micros / copy.unwrap_or(copy_median))
                .collect();
            let Some(median) = median(&mut ratios) else {
                continue;
            };
            let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            let target = TARGETS.iter().find(|t| t.0 == size).map(|t| t.1);
            println!(
                "PostgreSQL CPU per row, batch {size} / raw COPY ({copy_median:.2} µs): \
                 median {median:.2}x [{}]{}",
                each.join(" "),
                target.map_or(String::new(), |t| format!(
                    "  (target <= {t:.2}x: {})",
                    verdict(measuring, median <= t)
                ))
            );
        }
    }
}
