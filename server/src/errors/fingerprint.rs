//! The fingerprint rule: which entries are errors, and the key that puts occurrences
//! of the same error into one group. Version [`RULE_VERSION`]:
//!
//! 1. An entry is an error when its level is ERROR, FATAL or CRITICAL, or when its
//!    metadata carries exception details: `exception: {class, message, backtrace}`
//!    (what the gem sends; the backtrace an array of frames or one string of lines), or
//!    the flat OTLP keys `exception.type`, `exception.message`, `exception.stacktrace`.
//!    Not the gem's summary lines: an entry whose metadata `kind` is `request` or `job`
//!    and that carries no exception details sums up a request or a job that failed (at
//!    ERROR, beside the exception's own entry, which is the occurrence).
//! 2. An explicit metadata `fingerprint` (a string, or an array of strings, numbers and
//!    booleans) is the key, whatever else the entry holds.
//! 3. Else, with a backtrace: the exception class and the first in-app frame's file and
//!    method, without line numbers (`frames`); no in-app frame: the first frame's.
//! 4. Else: the service, the level, the exception class (if any) and the message (the
//!    exception's, else the entry's) as a template (`template`).
//!
//! The parts, with the rule's version and the step's name, are hashed (SHA-256, the
//! first 16 bytes as 32 hex digits). A change to the rule changes the version, and so
//! every fingerprint: a test pins the fingerprints of version 1, so the rule cannot
//! change (and split existing groups) by accident.
//!
//! Bounded work: the metadata is not read again: the details were noted where they are
//! while it was read at decode (`domain::ErrorDetails`), and only the values the rule
//! needs are decoded: frames up to the first in-app one, at most `frames::MAX_FRAMES` of
//! them, [`MAX_FRAME_BYTES`] of each, [`MAX_TEMPLATE_INPUT`] bytes of the message and
//! [`MAX_FINGERPRINT_PARTS`] explicit parts. It never touches storage and never fails:
//! metadata of an unexpected shape makes an entry fall to the next step.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use super::frames::{self, MAX_FRAME_BYTES};
use super::template::{self, cut, MAX_TEMPLATE_INPUT};
use crate::domain::{error_details_of, ErrorDetails, LogEntry};

/// The version of the rule; part of every fingerprint.
pub const RULE_VERSION: u32 = 1;
/// Explicit fingerprint parts that are used; the rest are ignored.
pub const MAX_FINGERPRINT_PARTS: usize = 32;
/// Bytes of an exception class that are kept.
const MAX_CLASS_BYTES: usize = 200;
/// Bytes of a title.
const MAX_TITLE_BYTES: usize = 300;
/// The lowest severity that makes an entry an error on its own (ERROR).
const ERROR_SEVERITY: u8 = 3;

/// An error entry's group key and what its group shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFingerprint {
    /// 32 hex digits.
    pub fingerprint: String,
    /// `Class: message template`, or the template alone.
    pub title: String,
    pub exception_class: Option<String>,
    pub message_template: String,
}

/// A fingerprint's 32 hex digits, held without an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn as_str(&self) -> &str {
        // Hex digits only (`KeyHasher::finish`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The entry's fingerprint, or `None` when it is not an error (see the module's top).
pub fn fingerprint(entry: &LogEntry<'_>) -> Option<ErrorFingerprint> {
    let key = key(entry)?;
    let (title, exception_class, message_template) = describe(entry);
    Some(ErrorFingerprint {
        fingerprint: key.as_str().to_owned(),
        title,
        exception_class,
        message_template,
    })
}

