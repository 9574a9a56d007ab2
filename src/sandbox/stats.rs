//! Request counters for `GET /_sandbox/stats`, and the rate-limit window.
//!
//! They exist so that a test (or an admin rehearsing) can see what the client really did:
//! how many requests ran at once, how many started in any one second, how many were
//! refused, failed or cut off, and how many the client gave up on (closed the connection
//! before the answer: its timeout).
//!
//! The limiter is the kind most APIs run: a fixed window aligned to the wall clock (a
//! quota of `rate × window` requests per window). A refused request is told to come back
//! when the window ends, in whole seconds as `Retry-After` requires: rounded up, so a client
//! that obeys it exactly waits up to a second longer than needed, and with a one-second
//! window it always hears `1`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{lock, App};

/// The counters of one sandbox; lives in `App::stats` behind a mutex.
pub(crate) struct Stats {
    /// Requests counted (everything outside `/_sandbox`).
    pub(crate) requests: u64,
    /// `"METHOD /path STATUS"` → count; ids in paths are replaced by `{id}`; a dropped
    /// connection counts as status `reset-before` or `reset-after`.
    pub(crate) by_path_status: BTreeMap<String, u64>,
    pub(crate) in_flight: u64,
    pub(crate) max_in_flight: u64,
    /// Unix second → requests started in it.
    pub(crate) per_second: BTreeMap<u64, u64>,
    /// Unix second → the most requests in flight at once during it.
    pub(crate) in_flight_per_second: BTreeMap<u64, u64>,
    /// Unix second → requests refused with 429 that started in it.
    pub(crate) limited_per_second: BTreeMap<u64, u64>,
    pub(crate) rate_limited: u64,
    pub(crate) resets: u64,
    pub(crate) failures: u64,
    /// Requests whose connection the client closed before the answer was written.
    pub(crate) abandoned: u64,
    /// When the first request arrived, in milliseconds since the Unix epoch (the clock of
    /// a latency that changes mid-run).
    pub(crate) first_request_ms: Option<u64>,
    /// Requests admitted per window (`rate × window`), if limited.
    quota: Option<u64>,
    /// Length of a rate-limit window, at least one second.
    window_len: Duration,
    /// The current window: (its index since the epoch, requests admitted in it).
    window: (u64, u64),
}

/// What the limiter decided for one request, and what it tells the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admission {
    pub(crate) admitted: bool,
    /// Requests allowed per window.
    pub(crate) quota: u64,
    /// Requests left in the current window after this one.
    pub(crate) remaining: u64,
    /// Whole seconds until the window ends, rounded up (at least 1).
    pub(crate) reset_secs: u64,
}

fn unix_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

impl Stats {
    /// Counters for a sandbox that admits `rate_limit` requests a second on average, counted
    /// over fixed windows of `window` (shorter than a second counts as one second).
    pub(crate) fn new(rate_limit: Option<u32>, window: Duration) -> Stats {
        let window_len = window.max(Duration::from_secs(1));
        Stats {
            requests: 0,
            by_path_status: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: 0,
            per_second: BTreeMap::new(),
            in_flight_per_second: BTreeMap::new(),
            limited_per_second: BTreeMap::new(),
            rate_limited: 0,
            resets: 0,
            failures: 0,
            abandoned: 0,
            first_request_ms: None,
            quota: rate_limit.map(|n| u64::from(n).saturating_mul(window_len.as_secs())),
            window_len,
            window: (0, 0),
        }
    }

    /// Whether a request arriving now fits in the rate limit, or `None` without a limit.
    /// Admitted requests use up the window; refused ones do not.
    pub(crate) fn admit(&mut self) -> Option<Admission> {
        self.admit_at(since_epoch())
    }

    /// [`Stats::admit`] at `now` (time since the Unix epoch).
    pub(crate) fn admit_at(&mut self, now: Duration) -> Option<Admission> {
        let quota = self.quota?;
        let len = self.window_len.as_millis().max(1);
        let now_ms = now.as_millis();
        let index = u64::try_from(now_ms / len).unwrap_or(u64::MAX);
        if self.window.0 != index {
            self.window = (index, 0);
        }
        let admitted = self.window.1 < quota;
        if admitted {
            self.window.1 += 1;
        }
        let left_ms = len - now_ms % len;
        let reset_secs = u64::try_from(left_ms.div_ceil(1000))
            .unwrap_or(u64::MAX)
            .max(1);
        Some(Admission {
            admitted,
            quota,
            remaining: quota - self.window.1,
            reset_secs,
        })
    }

