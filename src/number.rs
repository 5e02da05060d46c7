//! DynamoDB's number type: validation and the canonical text DynamoDB stores.
//!
//! DynamoDB keeps at most 38 significant digits, accepts magnitudes from 1E-130 to 9.99…E+125 and
//! returns numbers normalised (`"1.50"` → `"1.5"`, `"1e2"` → `"100"`, `"-0"` → `"0"`). Every number
//! ddbsync writes or hashes goes through [`normalize`], so a value built from PostgreSQL and the same
//! value read back from DynamoDB have one spelling, and therefore one content hash.

use std::borrow::Cow;

/// Most significant digits DynamoDB stores in a number.
pub const MAX_DIGITS: usize = 38;
/// Largest power of ten of a number's leading digit (9.99…E+125).
const MAX_ORDER: i64 = 125;
/// Smallest power of ten of a number's leading digit (1E-130).
const MIN_ORDER: i64 = -130;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("{0:?} is not a number")]
    Invalid(String),
    #[error("{value} has {digits} significant digits; DynamoDB keeps at most 38 (cast the column to text to store it as a string)")]
    TooManyDigits { value: String, digits: usize },
    #[error("{0} is outside DynamoDB's number range (1E-130 to 9.99E+125; cast the column to text to store it as a string)")]
    OutOfRange(String),
    #[error("{0} cannot be stored: DynamoDB numbers have no NaN or infinity")]
    NotFinite(String),
}

/// `-1.2345E+40`: how messages show a number that cannot be stored, whatever its source spelling.
fn scientific(negative: bool, significant: &str, order: i64) -> String {
    let sign = if negative { "-" } else { "" };
    let (first, rest) = significant.split_at(1);
    let point = if rest.is_empty() { "" } else { "." };
    format!("{sign}{first}{point}{rest}E{order:+}")
}

/// Returns DynamoDB's canonical spelling of `text`, borrowing when it is already canonical.
pub fn normalize(text: &str) -> Result<Cow<'_, str>, NumberError> {
    if is_canonical(text) {
        return Ok(Cow::Borrowed(text));
    }
    let invalid = || NumberError::Invalid(text.to_string());
    let lower = text.to_ascii_lowercase();
    if matches!(lower.trim_start_matches(['+', '-']), "nan" | "inf" | "infinity") {
        return Err(NumberError::NotFinite(text.to_string()));
    }
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => {
            let exp: i64 = rest[at + 1..].parse().map_err(|_| invalid())?;
            (&rest[..at], exp)
        }
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.len() + frac_part.len() == 0 || !all_digits(int_part) || !all_digits(frac_part) {
        return Err(invalid());
    }
    let digits: String = format!("{int_part}{frac_part}");
    let leading = digits.len() - digits.trim_start_matches('0').len();
    let significant = digits[leading..].trim_end_matches('0');
    if significant.is_empty() {
        return Ok(Cow::Borrowed("0"));
    }
    let trailing = digits.len() - leading - significant.len();
    // value = significant × 10^scale
    let scale = exponent - frac_part.len() as i64 + trailing as i64;
    let order = significant.len() as i64 - 1 + scale;
    if significant.len() > MAX_DIGITS {
        let value = scientific(negative, significant, order);
        return Err(NumberError::TooManyDigits { value, digits: significant.len() });
    }
    if !(MIN_ORDER..=MAX_ORDER).contains(&order) {
        return Err(NumberError::OutOfRange(scientific(negative, significant, order)));
    }
    let mut out = String::with_capacity(significant.len() + 4);
    if negative {
        out.push('-');
    }
    if scale >= 0 {
        out.push_str(significant);
        out.extend(std::iter::repeat_n('0', scale as usize));
    } else {
        let point = significant.len() as i64 + scale;
        if point > 0 {
            out.push_str(&significant[..point as usize]);
            out.push('.');
            out.push_str(&significant[point as usize..]);
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(significant);
        }
    }
    Ok(Cow::Owned(out))
}

/// Number of significant digits of a canonical number (as [`normalize`] returns it).
pub fn significant_digits(canonical: &str) -> usize {
    let bytes = canonical.as_bytes();
    let first = bytes.iter().position(|b| (b'1'..=b'9').contains(b));
    let last = bytes.iter().rposition(|b| (b'1'..=b'9').contains(b));
    match (first, last) {
        (Some(first), Some(last)) => {
            let span = &bytes[first..=last];
            span.len() - usize::from(span.contains(&b'.'))
        }
        _ => 1,
    }
}

/// The fast path: plain decimal text with no sign quirks, no superfluous zeros and no exponent.
fn is_canonical(text: &str) -> bool {
    let body = text.strip_prefix('-').unwrap_or(text);
    if body.is_empty() || body.len() > MAX_DIGITS || !body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return false;
    }
    match body.split_once('.') {
        None => body == "0" && text.len() == 1 || !body.starts_with('0'),
        Some((int, frac)) => {
            !int.is_empty()
                && !frac.is_empty()
                && !frac.contains('.')
                && (int == "0" || !int.starts_with('0'))
                && !frac.ends_with('0')
        }
    }
}

/// Canonical text of a double (PostgreSQL's `double precision`), or an error for NaN and infinities.
///
/// The digits are the shortest that read back as the same float, chosen by Ryu as PostgreSQL's own
/// output (`float8out`, since PostgreSQL 12) chooses them, ties included: `1e15 + 0.3` lies halfway
/// between `…0.2` and `…0.3`, and both print `1000000000000000.2`.
pub fn from_f64(value: f64) -> Result<String, NumberError> {
    if !value.is_finite() {
        return Err(NumberError::NotFinite(value.to_string()));
    }
    normalize(ryu::Buffer::new().format_finite(value)).map(Cow::into_owned)
}

