//! The collector: the one task that receives every [`Outcome`], counts them, hands them
//! to the sinks and owns the progress display. Workers never print, so the bar and the
//! log lines never tear each other apart, and sinks need no locking.
//!
//! [`run`] is where a run is wired: the executor's outcome channel to the collector,
//! then the summary and the sinks' finish. The commands and the tests all go through it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::execute::{self, RunSettings};
use crate::outcome::{now_rfc3339, Outcome, OutcomeSink, RunSummary, Status};
use crate::plan::PlannedRow;
use crate::profile::Profile;

/// Outcomes that may wait for the collector (it takes them in batches); a row only waits
/// for room beyond that.
const OUTCOMES_IN_FLIGHT: usize = 4096;

/// Request counters for the summary and live figures for the progress display: the
/// collector owns them, the executor updates them with every request (relaxed atomics:
/// each figure stands alone).
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests sent (every attempt, lookups and logins included).
    requests: AtomicU64,
    /// Sends that repeated an earlier one (backoff retries, replays after a re-login).
    retries: AtomicU64,
    /// 429 responses.
    throttled: AtomicU64,
    /// The concurrency limit now.
    concurrency: AtomicUsize,
    /// The gate's rate now (`f64` bits).
    rate: AtomicU64,
}

impl Stats {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub fn throttle(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn set_live(&self, concurrency: usize, rate: f64) {
        self.concurrency.store(concurrency, Ordering::Relaxed);
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
    }
    /// Requests, retries and 429s so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (
            get(&self.requests),
            get(&self.retries),
            get(&self.throttled),
        )
    }
    /// Rows allowed in flight and requests per second allowed, now.
    pub fn live(&self) -> (usize, f64) {
        (
            self.concurrency.load(Ordering::Relaxed),
            f64::from_bits(self.rate.load(Ordering::Relaxed)),
        )
    }
}

/// Runs every planned row through the executor into `sinks`, and returns the summary
/// once every row has an outcome and the sinks are finished.
///
/// `shutdown` resolves when the run should stop (Ctrl-C in the binary; tests pass their own
/// future). Errors: the run could not start (login refused, bad CA file: the sinks are
/// abandoned) or had to stop (re-login refused: `Error::Login`, after the outcomes
/// were recorded), or a sink could not write (`Error::Unrecorded`, which carries the
/// summary: the run stopped sending at the first failed write, and every row still has an
/// outcome in the sinks that work).
pub async fn run(
    profile: Arc<Profile>,
    settings: RunSettings,
    rows: impl Iterator<Item = PlannedRow> + Send + 'static,
    sinks: Vec<Box<dyn OutcomeSink>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunSummary> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let stats = Arc::new(Stats::default());
    let stop = CancellationToken::new();
    let (out, outcomes) = mpsc::channel::<Outcome>(OUTCOMES_IN_FLIGHT);
    let collector = {
        let (progress, total) = (settings.progress.clone(), settings.total_rows);
        let (stats, stop) = (stats.clone(), stop.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            collect(outcomes, sinks, progress, total, &stats, runtime, stop)
        })
    };
    let summary_base = (
        settings.base_url.to_string(),
        settings.input_file.clone(),
        settings.input_sha256.clone(),
        settings.command_line.clone(),
    );
    let executed = execute::run(
        profile.clone(),
        settings,
        rows,
        out,
        stats.clone(),
        stop,
        shutdown,
    )
    .await;
    let mut collected = collector
        .await
        .map_err(|e| Error::Other(anyhow::anyhow!("the collector failed: {e}")))?;
    let executed = match executed {
        Ok(x) => x,
        Err(e) => {
            // Not one row was sent: the sinks (the journal) may forget this run.
            for sink in collected.sinks.iter_mut() {
                sink.abandon();
            }
            return Err(e);
        }
    };
    // Every row handed out must have come back once; one that did not is a bug, and is
    // counted as failed so that the summary and the exit code show it.
    if let Some(routed) = &executed.routed {
        let (lost, first) = routed.missing_from(&collected.seen, 10);
        if lost > 0 {
            tracing::error!(
                "{lost} rows have no outcome: internal error, please report (data rows {})",
                first
                    .iter()
                    .map(|s| (s + 1).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            *collected.counts.entry(Status::Failed).or_default() += lost;
        }
    }
    let duration = started.elapsed().as_secs_f64();
    let (requests, retries, throttled_429) = stats.counts();
    let (base_url, input_file, input_sha256, command_line) = summary_base;
    let summary = RunSummary {
        unchanged: collected
            .counts
            .get(&Status::Unchanged)
            .copied()
            .unwrap_or(0),
        counts: collected.counts,
        started_at,
        finished_at: now_rfc3339(),
        duration_secs: duration,
        achieved_rate: if duration > 0.0 {
            requests as f64 / duration
        } else {
            0.0
        },
        requests,
        retries,
        throttled_429,
        settled_concurrency: executed.concurrency as u64,
        settled_rate: executed.rate,
        profile: profile.name.clone(),
        base_url,
        input_file,
        input_sha256,
        version: env!("CARGO_PKG_VERSION").to_string(),
        command_line,
        interrupted: executed.interrupted,
    };
    let stopped_by_sink = collected.error.is_some();
    let mut sink_error = collected.error;
    // A sink that failed is not finished: the journal of a run whose outcomes it could not
    // all record stays unfinished, so that the next run resumes (and looks creates up).
    for (mut sink, broken) in collected.sinks.into_iter().zip(collected.broken) {
        if broken {
            continue;
        }
        if let Err(e) = sink.finish(&summary) {
            tracing::error!("cannot finish recording the outcomes: {e}");
            sink_error.get_or_insert(e);
        }
    }
    if let Some(e) = executed.fatal {
        return Err(e);
    }
    if let Some(e) = sink_error {
        return Err(Error::Unrecorded {
            message: if stopped_by_sink {
                format!(
                    "an outcome could not be recorded ({e}); the run stopped sending at once: \
                     rows not sent are not-attempted"
                )
            } else {
                format!("every row was done, but an outcome could not be recorded: {e}")
            },
            summary: Box::new(summary),
        });
    }
    Ok(summary)
}

/// How progress is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Nothing (tests, `--progress never`).
    Off,
    /// An indicatif bar (a terminal); log lines appear above it.
    Bar,
    /// One line on stderr every interval (cron, CI: no terminal).
    Lines(Duration),
}

