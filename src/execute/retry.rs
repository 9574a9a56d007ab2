//! When to try again and how long to wait: full-jitter exponential backoff and the
//! server's own "come back later" headers.

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::HeaderMap;

/// First backoff step.
pub const BASE: Duration = Duration::from_millis(200);
/// Longest single backoff.
pub const CAP: Duration = Duration::from_secs(10);

/// Backoff before retry number `failed` (1 after the first failure): a random duration
/// between zero and `min(CAP, BASE * 2^(failed-1))`. Full jitter spreads the retries of many
/// workers that failed together, so they do not hit the target again in one burst.
pub fn backoff(failed: u32) -> Duration {
    let exp = failed.saturating_sub(1).min(16);
    let ceiling = BASE.saturating_mul(1u32 << exp).min(CAP);
    let ms = ceiling.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(0..=ms))
}

/// How long the server asks us to wait: `Retry-After` (seconds or an HTTP date), else
/// `RateLimit-Reset` / `X-RateLimit-Reset` (seconds; values that look like a Unix time are
/// taken as one, as GitHub-style APIs send them).
pub fn server_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(Duration::from_secs_f64(secs));
            }
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    for name in ["ratelimit-reset", "x-ratelimit-reset"] {
        if let Some(secs) = text(name).and_then(|v| v.parse::<f64>().ok()) {
            if !secs.is_finite() || secs < 0.0 {
                continue;
            }
            if secs > 1e9 {
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs);
                return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
            }
            return Some(Duration::from_secs_f64(secs));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn execute_backoff_stays_under_cap() {
        for n in 1..40 {
            let d = backoff(n);
            assert!(d <= CAP);
            if n == 1 {
                assert!(d <= BASE);
            }
        }
    }

    #[test]
    fn execute_server_wait_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(server_wait(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(server_wait(&h, now), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(5));
        h.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        assert_eq!(server_wait(&h, now), Some(Duration::from_secs(5)));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("3"));
        assert_eq!(server_wait(&h, now), Some(Duration::from_secs(3)));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1700000007"));
        assert_eq!(server_wait(&h, now), Some(Duration::from_secs(7)));
    }
}
