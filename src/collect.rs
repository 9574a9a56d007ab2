//! The collector: the one task that receives every [`Outcome`], counts them, hands them
//! to the sinks and owns the progress display. Workers never print, so the bar and the
//! log lines never tear each other apart, and sinks need no locking.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

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
    /// The first sink error (later outcomes still went to the other sinks).
    pub error: Option<Error>,
}

/// Receives outcomes until every sender is gone. Runs on a thread of its own (not a
/// runtime worker): the journal's commits wait for the disk, and the report is written as
/// outcomes arrive, so neither may hold up the tasks that send requests. `runtime` serves
/// the progress timer.
/// `total`: the rows the run will account for, when known (a bar with an ETA then).
pub fn collect(
    mut rx: mpsc::Receiver<Outcome>,
    mut sinks: Vec<Box<dyn OutcomeSink>>,
    progress: Progress,
    total: Option<u64>,
    runtime: tokio::runtime::Handle,
) -> Collected {
    // The progress timer is the runtime's: its context is entered on this plain thread.
    let _context = runtime.enter();
    let mut counts: BTreeMap<Status, u64> = BTreeMap::new();
    let mut error: Option<Error> = None;
    let mut broken = vec![false; sinks.len()];
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
        Progress::Lines(d) => d,
        _ => Duration::from_secs(3600),
    };
    let mut next_line = Instant::now() + every;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = if matches!(progress, Progress::Lines(_)) {
            let wait = tokio::time::timeout_at(next_line, rx.recv_many(&mut batch, BATCH));
            match runtime.block_on(wait) {
                Ok(n) => n,
                Err(_) => {
                    eprintln!("{}", progress_line(&counts, total, started.elapsed()));
                    next_line += every;
                    continue;
                }
            }
        } else {
            runtime.block_on(rx.recv_many(&mut batch, BATCH))
        };
        if received == 0 {
            break; // every sender is gone
        }
        record(&batch, &mut counts, &mut sinks, &mut broken, &mut error);
        if progress == Progress::Bar {
            use tracing_indicatif::span_ext::IndicatifSpanExt;
            span.pb_inc(batch.len() as u64);
            let bad = counts.get(&Status::Failed).copied().unwrap_or(0)
                + counts.get(&Status::Invalid).copied().unwrap_or(0);
            if bad > 0 {
                span.pb_set_message(&format!("{bad} failed/invalid"));
            }
        }
        batch.clear();
        // A short pause when the channel ran dry lets outcomes gather: the senders wake
        // this thread (a system call on their side) once per batch, not once per row.
        if received < BATCH {
            std::thread::sleep(GATHER);
        }
    }
    Collected {
        counts,
        sinks,
        error,
    }
}

/// Outcomes taken off the channel at once.
const BATCH: usize = 1024;
/// How long the collector lets outcomes gather after it ran out of them.
const GATHER: Duration = Duration::from_millis(10);

/// Counts a batch of outcomes and hands it to every sink that still works.
fn record(
    batch: &[Outcome],
    counts: &mut BTreeMap<Status, u64>,
    sinks: &mut [Box<dyn OutcomeSink>],
    broken: &mut [bool],
    error: &mut Option<Error>,
) {
    for o in batch {
        *counts.entry(o.status).or_default() += 1;
        if matches!(o.status, Status::Failed) {
            tracing::warn!(row = o.row, key = %o.key, "failed: {}", o.message);
        }
    }
    for (i, sink) in sinks.iter_mut().enumerate() {
        if broken[i] {
            continue;
        }
        if let Err(e) = sink.record_all(batch) {
            tracing::error!("cannot record outcomes: {e}");
            broken[i] = true;
            error.get_or_insert(e);
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
