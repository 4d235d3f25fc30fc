//! `/metrics` as the tests and benchmarks read it: fetch the Prometheus text of a
//! server, and find one sample's value in it by its full name (labels included, e.g.
//! `log_ingestion_requests_rejected_total{reason="rate_limited"}`).

/// The text `GET {base}/metrics` answers; `None` when the server cannot be reached.
pub async fn scrape(http: &reqwest::Client, base: &str) -> Option<String> {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// The value of `sample` (name and labels exactly as exposed) in `text`; `None` when
/// absent. Counters and a histogram's `_sum` (written as `2.0`) both parse.
pub fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(sample)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    })
}

/// [`scrape`] then [`sample`]: one sample of a live server, `None` when the server or
/// the sample is absent.
pub async fn scrape_sample(http: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    sample(&scrape(http, base).await?, name)
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn finds_a_labelled_sample_and_not_a_longer_name() {
        let text = "x_total 1\nx_total_more 5\nx{reason=\"a\"} 2\nh_sum 2.5\n";
        assert_eq!(sample(text, "x_total"), Some(1.0));
        assert_eq!(sample(text, "x{reason=\"a\"}"), Some(2.0));
        assert_eq!(sample(text, "h_sum"), Some(2.5));
        assert_eq!(sample(text, "x"), None);
    }
}