/// Canonical text of a single-precision float (PostgreSQL's `real`), or an error for NaN and
/// infinities: the shortest decimal that reads back as the same `f32`, as PostgreSQL prints it.
/// Widening to `f64` first would store the binary approximation (32.38 → 32.380001068115234).
pub fn from_f32(value: f32) -> Result<String, NumberError> {
    if !value.is_finite() {
        return Err(NumberError::NotFinite(value.to_string()));
    }
    normalize(ryu::Buffer::new().format_finite(value)).map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_dynamodb() {
        let cases = [
            ("1.50", "1.5"),
            ("1.0", "1"),
            ("-0", "0"),
            ("-0.000", "0"),
            ("+7", "7"),
            ("007", "7"),
            ("1e2", "100"),
            ("1.5E-3", "0.0015"),
            ("0.10", "0.1"),
            ("-12.3400", "-12.34"),
            ("100", "100"),
            (".5", "0.5"),
            ("5.", "5"),
            ("123456789012345678901234567890.12345678", "123456789012345678901234567890.12345678"),
            ("1E+125", &format!("1{}", "0".repeat(125))),
            ("1E-130", &format!("0.{}1", "0".repeat(129))),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).unwrap(), want, "normalize({input:?})");
        }
    }

    #[test]
    fn canonical_text_is_borrowed() {
        for text in ["0", "1.5", "-12.34", "100", "0.0015"] {
            assert!(matches!(normalize(text).unwrap(), Cow::Borrowed(_)), "{text}");
        }
        for text in ["1.50", "00", "-0", "0.", "1e2"] {
            assert!(matches!(normalize(text).unwrap(), Cow::Owned(_)) || normalize(text).unwrap() == "0", "{text}");
        }
    }

    #[test]
    fn rejects_what_dynamodb_rejects() {
        let forty = "1234567890123456789012345678901234567891";
        let shown = "1.234567890123456789012345678901234567891E+39";
        assert_eq!(normalize(forty), Err(NumberError::TooManyDigits { value: shown.into(), digits: 40 }));
        assert_eq!(normalize("100e128"), Err(NumberError::OutOfRange("1E+130".into())));
        // Trailing zeros are not significant: 40 digits of which 38 count is fine.
        assert!(normalize("1234567890123456789012345678901234567800").is_ok());
        assert!(matches!(normalize("1E+126"), Err(NumberError::OutOfRange(_))));
        assert!(matches!(normalize("1E-131"), Err(NumberError::OutOfRange(_))));
        assert!(matches!(normalize("NaN"), Err(NumberError::NotFinite(_))));
        assert!(matches!(normalize("-Infinity"), Err(NumberError::NotFinite(_))));
        for bad in ["", "-", "1.2.3", "abc", "1e", "1 ", "0x10", "."] {
            assert!(matches!(normalize(bad), Err(NumberError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn floats_use_shortest_round_trip_text() {
        assert_eq!(from_f64(0.1).unwrap(), "0.1");
        assert_eq!(from_f64(2.0).unwrap(), "2");
        assert_eq!(from_f64(-1.25e-5).unwrap(), "-0.0000125");
        assert!(from_f64(f64::NAN).is_err());
        assert!(from_f64(f64::INFINITY).is_err());
    }

    #[test]
    fn single_precision_floats_use_their_own_shortest_text() {
        // What PostgreSQL prints for the same `real` values (`SELECT x::real::text`).
        let cases: [(f32, &str); 10] = [
            (32.38, "32.38"),
            (0.1, "0.1"),
            (123456.79, "123456.79"),
            (-0.0, "0"),
            (1e15, "1000000000000000"),
            (3.4028235e38, "340282350000000000000000000000000000000"),
            (1.1754944e-38, "0.000000000000000000000000000000000000011754944"),
            (1e-45, "0.000000000000000000000000000000000000000000001"),
            (16777217.0, "16777216"),
            (-2.5e-7, "-0.00000025"),
        ];
        for (value, want) in cases {
            assert_eq!(from_f32(value).unwrap(), want, "from_f32({value:e})");
        }
        assert_eq!(from_f64(f64::from(32.38f32)).unwrap(), "32.380001068115234", "what widening stored");
        assert!(matches!(from_f32(f32::NAN), Err(NumberError::NotFinite(_))));
        assert!(matches!(from_f32(f32::NEG_INFINITY), Err(NumberError::NotFinite(_))));
    }

    #[test]
    fn doubles_beyond_dynamodb_are_refused_not_rounded() {
        assert_eq!(from_f64(5e-324), Err(NumberError::OutOfRange("5E-324".into())));
        assert_eq!(from_f64(f64::MAX), Err(NumberError::OutOfRange("1.7976931348623157E+308".into())));
        assert_eq!(from_f64(-1e126), Err(NumberError::OutOfRange("-1E+126".into())));
        assert_eq!(from_f64(1e15 + 0.3).unwrap(), "1000000000000000.2");
        assert_eq!(from_f64(9.99e125).unwrap(), format!("999{}", "0".repeat(123)));
        assert_eq!(from_f64(1e-130).unwrap(), format!("0.{}1", "0".repeat(129)));
    }

    #[test]
    fn counts_significant_digits() {
        assert_eq!(significant_digits("0"), 1);
        assert_eq!(significant_digits("100"), 1);
        assert_eq!(significant_digits("-0.0015"), 2);
        assert_eq!(significant_digits("12.34"), 4);
        assert_eq!(significant_digits("100.5"), 4);
        assert_eq!(significant_digits("-1000"), 1);
    }
}