/// What the collector hands back when the outcome channel closes.
pub struct Collected {
    pub counts: BTreeMap<Status, u64>,
    /// The sinks, still to be finished with the summary.
    pub sinks: Vec<Box<dyn OutcomeSink>>,
    /// Per sink: it failed to write, and got no outcome after that (nor may it be finished).
    pub broken: Vec<bool>,
    /// The first sink error (later outcomes still went to the other sinks).
    pub error: Option<Error>,
    /// The rows that came back (each counted once).
    pub seen: SeqSet,
    /// Outcomes dropped because their row had one already.
    pub duplicates: u64,
}

/// The collector wakes at least this often, outcomes or not, to let the sinks write out
/// what has waited ([`OutcomeSink::tick`]).
pub const TICK: Duration = Duration::from_millis(100);

/// Failed rows logged one by one; beyond this, one line says the rest are in the report.
pub const LOGGED_FAILURES: u64 = 50;

/// A set of row sequence numbers (one bit per row): which rows were handed out, which
/// came back. Memory grows with the highest seq seen, one bit per row of the sheet.
#[derive(Debug, Default, Clone)]
pub struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// Adds `seq`; false when it was there already.
    pub fn insert(&mut self, seq: u64) -> bool {
        let Ok(w) = usize::try_from(seq / 64) else {
            return false;
        };
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        if self.words[w] & bit != 0 {
            return false;
        }
        self.words[w] |= bit;
        self.len += 1;
        true
    }

    pub fn contains(&self, seq: u64) -> bool {
        usize::try_from(seq / 64)
            .ok()
            .and_then(|w| self.words.get(w))
            .is_some_and(|word| word & (1u64 << (seq % 64)) != 0)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The seqs in `self` that `other` lacks: how many, and the first `show` of them.
    pub fn missing_from(&self, other: &SeqSet, show: usize) -> (u64, Vec<u64>) {
        let mut n = 0u64;
        let mut first = Vec::new();
        for (w, word) in self.words.iter().enumerate() {
            let theirs = other.words.get(w).copied().unwrap_or(0);
            let mut lack = word & !theirs;
            while lack != 0 {
                let b = u64::from(lack.trailing_zeros());
                n += 1;
                if first.len() < show {
                    first.push(w as u64 * 64 + b);
                }
                lack &= lack - 1;
            }
        }
        (n, first)
    }
}

