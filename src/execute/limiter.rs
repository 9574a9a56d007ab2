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
//! `--rate auto` probes. Until the target first pushes back (a 429) it doubles the rate
//! every [`CLIMB_EVERY`] while the rate is what binds (requests wait for their slot). At
//! a 429 it takes as the target's ceiling what the target *answered* in its current
//! second (see `State::quota_seen`; never the rate asked for, which may have run far
//! ahead of what the rows in flight sent), sends nothing until that second ends (or the
//! target's Retry-After), settles at [`SETTLE`] of the ceiling and creeps by [`CREEP`] a
//! second up to [`TOP`] of it. After [`HOLD`] there without a 429 it raises the ceiling
//! by [`CREEP`], so a target that allows more is found; a later 429 lowers the ceiling
//! to what was answered then, and by at least [`AGAIN`]. A fixed `--rate` halves after
//! a 429 and climbs back to the rate asked for.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::headers::Budget;

/// After a 429 the rate is cut at most once per this interval, so that workers receiving
/// the same burst of 429s cut it once.
const CUT_INTERVAL: Duration = Duration::from_secs(1);
const SECOND: Duration = Duration::from_secs(1);
/// How often a fixed rate recovering from a 429, and `--rate auto` once it knows a
/// ceiling, may raise the rate.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How often `--rate auto` doubles its rate before the first 429 (while it binds).
const CLIMB_EVERY: Duration = Duration::from_millis(50);
/// `--rate auto` settles at this share of the rate the target answered before a 429.
const SETTLE: f64 = 0.9;
/// `--rate auto` creeps up by this factor per [`PROBE_EVERY`] once it knows a ceiling...
const CREEP: f64 = 1.02;
/// ... up to this share of the ceiling (a rate held evenly still lands a request or
/// two more in some of the target's seconds);
const TOP: f64 = 0.95;
/// ... and after this long there without a 429, raises the ceiling itself by [`CREEP`].
const HOLD: Duration = Duration::from_secs(30);
/// A 429 below a known ceiling lowers it to at least this share of itself.
const AGAIN: f64 = 0.97;
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
    /// Since when `--rate auto` has sat at [`TOP`] of its ceiling without a 429.
    at_top: Option<Instant>,
    /// When the requests of the last second were answered (without a 429): what the
    /// target really allowed. Kept for `--rate auto` only.
    answered: VecDeque<Instant>,
    /// The last answer that was neither a refusal (429, 503 with a wait) nor a failure
    /// to retry ([`Gate::success`]; the gate's creation until there is one).
    welcomed: Instant,
}

impl Gate {
    /// `rate` > 0 requests per second, `burst` ≥ 1.
    pub fn new(mode: RateMode, burst: u32) -> Gate {
        let now = Instant::now();
        let (start, cap) = match mode {
            RateMode::Fixed(r) => (r, r),
            RateMode::Auto(r) => (r, AUTO_CAP),
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
                rate: start.max(FLOOR),
                next: now,
                paused_until: None,
                ceiling: None,
                budget: None,
                last_cut: None,
                last_raise: now,
                at_top: None,
                answered: VecDeque::new(),
                welcomed: now,
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
                let _counted = Waiting::start(&self.waiting);
                tokio::time::sleep_until(at).await;
            }
            if self.cap.check().is_err() {
                // governor's own wait, precise to microseconds: tokio's timer rounds up to
                // whole milliseconds, and with a burst of 1 each late start is lost rate.
                let _counted = Waiting::start(&self.waiting);
                self.cap.until_ready().await;
            }
            // A pause may have come in while we waited: nothing is sent inside it.
            let now = Instant::now();
            let s = self.lock();
            if s.paused_until.is_none_or(|t| t <= now) {
                return;
            }
        }
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

    /// How long the target has answered nothing a row could use: since its last
    /// [`Gate::success`], or since the run began.
    pub fn refusing_for(&self) -> Duration {
        Instant::now().saturating_duration_since(self.lock().welcomed)
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
        s.pause_until(until);
    }

