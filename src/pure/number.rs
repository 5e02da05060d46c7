//! DynamoDB's number type: validation and the canonical text DynamoDB stores.
//!
//! DynamoDB keeps at most 38 significant digits, accepts magnitudes from 1E-130 to 9.99…E+125 and
//! returns numbers normalised (`"1.50"` → `"1.5"`, `"1e2"` → `"100"`, `"-0"` → `"0"`). Every number
//! ddbsync writes or hashes goes through [`normalize`], so a value built from PostgreSQL and the same
//! value read back from DynamoDB have one spelling, and therefore one content hash.
//!
//! Floats are spelled with the digits PostgreSQL prints for them ([`from_f32`], [`from_f64`]), so
//! that what is stored is what `SELECT col::text` shows, not the binary value behind it.

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
    /// The messages state the fact; where the number came from (a column, a JSON document) says
    /// the fix (`value::ColumnType::explain`).
    #[error("{value} has {digits} significant digits; DynamoDB keeps at most 38")]
    TooManyDigits { value: String, digits: usize },
    #[error("{0} is outside DynamoDB's number range (1E-130 to 9.99E+125)")]
    OutOfRange(String),
    /// `NaN`, `Infinity` or `-Infinity`, as PostgreSQL spells them.
    #[error("{0} cannot be stored: DynamoDB numbers have no NaN or infinity")]
    NotFinite(String),
}

