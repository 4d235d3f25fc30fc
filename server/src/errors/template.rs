//! Message templates: an error message with what varies between occurrences of the
//! same error replaced by placeholders, so `Payment failed for order 923` and
//! `Payment failed for order 17` read `Payment failed for order <n>`. Owns the
//! placeholders and the scan; never hashes and never reads metadata.
//!
//! Replaced, in this order of precedence for each whitespace-delimited word: quoted
//! strings (`'…'`, `"…"`, `` `…' `` and `` `…` ``) → `<str>`, e-mail addresses → `<email>`,
//! UUIDs → `<uuid>`, IPv4 addresses → `<ip>`, `0x…` and long hex runs → `<hex>`, tokens of
//! 24 or more letters and digits mixing both → `<token>`; any other run of digits in a
//! word → `<n>`. The scan is linear in the text and reads at most [`MAX_TEMPLATE_INPUT`]
//! bytes of it.

/// Bytes of a message the template is made of; the rest is cut (at a character
/// boundary) and does not count.
pub const MAX_TEMPLATE_INPUT: usize = 1_024;

/// A long token: at least this many characters, letters and digits mixed.
const LONG_TOKEN: usize = 24;
/// A run of hex digits this long (with at least one digit) is an id, not a word.
const LONG_HEX: usize = 8;

/// `message` as a template (see the module's top).
pub fn template(message: &str) -> String {
    let text = cut(message, MAX_TEMPLATE_INPUT);
    let mut out = String::with_capacity(text.len());
    // A quote character that was once found without its closing one has no closing one
    // further on either: remembered so each quote is searched for at most once.
    let mut unclosed = [false; 3];
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if let Some(kind) = quote_kind(c) {
            if !unclosed[kind] {
                let after = &rest[c.len_utf8()..];
                let closing = match c {
                    '`' => after.find(['`', '\'']),
                    other => after.find(other),
                };
                match closing {
                    Some(end) => {
                        let close = after[end..].chars().next().unwrap_or(c);
                        out.push(c);
                        out.push_str("<str>");
                        out.push(close);
                        rest = &after[end + close.len_utf8()..];
                        continue;
                    }
                    None => unclosed[kind] = true,
                }
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let end = word_end(rest);
        push_word(&mut out, &rest[..end]);
        rest = &rest[end..];
    }
    // Placeholders may make a template longer than its input.
    let kept = cut(&out, MAX_TEMPLATE_INPUT).len();
    out.truncate(kept);
    out
}

/// Where the word at the start of `text` ends: at whitespace, a double quote or
/// backtick, or a single quote not preceded by a letter or digit (`can't` is one word,
/// `'id'` a quoted string).
fn word_end(text: &str) -> usize {
    let mut previous_alphanumeric = false;
    for (index, c) in text.char_indices() {
        let opens_quote = match c {
            '"' | '`' => true,
            '\'' => !previous_alphanumeric,
            _ => false,
        };
        if c.is_whitespace() || opens_quote {
            return index;
        }
        previous_alphanumeric = c.is_alphanumeric();
    }
    text.len()
}

/// `text` cut to at most `max` bytes at a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn quote_kind(c: char) -> Option<usize> {
    match c {
        '\'' => Some(0),
        '"' => Some(1),
        '`' => Some(2),
        _ => None,
    }
}

/// One word (no whitespace, no quote), in segments split at punctuation other than
/// what ids, numbers and addresses hold (`.`, `-`, `_`, `@`, `+`): each segment is
/// replaced when it is one of the placeholders' kinds, else its digit runs are.
fn push_word(out: &mut String, word: &str) {
    let mut rest = word;
    while !rest.is_empty() {
        let end = rest.find(is_separator).unwrap_or(rest.len());
        if end == 0 {
            let separator = rest.chars().next().map_or(1, char::len_utf8);
            out.push_str(&rest[..separator]);
            rest = &rest[separator..];
            continue;
        }
        push_segment(out, &rest[..end]);
        rest = &rest[end..];
    }
}

fn is_separator(c: char) -> bool {
    !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+'))
}

/// A segment without its leading and trailing dots and dashes (sentence punctuation),
/// as its placeholder or with its digits replaced.
fn push_segment(out: &mut String, segment: &str) {
    let trim = |c: char| matches!(c, '.' | '-' | '+');
    let core = segment.trim_start_matches(trim);
    let lead = &segment[..segment.len() - core.len()];
    let core = core.trim_end_matches(trim);
    let trail = &segment[lead.len() + core.len()..];
    out.push_str(lead);
    match placeholder(core) {
        Some(placeholder) => out.push_str(placeholder),
        None => push_digits_replaced(out, core),
    }
    out.push_str(trail);
}

