//! How many rows may be in flight at once: a fixed `--concurrency N`, or (`auto`, the
//! default) a limit that follows the target, after Netflix concurrency-limits' Gradient2.
//!
//! Every request's round trip (the HTTP send only: never the wait at our own rate gate)
//! is a sample. Once per window (as many samples as the limit, or a second) the limit
//! becomes `limit × gradient + √limit`, where the gradient `1.5 × long / short`, clamped
//! to `0.5..=1`, compares the window's mean round trip with a slow average of earlier
//! ones: while the target answers as fast as usual the limit grows by √limit (by half while
//! the rate is not reached, so a target that became slower gets rows enough soon); when its
//! answers slow down (a queue forms at the target) it shrinks, by at most half. A window
//! with a 429, a 5xx or a timeout shrinks it by a tenth instead. The limit never exceeds
//! `--max-concurrency`, and never grows past what the rate can use (`rate × round trip`
//! and a margin): when the rate gate binds, more rows in flight would only wait there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// `--max-concurrency` unless told otherwise.
pub const MAX: usize = 64;
#[cfg(test)]
const START: usize = 4;
/// Never below this many in flight.
const MIN: usize = 1;
/// How far the window's round trip may exceed the long average before the limit shrinks.
const TOLERANCE: f64 = 1.5;
/// Weight of one window in the long average: the average follows a lasting change of
/// latency within a few windows, so a target that became slower for good is not treated
/// as overloaded for long.
const LONG_WEIGHT: f64 = 0.5;
/// A window lasts at most this long.
const WINDOW: Duration = Duration::from_secs(1);

/// The concurrency limit of a run (behind an `Arc`, shared by the dispatcher and every
/// request).
pub struct Limit {
    /// One permit per row in flight.
    permits: Arc<Semaphore>,
    /// The limit now.
    limit: AtomicUsize,
    /// Permits to retire as rows finish (the limit shrank below what is in flight).
    debt: AtomicUsize,
    /// `None`: fixed.
    auto: Option<Mutex<Gradient>>,
}

/// What a request's answer says about the target's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    Ok,
    /// 429, 5xx, a timeout: the target is overloaded.
    Overload,
}

#[derive(Debug)]
struct Gradient {
    max: usize,
    /// The limit as a real number (steps of √limit add fractions).
    limit: f64,
    /// Slow average of the windows' mean round trips, in seconds.
    long: Option<f64>,
    /// The window so far.
    sum: f64,
    count: usize,
    overloads: usize,
    started: Instant,
}

impl Limit {
    /// A fixed limit of `n`.
    pub fn fixed(n: usize) -> Limit {
        Limit::with(n, None)
    }

    /// An adaptive limit from `start`, never above `max`.
    pub fn auto(start: usize, max: usize) -> Limit {
        let start = start.min(max).max(MIN);
        Limit::with(start, Some(Mutex::new(Gradient::new(start, max.max(MIN)))))
    }

    fn with(n: usize, auto: Option<Mutex<Gradient>>) -> Limit {
        Limit {
            permits: Arc::new(Semaphore::new(n)),
            limit: AtomicUsize::new(n),
            debt: AtomicUsize::new(0),
            auto,
        }
    }

    /// The limit now.
    pub fn current(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Waits for room for one more row in flight; the room is given back when the
    /// returned permit is dropped.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        // The semaphore is never closed.
        let p = self.permits.clone().acquire_owned().await.ok();
        Permit {
            permit: p,
            limit: self.clone(),
        }
    }

    /// A request's round trip and what it said. `rate`: the rate gate's rate now;
    /// `binding`: requests wait at the gate.
    pub fn sample(&self, rtt: Duration, what: Sample, rate: f64, binding: bool) {
        let Some(g) = &self.auto else {
            return;
        };
        let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
        let Some(next) = g.add(rtt, what, rate, binding, Instant::now()) else {
            return;
        };
        drop(g);
        self.resize(next);
    }

    /// Moves the semaphore to `next` permits: more at once, fewer as rows finish.
    fn resize(&self, next: usize) {
        let now = self.limit.swap(next, Ordering::Relaxed);
        if next > now {
            let grow = next - now;
            // Debt first: permits not yet retired are simply kept.
            let owed = self
                .debt
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                    Some(d.saturating_sub(grow))
                })
                .unwrap_or(0);
            self.permits.add_permits(grow - owed.min(grow));
        } else if next < now {
            let gone = self.permits.forget_permits(now - next);
            self.debt.fetch_add(now - next - gone, Ordering::Relaxed);
        }
    }
}