/// A non-finite float as PostgreSQL spells it (`NaN`, `Infinity`, `-Infinity`), which is also
/// what a query must compare it with (`f IS DISTINCT FROM 'NaN'`).
fn not_finite(value: f64) -> NumberError {
    NumberError::NotFinite(
        match value {
            v if v.is_nan() => "NaN",
            v if v > 0.0 => "Infinity",
            _ => "-Infinity",
        }
        .into(),
    )
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
            let written = &rest[at + 1..];
            let digits = written.strip_prefix(['+', '-']).unwrap_or(written);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            // An exponent past i64 (JSON allows any) is far out of range: saturated, not invalid.
            let saturated = if written.starts_with('-') { i64::MIN } else { i64::MAX };
            (&rest[..at], written.parse().unwrap_or(saturated))
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
    // Saturating: an exponent near i64's limits (JSON text allows any) is far out of range anyway.
    let scale = exponent.saturating_sub(frac_part.len() as i64).saturating_add(trailing as i64);
    let order = (significant.len() as i64 - 1).saturating_add(scale);
    // An order that saturated is shown as written: its exact figure would be off.
    let shown =
        || if order.unsigned_abs() > 1 << 60 { text.to_string() } else { scientific(negative, significant, order) };
    if significant.len() > MAX_DIGITS {
        return Err(NumberError::TooManyDigits { value: shown(), digits: significant.len() });
    }
    if !(MIN_ORDER..=MAX_ORDER).contains(&order) {
        return Err(NumberError::OutOfRange(shown()));
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

/// Canonical text of a double (PostgreSQL's `double precision`), or an error for NaN and infinities:
/// the digits PostgreSQL prints (`float8out`), so that a stored value reads as `SELECT col::text` does.
pub fn from_f64(value: f64) -> Result<String, NumberError> {
    if !value.is_finite() {
        return Err(not_finite(value));
    }
    normalize(&postgres_float_text(value)).map(Cow::into_owned)
}

/// Canonical text of a single-precision float (PostgreSQL's `real`), or an error for NaN and
/// infinities: the digits PostgreSQL prints (`float4out`). Widening to `f64` first would store the
/// binary approximation instead (32.38 → 32.380001068115234).
pub fn from_f32(value: f32) -> Result<String, NumberError> {
    if !value.is_finite() {
        return Err(not_finite(f64::from(value)));
    }
    normalize(&postgres_float_text(value)).map(Cow::into_owned)
}

/// A finite double as PostgreSQL prints it (`float8out`): `1e+300`, `1.5e-07`, `32.38`. Unlike
/// [`from_f64`] it is not limited to DynamoDB's range: it spells a value in a key template, where the
/// text, not a DynamoDB number, is stored.
pub fn printed_f64(value: f64) -> String {
    printed(value, 15)
}

/// A finite single-precision float as PostgreSQL prints it (`float4out`): `1e+06`, `32.38`.
pub fn printed_f32(value: f32) -> String {
    printed(value, 6)
}

/// PostgreSQL's layout of the shortest digits: plain decimal when the leading digit's power of ten
/// is from -4 up to `fixed_below` (exclusive), else `d.ddde±XX` (at least two exponent digits).
fn printed<F: Float>(value: F, fixed_below: i32) -> String {
    let text = postgres_float_text(value);
    let sign = if text.starts_with('-') { "-" } else { "" };
    let Some((digits, exponent)) = decimal(&text) else { return text };
    if digits == 0 {
        return format!("{sign}0");
    }
    let all = digits.to_string();
    let digits = all.trim_end_matches('0');
    let exponent = exponent + (all.len() - digits.len()) as i32;
    let order = exponent + digits.len() as i32 - 1;
    if (-4..fixed_below).contains(&order) {
        let plain = if exponent >= 0 {
            format!("{digits}{}", "0".repeat(exponent as usize))
        } else {
            let point = digits.len() as i32 + exponent;
            if point > 0 {
                format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
            } else {
                format!("0.{}{digits}", "0".repeat((-point) as usize))
            }
        };
        return format!("{sign}{plain}");
    }
    let (first, rest) = digits.split_at(1);
    let point = if rest.is_empty() { "" } else { "." };
    let exp_sign = if order < 0 { '-' } else { '+' };
    format!("{sign}{first}{point}{rest}e{exp_sign}{:02}", order.unsigned_abs())
}

/// A binary float as PostgreSQL's output sees it (implemented for `f32` and `f64`).
trait Float: Copy + PartialEq + std::fmt::LowerExp + std::str::FromStr + ryu::Float {
    /// Most significant digits that can be needed to tell the float from its neighbours.
    const MAX_DIGITS: usize;
    /// `(m, e, closer_below)`: the float's magnitude is exactly `m × 2^e`, and `closer_below` says
    /// that the next float down is half as far as the next one up (a power of two).
    fn binary(self) -> (u64, i32, bool);
    fn magnitude(self) -> Self;
}

impl Float for f64 {
    const MAX_DIGITS: usize = 17;
    fn magnitude(self) -> f64 {
        self.abs()
    }
    fn binary(self) -> (u64, i32, bool) {
        let bits = self.to_bits();
        let (fraction, exponent) = (bits & ((1 << 52) - 1), ((bits >> 52) & 0x7ff) as i32);
        match exponent {
            0 => (fraction, -1074, false),
            _ => (fraction | (1 << 52), exponent - 1075, fraction == 0 && exponent > 1),
        }
    }
}

impl Float for f32 {
    const MAX_DIGITS: usize = 9;
    fn magnitude(self) -> f32 {
        self.abs()
    }
    fn binary(self) -> (u64, i32, bool) {
        let bits = self.to_bits();
        let (fraction, exponent) = (u64::from(bits & ((1 << 23) - 1)), ((bits >> 23) & 0xff) as i32);
        match exponent {
            0 => (fraction, -149, false),
            _ => (fraction | (1 << 23), exponent - 150, fraction == 0 && exponent > 1),
        }
    }
}

/// The shortest decimal that reads back as `value`, as PostgreSQL chooses it (in any notation).
///
/// PostgreSQL's output is Ryu with one change: it never prints a decimal that lies exactly halfway
/// to a neighbouring float, which only a reader rounding ties to even would read back right. Ryu
/// proper (the `ryu` crate) may print such a midpoint; then PostgreSQL prints the shortest decimal
/// strictly between the midpoints, the one nearest the float, ties to even (as `{:.*e}` rounds).
fn postgres_float_text<F: Float>(value: F) -> String {
    let mut buffer = ryu::Buffer::new();
    let shortest = buffer.format_finite(value);
    let (m, e, closer_below) = value.binary();
    if m == 0 {
        return shortest.to_string();
    }
    // The midpoints to the neighbours, `a × 2^k` with `a` odd.
    let above = (2 * m + 1, e - 1);
    let below = if closer_below { (4 * m - 1, e - 2) } else { (2 * m - 1, e - 1) };
    let midpoint = |digits: u64, exponent: i32| exactly(digits, exponent, above) || exactly(digits, exponent, below);
    // Ryu's text always reads back as the float: only a midpoint needs another look.
    let Some((digits, exponent)) = decimal(shortest) else { return shortest.to_string() };
    if !midpoint(digits, exponent) {
        return shortest.to_string();
    }
    let inside = |digits: u64, exponent: i32| {
        format!("{digits}e{exponent}").parse::<F>().is_ok_and(|v| v == value.magnitude()) && !midpoint(digits, exponent)
    };
    let length = digits.to_string().trim_end_matches('0').len();
    for precision in length..=F::MAX_DIGITS {
        let rounded = format!("{:.*e}", precision - 1, value);
        let Some((digits, exponent)) = decimal(&rounded) else { break };
        // The nearest decimal of this length, else its neighbour on the float's other side (the
        // interval is lopsided at a power of two).
        for candidate in [Some(digits), digits.checked_sub(1), digits.checked_add(1)].into_iter().flatten() {
            if candidate > 0 && inside(candidate, exponent) {
                let sign = if rounded.starts_with('-') { "-" } else { "" };
                return format!("{sign}{candidate}e{exponent}");
            }
        }
    }
    shortest.to_string()
}

/// The digits and exponent of a decimal's magnitude (`-1.25e3` → `(125, 1)`), when they fit a `u64`.
fn decimal(text: &str) -> Option<(u64, i32)> {
    let text = text.trim_start_matches('-');
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = 0u64;
    for byte in int.bytes().chain(frac.bytes()) {
        if !byte.is_ascii_digit() {
            return None;
        }
        digits = digits.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
    }
    Some((digits, exponent - frac.len() as i32))
}

/// Whether `digits × 10^exponent` is exactly `a × 2^k` (`a` odd): exact integer arithmetic, no float.
fn exactly(digits: u64, exponent: i32, (a, k): (u64, i32)) -> bool {
    if digits == 0 {
        return false;
    }
    // digits × 10^exponent = odd × 5^exponent × 2^(twos + exponent)
    let twos = digits.trailing_zeros() as i32;
    let odd = u128::from(digits >> twos);
    let fives = 5u128.checked_pow(exponent.unsigned_abs());
    let odd_part = match (exponent >= 0, fives) {
        (true, Some(f)) => odd.checked_mul(f),
        (false, Some(f)) if odd % f == 0 => Some(odd / f),
        _ => None,
    };
    odd_part == Some(u128::from(a)) && twos + exponent == k
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
        // Exponents at i64's limits: out of range, not an overflow.
        for huge in ["1.5e-9223372036854775808", "15e9223372036854775807", "0.00e9223372036854775807"] {
            assert!(matches!(normalize(huge), Err(NumberError::OutOfRange(_)) | Ok(Cow::Borrowed("0"))), "{huge}");
        }
        assert_eq!(
            normalize("1.5e-9223372036854775808"),
            Err(NumberError::OutOfRange("1.5e-9223372036854775808".into()))
        );
        // Past i64 (PostgreSQL's json keeps any exponent as written): out of range, as written.
        for huge in ["1e99999999999999999999", "1E+99999999999999999999", "-2e-99999999999999999999"] {
            assert_eq!(normalize(huge), Err(NumberError::OutOfRange(huge.into())), "{huge}");
        }
        assert_eq!(normalize("0e99999999999999999999").as_deref(), Ok("0"));
        for bad in ["", "-", "1.2.3", "abc", "1e", "1 ", "0x10", "."] {
            assert!(matches!(normalize(bad), Err(NumberError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn floats_use_shortest_round_trip_text() {
        assert_eq!(from_f64(0.1).unwrap(), "0.1");
        assert_eq!(from_f64(2.0).unwrap(), "2");
        assert_eq!(from_f64(-1.25e-5).unwrap(), "-0.0000125");
        // Spelled as PostgreSQL spells them, which is what a filter compares with.
        assert_eq!(from_f64(f64::NAN), Err(NumberError::NotFinite("NaN".into())));
        assert_eq!(from_f64(f64::INFINITY), Err(NumberError::NotFinite("Infinity".into())));
        assert_eq!(from_f32(f32::NEG_INFINITY), Err(NumberError::NotFinite("-Infinity".into())));
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
    fn a_midpoint_is_never_printed_as_postgresql_never_prints_one() {
        // Ryu alone prints 324615887337733600: exactly halfway to the next double down, which reads
        // back right only with ties to even. PostgreSQL prints one digit more (checked with psql).
        let value = 324615887337733632f64;
        assert_eq!(ryu::Buffer::new().format_finite(value), "3.246158873377336e17");
        assert_eq!(from_f64(value).unwrap(), "324615887337733630");
        assert_eq!(from_f64(-value).unwrap(), "-324615887337733630");
        assert_eq!(from_f64("-3.6245621503646496e16".parse().unwrap()).unwrap(), "-36245621503646496");
        // More values where Ryu prints a midpoint, with what psql prints for them.
        assert_eq!(from_f32(33677688.0).unwrap(), "33677688", "Ryu: 33677690; psql: 3.3677688e+07");
        assert_eq!(from_f32(34156392.0).unwrap(), "34156392", "Ryu: 34156390; psql: 3.4156392e+07");
        assert_eq!(from_f64(22035469604797472.0).unwrap(), "22035469604797472", "psql: 2.2035469604797472e+16");
        // Not midpoints: Ryu's own text.
        assert_eq!(from_f64(0.3).unwrap(), "0.3");
        assert_eq!(from_f64(5e-7).unwrap(), "0.0000005");
        assert_eq!(from_f32(32.38).unwrap(), "32.38");
    }

    #[test]
    fn floats_are_printed_as_postgresql_prints_them() {
        // `SELECT x::float8::text` and `SELECT x::real::text`, from psql.
        let doubles: [(f64, &str); 12] = [
            (1e300, "1e+300"),
            (-1e300, "-1e+300"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (32.38, "32.38"),
            (100.0, "100"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1e+15"),
            (-0.0, "-0"),
            (22035469604797472.0, "2.2035469604797472e+16"),
        ];
        for (value, want) in doubles {
            assert_eq!(printed_f64(value), want, "{value:e}");
        }
        let reals: [(f32, &str); 5] =
            [(1e6, "1e+06"), (123456.0, "123456"), (32.38, "32.38"), (33677688.0, "3.3677688e+07"), (1e-5, "1e-05")];
        for (value, want) in reals {
            assert_eq!(printed_f32(value), want, "{value:e}");
        }
    }

    #[test]
    fn midpoints_are_found_with_exact_arithmetic() {
        // 1.5 = 3 × 2^-1 = 15 × 10^-1
        assert!(exactly(15, -1, (3, -1)));
        assert!(!exactly(16, -1, (3, -1)));
        // 1e15 + 0.25 = 4000000000000001 × 2^-2
        assert!(exactly(100000000000000025, -2, (4_000_000_000_000_001, -2)));
        assert!(exactly(5, 3, (625, 3)), "5000 = 625 × 2^3");
        assert!(!exactly(5, -40, (1, -3)));
        assert_eq!(decimal("-1.25e3"), Some((125, 1)));
        assert_eq!(decimal("0.001"), Some((1, -3)));
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