/// Receives outcomes until every sender is gone. Runs on a blocking thread (not a
/// runtime worker): the journal's commits wait for the disk, and the report is written as
/// outcomes arrive, so neither may hold up the tasks that send requests. `runtime` serves
/// the timers.
/// `total`: the rows the run will account for, when known (a bar with an ETA then).
/// `stop`: cancelled when a sink cannot write: an outcome that cannot be recorded must not
/// be followed by more requests (the next run could not know they were sent).
pub fn collect(
    mut rx: mpsc::Receiver<Outcome>,
    mut sinks: Vec<Box<dyn OutcomeSink>>,
    progress: Progress,
    total: Option<u64>,
    live: &Stats,
    runtime: tokio::runtime::Handle,
    stop: CancellationToken,
) -> Collected {
    // The timers are the runtime's: its context is entered on this plain thread.
    let _context = runtime.enter();
    let mut st = State {
        counts: BTreeMap::new(),
        broken: vec![false; sinks.len()],
        error: None,
        seen: SeqSet::default(),
        duplicates: 0,
        logged: 0,
        stop,
    };
    let started = Instant::now();
    let bar = (progress == Progress::Bar).then(|| progress_bar(total));
    let every = match progress {
        Progress::Lines(d) => Some(d),
        _ => None,
    };
    let mut next_line = every.map(|d| Instant::now() + d);
    let mut next_tick = Instant::now() + TICK;
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_batch = Instant::now();
    loop {
        let wake = next_line.map_or(next_tick, |l| l.min(next_tick));
        let wait = tokio::time::timeout_at(wake, rx.recv_many(&mut batch, BATCH));
        let received = runtime.block_on(wait).ok();
        if received == Some(0) {
            break; // every sender is gone
        }
        let n = received.unwrap_or(0);
        if n > 0 {
            let kept = st.record(&mut batch, &mut sinks);
            if let Some(bar) = &bar {
                bar.inc(kept as u64);
                let count = |s| st.counts.get(&s).copied().unwrap_or(0);
                let invalid = match count(Status::Invalid) {
                    0 => String::new(),
                    n => format!(", {n} invalid"),
                };
                let failed = count(Status::Failed);
                bar.set_message(format!("{failed} failed{invalid} · {}", live_text(live)));
            }
            batch.clear();
        }
        let now = Instant::now();
        if now >= next_tick {
            st.tick(&mut sinks);
            next_tick = now + TICK;
        }
        if let (Some(at), Some(d)) = (next_line, every) {
            if now >= at {
                let line = progress_line(&st.counts, total, started.elapsed());
                crate::console::line(&format!("{line}; {}", live_text(live)));
                next_line = Some(now + d);
            }
        }
        // A pause when the channel ran dry lets outcomes gather: the senders wake this
        // thread once per batch, not once per row.
        if received.is_some() && n < BATCH {
            std::thread::sleep(gather(n, now - last_batch));
        }
        last_batch = Instant::now();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // What waited for a tick is written out by `finish`.
    Collected {
        counts: st.counts,
        sinks,
        broken: st.broken,
        error: st.error,
        seen: st.seen,
        duplicates: st.duplicates,
    }
}

/// The bar on a terminal: rows done of the total, rows/s, ETA; its message (failures so far
/// and the executor's live limits) is set as outcomes arrive.
fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    // One line even on 80 columns: the message, failures first, is cut to what fits (a
    // line that wraps leaves a copy of itself behind at every redraw).
    let template = if total.is_some() {
        "{spinner} [{bar:20}] {pos}/{len} rows · {rows_per_sec} · ETA {eta} · {wide_msg}"
    } else {
        "{spinner} {pos} rows done · {rows_per_sec} · {elapsed_precise} · {wide_msg}"
    };
    let bar = crate::console::bar(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> ").with_key(
            "rows_per_sec",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1} rows/s", s.per_sec());
            },
        ));
    }
    // Redrawn while no outcome arrives too (a slow target): the spinner and ETA stay alive.
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Outcomes taken off the channel at once.
const BATCH: usize = 1024;
/// The shortest time the collector lets outcomes gather after it ran out of them.
const GATHER: Duration = Duration::from_millis(10);

/// How long to let outcomes gather after a batch of `n` that took `since` to come: the
/// time a quarter of [`BATCH`] takes at that pace, between [`GATHER`] and [`TICK`]. A
/// rate-limited run (50 rows/s) then wakes this thread about ten times a second rather
/// than for every row: each wake is a context switch, which costs tens of µs on a virtual
/// machine, and the collector's were a sixth of those of a 50/s run. A fast run still
/// gathers for 10 ms, and a full batch is taken again at once. An outcome reaches the
/// sinks at most [`TICK`] after it came (the journal commits every
/// [`crate::journal::BATCH_INTERVAL`] in any case; creates are noted before they are sent).
fn gather(n: usize, since: Duration) -> Duration {
    let each = since / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    each.saturating_mul((BATCH / 4) as u32).clamp(GATHER, TICK)
}

/// What the collector keeps between batches.
struct State {
    counts: BTreeMap<Status, u64>,
    broken: Vec<bool>,
    error: Option<Error>,
    seen: SeqSet,
    duplicates: u64,
    /// Failed rows logged so far.
    logged: u64,
    stop: CancellationToken,
}

