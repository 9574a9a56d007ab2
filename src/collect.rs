//! The collector: the one task that receives every [`Outcome`], counts them, hands them
//! to the sinks and owns the progress display. Workers never print, so the bar and the
//! log lines never tear each other apart, and sinks need no locking.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::outcome::{Outcome, OutcomeSink, Status};

/// How progress is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Nothing (tests, `--progress never`).
    Off,
    /// An indicatif bar through tracing-indicatif (a terminal); log lines appear above it.
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

/// Receives outcomes until every sender is gone. Runs on a thread of its own (not a
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
    let span = tracing::info_span!("run");
    if progress == Progress::Bar {
        use tracing_indicatif::span_ext::IndicatifSpanExt;
        let template = if total.is_some() {
            "{spinner} [{wide_bar}] {pos}/{len} rows  {per_sec}  ETA {eta}  {msg}"
        } else {
            "{spinner} {pos} rows done  {per_sec}  {elapsed_precise}  {msg}"
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            span.pb_set_style(&style.progress_chars("=> "));
        }
        if let Some(n) = total {
            span.pb_set_length(n);
        }
        span.pb_start();
    }
    let every = match progress {
        Progress::Lines(d) => Some(d),
        _ => None,
    };
    let mut next_line = every.map(|d| Instant::now() + d);
    let mut next_tick = Instant::now() + TICK;
    let mut batch = Vec::with_capacity(BATCH);
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
            if progress == Progress::Bar {
                use tracing_indicatif::span_ext::IndicatifSpanExt;
                span.pb_inc(kept as u64);
                let bad = st.counts.get(&Status::Failed).copied().unwrap_or(0)
                    + st.counts.get(&Status::Invalid).copied().unwrap_or(0);
                if bad > 0 {
                    span.pb_set_message(&format!("{bad} failed/invalid"));
                }
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
                eprintln!("{}", progress_line(&st.counts, total, started.elapsed()));
                next_line = Some(now + d);
            }
        }
        // A short pause when the channel ran dry lets outcomes gather: the senders wake
        // this thread (a system call on their side) once per batch, not once per row.
        if received.is_some() && n < BATCH {
            std::thread::sleep(GATHER);
        }
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

/// Outcomes taken off the channel at once.
const BATCH: usize = 1024;
/// How long the collector lets outcomes gather after it ran out of them.
const GATHER: Duration = Duration::from_millis(10);

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
