//! Latency percentiles for tests and benchmarks: durations recorded in an HDR histogram
//! (`hdrhistogram`, microsecond units, three significant figures), so every p50/p99 in
//! the repository is computed one way.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Recorded durations; cheap to merge across the tasks of a load run.
#[derive(Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        Latencies {
            histogram: Histogram::new(3).expect("three significant figures is a valid precision"),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // `record` grows the histogram to fit; `saturating_record` never does.
        if self.histogram.record(micros.max(1)).is_err() {
            self.histogram.saturating_record(micros.max(1));
        }
    }

    /// Adds everything `other` recorded.
    pub fn add(&mut self, other: &Latencies) {
        self.histogram
            .add(&other.histogram)
            .expect("auto-resizing histograms of one precision add");
    }

    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The latency `percentile` (0–100) of the recorded ones fall under; `None` when
    /// nothing was recorded.
    pub fn percentile(&self, percentile: f64) -> Option<Duration> {
        (!self.is_empty()).then(|| {
            Duration::from_micros(
                self.histogram
                    .value_at_percentile(percentile.clamp(0.0, 100.0)),
            )
        })
    }

    /// The largest recorded latency; `None` when nothing was recorded.
    pub fn max(&self) -> Option<Duration> {
        (!self.is_empty()).then(|| Duration::from_micros(self.histogram.max()))
    }
}

impl<'a> FromIterator<&'a Duration> for Latencies {
    fn from_iter<I: IntoIterator<Item = &'a Duration>>(iter: I) -> Self {
        let mut latencies = Latencies::new();
        for latency in iter {
            latencies.record(*latency);
        }
        latencies
    }
}

impl FromIterator<Duration> for Latencies {
    fn from_iter<I: IntoIterator<Item = Duration>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<_>>().iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Latencies;

    #[test]
    fn percentiles_of_a_hundred_milliseconds() {
        let latencies: Latencies = (1..=100).map(Duration::from_millis).collect();
        let close = |got: Option<Duration>, millis: u64| {
            let got = got.expect("recorded").as_secs_f64() * 1000.0;
            (got - millis as f64).abs() <= millis as f64 * 0.001 + 0.001
        };
        assert!(close(latencies.percentile(50.0), 50));
        assert!(close(latencies.percentile(99.0), 99));
        assert!(close(latencies.max(), 100));
        assert_eq!(Latencies::new().percentile(99.0), None);
    }
}