impl Gradient {
    fn new(start: usize, max: usize) -> Gradient {
        Gradient {
            max,
            limit: start as f64,
            long: None,
            sum: 0.0,
            count: 0,
            overloads: 0,
            started: Instant::now(),
        }
    }

    /// Adds a sample; at the end of a window, the new limit.
    fn add(
        &mut self,
        rtt: Duration,
        what: Sample,
        rate: f64,
        binding: bool,
        now: Instant,
    ) -> Option<usize> {
        self.sum += rtt.as_secs_f64();
        self.count += 1;
        self.overloads += usize::from(what == Sample::Overload);
        let full = self.count >= (self.limit as usize).max(MIN);
        if !full && now.duration_since(self.started) < WINDOW {
            return None;
        }
        let short = self.sum / self.count as f64;
        let long = self.long.map_or(short, |l| l + LONG_WEIGHT * (short - l));
        self.long = Some(long);
        let mut next = if self.overloads > 0 {
            self.limit * 0.9
        } else {
            let gradient = (TOLERANCE * long / short.max(1e-6)).clamp(0.5, 1.0);
            if gradient >= 1.0 && !binding {
                // No queue at the target and the rate not reached: grow by half (the
                // cap below keeps it within what the rate can use).
                self.limit + (self.limit / 2.0).max(self.limit.sqrt())
            } else {
                self.limit * gradient + self.limit.sqrt()
            }
        };
        // Rows the rate can keep busy, with room for the spread of round trips.
        let usable = rate * short * 1.5 + 4.0;
        if next > self.limit {
            next = if binding {
                self.limit
            } else {
                next.min(usable.max(self.limit))
            };
        }
        self.limit = next.clamp(MIN as f64, self.max as f64);
        self.sum = 0.0;
        self.count = 0;
        self.overloads = 0;
        self.started = now;
        Some(self.limit.round() as usize)
    }
}

/// Room for one row in flight (see [`Limit::acquire`]).
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    limit: Arc<Limit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        // While the limit is below what was in flight, a finishing row retires its permit.
        let debt = &self.limit.debt;
        let retire = debt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| d.checked_sub(1))
            .is_ok();
        if let (true, Some(p)) = (retire, self.permit.take()) {
            p.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds windows of `n` samples of `ms` until `windows` have ended; the last limit.
    fn feed(g: &mut Gradient, windows: usize, ms: u64, what: Sample, rate: f64) -> usize {
        let mut last = g.limit as usize;
        let mut ended = 0;
        while ended < windows {
            if let Some(l) = g.add(Duration::from_millis(ms), what, rate, false, g.started) {
                last = l;
                ended += 1;
            }
        }
        last
    }

    #[test]
    fn grows_while_latency_holds_and_stops_at_the_max() {
        let mut g = Gradient::new(START, 64);
        let after = feed(&mut g, 5, 100, Sample::Ok, 1000.0);
        assert!(after > 12, "{after}");
        assert_eq!(feed(&mut g, 40, 100, Sample::Ok, 1000.0), 64);
    }

    #[test]
    fn never_grows_past_what_the_rate_can_use() {
        let mut g = Gradient::new(START, 64);
        // 20 requests/s at 100 ms keep 2 busy: the margin allows 7, no more.
        assert_eq!(feed(&mut g, 30, 100, Sample::Ok, 20.0), 7);
    }

    #[test]
    fn shrinks_when_latency_jumps_then_follows_the_new_latency() {
        let mut g = Gradient::new(START, 64);
        let high = feed(&mut g, 30, 20, Sample::Ok, 10_000.0);
        assert_eq!(high, 64);
        let low = feed(&mut g, 1, 500, Sample::Ok, 10_000.0);
        assert!(low < 60, "{low}");
        // The long average takes the new latency in: growth resumes.
        assert_eq!(feed(&mut g, 30, 500, Sample::Ok, 10_000.0), 64);
    }

    #[test]
    fn overload_shrinks() {
        let mut g = Gradient::new(START, 64);
        feed(&mut g, 30, 20, Sample::Ok, 10_000.0);
        assert!(feed(&mut g, 5, 20, Sample::Overload, 10_000.0) < 40);
    }

    #[tokio::test]
    async fn a_smaller_limit_retires_permits_as_rows_finish() {
        let l = Arc::new(Limit::fixed(4));
        let held: Vec<_> = futures::future::join_all((0..4).map(|_| l.acquire())).await;
        l.resize(2);
        drop(held);
        assert_eq!(l.permits.available_permits(), 2);
        l.resize(5);
        assert_eq!(l.permits.available_permits(), 5);
    }
}
