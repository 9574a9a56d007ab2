//! When to try again and how long to wait: full-jitter exponential backoff, and the
//! server's own "come back later" ([`crate::headers`]) bounded by the run's limits.

use std::time::{Duration, SystemTime};

use rand::Rng;

use super::client::Resp;
use crate::headers::{server_wait, words, ServerWait};

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

/// What a "come back later" answer asks to wait: a 429 or a 503 that names a time
/// (`Retry-After`, a reset header). `None` for any other answer, and for one naming none.
pub fn come_back_in(resp: &Resp) -> Option<ServerWait> {
    matches!(resp.status, 429 | 503)
        .then(|| server_wait(&resp.headers, SystemTime::now()))
        .flatten()
}

/// The pause to take after a 429 that asked for `asked`, with `left` of the row's time
/// remaining: the server's wait bounded by `max_pause` (`--max-pause`), or, when the server
/// asks for more than the row has left, why the row ends now (in the server's words).
pub fn server_pause(
    asked: ServerWait,
    max_pause: Duration,
    left: Duration,
    max_row_time: Duration,
) -> Result<Duration, String> {
    if asked.wait > left {
        return Err(format!(
            "the server asked to wait {} ({}); more than --max-row-time {}s allows",
            words(asked.wait),
            asked.header,
            max_row_time.as_secs_f64()
        ));
    }
    Ok(asked.wait.min(max_pause))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn execute_server_pause_is_bounded() {
        let asked = |s: u64| ServerWait {
            wait: Duration::from_secs(s),
            header: "Retry-After",
        };
        let (max_pause, row) = (Duration::from_secs(300), Duration::from_secs(3600));
        // Within the row's time: the server's wait, at most --max-pause.
        assert_eq!(
            server_pause(asked(20), max_pause, row, row),
            Ok(Duration::from_secs(20))
        );
        assert_eq!(
            server_pause(asked(1000), max_pause, row, row),
            Ok(max_pause)
        );
        // Beyond it: the row ends, saying what the server asked.
        let huge = ServerWait {
            wait: Duration::MAX,
            header: "RateLimit-Reset",
        };
        let e = server_pause(huge, max_pause, Duration::from_secs(100), row).unwrap_err();
        assert!(e.starts_with("the server asked to wait "), "{e}");
        assert!(
            e.contains("days (RateLimit-Reset); more than --max-row-time 3600s"),
            "{e}"
        );
        let e = server_pause(
            asked(100_000_000_000),
            max_pause,
            row,
            Duration::from_secs(120),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "the server asked to wait 1157407 days (Retry-After); more than --max-row-time 120s allows"
        );
    }
}
