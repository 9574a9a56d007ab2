//! Execute: planned rows become HTTP requests, and every row ends in one [`Outcome`].
//!
//! The shape of a run (that of oha and mini-redis: one runtime, one HTTP client):
//!
//! ```text
//! rows (read and planned ──one bounded──▶ dispatcher: a permit ──▶ row tasks ──outcomes──▶ (the
//!  on the reader thread)    channel        of the Limit per row   (JoinSet)               command's
//!        │                                                                                collector)
//!        └── invalid / skipped / settled rows, and every row after a stop ──────────────────▲
//! ```
//!
//! - The reader (a blocking thread) routes each row as it comes; the job channel is
//!   bounded, so a sheet of a million rows is read only as fast as rows are sent.
//! - The dispatcher starts a task per row while the concurrency [`adaptive::Limit`] has
//!   room; every request a row sends (lookups, logins, refreshes and every retry
//!   included) first passes the one rate [`limiter::Gate`].
//! - Rows never print: their outcomes go to the `out` channel, which the command wires to
//!   the collector ([`crate::collect::run`]); every request updates its [`Stats`].
//! - Stopping: the `shutdown` future (Ctrl-C in the binary, anything in tests) stops
//!   dispatching; requests in flight get `drain_timeout` to finish; every row not sent
//!   (still in the channel or not yet read) is recorded as `not-attempted`. The `stop`
//!   token does the same without the drain limit (a sink that cannot write, a re-login
//!   that failed).

pub mod adaptive;
pub mod auth;
pub mod client;
pub mod limiter;
pub mod order;
pub mod retry;
mod worker;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::collect::SeqSet;
pub use crate::collect::Stats;
use crate::error::{Error, Result};
use crate::outcome::{Outcome, Status};
use crate::plan::PlannedRow;
use crate::profile::{Action, Profile};

pub use crate::secrets::Secrets;
pub use crate::settings::{Concurrency, RunSettings};
pub use crate::tls::check_base_url;
pub use client::Resp;
pub(crate) use worker::{probe_lookup, send_alone, work, Found};

/// Where a run notes the creates it is about to send; the note need not be durable (a
/// lost note only costs the resumed run an update it did not need).
pub trait CreateLog: Send + Sync + std::fmt::Debug {
    /// An upsert found no user `key` and is about to create it with content `fingerprint`.
    fn creating(&self, key: &str, fingerprint: &str);
    /// A step request of row `key` is done (`step`: its journal id): a run that resumes
    /// this one does not send it again, even if this run dies before recording the row.
    fn step_done(&self, _key: &str, _step: &str) {}
}

/// What every request goes through: the run's one client, the rate gate, the counters.
pub(crate) struct Net {
    pub(crate) http: client::Http,
    pub(crate) gate: limiter::Gate,
    pub(crate) stats: Arc<Stats>,
    /// `--max-pause`: the longest wait a server may ask for that is honoured.
    pub(crate) max_pause: std::time::Duration,
}

/// What every row task shares (behind one `Arc`).
pub(crate) struct Shared {
    pub(crate) profile: Arc<Profile>,
    settings: RunSettings,
    pub(crate) net: Net,
    /// Rows in flight: the dispatcher takes a permit per row.
    pub(crate) limit: Arc<adaptive::Limit>,
    pub(crate) auth: auth::Authenticator,
    /// What the run's upserts have shown so far: create or look up first.
    order: order::Order,
    /// Cancelled to stop dispatching: on shutdown, when a sink cannot write, or when the
    /// run cannot go on. The reader checks it before queueing a row.
    stop: CancellationToken,
    /// Cancelled when the drain deadline passes: rows still in flight are abandoned.
    abort: CancellationToken,
    /// Why the run could not go on (a re-login that failed); the first reason wins.
    fatal: std::sync::Mutex<Option<Error>>,
}

