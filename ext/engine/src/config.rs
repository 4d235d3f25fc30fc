//! `EngineConfig`: every knob of the delivery engine, as values the caller has checked.
//!
//! Owns the settings' shape and the two conversions the engine cannot do without (an
//! http(s) URL it can append paths to, a drop policy's spelling). The settings' defaults
//! and rules (ranges, `max_retry_delay >= retry_delay`) live in one place, the gem's
//! `LogIngestion::Configuration` (`DEFAULTS`, `validate!`), which works without the
//! native library (test mode) and whose messages docs/gem.md promises; the engine trusts the
//! values it is given and must never grow a second copy of those defaults or rules.
//! It never reads the environment or Ruby objects and never performs I/O.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Which entry gives way when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropPolicy {
    /// The entry being enqueued is dropped; what is queued stays.
    Newest,
    /// The oldest queued entries are dropped to make room for the new one.
    Oldest,
}

impl DropPolicy {
    /// The spelling used in configuration: `"newest"` or `"oldest"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropPolicy::Newest => "newest",
            DropPolicy::Oldest => "oldest",
        }
    }
}

impl FromStr for DropPolicy {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "newest" => Ok(DropPolicy::Newest),
            "oldest" => Ok(DropPolicy::Oldest),
            _ => Err(ConfigError::UnknownDropPolicy(s.to_owned())),
        }
    }
}

/// A setting the engine cannot turn into what it needs, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("api_url must be an http:// or https:// URL (got {0:?})")]
    InvalidApiUrl(String),
    #[error("api_url is https:// but this build has no TLS support (cargo feature \"tls\")")]
    HttpsUnsupported,
    #[error("drop_policy must be \"newest\" or \"oldest\" (got {0:?})")]
    UnknownDropPolicy(String),
}

/// Settings of one engine, every field given by the caller: there is no `Default`, so
/// the gem's defaults have one home (`LogIngestion::Configuration::DEFAULTS`, handed over
/// by `to_engine_hash`). Values are trusted, not re-checked: a zero `batch_size` or zero
/// duration would stall delivery, which `Configuration#validate!` rules out. Rust callers
/// (the engine's tests: `tests/support::test_config`) build the whole struct.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Base URL of the ingestion server, e.g. `http://127.0.0.1:8080` (paths are appended).
    pub api_url: String,
    /// Sent as `X-API-Key` on every request.
    pub api_key: String,
    /// Most entries per batch request.
    pub batch_size: usize,
    /// A partial batch is sent once this much time has passed.
    pub batch_interval: Duration,
    /// Most bytes of encoded JSON per batch body (before gzip).
    pub max_batch_bytes: usize,
    /// Retries after the first attempt for failures that may be the batch's own (timeouts,
    /// 408, 500 and 5xx other than 502/503/504): at most `max_retries + 1` such attempts.
    pub max_retries: u32,
    /// How long a batch is retried, from its first attempt: no attempt starts later. The
    /// only bound for a server that is unavailable (connection refused, 429, 502, 503,
    /// 504), so an outage is ridden out for this long instead of for `max_retries` quick
    /// attempts; the queue keeps its byte bound meanwhile.
    pub max_retry_elapsed: Duration,
    /// Base of the exponential backoff.
    pub retry_delay: Duration,
    /// Cap of the exponential backoff.
    pub max_retry_delay: Duration,
    /// Bound of the queue, in bytes of encoded JSON.
    pub max_queue_bytes: usize,
    /// Which entry is dropped when the queue is full.
    pub drop_policy: DropPolicy,
    /// Gzip request bodies when it pays (bodies over [`crate::GZIP_MIN_BYTES`]).
    pub gzip: bool,
    /// TCP connect timeout.
    pub open_timeout: Duration,
    /// Timeout of each read while waiting for an answer.
    pub read_timeout: Duration,
    /// `false`: every entry is its own request to `POST /api/v1/logs` (still off the caller's thread).
    pub enable_batching: bool,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Where batches the service could not take at exit are written, and read back by
    /// the next engine started on the same directory (`None`: no spool; they are lost).
    pub spool_dir: Option<PathBuf>,
    /// Bound of the spool directory's files together, in bytes.
    pub max_spool_bytes: u64,
}

impl EngineConfig {
    /// Checks that the engine can send to `api_url`: an http(s) URL, https only in a
    /// build with TLS. The settings' own rules are `Configuration#validate!`'s.
    pub fn check_api_url(&self) -> Result<(), ConfigError> {
        let url = self.api_url.trim();
        let has_scheme = url.starts_with("http://") || url.starts_with("https://");
        if !has_scheme || reqwest::Url::parse(url).is_err() {
            return Err(ConfigError::InvalidApiUrl(self.api_url.clone()));
        }
        if url.starts_with("https://") && !cfg!(feature = "tls") {
            return Err(ConfigError::HttpsUnsupported);
        }
        Ok(())
    }

    /// `api_url` without trailing slashes, ready for a path to be appended.
    pub(crate) fn base_url(&self) -> &str {
        self.api_url.trim().trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(api_url: &str) -> EngineConfig {
        EngineConfig {
            api_url: api_url.into(),
            api_key: "key".into(),
            batch_size: 1,
            batch_interval: Duration::from_secs(1),
            max_batch_bytes: 1024,
            max_retries: 0,
            max_retry_elapsed: Duration::from_secs(1),
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(1),
            max_queue_bytes: 1024,
            drop_policy: DropPolicy::Newest,
            gzip: false,
            open_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            enable_batching: true,
            user_agent: "test".into(),
            spool_dir: None,
            max_spool_bytes: 0,
        }
    }

    #[test]
    fn an_http_url_is_accepted() {
        assert_eq!(with_url("http://127.0.0.1:9").check_api_url(), Ok(()));
    }

    #[test]
    fn an_empty_url_is_rejected() {
        assert!(matches!(
            with_url("").check_api_url(),
            Err(ConfigError::InvalidApiUrl(_))
        ));
    }

    #[test]
    fn a_url_without_http_scheme_is_rejected() {
        assert!(matches!(
            with_url("ftp://example.com").check_api_url(),
            Err(ConfigError::InvalidApiUrl(_))
        ));
    }

    #[test]
    #[cfg(feature = "tls")]
    fn an_https_url_is_accepted_with_tls() {
        assert_eq!(with_url("https://logs.example.com").check_api_url(), Ok(()));
    }

    #[test]
    fn drop_policy_parses_case_insensitively_and_rejects_others() {
        assert_eq!("Newest".parse::<DropPolicy>(), Ok(DropPolicy::Newest));
        assert_eq!("oldest".parse::<DropPolicy>(), Ok(DropPolicy::Oldest));
        assert!(matches!(
            "random".parse::<DropPolicy>(),
            Err(ConfigError::UnknownDropPolicy(_))
        ));
    }

    #[test]
    fn base_url_loses_trailing_slashes() {
        assert_eq!(with_url("http://h:1/").base_url(), "http://h:1");
    }
}
