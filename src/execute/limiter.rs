//! The gate every request passes before it is sent: one rate for the whole run, plus what
//! the target itself asks for (a pause after a 429 or an empty `RateLimit-Remaining`, a
//! lower rate after any 429, the budget its `RateLimit-*` headers advertise).
//!
//! Two layers. governor holds the hard cap: a fixed `--rate` exactly (never more than
//! `rate` starts in a second, plus `--burst` after an idle spell), as it has since the
//! first release. Below that cap, a rate that changes during the run (`--rate auto`, the
//! slowdown after a 429, a server's budget) is kept by reserving start slots `1 / rate`
//! apart and sleeping on the runtime's timer until the slot; a run at its full fixed rate
//! skips that layer. Neither polls: the slots sleep on tokio's timer, governor on its
//! own timer thread (precise to microseconds, which a fixed rate of hundreds a second
//! needs).
//!
//! `--rate auto` probes: it starts at the profile's rate and grows by half every
//! [`PROBE_EVERY`] until the target first pushes back (a 429). It then remembers the rate
//! at which that happened, settles at [`SETTLE`] of it and creeps up by [`CREEP`] every
//! [`PROBE_EVERY`]; the next 429 lowers the ceiling to where it came. A fixed `--rate`
//! halves after a 429 and climbs back to the rate asked for.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// After a 429 the rate is cut at most once per this interval, so that workers receiving
/// the same burst of 429s cut it once.
const CUT_INTERVAL: Duration = Duration::from_secs(1);
/// How often `--rate auto` (and a fixed rate recovering from a 429) may raise the rate.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// `--rate auto` settles at this share of the rate at which the target answered 429.
const SETTLE: f64 = 0.9;
/// `--rate auto` creeps up by this factor per step once it knows a ceiling.
const CREEP: f64 = 1.03;
/// The lowest rate any cut leads to (requests per second).
const FLOOR: f64 = 0.05;
/// governor's cap under `--rate auto`, which has no rate of its own to hold: the slots
/// below it keep the rate the probing found.
const AUTO_CAP: f64 = 100_000.0;

/// How the run's rate is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateMode {
    /// `--rate R`: never above R.
    Fixed(f64),
    /// `--rate auto`: start at this rate and probe upward.
    Auto(f64),
}

impl RateMode {
    /// The rate a run starts with.
    pub fn start(self) -> f64 {
        match self {
            RateMode::Fixed(r) | RateMode::Auto(r) => r,
        }
    }
}

/// A budget a server advertised (`RateLimit-Limit` / `-Remaining` / `-Reset`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Requests still allowed in the current window.
    pub remaining: u64,
    /// Until the window resets.
    pub reset: Duration,
}

/// Shared by all workers (behind an `Arc`).
pub struct Gate {
    mode: RateMode,
    burst: u32,
    /// The hard cap: a fixed `--rate` (and `--burst`), held exactly.
    cap: DefaultDirectRateLimiter,
    /// Held only for a few instructions, never across an await.
    state: Mutex<State>,
    /// Requests sleeping until their slot: more than none means the rate is what binds.
    waiting: AtomicUsize,
}

#[derive(Debug)]
struct State {
    /// The rate now (requests per second).
    rate: f64,
    /// The next free start slot.
    next: Instant,
    /// No request may start before this instant (Retry-After, a reset header).
    paused_until: Option<Instant>,
    /// The rate the target answered 429 at (`--rate auto` stays below it).
    ceiling: Option<f64>,
    /// A rate the server's own budget allows now (`RateLimit-*`), until `budget_until`.
    budget: Option<(f64, Instant)>,
    last_cut: Option<Instant>,
    last_raise: Instant,
}

