//! The reader of environment variables: each variable's text, parsed by kind
//! ([`Setting`]: numbers, addresses, `humantime` durations, switches), checked against
//! its floor, and every problem kept so that one [`ConfigError`] lists them all. It
//! knows no variable's meaning beyond the few read here as a whole (the API key list,
//! the instance id, the shared rate limits' store).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::auth::{ApiKey, ApiKeys};
use crate::instance::InstanceId;
use crate::storage::setting::StorageSetting;

/// The shortest timeout or interval accepted: zero would refuse everything or spin,
/// and PostgreSQL reads a zero `statement_timeout` as "none".
pub(super) const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Bad configuration: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// The items of a comma-separated list, trimmed; blanks between commas are skipped.
pub fn comma_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// A comma-separated list of keys.
pub(super) fn key_list(list: &str) -> Vec<ApiKey> {
    comma_list(list).map(ApiKey::new).collect()
}

/// The variables as read through a lookup, and every problem found so far. A bad value
/// is reported and replaced by its default so that reading goes on to the next one.
pub(super) struct Environment<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl<'a> Environment<'a> {
    pub(super) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Environment {
            lookup,
            problems: Vec::new(),
        }
    }

    /// `value` when nothing was wrong, else every problem in one error.
    pub(super) fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }

    pub(super) fn problem(&mut self, name: &str, problem: impl fmt::Display) {
        self.problems.push(format!("  {name}: {problem}"));
    }

    /// The variable's text, trimmed; blank counts as unset.
    pub(super) fn text(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    pub(super) fn required(&mut self, name: &str) -> String {
        self.text(name).unwrap_or_else(|| {
            self.problem(name, "is required but not set");
            String::new()
        })
    }

    /// The parsed variable, `None` when unset or bad (a bad one is a problem).
    pub(super) fn optional<T: Setting>(&mut self, name: &str) -> Option<T> {
        let text = self.text(name)?;
        match T::parse(&text) {
            Some(value) => Some(value),
            None => {
                let quoted = crate::ingest::client_text::quoted(&text);
                self.problem(name, format_args!("must be {} (got {quoted})", T::EXPECTED));
                None
            }
        }
    }

    pub(super) fn get<T: Setting>(&mut self, name: &str, default: T) -> T {
        self.optional(name).unwrap_or(default)
    }

    /// The parsed variable when it is at least `min`; below it is a problem.
    pub(super) fn optional_at_least<T: Setting + PartialOrd>(
        &mut self,
        name: &str,
        min: T,
    ) -> Option<T> {
        let value: T = self.optional(name)?;
        if value < min {
            let (min, value) = (min.show(), value.show());
            self.problem(name, format_args!("must be at least {min} (got {value})"));
            return None;
        }
        Some(value)
    }

    pub(super) fn at_least<T: Setting + PartialOrd>(
        &mut self,
        name: &str,
        default: T,
        min: T,
    ) -> T {
        self.optional_at_least(name, min).unwrap_or(default)
    }

    /// Required; a list of only blanks is its own problem (`ApiKeys::new`'s).
    pub(super) fn api_keys(&mut self) -> ApiKeys {
        let keys = key_list(&self.required("LOG_INGESTION_API_KEYS"));
        ApiKeys::new(keys).unwrap_or_else(|error| {
            if self.text("LOG_INGESTION_API_KEYS").is_some() {
                self.problem("LOG_INGESTION_API_KEYS", error);
            }
            ApiKeys::unusable()
        })
    }

    pub(super) fn instance_id(&mut self) -> InstanceId {
        let configured = self.text("LOG_INGESTION_INSTANCE_ID");
        InstanceId::resolve(configured.as_deref()).unwrap_or_else(|problem| {
            self.problem("LOG_INGESTION_INSTANCE_ID", problem);
            InstanceId::for_this_process()
        })
    }
}

/// How one kind of setting is written: its parser, what "must be ..." says when the
/// text does not parse, and how a value (or a floor) is shown in a problem.
pub(super) trait Setting: Sized {
    const EXPECTED: &'static str;
    fn parse(text: &str) -> Option<Self>;
    fn show(&self) -> String;
}

macro_rules! from_str_settings {
    ($($type:ty => $expected:expr),* $(,)?) => {$(
        impl Setting for $type {
            const EXPECTED: &'static str = $expected;
            fn parse(text: &str) -> Option<Self> {
                text.parse().ok()
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

from_str_settings!(
    u16 => "a whole number",
    u32 => "a whole number",
    usize => "a whole number",
    IpAddr => "an IP address",
    StorageSetting => StorageSetting::CHOICES,
);

/// `humantime`'s durations: `500ms`, `30s`, `10m`, `12h`, `30d`, `5y` (365.25 days) or
/// combinations such as `1h 30m`; a bare number is seconds.
impl Setting for Duration {
    const EXPECTED: &'static str = "a duration like 500ms, 30s, 10m, 12h, 30d or 5y";
    fn parse(text: &str) -> Option<Self> {
        if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
            return text.parse().ok().map(Duration::from_secs);
        }
        humantime::parse_duration(text).ok()
    }
    fn show(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

/// Switches: `on` or `off`.
impl Setting for bool {
    const EXPECTED: &'static str = "on or off";
    fn parse(text: &str) -> Option<Self> {
        match text {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        }
    }
    fn show(&self) -> String {
        if *self { "on" } else { "off" }.to_owned()
    }
}