/// The entry's fingerprint alone (what [`fingerprint`] returns as `fingerprint`),
/// without allocating for it: only what the key is made of is decoded, cut and hashed
/// (the message template only when the key is made of it).
pub fn key(entry: &LogEntry<'_>) -> Option<Fingerprint> {
    let details = match entry.metadata() {
        Some(metadata) => metadata.error_details(),
        None => ErrorDetails::none(),
    };
    let class = details.class();
    let mut backtrace = frames_of(&details);
    let first_frame = backtrace.next();
    if class.is_none() && first_frame.is_none() && details.message().is_none() {
        let at_error = entry.level().severity() >= ERROR_SEVERITY;
        let summary = details
            .kind()
            .is_some_and(|kind| kind == "request" || kind == "job");
        if !at_error || summary {
            return None;
        }
    }
    let class = class.as_deref().map(kept_class).unwrap_or("");
    if let Some(parts) = details.explicit_fingerprint().and_then(explicit_parts) {
        let mut hasher = KeyHasher::new("explicit");
        for part in &parts {
            hasher.field(part);
        }
        return Some(hasher.finish());
    }
    if let Some(first) = first_frame {
        let frame = if frames::is_in_app(&first) {
            first
        } else {
            backtrace
                .find(|frame| frames::is_in_app(frame))
                .unwrap_or(first)
        };
        let mut hasher = KeyHasher::new("backtrace");
        hasher.field(class);
        let location = frames::Location::of(&frame);
        hasher.prefix(location.len());
        location.write(|bytes| hasher.0.update(bytes));
        return Some(hasher.finish());
    }
    let message = details.message();
    let message = message.as_deref().unwrap_or(entry.message());
    let mut hasher = KeyHasher::new("message");
    hasher.field(entry.service());
    hasher.field(entry.level().as_str());
    hasher.field(class);
    hasher.field(&template::template(message.trim()));
    Some(hasher.finish())
}

/// What the group of an error entry shows: its title, exception class and message
/// template (for a group met for the first time; the key is [`key`]'s).
pub fn describe(entry: &LogEntry<'_>) -> (String, Option<String>, String) {
    let details = match entry.metadata() {
        Some(metadata) => metadata.error_details(),
        None => ErrorDetails::none(),
    };
    let class = details
        .class()
        .as_deref()
        .map(kept_class)
        .filter(|class| !class.is_empty())
        .map(str::to_owned);
    let message = details.message();
    let message = message.as_deref().unwrap_or(entry.message());
    let message_template = template::template(message.trim());
    let mut title = match &class {
        Some(class) => format!("{class}: {message_template}"),
        None => message_template.clone(),
    };
    let kept = cut(&title, MAX_TITLE_BYTES).len();
    title.truncate(kept);
    (title, class, message_template)
}

/// The part of an exception class that is kept (blank: none).
fn kept_class(class: &str) -> &str {
    cut(class.trim(), MAX_CLASS_BYTES)
}

/// The backtrace's frames, each cut to [`MAX_FRAME_BYTES`], blank ones skipped.
fn frames_of<'d>(details: &'d ErrorDetails<'_>) -> impl Iterator<Item = Cow<'d, str>> + 'd {
    details.frames().filter_map(|frame| {
        let kept = cut(&frame, MAX_FRAME_BYTES).len();
        if frame[..kept].trim().is_empty() {
            return None;
        }
        Some(match frame {
            Cow::Borrowed(text) => Cow::Borrowed(&text[..kept]),
            Cow::Owned(mut text) => {
                text.truncate(kept);
                Cow::Owned(text)
            }
        })
    })
}

/// SHA-256 of `RULE_VERSION`, the step's name and the parts, each length-prefixed (so
/// no two lists of parts hash alike); the first 16 bytes as 32 hex digits.
struct KeyHasher(Sha256);

impl KeyHasher {
    fn new(step: &str) -> Self {
        let mut hasher = KeyHasher(Sha256::new());
        let mut digits = [0u8; 10];
        hasher.field(decimal(RULE_VERSION, &mut digits));
        hasher.field(step);
        hasher
    }

    /// The length prefix of a part of `len` bytes, whose bytes follow.
    fn prefix(&mut self, len: usize) {
        self.0.update((len as u64).to_be_bytes());
    }

    fn field(&mut self, text: &str) {
        self.prefix(text.len());
        self.0.update(text.as_bytes());
    }