impl Gate {
    /// `rate` > 0 requests per second, `burst` ≥ 1.
    pub fn new(mode: RateMode, burst: u32) -> Gate {
        let now = Instant::now();
        let cap = match mode {
            RateMode::Fixed(r) => r,
            RateMode::Auto(_) => AUTO_CAP,
        };
        let period = Duration::from_secs_f64(1.0 / cap.max(0.001));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN));
        Gate {
            mode,
            burst: burst.max(1),
            cap: RateLimiter::direct(quota),
            state: Mutex::new(State {
                rate: mode.start().max(FLOOR),
                next: now,
                paused_until: None,
                ceiling: None,
                budget: None,
                last_cut: None,
                last_raise: now,
            }),
            waiting: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another worker panicked mid-update of plain numbers.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until this request may be sent: no pause in force, its slot come when the
    /// rate is below the cap, and a governor cell free.
    pub async fn acquire(&self) {
        loop {
            if let Some(at) = self.slot(Instant::now()) {
                self.sleep_until(at).await;
            }
            if self.cap.check().is_err() {
                // governor's own wait, precise to microseconds: tokio's timer rounds up to
                // whole milliseconds, and with a burst of 1 each late start is lost rate.
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let _done = Waiting(&self.waiting);
                self.cap.until_ready().await;
            }
            // A pause may have come in while we waited: nothing is sent inside it.
            if self.lock().paused_until.is_none_or(|t| t <= Instant::now()) {
                return;
            }
        }
    }

    /// Sleeps, counted in [`Gate::waiting`] (however the wait ends).
    async fn sleep_until(&self, at: Instant) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _done = Waiting(&self.waiting);
        tokio::time::sleep_until(at).await;
    }

    /// This request's start slot, when the slot layer is in force: a pause, or a rate
    /// below the cap. `None`: governor alone decides.
    fn slot(&self, now: Instant) -> Option<Instant> {
        let below = {
            let s = self.lock();
            s.paused_until.is_some_and(|t| t > now)
                || match self.mode {
                    RateMode::Fixed(full) => s.effective() < full,
                    RateMode::Auto(_) => true,
                }
        };
        below.then(|| self.reserve(now))
    }

    /// Takes the next start slot: after any pause, `1 / rate` after the last one, and at
    /// most `burst - 1` intervals in the past (the idle spell's credit).
    fn reserve(&self, now: Instant) -> Instant {
        let mut s = self.lock();
        let interval = Duration::from_secs_f64(1.0 / s.effective());
        let credit = interval.saturating_mul(self.burst - 1);
        let earliest = now.checked_sub(credit).unwrap_or(now);
        let mut slot = s.next.max(earliest);
        if let Some(p) = s.paused_until.filter(|p| *p > slot) {
            slot = p;
        }
        s.next = slot + interval;
        slot
    }

    /// True while requests wait for their slot: more requests in flight cannot help.
    pub fn binding(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// The rate now, requests per second (what the server's budget allows included).
    pub fn current_rate(&self) -> f64 {
        self.lock().effective()
    }

    /// The server said "wait `d`": nobody starts until then. The caller bounds `d`
    /// (`--max-pause`); a wait beyond what an `Instant` can hold is cut to a day.
    pub fn pause_for(&self, d: Duration) {
        let now = Instant::now();
        let until = now
            .checked_add(d)
            .unwrap_or_else(|| now + Duration::from_secs(86_400));
        let mut s = self.lock();
        s.paused_until = Some(s.paused_until.map_or(until, |t| t.max(until)));
    }

    /// A 429 arrived. A fixed rate halves; `--rate auto` remembers the rate it came at and
    /// settles just below it. At most once per [`CUT_INTERVAL`].
    pub fn throttled(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        if s.last_cut
            .is_some_and(|t| now.duration_since(t) < CUT_INTERVAL)
        {
            return;
        }
        s.last_cut = Some(now);
        s.last_raise = now;
        s.rate = match self.mode {
            RateMode::Fixed(full) => (s.rate / 2.0).max(full / 64.0),
            RateMode::Auto(_) => {
                let ceiling = s.ceiling.map_or(s.rate, |c| c.min(s.rate));
                s.ceiling = Some(ceiling);
                ceiling * SETTLE
            }
        }
        .max(FLOOR);
    }

    /// A request got an answer that was not a 429: the rate may grow (see the module
    /// docs), at most once per [`PROBE_EVERY`], and only while it is what binds.
    pub fn success(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        if now.duration_since(s.last_raise) < PROBE_EVERY {
            return;
        }
        s.last_raise = now;
        match self.mode {
            RateMode::Fixed(full) => s.rate = (s.rate * 1.5).min(full),
            // Growing the rate while no request waits for it would only raise a number.
            RateMode::Auto(_) if self.binding() => {
                let step = if s.ceiling.is_some() { CREEP } else { 1.5 };
                s.rate *= step;
                if let Some(c) = s.ceiling.filter(|c| s.rate > *c) {
                    // Past the old ceiling without a 429: the target allows more now.
                    s.ceiling = Some(c.max(s.rate / SETTLE));
                }
            }
            RateMode::Auto(_) => {}
        }
    }

    /// The server advertised its budget: spread what remains over the rest of its window
    /// (and pause until the reset when nothing remains), so that no request meets a 429.
    /// `in_flight`: requests that may be on their way unseen by the server; as many of
    /// the budget are kept back for them.
    pub fn budget(&self, b: Budget, max_pause: Duration, in_flight: u64) {
        let now = Instant::now();
        let reset = b.reset.clamp(Duration::from_millis(100), max_pause);
        if b.remaining <= in_flight {
            self.pause_for(reset);
            return;
        }
        let rate = (b.remaining - in_flight) as f64 / reset.as_secs_f64();
        self.lock().budget = Some((rate, now + reset));
    }
}

