//! Prices and cost arithmetic. Pure.
//!
//! On-demand prices per region come from a dated table (DynamoDB Standard table class, after the
//! 2024-11-01 price cut); a profile's `[prices]` overrides them, and the report says which was used.

use serde::Serialize;

/// The date the built-in prices were last checked against AWS's published prices.
pub const PRICES_AS_OF: &str = "2024-11-01";

/// USD per million on-demand request units, by region.
const BUILTIN: &[(&str, f64, f64)] = &[
    // region, write, read
    ("us-east-1", 0.625, 0.125),
    ("eu-west-1", 0.705, 0.1415),
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prices {
    /// USD per million write request units.
    pub write_per_million: f64,
    /// USD per million read request units.
    pub read_per_million: f64,
    /// Where the figures come from: `built-in 2024-11-01 us-east-1` or the profile's path.
    pub source: String,
}

impl Prices {
    /// The built-in on-demand prices of `region`, if the table has them.
    pub fn builtin(region: &str) -> Option<Prices> {
        BUILTIN.iter().find(|(r, _, _)| *r == region).map(|&(r, write, read)| Prices {
            write_per_million: write,
            read_per_million: read,
            source: format!("built-in {PRICES_AS_OF} {r}"),
        })
    }

    /// Regions with built-in prices, for error messages.
    pub fn builtin_regions() -> Vec<&'static str> {
        BUILTIN.iter().map(|(r, _, _)| *r).collect()
    }

    pub fn cost(&self, write_units: f64, read_units: f64) -> f64 {
        (write_units * self.write_per_million + read_units * self.read_per_million) / 1e6
    }
}

/// What a run cost against what rewriting every item would have cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Savings {
    /// USD billed for the run's writes and the diff's reads.
    pub actual: f64,
    /// USD that writing every source item would have cost (no scan needed then).
    pub potential: f64,
    /// `potential - actual` (negative when the scan cost more than the writes it saved).
    pub saved: f64,
    /// `saved / potential × 100`, 0 when nothing would have been written.
    pub saved_percent: f64,
}

/// `saved / potential × 100`, 0 when nothing would have been written.
pub fn saved_percent(saved: f64, potential: f64) -> f64 {
    if potential > 0.0 {
        saved / potential * 100.0
    } else {
        0.0
    }
}

impl Savings {
    pub fn new(prices: &Prices, write_units: f64, read_units: f64, potential_write_units: f64) -> Savings {
        let actual = prices.cost(write_units, read_units);
        let potential = prices.cost(potential_write_units, 0.0);
        let saved = potential - actual;
        Savings { actual, potential, saved, saved_percent: saved_percent(saved, potential) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_prices_are_dated_and_per_region() {
        let us = Prices::builtin("us-east-1").unwrap();
        assert_eq!((us.write_per_million, us.read_per_million), (0.625, 0.125));
        assert_eq!(us.source, "built-in 2024-11-01 us-east-1");
        assert_eq!(Prices::builtin("eu-west-1").unwrap().write_per_million, 0.705);
        assert_eq!(Prices::builtin("ap-south-9"), None);
    }

    #[test]
    fn savings_compare_with_a_full_rewrite() {
        let prices = Prices::builtin("us-east-1").unwrap();
        // 1,000,000 items of 1 unit each; 10,000 written; the scan read 250,000 units.
        let s = Savings::new(&prices, 10_000.0, 250_000.0, 1_000_000.0);
        assert!((s.actual - (0.00625 + 0.03125)).abs() < 1e-12, "{s:?}");
        assert!((s.potential - 0.625).abs() < 1e-12);
        assert!((s.saved - (0.625 - 0.0375)).abs() < 1e-12);
        assert!((s.saved_percent - 94.0).abs() < 1e-9);
    }

    #[test]
    fn nothing_to_write_means_zero_percent_not_nan() {
        let prices = Prices::builtin("eu-west-1").unwrap();
        let s = Savings::new(&prices, 0.0, 0.0, 0.0);
        assert_eq!(s.saved_percent, 0.0);
        let scan_only = Savings::new(&prices, 0.0, 8.0, 0.0);
        assert!(scan_only.saved < 0.0);
    }
}
