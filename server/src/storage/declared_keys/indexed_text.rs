//! The indexed text of a declared key's value: the rule in Rust ([`indexed_text`], for
//! the rows the server writes) and its SQL twin ([`indexed_text_sql`], for the rows
//! `migrate` fills), kept equal by a test against PostgreSQL.

use std::borrow::Cow;

/// Strings longer than this are not indexed (a btree entry holds at most ~2.7 KB, and
/// nobody looks a long text up by equality).
pub const MAX_INDEXED_BYTES: usize = 200;

/// The indexed text of `KEY`'s value in SQL, the same rule as [`indexed_text`]
/// (NULL when the key is absent).
pub fn indexed_text_sql(key: &str) -> String {
    let value = format!("metadata->'{key}'");
    let text = format!("(metadata->>'{key}')");
    format!(
        "CASE jsonb_typeof({value}) \
         WHEN 'string' THEN CASE WHEN octet_length({text}) BETWEEN 1 AND {MAX_INDEXED_BYTES} \
              THEN {text} ELSE '' END \
         WHEN 'boolean' THEN {text} \
         WHEN 'number' THEN CASE WHEN {text} ~ '^-?[0-9]{{1,20}}$' \
              AND {text}::numeric BETWEEN {} AND {} THEN {text} ELSE '' END \
         WHEN 'null' THEN '' WHEN 'object' THEN '' WHEN 'array' THEN '' END",
        i64::MIN,
        u64::MAX
    )
}

/// A value of a declared key as the indexed-text rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Text(Cow<'a, str>),
    Bool(bool),
    /// A number as JSON text (`42`, `-1.5e3`).
    Number(Cow<'a, str>),
    /// `null`, an object or an array.
    Other,
}

/// The indexed text of `value` (see the module's top); `None` is the empty string
/// stored for a value without one.
pub fn indexed_text(value: Scalar<'_>) -> Option<Cow<'_, str>> {
    match value {
        Scalar::Text(text) => (1..=MAX_INDEXED_BYTES)
            .contains(&text.len())
            .then_some(text),
        Scalar::Bool(flag) => Some(Cow::Borrowed(if flag { "true" } else { "false" })),
        Scalar::Number(number) => integer_text(&number).map(Cow::Owned),
        Scalar::Other => None,
    }
}

/// The digits PostgreSQL prints for the JSON number `number` when it prints an integer
/// between `i64::MIN` and `u64::MAX`: `numeric` keeps as many decimals as the text had
/// after the point less the exponent (`1.50e1` is `15.0`, `1.5e1` is `15`, `1e2` is
/// `100`) and has no negative zero.
fn integer_text(number: &str) -> Option<String> {
    let (negative, unsigned) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction_digits = i64::try_from(fraction.len()).ok()?;
    let zeros = exponent.checked_sub(fraction_digits)?;
    if zeros < 0 {
        return None; // decimals are printed
    }
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Some("0".to_owned());
    }
    if i64::try_from(significant.len()).ok()?.checked_add(zeros)? > 20 {
        return None;
    }
    let sign = if negative { "-" } else { "" };
    let zeros = usize::try_from(zeros).ok()?;
    let text = format!("{sign}{significant}{}", "0".repeat(zeros));
    let value: i128 = text.parse().ok()?;
    (i128::from(i64::MIN)..=i128::from(u64::MAX))
        .contains(&value)
        .then_some(text)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_indexed_by_the_integer_postgresql_prints() {
        let cases = [
            ("42", Some("42")),
            ("-42", Some("-42")),
            ("0", Some("0")),
            ("-0", Some("0")),
            ("1e2", Some("100")),
            ("1E+2", Some("100")),
            ("1.5e1", Some("15")),
            ("1.50e1", None),
            ("1.0", None),
            ("-0.0", None),
            ("10e-1", None),
            ("1e-7", None),
            ("0e5", Some("0")),
            ("0.000e3", Some("0")),
            ("1e16", Some("10000000000000000")),
            ("-9223372036854775808", Some("-9223372036854775808")),
            ("-9223372036854775809", None),
            ("18446744073709551615", Some("18446744073709551615")),
            ("18446744073709551616", None),
            ("1.8446744073709552e19", None),
            ("1e400", None),
            ("1e99999999999999999999", None),
            ("1e-99999999999999999999", None),
        ];
        for (number, expected) in cases {
            assert_eq!(integer_text(number).as_deref(), expected, "{number}");
        }
    }

    #[test]
    fn values_are_indexed_by_the_rule() {
        let long = "x".repeat(MAX_INDEXED_BYTES + 1);
        let cases = [
            (Scalar::Text("abc".into()), Some("abc")),
            (Scalar::Text("".into()), None),
            (Scalar::Text(long[1..].into()), Some(&long[1..])),
            (Scalar::Text(long.as_str().into()), None),
            (Scalar::Bool(true), Some("true")),
            (Scalar::Number("7".into()), Some("7")),
            (Scalar::Other, None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                indexed_text(value.clone()).as_deref(),
                expected,
                "{value:?}"
            );
        }
    }
}
