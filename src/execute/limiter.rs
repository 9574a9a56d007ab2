//! The gate every request passes before it is sent: one governor rate limiter for the
//! whole run, plus what the target itself asks for (a pause after a 429 with a reset time,
//! and a lower rate for a while after any 429).
//!
//! The adaptive part sits on top of governor rather than replacing the limiter: governor
//! enforces `--rate` exactly and cheaply, and the slowed-down rate is an extra spacing
//! between request starts that disappears once the target has been quiet for a while.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// After a 429 the rate is halved at most once per this interval, so that four workers
/// receiving the same burst of 429s do not divide it by sixteen.
const CUT_INTERVAL: Duration = Duration::from_secs(1);

/// A wait for a governor cell shorter than this is spent yielding to the other tasks of
/// the thread instead of sleeping (see [`Gate::cell`]).
const SHORT_WAIT: Duration = Duration::from_micros(50);

/// Shared by all workers (behind an `Arc`).
pub struct Gate {
    /// Every request of the run waits here: `--rate` requests per second, `--burst` at once.
    limiter: DefaultDirectRateLimiter,
    /// The configured `--rate`; the adaptive rate climbs back to it.
    full_rate: f64,
    /// Guards the adaptive state; held only for a few instructions, never across an await.
    state: Mutex<Adaptive>,
    /// Set by the first 429 (and never cleared): until then the adaptive state is known to
    /// be idle, and a request passes the gate without taking the lock.
    adaptive: AtomicBool,
}

/// What the target told us about its limits.
#[derive(Debug)]
struct Adaptive {
    /// No request may start before this instant (429 with Retry-After or a reset header).
    paused_until: Option<Instant>,
    /// The lowered rate after a 429, if any (`None` = `--rate`).
    slowed: Option<f64>,
    /// While slowed: the earliest start of the next request (spaced at `1 / slowed`).
    next_slot: Instant,
    /// Successful responses since `slowed` last changed; enough of them raise it again.
    successes: u32,
    /// When the rate was last halved (see [`CUT_INTERVAL`]).
    last_cut: Option<Instant>,
}

impl Gate {
    /// `rate` > 0 requests per second, `burst` ≥ 1.
    pub fn new(rate: f64, burst: u32) -> Gate {
        let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Gate {
            limiter: RateLimiter::direct(quota),
            full_rate: rate,
            state: Mutex::new(Adaptive {
                paused_until: None,
                slowed: None,
                next_slot: Instant::now(),
                successes: 0,
                last_cut: None,
            }),
            adaptive: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Adaptive> {
        // A poisoned lock only means another worker panicked mid-update of plain numbers.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until this request may be sent: no pause in force, the slowed-down spacing
    /// respected, and a governor cell free.
    pub async fn acquire(&self) {
        loop {
            if self.adaptive.load(Ordering::Acquire) {
                self.adapt().await;
            }
            self.cell().await;
            // A 429 may have arrived while we waited: check again, so nothing is sent
            // inside a pause the server ordered.
            if !self.adaptive.load(Ordering::Acquire) || !self.paused() {
                return;
            }
        }
    }

    fn paused(&self) -> bool {
        self.lock().paused_until.is_some_and(|t| t > Instant::now())
    }

    /// After a 429: waits out the server's pause and the slowed-down spacing.
    async fn adapt(&self) {
        loop {
            let paused = self.lock().paused_until.filter(|t| *t > Instant::now());
            match paused {
                Some(t) => tokio::time::sleep_until(t).await,
                None => break,
            }
        }
        let slot = {
            let mut s = self.lock();
            match s.slowed {
                Some(r) => {
                    let start = s.next_slot.max(Instant::now());
                    s.next_slot = start + Duration::from_secs_f64(1.0 / r);
                    Some(start)
                }
                None => None,
            }
        };
        if let Some(t) = slot {
            tokio::time::sleep_until(t).await;
        }
    }

    /// Takes a governor cell (`--rate`, `--burst`). governor's own wait sleeps on the
    /// futures-timer thread, precise to microseconds but a round trip to another thread
    /// each time. When the run is not throttled, the wait is mostly a microsecond or two
    /// (two workers met at the same instant): such a short wait is spent letting the
    /// thread's other tasks run, and checking again.
    async fn cell(&self) {
        loop {
            let wait = match self.limiter.check() {
                Ok(()) => return,
                Err(not_until) => not_until.wait_time_from(self.limiter.clock().now()),
            };
            if wait < SHORT_WAIT {
                tokio::task::yield_now().await;
            } else {
                self.limiter.until_ready().await;
                return;
            }
        }
    }

    /// The server said "wait `d`": nobody sends until then. The caller bounds `d`
    /// (`--max-pause`); a wait beyond what an `Instant` can hold is cut to a day.
    pub fn pause_for(&self, d: Duration) {
        let now = Instant::now();
        let until = now
            .checked_add(d)
            .unwrap_or_else(|| now + Duration::from_secs(86_400));
        let mut s = self.lock();
        s.paused_until = Some(s.paused_until.map_or(until, |t| t.max(until)));
        self.adaptive.store(true, Ordering::Release);
    }

    /// A 429 arrived: halve the rate (at most once per [`CUT_INTERVAL`]).
    pub fn throttled(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        self.adaptive.store(true, Ordering::Release);
        if s.last_cut
            .is_some_and(|t| now.duration_since(t) < CUT_INTERVAL)
        {
            return;
        }
        let current = s.slowed.unwrap_or(self.full_rate);
        s.slowed = Some((current / 2.0).max(self.full_rate / 64.0).max(0.05));
        s.successes = 0;
        s.last_cut = Some(now);
        s.next_slot = s.next_slot.max(now);
    }

    /// A request got a non-429 answer: after about two seconds' worth of successes at the
    /// lowered rate, raise it by half again, up to `--rate`.
    pub fn success(&self) {
        if !self.adaptive.load(Ordering::Acquire) {
            return;
        }
        let mut s = self.lock();
        let Some(r) = s.slowed else {
            return;
        };
        s.successes += 1;
        if f64::from(s.successes) >= (2.0 * r).max(4.0) {
            let next = r * 1.5;
            s.slowed = if next >= self.full_rate {
                None
            } else {
                Some(next)
            };
            s.successes = 0;
        }
    }

    /// The current effective rate (for logs and tests).
    pub fn current_rate(&self) -> f64 {
        self.lock().slowed.unwrap_or(self.full_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_gate_halves_and_recovers() {
        let g = Gate::new(8.0, 1);
        g.throttled();
        assert_eq!(g.current_rate(), 4.0);
        g.throttled(); // within CUT_INTERVAL: ignored
        assert_eq!(g.current_rate(), 4.0);
        for _ in 0..8 {
            g.success();
        }
        assert_eq!(g.current_rate(), 6.0);
        for _ in 0..12 {
            g.success();
        }
        assert_eq!(g.current_rate(), 8.0);
    }
}