impl State {
    fn effective(&self) -> f64 {
        match self.budget {
            Some((b, until)) if until > Instant::now() => self.rate.min(b).max(FLOOR),
            _ => self.rate,
        }
    }
}

/// Counts a request out of [`Gate::waiting`] however its wait ends (also when the task
/// is dropped mid-wait).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_gate_halves_and_recovers() {
        let g = Gate::new(RateMode::Fixed(8.0), 1);
        g.throttled();
        assert_eq!(g.current_rate(), 4.0);
        g.throttled(); // within CUT_INTERVAL: ignored
        assert_eq!(g.current_rate(), 4.0);
        g.lock().last_raise -= PROBE_EVERY;
        g.success();
        assert_eq!(g.current_rate(), 6.0);
        g.lock().last_raise -= PROBE_EVERY;
        g.success();
        assert_eq!(g.current_rate(), 8.0, "never above --rate");
    }

    #[test]
    fn auto_rate_settles_below_the_rate_that_met_a_429() {
        let g = Gate::new(RateMode::Auto(100.0), 1);
        g.waiting.store(1, Ordering::Relaxed); // the rate binds
        for _ in 0..3 {
            g.lock().last_raise -= PROBE_EVERY;
            g.success();
        }
        assert_eq!(g.current_rate(), 337.5, "grows by half until pushed back");
        g.throttled();
        assert!((g.current_rate() - 337.5 * SETTLE).abs() < 1e-9);
        g.lock().last_raise -= PROBE_EVERY;
        g.success();
        assert!(
            (g.current_rate() - 337.5 * SETTLE * CREEP).abs() < 1e-9,
            "creeps"
        );
        g.waiting.store(0, Ordering::Relaxed);
        g.lock().last_raise -= PROBE_EVERY;
        g.success();
        assert!(
            (g.current_rate() - 337.5 * SETTLE * CREEP).abs() < 1e-9,
            "idle: no growth"
        );
    }

    #[test]
    fn slots_are_spaced_at_the_rate_with_the_burst_after_idle() {
        let g = Gate::new(RateMode::Fixed(10.0), 3);
        let t = Instant::now() + Duration::from_secs(5);
        let slots: Vec<_> = (0..4).map(|_| g.reserve(t)).collect();
        let ms = |i: usize| slots[i].saturating_duration_since(slots[0]).as_millis();
        assert_eq!((ms(1), ms(2), ms(3)), (100, 200, 300));
        assert!(
            slots[0] < t,
            "an idle spell's credit lets the burst start at once"
        );
    }

    #[test]
    fn a_budget_spreads_what_remains_and_an_empty_one_pauses() {
        let g = Gate::new(RateMode::Fixed(100.0), 1);
        let max = Duration::from_secs(60);
        g.budget(
            Budget {
                remaining: 11,
                reset: Duration::from_secs(2),
            },
            max,
            1,
        );
        assert_eq!(g.current_rate(), 5.0);
        g.budget(
            Budget {
                remaining: 0,
                reset: Duration::from_secs(2),
            },
            max,
            1,
        );
        let now = Instant::now();
        assert!(
            g.reserve(now) > now + Duration::from_secs(1),
            "held until the reset"
        );
    }
}