impl Shared {
    /// The client, the gate, the limit and the authenticator of a run (checking the
    /// settings first); sends nothing yet.
    pub(crate) fn new(
        profile: Arc<Profile>,
        settings: RunSettings,
        stats: Arc<Stats>,
        stop: CancellationToken,
    ) -> Result<Shared> {
        settings.validate()?;
        let (limit, pool) = match settings.concurrency {
            Concurrency::Fixed(n) => (adaptive::Limit::fixed(n), n),
            Concurrency::Auto { start, max } => (adaptive::Limit::auto(start, max), max),
        };
        let rate = match settings.auto_rate {
            true => limiter::RateMode::Auto(settings.rate),
            false => limiter::RateMode::Fixed(settings.rate),
        };
        let net = Net {
            http: client::Http::new(&settings, &profile.content_type, pool)?,
            gate: limiter::Gate::new(rate, settings.burst),
            stats,
            max_pause: settings.max_pause,
        };
        Ok(Shared {
            auth: auth::Authenticator::new(&profile, &settings.secrets)?,
            order: order::Order::new(settings.upsert_order, &profile),
            profile,
            settings,
            net,
            limit: Arc::new(limit),
            stop,
            abort: CancellationToken::new(),
            fatal: std::sync::Mutex::new(None),
        })
    }

    /// Logs in when the profile uses a token login: before the first row, so that bad
    /// credentials stop the run once, before anything is read.
    pub(crate) async fn login(&self) -> Result<()> {
        let attempts = self.settings.max_attempts.min(3);
        self.auth.start(&self.net, attempts).await
    }

    fn fail(&self, e: Error) {
        let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            tracing::error!("{e}; stopping the run");
            *f = Some(e);
        }
        self.stop.cancel();
    }

    /// A request's round trip, for the concurrency limit and the live figures.
    fn sample(&self, rtt: Duration, what: adaptive::Sample) {
        let rate = self.net.gate.current_rate();
        self.limit.sample(rtt, what, rate, self.net.gate.binding());
        self.net.stats.set_live(self.limit.current(), rate);
    }
}

/// The message of rows the run never got to.
const NOT_SENT: &str = "the run stopped before this row was sent";

/// How a run that started ended (the outcomes themselves went to `out`).
pub struct Executed {
    /// The shutdown future resolved.
    pub interrupted: bool,
    /// Every row the reader routed (each must have one outcome); `None`: the reader failed.
    pub routed: Option<SeqSet>,
    /// Why the run had to stop (a re-login refused), if it did.
    pub fatal: Option<Error>,
    /// The concurrency limit and the rate at the end.
    pub concurrency: usize,
    pub rate: f64,
}

/// Sends every planned row; each row's outcome goes to `out`. Returns once every row
/// has been sent or recorded as not sent.
///
/// Errors: the run could not start (login refused, bad CA file); not one row was routed.
pub async fn run(
    profile: Arc<Profile>,
    settings: RunSettings,
    rows: impl Iterator<Item = PlannedRow> + Send + 'static,
    out: mpsc::Sender<Outcome>,
    stats: Arc<Stats>,
    stop: CancellationToken,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Executed> {
    let sh = Arc::new(Shared::new(profile, settings, stats, stop)?);
    sh.login().await?;
    sh.net
        .stats
        .set_live(sh.limit.current(), sh.net.gate.current_rate());

    let (job_tx, mut jobs) = mpsc::channel::<PlannedRow>(JOBS_QUEUED);
    let reader = {
        let (out, stop) = (out.clone(), sh.stop.clone());
        tokio::task::spawn_blocking(move || feed(rows, &job_tx, &out, &stop))
    };
    tokio::pin!(shutdown);
    let interrupted = {
        let dispatched = dispatch(&sh, &mut jobs, &out);
        tokio::pin!(dispatched);
        tokio::select! {
            _ = &mut dispatched => false,
            _ = &mut shutdown => {
                sh.stop.cancel();
                let drain = sh.settings.drain_timeout;
                tracing::warn!(
                    "interrupted: sending nothing new; waiting up to {}s for requests in flight",
                    drain.as_secs()
                );
                if tokio::time::timeout(drain, &mut dispatched).await.is_err() {
                    sh.abort.cancel();
                    dispatched.await;
                }
                true
            }
        }
    };
    // Rows queued but never taken: not attempted. Closing the channel also wakes a reader
    // blocked on it, which then records its remaining rows itself.
    jobs.close();
    while let Some(row) = jobs.recv().await {
        let _ = out.send(not_attempted(&row, NOT_SENT)).await;
    }
    let routed = reader
        .await
        .map_err(|e| tracing::error!("the reader failed: {e}"))
        .ok();
    let fatal = sh.fatal.lock().unwrap_or_else(|p| p.into_inner()).take();
    Ok(Executed {
        interrupted,
        routed,
        fatal,
        concurrency: sh.limit.current(),
        rate: sh.net.gate.current_rate(),
    })
}

/// Starts a task per row while the concurrency limit has room, until the channel closes
/// or the run stops; then waits for the rows in flight.
async fn dispatch(
    sh: &Arc<Shared>,
    jobs: &mut mpsc::Receiver<PlannedRow>,
    out: &mpsc::Sender<Outcome>,
) {
    let mut tasks = JoinSet::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = sh.stop.cancelled() => None,
            next = async {
                let permit = sh.limit.acquire().await;
                jobs.recv().await.map(|row| (row, permit))
            } => next,
        };
        let Some((row, permit)) = next else {
            break;
        };
        tasks.spawn(worker::work(sh.clone(), row, out.clone(), permit));
        while let Some(done) = tasks.try_join_next() {
            log_lost(done);
        }
    }
    while let Some(done) = tasks.join_next().await {
        log_lost(done);
    }
}

