//! Request counters for `GET /_sandbox/stats`, and the rate-limit window.
//!
//! They exist so that a test (or an admin rehearsing) can see what the client really did:
//! how many requests ran at once, how many started in any one second, how many were
//! refused, failed or cut off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

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
    pub(crate) rate_limited: u64,
    pub(crate) resets: u64,
    pub(crate) failures: u64,
    /// Max requests admitted per wall-clock second.
    rate_limit: Option<u32>,
    /// The current fixed rate-limit window: (unix second, requests admitted in it).
    window: (u64, u32),
}

fn unix_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Stats {
    pub(crate) fn new(rate_limit: Option<u32>) -> Stats {
        Stats {
            requests: 0,
            by_path_status: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: 0,
            per_second: BTreeMap::new(),
            rate_limited: 0,
            resets: 0,
            failures: 0,
            rate_limit,
            window: (0, 0),
        }
    }

    /// Whether a request arriving now fits in the rate limit (fixed window aligned to the
    /// wall-clock second). Admitted requests use up the window; refused ones do not.
    pub(crate) fn admit(&mut self) -> bool {
        let Some(limit) = self.rate_limit else {
            return true;
        };
        let now = unix_second();
        if self.window.0 != now {
            self.window = (now, 0);
        }
        if self.window.1 < limit {
            self.window.1 += 1;
            true
        } else {
            false
        }
    }

    /// Counts one finished request under `key` ("METHOD /path") and `status`.
    pub(crate) fn record(&mut self, key: &str, status: &str) {
        *self
            .by_path_status
            .entry(format!("{key} {status}"))
            .or_insert(0) += 1;
    }

    pub(crate) fn to_json(&self) -> Value {
        let per_second: Vec<u64> = match (
            self.per_second.keys().next(),
            self.per_second.keys().next_back(),
        ) {
            (Some(&first), Some(&last)) => (first..=last)
                .map(|s| self.per_second.get(&s).copied().unwrap_or(0))
                .collect(),
            _ => Vec::new(),
        };
        json!({
            "requests": self.requests,
            "by_path_status": self.by_path_status,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "max_per_second": self.per_second.values().copied().max().unwrap_or(0),
            "per_second": per_second,
            "rate_limited": self.rate_limited,
            "resets": self.resets,
            "failures": self.failures,
        })
    }
}

/// Marks one request as in flight for as long as it lives. The decrement is in `Drop`
/// because a dropped connection drops the request's future mid-way.
pub(crate) struct InFlight(Arc<App>);

impl InFlight {
    pub(crate) fn begin(app: Arc<App>) -> InFlight {
        {
            let mut s = lock(&app.stats);
            s.requests += 1;
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            *s.per_second.entry(unix_second()).or_insert(0) += 1;
        }
        InFlight(app)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = lock(&self.0.stats);
        s.in_flight = s.in_flight.saturating_sub(1);
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