    /// Counts one refused request.
    pub(crate) fn refused(&mut self) {
        self.rate_limited += 1;
        *self.limited_per_second.entry(unix_second()).or_insert(0) += 1;
    }

    /// Counts one finished request under `key` ("METHOD /path") and `status`.
    pub(crate) fn record(&mut self, key: &str, status: &str) {
        *self
            .by_path_status
            .entry(format!("{key} {status}"))
            .or_insert(0) += 1;
    }

    /// The counters as JSON. The `*per_second` arrays all cover the same seconds: from the
    /// first request's second (`first_second`, Unix time) to the last one's.
    pub(crate) fn to_json(&self) -> Value {
        let span = |m: &BTreeMap<u64, u64>| -> Vec<u64> {
            match (
                self.per_second.keys().next(),
                self.per_second.keys().next_back(),
            ) {
                (Some(&first), Some(&last)) => (first..=last)
                    .map(|s| m.get(&s).copied().unwrap_or(0))
                    .collect(),
                _ => Vec::new(),
            }
        };
        json!({
            "requests": self.requests,
            "by_path_status": self.by_path_status,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "max_per_second": self.per_second.values().copied().max().unwrap_or(0),
            "first_second": self.per_second.keys().next(),
            "per_second": span(&self.per_second),
            "in_flight_per_second": span(&self.in_flight_per_second),
            "limited_per_second": span(&self.limited_per_second),
            "rate_limited": self.rate_limited,
            "resets": self.resets,
            "failures": self.failures,
            "abandoned": self.abandoned,
            "first_request_ms": self.first_request_ms,
        })
    }
}

/// Marks one request as in flight for as long as it lives. The decrement is in `Drop`
/// because a dropped connection drops the request's future mid-way; a request dropped
/// before [`InFlight::done`] was abandoned by the client.
pub(crate) struct InFlight {
    app: Arc<App>,
    done: bool,
}

impl InFlight {
    pub(crate) fn begin(app: Arc<App>) -> InFlight {
        {
            let mut s = lock(&app.stats);
            s.requests += 1;
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            let second = unix_second();
            if s.first_request_ms.is_none() {
                s.first_request_ms = u64::try_from(since_epoch().as_millis()).ok();
            }
            *s.per_second.entry(second).or_insert(0) += 1;
            let now = s.in_flight;
            let peak = s.in_flight_per_second.entry(second).or_insert(0);
            *peak = (*peak).max(now);
        }
        InFlight { app, done: false }
    }

    /// The sandbox has answered (or chosen to drop the connection itself).
    pub(crate) fn done(&mut self) {
        self.done = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = lock(&self.app.stats);
        s.in_flight = s.in_flight.saturating_sub(1);
        if !self.done {
            s.abandoned += 1;
        }
    }
}

/// The path as counted in the stats: the id after a collection is replaced by `{id}` so
/// that `GET /scim/v2/Users/{id}` is one line, not one per user.
pub(crate) fn path_key(path: &str) -> String {
    for collection in ["/api/v1/User", "/users/user", "/scim/v2/Users"] {
        if let Some(rest) = path.strip_prefix(collection) {
            if rest.len() > 1 && rest.starts_with('/') {
                return format!("{collection}/{{id}}");
            }
        }
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_counts_admitted_requests_and_tells_the_rest_of_the_window() {
        let mut s = Stats::new(Some(2), Duration::from_secs(10));
        let at = |ms: u64| Duration::from_millis(1_000_000 + ms);
        let a = s.admit_at(at(1)).unwrap();
        assert_eq!(
            (a.admitted, a.quota, a.remaining, a.reset_secs),
            (true, 20, 19, 10)
        );
        for _ in 0..19 {
            assert!(s.admit_at(at(2_500)).unwrap().admitted);
        }
        let a = s.admit_at(at(2_500)).unwrap();
        // 7.5 s left in the window: Retry-After must be whole seconds, so 8.
        assert_eq!((a.admitted, a.remaining, a.reset_secs), (false, 0, 8));
        let a = s.admit_at(at(9_999)).unwrap();
        assert_eq!((a.admitted, a.reset_secs), (false, 1));
        let a = s.admit_at(at(10_000)).unwrap();
        assert_eq!((a.admitted, a.remaining, a.reset_secs), (true, 19, 10));
    }

    #[test]
    fn no_limit_admits_without_an_answer() {
        let mut s = Stats::new(None, Duration::from_secs(1));
        assert_eq!(s.admit(), None);
    }
}