    fn finish(self) -> Fingerprint {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 32];
        for (at, byte) in self.0.finalize()[..16].iter().enumerate() {
            hex[2 * at] = HEX[usize::from(byte >> 4)];
            hex[2 * at + 1] = HEX[usize::from(byte & 0x0f)];
        }
        Fingerprint(hex)
    }
}

/// `number` in decimal, written into `digits`.
fn decimal(mut number: u32, digits: &mut [u8; 10]) -> &str {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[start..]).unwrap_or_default()
}

/// The explicit fingerprint's parts from its JSON text: a string, or an array of
/// strings, numbers and booleans (others skipped), at most [`MAX_FINGERPRINT_PARTS`];
/// `None` when empty.
fn explicit_parts(raw: &str) -> Option<Vec<String>> {
    let parts: Vec<String> = match serde_json::from_str::<serde_json::Value>(raw).ok()? {
        serde_json::Value::String(text) => vec![text],
        serde_json::Value::Array(items) => items
            .into_iter()
            .take(MAX_FINGERPRINT_PARTS)
            .filter_map(|item| match item {
                serde_json::Value::String(text) => Some(text),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Bool(flag) => Some(flag.to_string()),
                _ => None,
            })
            .collect(),
        _ => return None,
    };
    let parts: Vec<String> = parts
        .into_iter()
        .map(|part| cut(&part, MAX_TEMPLATE_INPUT).to_owned())
        .filter(|part| !part.is_empty())
        .collect();
    (!parts.is_empty()).then_some(parts)
}

/// The frames of the latest occurrence's backtrace as the group page shows them
/// (each with whether it is in-app), from the entry's stored metadata.
pub fn backtrace_of(metadata: &str) -> Vec<(String, bool)> {
    let details = error_details_of(metadata);
    frames_of(&details)
        .map(|frame| {
            let in_app = frames::is_in_app(&frame);
            (frame.into_owned(), in_app)
        })
        .collect()
}

