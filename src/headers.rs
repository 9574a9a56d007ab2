//! What a server's answer headers ask of a client: to wait (`Retry-After`,
//! `RateLimit-Reset`) and how many requests its window has left (`RateLimit-*`). Any value
//! is read without a panic; what the run does with it is [`crate::execute`]'s business.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// A budget a server advertised (`RateLimit-Limit` / `-Remaining` / `-Reset`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Requests still allowed in the current window.
    pub remaining: u64,
    /// Until the window resets.
    pub reset: Duration,
}

/// What the server asked for: how long to wait, and which header said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerWait {
    /// As asked, saturated at `Duration::MAX` (a wait too large for a `Duration` is
    /// still a request to wait "forever", not an error).
    pub wait: Duration,
    /// The header it came from, for messages: `Retry-After` or `RateLimit-Reset`.
    pub header: &'static str,
}

/// Seconds from a header as a `Duration`: negative and NaN mean nothing usable; a value
/// too large for a `Duration` saturates (never a panic).
fn secs(v: f64) -> Option<Duration> {
    if v.is_nan() || v < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX))
}

/// From `now` until `at`; zero when `at` has passed.
fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// The wait a reset header gives: seconds, or, for a value that looks like one, a Unix
/// time (as GitHub-style APIs send it); `None` past what a clock can hold.
fn reset_in(value: Duration, now: SystemTime) -> Option<Duration> {
    if value <= Duration::from_secs(1_000_000_000) {
        return Some(value);
    }
    SystemTime::UNIX_EPOCH
        .checked_add(value)
        .map(|at| until(at, now))
}

/// How long the server asks us to wait: `Retry-After` (seconds or an HTTP date), else
/// `RateLimit-Reset` / `X-RateLimit-Reset` (seconds; values that look like a Unix time are
/// taken as one, as GitHub-style APIs send them). Any value is accepted without a panic:
/// negative or NaN ones are ignored, huge ones saturate; the caller bounds the wait.
pub fn server_wait(headers: &HeaderMap, now: SystemTime) -> Option<ServerWait> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(v) = text("retry-after") {
        let wait = match v.parse::<f64>() {
            Ok(s) => secs(s),
            Err(_) => httpdate::parse_http_date(v).ok().map(|at| until(at, now)),
        };
        if let Some(wait) = wait {
            return Some(ServerWait {
                wait,
                header: "Retry-After",
            });
        }
    }
    for name in ["ratelimit-reset", "x-ratelimit-reset"] {
        let Some(s) = text(name)
            .and_then(|v| v.parse::<f64>().ok())
            .and_then(secs)
        else {
            continue;
        };
        return Some(ServerWait {
            wait: reset_in(s, now).unwrap_or(Duration::MAX),
            header: "RateLimit-Reset",
        });
    }
    None
}

/// A wait in words: "45s", "12 minutes", "3 hours", "1157407 days".
pub fn words(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{}s", d.as_secs_f64().ceil() as u64),
        120..=7199 => format!("{} minutes", s / 60),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// The budget a server advertises, when it does: `RateLimit-Remaining` and
/// `RateLimit-Reset` (IETF draft; also spelled `X-RateLimit-*`), or the draft's combined
/// `RateLimit: limit=100, remaining=50, reset=30`. A reset that looks like a Unix time is
/// taken as one (see [`server_wait`]); a header that does not parse is ignored.
pub fn budget(headers: &HeaderMap) -> Option<Budget> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (remaining, reset) = match (
        text("ratelimit-remaining").or_else(|| text("x-ratelimit-remaining")),
        text("ratelimit-reset").or_else(|| text("x-ratelimit-reset")),
        text("ratelimit"),
    ) {
        (Some(rem), Some(reset), _) => (rem.trim().to_string(), reset.trim().to_string()),
        (_, _, Some(combined)) => {
            let field = |key: &str| {
                combined.split([',', ';']).find_map(|part| {
                    let (k, v) = part.split_once('=')?;
                    (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().to_string())
                })
            };
            (field("remaining")?, field("reset")?)
        }
        _ => return None,
    };
    let remaining = remaining.parse::<u64>().ok()?;
    let reset = reset.parse::<f64>().ok().and_then(secs)?;
    let reset = reset_in(reset, SystemTime::now())?;
    Some(Budget { remaining, reset })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn wait(h: &HeaderMap, now: SystemTime) -> Option<Duration> {
        server_wait(h, now).map(|w| w.wait)
    }

    #[test]
    fn execute_server_wait_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(wait(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(wait(&h, now), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(5));
        h.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        assert_eq!(wait(&h, now), Some(Duration::from_secs(5)));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("3"));
        assert_eq!(wait(&h, now), Some(Duration::from_secs(3)));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1700000007"));
        assert_eq!(wait(&h, now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn execute_server_wait_never_panics_on_hostile_values() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let one = |name: &'static str, v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(v));
            server_wait(&h, now)
        };
        for v in ["99999999999999999999", "1e300", "inf", "Infinity"] {
            let w = one("retry-after", v).expect(v);
            assert_eq!((w.wait, w.header), (Duration::MAX, "Retry-After"), "{v}");
        }
        for v in ["-5", "NaN", "-inf", "soon", ""] {
            assert_eq!(one("retry-after", v), None, "{v}");
        }
        assert_eq!(
            one("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT").map(|w| w.wait),
            Some(Duration::ZERO)
        );
        assert!(one("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")
            .is_some_and(|w| w.wait > Duration::from_secs(100 * 365 * 86_400)));
        for v in ["1e300", "99999999999999999999"] {
            let w = one("ratelimit-reset", v).expect(v);
            assert_eq!(
                (w.wait, w.header),
                (Duration::MAX, "RateLimit-Reset"),
                "{v}"
            );
        }
        assert_eq!(one("x-ratelimit-reset", "-1"), None);
        assert_eq!(one("x-ratelimit-reset", "NaN"), None);
        assert_eq!(words(Duration::from_secs(100_000_000_000)), "1157407 days");
        assert_eq!(words(Duration::from_millis(1500)), "2s");
        assert!(words(Duration::MAX).ends_with(" days"));
    }

    #[test]
    fn a_rate_limit_budget_is_read_in_every_spelling() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        let b = |remaining, secs| {
            Some(Budget {
                remaining,
                reset: Duration::from_secs(secs),
            })
        };
        let ietf = h(&[
            ("ratelimit-limit", "100"),
            ("ratelimit-remaining", "7"),
            ("ratelimit-reset", "30"),
        ]);
        assert_eq!(budget(&ietf), b(7, 30));
        let x = h(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "2")]);
        assert_eq!(budget(&x), b(0, 2));
        let combined = h(&[("ratelimit", "limit=100, remaining=50, reset=9")]);
        assert_eq!(budget(&combined), b(50, 9));
        for bad in [
            h(&[("ratelimit-remaining", "-1"), ("ratelimit-reset", "3")]),
            h(&[("ratelimit-remaining", "5"), ("ratelimit-reset", "NaN")]),
            h(&[("ratelimit-remaining", "5")]),
            h(&[("ratelimit", "limit=100")]),
        ] {
            assert_eq!(budget(&bad), None);
        }
    }
}
