//! `InstanceId`: the name one server process goes by in a fleet, carried by its logs,
//! `/metrics` and `/health`, and (with a suffix drawn per start, so two processes
//! given one id stay apart) as its row in the shared rate-limit store. It owns
//! the rule for what an id may contain (so it is safe in a Prometheus label, a JSON
//! string and a log line without escaping) and the default (hostname and pid). It never
//! changes after start-up.

use std::fmt;

/// Longest accepted `LOG_INGESTION_INSTANCE_ID`.
pub const MAX_INSTANCE_ID_CHARS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceId(String);

impl InstanceId {
    /// `configured` when given and valid, else the hostname and this process's id.
    pub fn resolve(configured: Option<&str>) -> Result<Self, String> {
        match configured {
            Some(text) => Self::parse(text),
            None => Ok(Self::for_this_process()),
        }
    }

    /// 1–64 characters from `A-Z a-z 0-9 . _ : -`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = !text.is_empty()
            && text.len() <= MAX_INSTANCE_ID_CHARS
            && text.bytes().all(allowed_byte);
        if valid {
            Ok(InstanceId(text.to_owned()))
        } else {
            Err(format!(
                "must be 1 to {MAX_INSTANCE_ID_CHARS} characters from A-Z a-z 0-9 . _ : -"
            ))
        }
    }

    /// `HOSTNAME-PID`, with the hostname cut to what the id allows.
    pub fn for_this_process() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String = host
            .trim()
            .bytes()
            .filter(|byte| allowed_byte(*byte))
            .take(MAX_INSTANCE_ID_CHARS - 12)
            .map(char::from)
            .collect();
        let host = if host.is_empty() {
            "server".to_owned()
        } else {
            host
        };
        InstanceId(format!("{host}-{}", std::process::id()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn allowed_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-')
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_would_need_escaping_are_refused() {
        assert!(InstanceId::parse("web-1.eu:8080").is_ok());
        for bad in ["", "a\"b", "a b", "a\nb", "ä", &"x".repeat(65)] {
            assert!(InstanceId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_default_names_host_and_process() {
        let id = InstanceId::resolve(None).unwrap();
        assert!(id.as_str().ends_with(&format!("-{}", std::process::id())));
        assert!(InstanceId::parse(id.as_str()).is_ok());
    }
}