/// A row task that failed outside its row's own panic guard: its row has no outcome, which
/// the accounting at the end reports.
fn log_lost(done: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!("a row task failed: {e}");
    }
}

/// The reader thread: routes every row exactly once: invalid and skipped
/// rows straight to the collector, valid ones to the dispatcher, and after a stop every
/// row left to the collector as not attempted (reading on is cheap; no request is sent).
///
/// Returns the rows it routed (by seq), which the collector must each have seen once.
fn feed(
    rows: impl Iterator<Item = PlannedRow>,
    jobs: &mpsc::Sender<PlannedRow>,
    out: &mpsc::Sender<Outcome>,
    stop: &CancellationToken,
) -> SeqSet {
    let mut warned = crate::console::Problems::new(crate::console::SHOWN_ROWS);
    let mut routed = SeqSet::default();
    for row in rows {
        routed.insert(row.seq);
        // A row that will be sent has warnings at most: the first rows' are shown.
        if !row.is_invalid() && row.settled.is_none() && warned.show(&row.findings) {
            for f in &row.findings {
                tracing::warn!("{}", f.describe(row.row));
            }
        }
        let outcome = if let Some(s) = &row.settled {
            // Decided from the journal (unchanged, or done by the interrupted run). No
            // fingerprint: the journal already holds this row, nothing new to record.
            let mut o = row.unsent(s.status, s.message.clone());
            o.remote_id = s.remote_id.clone();
            Some(o)
        } else if row.is_invalid() {
            Some(row.unsent(Status::Invalid, row.error_message()))
        } else if row.action == Action::Skip || row.job.is_none() {
            Some(row.unsent(Status::Skipped, "the row asks to be skipped".into()))
        } else if stop.is_cancelled() {
            Some(not_attempted(&row, NOT_SENT))
        } else {
            // A closed channel (the run stopped) hands the row back.
            jobs.blocking_send(row)
                .err()
                .map(|e| not_attempted(&e.0, NOT_SENT))
        };
        if let Some(o) = outcome {
            if out.blocking_send(o).is_err() {
                break;
            }
        }
    }
    if let Some(more) = warned.tail("`enlist check` on the sheet lists them all") {
        tracing::warn!("{more}");
    }
    routed
}

/// Rows read ahead of the dispatcher.
const JOBS_QUEUED: usize = 256;

/// The message of a row whose worker panicked: the row fails, the run goes on.
fn internal_error(panic: Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a worker panicked".to_string());
    format!("internal error: {what}, please report")
}

/// **Test-only** fault injection: with `ENLIST_TEST_PANIC_ON_KEY=<key>` in the environment
/// (read once), the worker that takes the row with that key panics, so that tests can show
/// a panic ends as a `failed` row and the run goes on. Not for use outside tests.
fn test_fault(row: &PlannedRow) {
    static KEY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        std::env::var("ENLIST_TEST_PANIC_ON_KEY")
            .ok()
            .filter(|k| !k.is_empty())
    });
    if key.as_deref() == Some(row.key.as_str()) {
        panic!("test fault for key {}", row.key);
    }
}

fn not_attempted(row: &PlannedRow, message: &str) -> Outcome {
    row.unsent(Status::NotAttempted, message.to_string())
}
