//! How fast the writer may go: an additive-increase / multiplicative-decrease limit on calls in
//! flight, driven by throttling, and an optional cap on write units per second.
//!
//! Throttling halves the number of BatchWriteItem calls allowed in flight (never below one);
//! each call that goes through unthrottled adds `1 / limit`, so the limit grows by about one per
//! round of calls. A throttle reported by a call sent before the last decrease does not decrease it
//! again: one burst of throttling is one signal, not one per call in flight. The units-per-second cap
//! (`max_write_units_per_second`) is a token bucket (governor) holding one second's worth of units,
//! one per run and shared by every table's writer, since it protects the account's traffic.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The AIMD state. Pure.
#[derive(Debug, Clone)]
pub struct Aimd {
    limit: f64,
    max: f64,
    epoch: u64,
}

impl Aimd {
    pub fn new(max: usize) -> Aimd {
        let max = max.max(1) as f64;
        Aimd { limit: max, max, epoch: 0 }
    }

    /// Calls allowed in flight now.
    pub fn allowed(&self) -> usize {
        self.limit.floor().max(1.0) as usize
    }

    /// The epoch a call is sent in; hand it back to [`Aimd::throttled`].
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn throttled(&mut self, sent_in: u64) {
        if sent_in == self.epoch {
            self.limit = (self.limit / 2.0).max(1.0);
            self.epoch += 1;
        }
    }

    pub fn succeeded(&mut self) {
        self.limit = (self.limit + 1.0 / self.limit).min(self.max);
    }
}

/// A cap on write units per second.
pub struct Cap {
    limiter: DefaultDirectRateLimiter,
    per_second: NonZeroU32,
}

impl Cap {
    pub fn new(per_second: NonZeroU32) -> Cap {
        Cap { limiter: RateLimiter::direct(Quota::per_second(per_second)), per_second }
    }

    /// Waits until `units` write units may be spent.
    pub async fn spend(&self, units: u64) {
        let mut left = units;
        while left > 0 {
            // The bucket holds one second's worth: a larger batch waits for it in slices.
            let take = left.min(u64::from(self.per_second.get())) as u32;
            let n = NonZeroU32::new(take).expect("take > 0");
            self.limiter.until_n_ready(n).await.expect("take is at most the burst");
            left -= u64::from(take);
        }
    }
}

/// One table writer's pace, shared by its calls in flight.
pub struct Pace {
    aimd: Mutex<Aimd>,
    cap: Option<Arc<Cap>>,
}

impl Pace {
    /// `cap`: the run's units-per-second cap, if any.
    pub fn new(max_in_flight: usize, cap: Option<Arc<Cap>>) -> Pace {
        Pace { aimd: Mutex::new(Aimd::new(max_in_flight)), cap }
    }

    pub fn allowed(&self) -> usize {
        self.aimd.lock().expect("pace lock").allowed()
    }

    pub fn epoch(&self) -> u64 {
        self.aimd.lock().expect("pace lock").epoch()
    }

    pub fn throttled(&self, sent_in: u64) {
        self.aimd.lock().expect("pace lock").throttled(sent_in);
    }

    pub fn succeeded(&self) {
        self.aimd.lock().expect("pace lock").succeeded();
    }

    /// Waits until `units` write units may be spent under the cap (at once when there is none).
    pub async fn spend(&self, units: u64) {
        if let Some(cap) = &self.cap {
            cap.spend(units).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn throttling_halves_and_success_recovers() {
        let mut a = Aimd::new(16);
        assert_eq!(a.allowed(), 16);
        let e = a.epoch();
        a.throttled(e);
        assert_eq!(a.allowed(), 8);
        // Other calls of the same burst report the same epoch: no further decrease.
        a.throttled(e);
        a.throttled(e);
        assert_eq!(a.allowed(), 8);
        a.throttled(a.epoch());
        assert_eq!(a.allowed(), 4);
        // About one more call allowed per round of successful calls.
        for _ in 0..4 {
            a.succeeded();
        }
        assert_eq!(a.allowed(), 4);
        for _ in 0..6 {
            a.succeeded();
        }
        assert!(a.allowed() >= 5, "{a:?}");
        for _ in 0..1000 {
            a.succeeded();
        }
        assert_eq!(a.allowed(), 16, "never above the configured maximum");
    }

    #[test]
    fn never_below_one_call() {
        let mut a = Aimd::new(2);
        for _ in 0..10 {
            a.throttled(a.epoch());
        }
        assert_eq!(a.allowed(), 1);
    }

    #[tokio::test]
    async fn the_cap_spreads_units_over_time_across_writers() {
        let cap = Arc::new(Cap::new(NonZeroU32::new(200).unwrap()));
        let (first, second) = (Pace::new(8, Some(cap.clone())), Pace::new(8, Some(cap)));
        let start = Instant::now();
        // The bucket starts full (200); 500 more units, from two writers, need about 2.5 s at 200/s.
        first.spend(200).await;
        tokio::join!(first.spend(250), second.spend(250));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(2400), "{took:?}");
        assert!(took < Duration::from_millis(4000), "{took:?}");
    }

    #[tokio::test]
    async fn no_cap_means_no_wait() {
        let pace = Pace::new(8, None);
        let start = Instant::now();
        pace.spend(1_000_000).await;
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
