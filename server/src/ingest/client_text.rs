//! How much of a client's own input may appear in an answer or a log line, and how it is
//! cut. Every error message that quotes a body, a header, a parameter or a decoder's
//! description of them goes through here (serde_json's among them:
//! [`describe_json_error`]), so a message is built in time linear in its cap (never in
//! the size of the input) and never echoes a body back. It knows nothing of HTTP, so
//! the domain may use it too. It never allocates more than its caps and never decides
//! what is valid.

use std::fmt::{self, Write as _};

/// Characters of one quoted client value (a timestamp, a level, a parameter name).
pub const MAX_QUOTED_CHARS: usize = 64;
/// Bytes of one whole problem description (a decoder's message, one validation problem).
pub const MAX_MESSAGE_BYTES: usize = 512;
/// Problems listed in one answer; the rest are counted in a last line.
pub const MAX_PROBLEMS: usize = 20;

/// What marks a cut.
const ELLIPSIS: &str = "…";

/// `text` in Rust debug quotes (`"…"` with escapes), cut to [`MAX_QUOTED_CHARS`]
/// characters of the original; a cut one says how long the original was.
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}{ELLIPSIS} ({} bytes)", &text[..cut], text.len()),
    }
}

/// `value`'s `Display` output, formatting at most `max_bytes` of it (the formatter is
/// stopped there, so a message quoting 10 MiB costs what `max_bytes` does). The
/// second value is whether the whole output fitted.
pub fn bounded_display(value: &impl fmt::Display, max_bytes: usize) -> (String, bool) {
    let mut writer = BoundedWriter {
        text: String::new(),
        max_bytes,
        overflowed: false,
    };
    let _ = write!(writer, "{value}");
    (writer.text, !writer.overflowed)
}

/// `text` cut to at most `max_bytes` (at a character boundary) with a mark when cut.
pub fn truncated(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut cut = max_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ELLIPSIS}", &text[..cut])
}

/// At most [`MAX_PROBLEMS`] problems, each cut to [`MAX_MESSAGE_BYTES`]; a last line
/// counts the ones left out.
pub fn capped_problems(problems: Vec<String>) -> Vec<String> {
    let total = problems.len();
    let mut kept: Vec<String> = problems
        .into_iter()
        .take(MAX_PROBLEMS)
        .map(|problem| {
            if problem.len() > MAX_MESSAGE_BYTES {
                truncated(&problem, MAX_MESSAGE_BYTES)
            } else {
                problem
            }
        })
        .collect();
    if total > MAX_PROBLEMS {
        kept.push(format!("and {} more problems", total - MAX_PROBLEMS));
    }
    kept
}

/// How our internal structs are named to clients, when serde names them; any other
/// struct is "an object".
const CLIENT_TYPE_NAMES: &[(&str, &str)] = &[("WireEntry", "a log entry object")];
/// How our internal enums are named to clients.
const CLIENT_ENUM_NAMES: &[(&str, &str)] = &[("enum Level", "a log level")];

/// A serde_json error's message for a client: without serde's position (callers add
/// the real one), without internal type names ("expected struct WireEntry" reads
/// "expected a log entry object"), and cut to [`MAX_MESSAGE_BYTES`]. serde
/// quotes the offending text whole, so the message is formatted only up to the cap and
/// rewritten in one pass: its cost never depends on the body's size.
pub fn describe_json_error(error: &serde_json::Error) -> String {
    let position = format!(" at line {} column {}", error.line(), error.column());
    let (message, complete) = bounded_display(error, MAX_MESSAGE_BYTES + position.len());
    let message = match message.strip_suffix(&position) {
        Some(head) if complete => head.to_owned(),
        _ => truncated(&message, MAX_MESSAGE_BYTES),
    };
    name_types_for_clients(&message)
}

