//! `EngineConfig`: every knob of the delivery engine, its defaults and its validation.
//!
//! Owns the settings and the rules that make a set of settings usable. It never
//! reads the environment or Ruby objects (the Ruby layer does) and never performs I/O.

use std::str::FromStr;
use std::time::Duration;

/// Which entry gives way when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropPolicy {
    /// The entry being enqueued is dropped; what is queued stays (the default).
    #[default]
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

/// A configuration the engine cannot run with, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("api_url must be an http:// or https:// URL (got {0:?})")]
    InvalidApiUrl(String),
    #[error("api_url is https:// but this build has no TLS support (cargo feature \"tls\")")]
    HttpsUnsupported,
    #[error("api_key must not be empty")]
    MissingApiKey,
    #[error("drop_policy must be \"newest\" or \"oldest\" (got {0:?})")]
    UnknownDropPolicy(String),
    #[error("{name} must be at least {min} (got {got})")]
    TooSmall {
        name: &'static str,
        min: u64,
        got: u64,
    },
    #[error("{name} must be greater than zero")]
    ZeroDuration { name: &'static str },
    #[error("max_retry_delay ({max:?}) must not be shorter than retry_delay ({base:?})")]
    RetryDelayAboveMax { base: Duration, max: Duration },
}

/// Smallest accepted `max_batch_bytes`: room for one reasonable entry.
pub const MIN_BATCH_BYTES: usize = 1024;

/// Settings of one engine. `Default` gives the documented defaults with an empty
/// `api_url`/`api_key`, which `validate` rejects: callers must set both.
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            api_url: String::new(),
            api_key: String::new(),
            batch_size: 512,
            batch_interval: Duration::from_secs(1),
            max_batch_bytes: 1024 * 1024,
            max_retries: 5,
            max_retry_elapsed: Duration::from_secs(300),
            retry_delay: Duration::from_millis(500),
            max_retry_delay: Duration::from_secs(30),
            max_queue_bytes: 16 * 1024 * 1024,
            drop_policy: DropPolicy::Newest,
            gzip: true,
            open_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            enable_batching: true,
            user_agent: concat!("log_ingestion_engine/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl EngineConfig {
    /// Checks every setting; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.api_url.trim();
        let has_scheme = url.starts_with("http://") || url.starts_with("https://");
        if !has_scheme || reqwest::Url::parse(url).is_err() {
            return Err(ConfigError::InvalidApiUrl(self.api_url.clone()));
        }
        if url.starts_with("https://") && !cfg!(feature = "tls") {
            return Err(ConfigError::HttpsUnsupported);
        }
        if self.api_key.trim().is_empty() {
            return Err(ConfigError::MissingApiKey);
        }
        too_small("batch_size", self.batch_size, 1)?;
        too_small("max_batch_bytes", self.max_batch_bytes, MIN_BATCH_BYTES)?;
        too_small("max_queue_bytes", self.max_queue_bytes, MIN_BATCH_BYTES)?;
        for (name, value) in [
            ("batch_interval", self.batch_interval),
            ("retry_delay", self.retry_delay),
            ("max_retry_delay", self.max_retry_delay),
            ("max_retry_elapsed", self.max_retry_elapsed),
            ("open_timeout", self.open_timeout),
            ("read_timeout", self.read_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration { name });
            }
        }
        if self.max_retry_delay < self.retry_delay {
            return Err(ConfigError::RetryDelayAboveMax {
                base: self.retry_delay,
                max: self.max_retry_delay,
            });
        }
        Ok(())
    }

    /// `api_url` without trailing slashes, ready for a path to be appended.
    pub(crate) fn base_url(&self) -> &str {
        self.api_url.trim().trim_end_matches('/')
    }
}

fn too_small(name: &'static str, got: usize, min: usize) -> Result<(), ConfigError> {
    if got < min {
        return Err(ConfigError::TooSmall {
            name,
            min: min as u64,
            got: got as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> EngineConfig {
        EngineConfig {
            api_url: "http://127.0.0.1:9".into(),
            api_key: "key".into(),
            ..EngineConfig::default()
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = EngineConfig::default();
        assert_eq!(c.batch_size, 512);
        assert_eq!(c.batch_interval, Duration::from_secs(1));
        assert_eq!(c.max_batch_bytes, 1 << 20);
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.max_retry_elapsed, Duration::from_secs(300));
        assert_eq!(c.retry_delay, Duration::from_millis(500));
        assert_eq!(c.max_retry_delay, Duration::from_secs(30));
        assert_eq!(c.max_queue_bytes, 16 << 20);
        assert_eq!(c.drop_policy, DropPolicy::Newest);
        assert!(c.gzip && c.enable_batching);
        assert_eq!(c.open_timeout, Duration::from_secs(5));
        assert_eq!(c.read_timeout, Duration::from_secs(10));
    }

    #[test]
    fn a_complete_config_validates() {
        assert_eq!(valid().validate(), Ok(()));
    }

    #[test]
    fn the_default_config_lacks_a_url() {
        assert!(matches!(
            EngineConfig::default().validate(),
            Err(ConfigError::InvalidApiUrl(_))
        ));
    }

    #[test]
    fn a_url_without_http_scheme_is_rejected() {
        let c = EngineConfig {
            api_url: "ftp://example.com".into(),
            ..valid()
        };
        assert!(matches!(c.validate(), Err(ConfigError::InvalidApiUrl(_))));
    }

    #[test]
    #[cfg(feature = "tls")]
    fn an_https_url_is_accepted_with_tls() {
        let c = EngineConfig {
            api_url: "https://logs.example.com".into(),
            ..valid()
        };
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn an_empty_api_key_is_rejected() {
        let c = EngineConfig {
            api_key: " ".into(),
            ..valid()
        };
        assert_eq!(c.validate(), Err(ConfigError::MissingApiKey));
    }

    #[test]
    fn a_zero_batch_size_is_rejected_with_its_name() {
        let c = EngineConfig {
            batch_size: 0,
            ..valid()
        };
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("batch_size"), "{err}");
    }

    #[test]
    fn a_zero_interval_is_rejected() {
        let c = EngineConfig {
            batch_interval: Duration::ZERO,
            ..valid()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroDuration {
                name: "batch_interval"
            })
        );
    }

    #[test]
    fn a_backoff_cap_below_its_base_is_rejected() {
        let c = EngineConfig {
            retry_delay: Duration::from_secs(2),
            max_retry_delay: Duration::from_secs(1),
            ..valid()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::RetryDelayAboveMax { .. })
        ));
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
        let c = EngineConfig {
            api_url: "http://h:1/".into(),
            ..valid()
        };
        assert_eq!(c.base_url(), "http://h:1");
    }
}
