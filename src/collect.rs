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

/// Receives outcomes until every sender is gone.
pub async fn collect(
    mut rx: mpsc::Receiver<Outcome>,
    mut sinks: Vec<Box<dyn OutcomeSink>>,
    progress: Progress,
) -> Collected {
    let mut counts: BTreeMap<Status, u64> = BTreeMap::new();
    let mut error: Option<Error> = None;
    let mut broken = vec![false; sinks.len()];
    let started = Instant::now();
    let span = tracing::info_span!("run");
    if progress == Progress::Bar {
        use tracing_indicatif::span_ext::IndicatifSpanExt;
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {pos} rows done  {per_sec}  {elapsed_precise}  {msg}",
        ) {
            span.pb_set_style(&style);
        }
        span.pb_start();
    }
    let every = match progress {
        Progress::Lines(d) => d,
        _ => Duration::from_secs(3600),
    };
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        let o = tokio::select! {
            o = rx.recv() => o,
            _ = tick.tick() => {
                if matches!(progress, Progress::Lines(_)) {
                    eprintln!("{}", progress_line(&counts, started.elapsed()));
                }
                continue;
            }
        };
        let Some(o) = o else {
            break;
        };
        *counts.entry(o.status).or_default() += 1;
        if matches!(o.status, Status::Failed) {
            tracing::warn!(row = o.row, key = %o.key, "failed: {}", o.message);
        }
        for (i, sink) in sinks.iter_mut().enumerate() {
            if broken[i] {
                continue;
            }
            if let Err(e) = sink.record(&o) {
                tracing::error!("cannot record outcomes: {e}");
                broken[i] = true;
                error.get_or_insert(e);
            }
        }
        if progress == Progress::Bar {
            use tracing_indicatif::span_ext::IndicatifSpanExt;
            span.pb_inc(1);
            let bad = counts.get(&Status::Failed).copied().unwrap_or(0)
                + counts.get(&Status::Invalid).copied().unwrap_or(0);
            if bad > 0 {
                span.pb_set_message(&format!("{bad} failed/invalid"));
            }
        }
    }
    Collected {
        counts,
        sinks,
        error,
    }
}

/// `progress: 1200 rows (created 1100, failed 3) 38.5 rows/s, 31s`.
pub fn progress_line(counts: &BTreeMap<Status, u64>, elapsed: Duration) -> String {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
    format!(
        "progress: {total} rows ({}) {rate:.1} rows/s, {:.0}s",
        parts.join(", "),
        secs
    )
}