/// The latest occurrence's own exception message (not a template), if it has one.
pub fn exception_message_of(metadata: &str) -> Option<String> {
    error_details_of(metadata)
        .message()
        .map(|message| cut(&message, MAX_TEMPLATE_INPUT).to_owned())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::frames::MAX_FRAMES;
    use super::*;
    use crate::config::EntryLimits;

    fn entry(level: &str, message: &str, metadata: serde_json::Value) -> LogEntry<'static> {
        let wire = log_ingestion_wire::WireEntry {
            timestamp: Utc::now().to_rfc3339(),
            service: "shop".into(),
            level: level.into(),
            message: message.into(),
            metadata: (!metadata.is_null()).then_some(metadata),
        };
        let limits = EntryLimits {
            max_metadata_bytes: 10_000_000,
            max_message_bytes: 10_000_000,
            ..EntryLimits::default()
        };
        LogEntry::parse(wire, &limits, Utc::now()).unwrap()
    }

    fn rails_error(message: &str, backtrace: &[&str]) -> LogEntry<'static> {
        entry(
            "ERROR",
            message,
            json!({"request_id": "r1", "exception": {
                "class": "NoMethodError",
                "message": message,
                "backtrace": backtrace,
            }}),
        )
    }

    fn key(entry: &LogEntry<'_>) -> String {
        fingerprint(entry).unwrap().fingerprint
    }

    const GEMS: &str = "/usr/local/bundle/gems/actionpack-7.1.2/lib/action_controller/metal/basic_implicit_render.rb:6:in `send_action'";

    #[test]
    fn no_method_error_on_nil_with_different_receivers_is_one_group() {
        let one = rails_error(
            "undefined method `name' for nil:NilClass",
            &["app/models/user.rb:42:in `full_name'", GEMS],
        );
        let two = rails_error(
            "undefined method `name' for #<User id: 5, email: \"a@b.co\">:0x00007f",
            &["app/models/user.rb:42:in `full_name'", GEMS],
        );
        assert_eq!(key(&one), key(&two));
        let found = fingerprint(&one).unwrap();
        assert_eq!(found.exception_class.as_deref(), Some("NoMethodError"));
        assert_eq!(
            found.title,
            "NoMethodError: undefined method `<str>' for nil:NilClass"
        );
    }

    #[test]
    fn the_same_class_from_two_in_app_methods_is_two_groups() {
        let one = rails_error("boom", &[GEMS, "app/models/user.rb:42:in `full_name'"]);
        let two = rails_error("boom", &[GEMS, "app/models/user.rb:50:in `initials'"]);
        assert_ne!(key(&one), key(&two));
    }

    #[test]
    fn a_line_number_change_after_a_deploy_is_the_same_group() {
        let before = rails_error("boom", &[GEMS, "app/models/user.rb:42:in 'User#full_name'"]);
        let after = rails_error("boom", &[GEMS, "app/models/user.rb:47:in 'User#full_name'"]);
        assert_eq!(key(&before), key(&after));
        // Library frames above the app's do not matter either.
        let other_gem_line = rails_error(
            "boom",
            &[
                &GEMS.replace(":6:", ":9:"),
                "app/models/user.rb:47:in 'User#full_name'",
            ],
        );
        assert_eq!(key(&before), key(&other_gem_line));
    }

    #[test]
    fn without_a_backtrace_the_message_template_groups() {
        let one = entry("ERROR", "Payment failed for order 923", json!(null));
        let two = entry(
            "ERROR",
            "Payment failed for order 17",
            json!({"user_id": 4}),
        );
        assert_eq!(key(&one), key(&two));
        assert_eq!(
            fingerprint(&one).unwrap().title,
            "Payment failed for order <n>"
        );
        let uuid = entry(
            "ERROR",
            "job 3f2b8c1e-9a4d-4c1b-8f3e-2a1b3c4d5e6f for ada@example.com failed",
            json!(null),
        );
        let other = entry(
            "ERROR",
            "job 00000000-0000-4000-8000-000000000000 for bob@example.org failed",
            json!(null),
        );
        assert_eq!(key(&uuid), key(&other));
        // The level and the service are part of it.
        let fatal = entry("FATAL", "Payment failed for order 923", json!(null));
        assert_ne!(key(&one), key(&fatal));
    }

    #[test]
    fn info_entries_are_errors_only_with_exception_details() {
        assert_eq!(fingerprint(&entry("INFO", "hello", json!(null))), None);
        assert_eq!(
            fingerprint(&entry("WARN", "x", json!({"exception_count": 1}))),
            None
        );
        let rescued = entry(
            "WARN",
            "retrying",
            json!({"exception": {"class": "Timeout::Error", "message": "execution expired"}}),
        );
        assert_eq!(
            fingerprint(&rescued).unwrap().title,
            "Timeout::Error: execution expired"
        );
        let otlp = entry(
            "INFO",
            "span failed",
            json!({"exception.type": "ActiveRecord::RecordNotFound",
                   "exception.message": "Couldn't find User with 'id'=42",
                   "exception.stacktrace": "app/controllers/users_controller.rb:9:in `show'\n/usr/local/bundle/gems/x/y.rb:1:in `z'"}),
        );
        let gem_shape = entry(
            "ERROR",
            "x",
            json!({"exception": {"class": "ActiveRecord::RecordNotFound", "message": "Couldn't find User with 'id'=7",
                   "backtrace": ["app/controllers/users_controller.rb:12:in `show'"]}}),
        );
        assert_eq!(key(&otlp), key(&gem_shape));
    }

    #[test]
    fn the_gems_request_and_job_summary_lines_are_not_occurrences() {
        let request = entry(
            "ERROR",
            "GET /widgets/boom 500",
            json!({"kind": "request", "status": 500, "request_id": "r1"}),
        );
        assert_eq!(fingerprint(&request), None);
        let job = entry(
            "ERROR",
            "Job failed",
            json!({"kind": "job", "outcome": "failed", "exception_class": "KeyError"}),
        );
        assert_eq!(fingerprint(&job), None);
        let exception = entry(
            "ERROR",
            "boom",
            json!({"kind": "exception", "exception": {"class": "KeyError", "message": "key not found: :a"}}),
        );
        assert!(fingerprint(&exception).is_some());
        let other = entry("ERROR", "boom", json!({"kind": "payment"}));
        assert!(fingerprint(&other).is_some());
        // A fingerprint key alone does not make an entry an error.
        let tagged = entry("INFO", "ok", json!({"fingerprint": "abc"}));
        assert_eq!(fingerprint(&tagged), None);
    }

    #[test]
    fn an_explicit_fingerprint_overrides_both() {
        let one = entry(
            "ERROR",
            "a",
            json!({"fingerprint": ["payments", 42], "exception": {"class": "A", "backtrace": ["app/a.rb:1:in `a'"]}}),
        );
        let two = entry(
            "ERROR",
            "b",
            json!({"fingerprint": ["payments", 42], "exception": {"class": "B", "backtrace": ["app/b.rb:1:in `b'"]}}),
        );
        assert_eq!(key(&one), key(&two));
        let string = entry("ERROR", "c", json!({"fingerprint": "payments"}));
        assert_ne!(key(&one), key(&string));
        // An empty or malformed one is ignored.
        let empty = entry(
            "ERROR",
            "Payment failed for order 1",
            json!({"fingerprint": []}),
        );
        let plain = entry("ERROR", "Payment failed for order 2", json!(null));
        assert_eq!(key(&empty), key(&plain));
    }

    #[test]
    fn metadata_of_unexpected_shapes_falls_back_to_the_message() {
        let odd = entry(
            "ERROR",
            "Payment failed for order 1",
            json!({"exception": "just text", "exception.stacktrace": 5}),
        );
        let plain = entry("ERROR", "Payment failed for order 2", json!(null));
        assert_eq!(key(&odd), key(&plain));
    }

    #[test]
    fn ten_thousand_frames_and_huge_or_odd_text_are_bounded() {
        let mut frames: Vec<String> = (0..10_000)
            .map(|i| format!("/usr/local/bundle/gems/g-1.0/lib/g.rb:{i}:in `x'"))
            .collect();
        frames.push("app/models/user.rb:1:in `late'".into());
        let long = "é\u{FFFD}".repeat(50_000);
        let huge = entry(
            "ERROR",
            &long,
            json!({"exception": {"class": long, "message": long, "backtrace": frames}}),
        );
        let started = std::time::Instant::now();
        let found = fingerprint(&huge).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(found.title.len() <= MAX_TITLE_BYTES);
        assert!(found.message_template.len() <= MAX_TEMPLATE_INPUT);
        // The in-app frame past the cap is not looked at: the first frame decides.
        let capped = entry(
            "ERROR",
            "x",
            json!({"exception": {"class": "E", "backtrace": frames}}),
        );
        let first_only = entry(
            "ERROR",
            "y",
            json!({"exception": {"class": "E", "backtrace": [frames[0].replace(":0:", ":5:")]}}),
        );
        assert_eq!(key(&capped), key(&first_only));
        let shown = backtrace_of(huge.metadata().unwrap().as_json());
        assert_eq!(shown.len(), MAX_FRAMES);
    }

    /// Version 1's fingerprints: a change here is a change of the rule, which needs a
    /// new RULE_VERSION (and splits every group, so it is documented in docs/errors.md).
    #[test]
    fn version_one_fingerprints_are_pinned() {
        assert_eq!(RULE_VERSION, 1);
        let pinned = [
            key(&rails_error(
                "boom",
                &["app/models/user.rb:42:in `full_name'"],
            )),
            key(&entry("ERROR", "Payment failed for order 923", json!(null))),
            key(&entry(
                "ERROR",
                "x",
                json!({"fingerprint": ["payments", 42]}),
            )),
        ];
        assert_eq!(
            pinned,
            [
                "ac5829d3e264c48d30a163647927e0f4",
                "a2a188cf4f62e293cdebb135adb94b81",
                "6d29b72ba9a3b5775226468cfe436cfe"
            ]
        );
    }
}