impl State {
    /// Counts a batch of outcomes and hands it to every sink that still works. An outcome
    /// for a row that has one already is dropped (and logged): every row ends once.
    /// Returns how many outcomes were kept.
    fn record(&mut self, batch: &mut Vec<Outcome>, sinks: &mut [Box<dyn OutcomeSink>]) -> usize {
        let before = batch.len();
        let seen = &mut self.seen;
        batch.retain(|o| seen.insert(o.seq));
        let dropped = before - batch.len();
        if dropped > 0 {
            self.duplicates += dropped as u64;
            tracing::error!(
                "internal error: {dropped} outcome(s) for rows that had one already were dropped, please report"
            );
        }
        for o in batch.iter() {
            *self.counts.entry(o.status).or_default() += 1;
            if matches!(o.status, Status::Failed) {
                self.logged += 1;
                if self.logged <= LOGGED_FAILURES {
                    tracing::warn!(row = o.row, key = %o.key, "failed: {}", o.message);
                } else if self.logged == LOGGED_FAILURES + 1 {
                    tracing::warn!(
                        "more rows failed; they are not logged one by one: see the outcome report"
                    );
                }
            }
        }
        for (i, sink) in sinks.iter_mut().enumerate() {
            if self.broken[i] {
                continue;
            }
            let r = sink.record_all(batch);
            self.check(i, r);
        }
        batch.len()
    }

    /// Lets every working sink write out what has waited.
    fn tick(&mut self, sinks: &mut [Box<dyn OutcomeSink>]) {
        for (i, sink) in sinks.iter_mut().enumerate() {
            if !self.broken[i] {
                let r = sink.tick();
                self.check(i, r);
            }
        }
    }

    /// A sink that failed is broken for the rest of the run, and the run stops sending.
    fn check(&mut self, i: usize, r: crate::error::Result<()>) {
        if let Err(e) = r {
            tracing::error!("cannot record outcomes: {e}; stopping the run");
            self.broken[i] = true;
            self.error.get_or_insert(e);
            self.stop.cancel();
        }
    }
}

/// `38 in flight, 142.0 requests/s`: the limits the executor works with now.
fn live_text(live: &Stats) -> String {
    let (concurrency, rate) = live.live();
    format!("{concurrency} in flight, {rate:.1} requests/s")
}

/// `progress: 1200 of 5000 rows (created 1100, failed 3) 38.5 rows/s, 31s, about 99s left`.
pub fn progress_line(counts: &BTreeMap<Status, u64>, of: Option<u64>, elapsed: Duration) -> String {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
    let (of, left) = match of {
        Some(n) => {
            let rest = n.saturating_sub(total);
            let left = if rate > 0.0 {
                format!(", about {:.0}s left", rest as f64 / rate)
            } else {
                String::new()
            };
            (format!(" of {n}"), left)
        }
        None => (String::new(), String::new()),
    };
    format!(
        "progress: {total}{of} rows ({}) {rate:.1} rows/s, {secs:.0}s{left}",
        parts.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_set_finds_rows_missing_and_seen_twice() {
        let mut handed = SeqSet::default();
        let mut back = SeqSet::default();
        for s in [0, 1, 63, 64, 65, 200, 1000] {
            assert!(handed.insert(s));
        }
        for s in [0, 63, 65, 1000] {
            assert!(back.insert(s));
        }
        assert!(!back.insert(63), "a second outcome for row 63 is caught");
        assert_eq!(back.len(), 4);
        assert!(back.contains(1000) && !back.contains(64));
        assert_eq!(handed.missing_from(&back, 2), (3, vec![1, 64]));
        assert_eq!(back.missing_from(&handed, 10), (0, vec![]));
    }

    #[test]
    fn outcomes_that_trickle_in_are_gathered_for_a_tick_and_a_flood_for_a_moment() {
        // 50 rows/s: 5 outcomes in 100 ms.
        assert_eq!(gather(5, Duration::from_millis(100)), TICK);
        // 50,000 rows/s: 500 in 10 ms gather for the 5 ms a quarter batch takes, at least GATHER.
        assert_eq!(gather(500, Duration::from_millis(10)), GATHER);
        assert_eq!(
            gather(500, Duration::from_millis(50)),
            Duration::from_micros(25_600)
        );
        assert_eq!(gather(0, Duration::ZERO), GATHER);
    }

    #[test]
    fn a_progress_line_says_how_far_and_how_long_is_left() {
        let counts = BTreeMap::from([(Status::Created, 90), (Status::Failed, 10)]);
        assert_eq!(
            progress_line(&counts, Some(400), Duration::from_secs(10)),
            "progress: 100 of 400 rows (created 90, failed 10) 10.0 rows/s, 10s, about 30s left"
        );
        assert_eq!(
            progress_line(&counts, None, Duration::from_secs(10)),
            "progress: 100 rows (created 90, failed 10) 10.0 rows/s, 10s"
        );
    }
}