/// Replaces every `struct Name` serde wrote by what a client knows, in one pass.
fn name_types_for_clients(message: &str) -> String {
    const STRUCT: &str = "struct ";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(STRUCT) {
        out.push_str(&rest[..start]);
        let after = &rest[start + STRUCT.len()..];
        let name_len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let client_name = CLIENT_TYPE_NAMES
            .iter()
            .find(|(internal, _)| *internal == name)
            .map_or("an object", |(_, client)| client);
        out.push_str(client_name);
        rest = &after[name_len..];
    }
    out.push_str(rest);
    for (internal, client) in CLIENT_ENUM_NAMES {
        if out.contains(internal) {
            out = out.replace(internal, client);
        }
    }
    out
}

/// A `fmt::Write` that keeps the first `max_bytes` and then refuses, which stops the
/// formatting of the value behind it.
struct BoundedWriter {
    text: String,
    max_bytes: usize,
    overflowed: bool,
}

impl fmt::Write for BoundedWriter {
    fn write_str(&mut self, piece: &str) -> fmt::Result {
        let room = self.max_bytes - self.text.len();
        if piece.len() <= room {
            self.text.push_str(piece);
            return Ok(());
        }
        let mut cut = room;
        while !piece.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&piece[..cut]);
        self.overflowed = true;
        Err(fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log_ingestion_wire::WireEntry;

    #[test]
    fn a_long_value_is_quoted_in_part_with_its_length() {
        let long = "é".repeat(10_000);
        let shown = quoted(&long);
        assert!(shown.len() < 200, "{shown}");
        assert!(shown.ends_with("(20000 bytes)"), "{shown}");
        assert_eq!(quoted("short"), "\"short\"");
    }

    #[test]
    fn display_stops_at_the_cap() {
        let huge = "x".repeat(1 << 20);
        let (text, complete) = bounded_display(&huge, 100);
        assert_eq!(text.len(), 100);
        assert!(!complete);
        let (text, complete) = bounded_display(&"fits", 100);
        assert_eq!((text.as_str(), complete), ("fits", true));
    }

    #[test]
    fn cuts_respect_character_boundaries() {
        let (text, _) = bounded_display(&"ééé", 3);
        assert_eq!(text, "é");
        assert_eq!(truncated("ééé", 3), "é…");
    }

    #[test]
    fn problem_lists_are_capped_in_count_and_length() {
        let problems = (0..50)
            .map(|i| format!("{i}: {}", "y".repeat(2_000)))
            .collect();
        let capped = capped_problems(problems);
        assert_eq!(capped.len(), MAX_PROBLEMS + 1);
        assert!(capped[0].len() <= MAX_MESSAGE_BYTES + ELLIPSIS.len());
        assert_eq!(capped[MAX_PROBLEMS], "and 30 more problems");
    }

    #[test]
    fn internal_type_names_never_reach_a_client() {
        let error = serde_json::from_str::<WireEntry>("5").unwrap_err();
        let message = describe_json_error(&error);
        assert!(message.contains("expected a log entry object"), "{message}");
        assert!(!message.contains("WireEntry"), "{message}");
        assert!(!message.contains("line"), "{message}");
    }

    #[test]
    fn a_message_quoting_a_long_string_is_cut_and_built_in_linear_time() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            logs: Vec<u8>,
        }
        let body = format!("{{\"logs\":\"{}\"}}", "struct ".repeat(300_000));
        let error = serde_json::from_str::<Body>(&body).unwrap_err();
        let started = std::time::Instant::now();
        let message = describe_json_error(&error);
        // Quadratic rewriting took seconds here; linear takes well under a millisecond.
        assert!(started.elapsed() < std::time::Duration::from_millis(200));
        assert!(
            message.len() <= MAX_MESSAGE_BYTES + 4,
            "{} bytes",
            message.len()
        );
        assert!(message.starts_with("invalid type: string"), "{message}");
    }

    #[test]
    fn every_struct_name_is_rewritten_and_enums_too() {
        assert_eq!(
            name_types_for_clients("expected struct WireEntry or struct Other_1, enum Level"),
            "expected a log entry object or an object, a log level"
        );
    }
}