    /// A 429 arrived. A fixed rate halves; `--rate auto` takes what the target answered
    /// over the last second as its ceiling and settles below it. At most once per
    /// [`CUT_INTERVAL`].
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
        s.at_top = None;
        s.rate = match self.mode {
            RateMode::Fixed(full) => (s.rate / 2.0).max(full / 64.0),
            RateMode::Auto(_) => {
                let wall = SystemTime::now();
                let ceiling = s.quota_seen(now, wall);
                // Refused again below a known ceiling: that estimate was high, or the
                // target allows less now.
                let ceiling = s.ceiling.map_or(ceiling, |c| ceiling.min(c * AGAIN));
                tracing::debug!(rate = s.rate, ceiling, "auto rate: a 429");
                s.ceiling = Some(ceiling);
                // The target's window is spent: what is sent before it ends meets a 429
                // too. Nothing more until the wall clock's next second (where the windows
                // that `quota_seen` assumes end), or the target's own Retry-After.
                let rest = SECOND.saturating_sub(into_second(wall));
                let until = now + rest;
                s.pause_until(until);
                ceiling * SETTLE
            }
        }
        .max(FLOOR);
    }

    /// A request got an answer that was not a 429: the rate may grow (see the module
    /// docs), and only while it is what binds: growing a rate nobody waits for would only
    /// raise a number.
    pub fn success(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        s.welcomed = now;
        if let RateMode::Auto(_) = self.mode {
            s.answered.push_back(now);
            while s
                .answered
                .front()
                .is_some_and(|t| now.duration_since(*t) > SECOND)
            {
                s.answered.pop_front();
            }
        }
        let since = now.duration_since(s.last_raise);
        match (self.mode, s.ceiling) {
            (RateMode::Fixed(full), _) if since >= PROBE_EVERY => {
                s.rate = (s.rate * 1.5).min(full);
                s.last_raise = now;
            }
            (RateMode::Auto(_), None) if since >= CLIMB_EVERY && self.binding() => {
                s.rate *= 2.0;
                s.last_raise = now;
                tracing::debug!(rate = s.rate, "auto rate: climbs");
            }
            (RateMode::Auto(_), Some(c)) if since >= PROBE_EVERY && self.binding() => {
                s.last_raise = now;
                if s.rate < c * TOP {
                    s.rate = (s.rate * CREEP).min(c * TOP);
                } else if s.at_top.is_some_and(|t| now.duration_since(t) >= HOLD) {
                    s.ceiling = Some(c * CREEP);
                    s.at_top = None;
                } else if s.at_top.is_none() {
                    s.at_top = Some(now);
                }
            }
            _ => {}
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
    /// Nobody starts before `until` (a pause already longer stands).
    fn pause_until(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |t| t.max(until)));
    }

    /// What the target allows in a second, judged at a 429: the requests it answered
    /// since the wall clock's second began, when that lies between half and all of those
    /// it answered over the last second. Most fixed-window limiters count per wall-clock
    /// second, and the count since that second began is then their quota exactly; the
    /// last second's count may also hold the end of the target's previous window (up to
    /// twice the quota). With nothing answered yet, half the rate asked for.
    fn quota_seen(&self, now: Instant, wall: SystemTime) -> f64 {
        let last_second = self.answered.len() as f64;
        if last_second < 1.0 {
            return self.rate / 2.0;
        }
        let into = into_second(wall);
        let this_second = self
            .answered
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) <= into)
            .count() as f64;
        this_second.clamp(last_second / 2.0, last_second)
    }

    fn effective(&self) -> f64 {
        match self.budget {
            Some((b, until)) if until > Instant::now() => self.rate.min(b).max(FLOOR),
            _ => self.rate,
        }
    }
}

/// How far the wall clock is into its current second.
fn into_second(wall: SystemTime) -> Duration {
    wall.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(Duration::ZERO, |d| {
            Duration::from_nanos(d.subsec_nanos().into())
        })
}

/// Counts a request in [`Gate::waiting`] while it waits, and out however its wait ends
/// (also when the task is dropped mid-wait).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn start(waiting: &'a AtomicUsize) -> Waiting<'a> {
        waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(waiting)
    }
}

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
    fn auto_rate_climbs_while_it_binds_and_settles_below_what_was_answered() {
        let g = Gate::new(RateMode::Auto(100.0), 1);
        let climb = |g: &Gate| {
            g.lock().last_raise -= CLIMB_EVERY;
            g.success();
        };
        climb(&g);
        assert_eq!(
            g.current_rate(),
            100.0,
            "nobody waits for the rate: no climb"
        );
        g.waiting.store(1, Ordering::Relaxed);
        climb(&g);
        climb(&g);
        assert_eq!(g.current_rate(), 400.0, "doubles while it binds");
        // The target answered 150 in the last second, 120 of them in this wall second.
        let now = Instant::now();
        let mut s = g.lock();
        s.answered = (0..150)
            .map(|i| now - Duration::from_millis(900 - i * 6))
            .collect();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000_000_000 + 721);
        assert_eq!(s.quota_seen(now, wall), 120.0, "what this second allowed");
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000_000_000 + 10);
        assert_eq!(
            s.quota_seen(now, wall),
            75.0,
            "never below half the last second"
        );
        drop(s);
        g.throttled();
        let c = g.lock().ceiling.expect("a ceiling");
        assert!((75.0..=150.0).contains(&c), "what was answered: {c}");
        assert!((g.current_rate() - c * SETTLE).abs() < 1e-9);
        assert!(
            g.lock().paused_until.is_some(),
            "nothing until the second ends"
        );
        g.lock().last_raise -= PROBE_EVERY;
        g.success();
        assert!(
            (g.current_rate() - c * SETTLE * CREEP).abs() < 1e-9,
            "creeps"
        );
        g.waiting.store(0, Ordering::Relaxed);
        g.lock().last_raise -= PROBE_EVERY;
        g.success();
        assert!(
            (g.current_rate() - c * SETTLE * CREEP).abs() < 1e-9,
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
        let budget = |remaining| {
            let reset = Duration::from_secs(2);
            g.budget(Budget { remaining, reset }, Duration::from_secs(60), 1);
        };
        budget(11);
        assert_eq!(g.current_rate(), 5.0);
        budget(0);
        let now = Instant::now();
        assert!(
            g.reserve(now) > now + Duration::from_secs(1),
            "held until the reset"
        );
    }
}