fn placeholder(core: &str) -> Option<&'static str> {
    if core.is_empty() {
        return None;
    }
    if is_email(core) {
        return Some("<email>");
    }
    if is_uuid(core) {
        return Some("<uuid>");
    }
    if is_ipv4(core) {
        return Some("<ip>");
    }
    if is_hex(core) {
        return Some("<hex>");
    }
    if is_long_token(core) {
        return Some("<token>");
    }
    None
}

fn is_email(core: &str) -> bool {
    match core.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.contains('@')
                && domain
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
        }
        None => false,
    }
}

fn is_uuid(core: &str) -> bool {
    let groups: Vec<&str> = core.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_ipv4(core: &str) -> bool {
    let octets: Vec<&str> = core.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|octet| {
            !octet.is_empty() && octet.len() <= 3 && octet.bytes().all(|b| b.is_ascii_digit())
        })
}

fn is_hex(core: &str) -> bool {
    if let Some(digits) = core.strip_prefix("0x").or_else(|| core.strip_prefix("0X")) {
        return !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit());
    }
    core.len() >= LONG_HEX
        && core.bytes().all(|b| b.is_ascii_hexdigit())
        && core.bytes().any(|b| b.is_ascii_digit())
}

fn is_long_token(core: &str) -> bool {
    core.len() >= LONG_TOKEN
        && core
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && core.bytes().any(|b| b.is_ascii_digit())
        && core.bytes().any(|b| b.is_ascii_alphabetic())
}

/// `text` with each run of ASCII digits (with `.`/`,` between digits) as `<n>`.
fn push_digits_replaced(out: &mut String, text: &str) {
    let mut in_number = false;
    let bytes = text.as_bytes();
    for (index, c) in text.char_indices() {
        let digit = c.is_ascii_digit();
        let separator_inside = in_number
            && (c == '.' || c == ',')
            && bytes.get(index + 1).is_some_and(u8::is_ascii_digit);
        if digit || separator_inside {
            if !in_number {
                out.push_str("<n>");
                in_number = true;
            }
            continue;
        }
        in_number = false;
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_messages_become_placeholders() {
        assert_eq!(
            template("Payment failed for order 923"),
            "Payment failed for order <n>"
        );
        assert_eq!(
            template("Payment failed for order 17"),
            "Payment failed for order <n>"
        );
        assert_eq!(
            template("Couldn't find User with 'id'=42"),
            "Couldn't find User with '<str>'=<n>"
        );
    }

    #[test]
    fn uuids_emails_ips_hex_and_tokens() {
        assert_eq!(
            template("job 3f2b8c1e-9a4d-4c1b-8f3e-2a1b3c4d5e6f failed"),
            "job <uuid> failed"
        );
        assert_eq!(
            template("no account for ada@example.com, from 10.0.0.12."),
            "no account for <email>, from <ip>."
        );
        assert_eq!(
            template("undefined method for #<User:0x000055d5c0a1b2c8>"),
            "undefined method for #<User:<hex>>"
        );
        assert_eq!(
            template("bad token tok_9f8e7d6c5b4a3f2e1d0c9b8a7f6e and sha deadbeef12"),
            "bad token <token> and sha <hex>"
        );
        assert_eq!(
            template("took 12.5ms (3,200 rows)"),
            "took <n>ms (<n>,<n> rows)"
        );
    }

    #[test]
    fn quoted_strings_become_placeholders_and_unclosed_quotes_stay() {
        assert_eq!(
            template("undefined method `name' for nil"),
            "undefined method `<str>' for nil"
        );
        assert_eq!(template("key \"user:17\" missing"), "key \"<str>\" missing");
        assert_eq!(template("it's 5 o'clock"), "it's <n> o'clock");
        assert_eq!(template("unclosed \"quote 5"), "unclosed \"quote <n>");
    }

    #[test]
    fn long_and_non_ascii_text_is_cut_at_a_character_boundary_in_linear_time() {
        let long = "é".repeat(10_000);
        let out = template(&long);
        assert!(out.len() <= MAX_TEMPLATE_INPUT);
        assert!(out.chars().all(|c| c == 'é'));
        // Many unclosed quotes: each searched for once.
        let quotes = "'".repeat(100_000);
        assert!(template(&quotes).len() <= MAX_TEMPLATE_INPUT);
        assert_eq!(template("状态 42 错误"), "状态 <n> 错误");
    }
}
