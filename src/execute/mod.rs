//! Execute: planned rows become HTTP requests, and every row ends in one [`Outcome`].
//!
//! The shape of a run (fixed, so that memory stays flat and the target is never pushed
//! harder than `--rate`):
//!
//! ```text
//! rows (read and planned  ──one bounded channel──▶ workers of     ──outcomes──▶ collector
//!  on the reader thread)    per runtime thread     that thread                  (own thread:
//!        │                                                                      progress,
//!        └── invalid / skipped / unsent / settled rows ─────────────────────▲   sinks)
//! ```
//!
//! - The rows are read and planned on the reader thread, which routes each as it comes into
//!   bounded channels, so a sheet of a million rows is read only as fast as the workers
//!   take jobs.
//! - `--concurrency` workers take jobs; every request they send (lookups, logins, refreshes
//!   and every retry included) first passes the one [`limiter::Gate`]. The workers are spread
//!   over `--threads` single-threaded runtimes, each with its own connections and its own job
//!   channel, so neither a request nor the taking of a row hands off between threads. The
//!   reader fills the channels in turn while they have room and, once all are full, gives
//!   the next batch to whichever thread frees room first.
//! - Workers never print: they send [`Outcome`]s to the one collector ([`crate::collect`]).
//! - Stopping: the `shutdown` future passed to [`run`] (Ctrl-C in the binary, anything in
//!   tests) stops dispatching; requests in flight get `drain_timeout` to finish; every row
//!   not sent (still in a channel or not yet read) is recorded as `not-attempted`.

pub mod auth;
pub mod client;
pub mod limiter;
pub mod order;
pub mod retry;
mod worker;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::collect::{self, Progress};
use crate::error::{Error, Result};
use crate::outcome::{now_rfc3339, Outcome, OutcomeSink, RunSummary, Status};
use crate::plan::PlannedRow;
use crate::profile::{Action, Profile};

pub use auth::Secrets;
pub use client::check_base_url;

/// Everything a run needs besides the profile and the rows, validated before any work.
/// `Debug` is safe to print: [`Secrets`] shows names only.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The target's base URL (already checked: https, or http to loopback / when allowed).
    pub base_url: url::Url,
    /// Worker tasks, and so the most requests in flight at once.
    pub concurrency: usize,
    /// Requests per second, all requests of the run together.
    pub rate: f64,
    /// Requests that may start back to back after an idle spell.
    pub burst: u32,
    /// Most sends of one request (the first included).
    pub max_attempts: u32,
    /// Most time one row may take, retries and waits included.
    pub max_row_time: Duration,
    /// Longest pause a server's `Retry-After` / `RateLimit-Reset` can impose (`--max-pause`).
    pub max_pause: Duration,
    /// Whole-request timeout (connect, send, read).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// After a stop: how long requests in flight may take before they are abandoned.
    pub drain_timeout: Duration,
    /// Extra CA certificates (PEM) to trust.
    pub ca_pem: Option<Vec<u8>>,
    pub secrets: Secrets,
    pub progress: Progress,
    /// Rows the run will account for, when known: the bar shows a total and an ETA.
    pub total_rows: Option<u64>,
    /// Runtime threads that send requests (each with its own connections); at most
    /// `concurrency`. Default: the machine's cores.
    pub threads: usize,
    /// Filled into the summary.
    pub input_file: String,
    pub input_sha256: String,
    pub command_line: String,
    /// Told of every create an upsert is about to send (the journal keeps it, so that a
    /// resume after a crash can tell "created by the interrupted run" from "was there").
    pub create_log: Option<Arc<dyn CreateLog>>,
    /// `--upsert-order`: whether an upsert sends its create or its lookup first.
    pub upsert_order: order::UpsertOrder,
}

/// Where a run notes the creates it is about to send; the note need not be durable (a
/// lost note only costs the resumed run an update it did not need).
pub trait CreateLog: Send + Sync + std::fmt::Debug {
    /// An upsert found no user `key` and is about to create it with content `fingerprint`.
    fn creating(&self, key: &str, fingerprint: &str);
}

impl RunSettings {
    /// Settings with the profile's defaults. `base_url`: `--base-url`, else the environment
    /// variable the profile names; missing → an error that names the variable.
    pub fn new(
        profile: &Profile,
        base_url: Option<&str>,
        allow_insecure_http: bool,
        secrets: Secrets,
    ) -> Result<RunSettings> {
        let text = match base_url {
            Some(b) => b.to_string(),
            None => match std::env::var(&profile.base_url_env) {
                Ok(v) if !v.trim().is_empty() => v,
                _ => {
                    return Err(Error::CannotStart(format!(
                        "no base URL: set {} or pass --base-url (for example {})",
                        profile.base_url_env,
                        profile
                            .base_url_example
                            .as_deref()
                            .unwrap_or("https://host/api")
                    )))
                }
            },
        };
        let base_url = check_base_url(&text, allow_insecure_http)?;
        Ok(RunSettings {
            base_url,
            concurrency: profile.concurrency,
            rate: profile.rate,
            burst: 1,
            max_attempts: 5,
            max_row_time: Duration::from_secs(120),
            max_pause: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            ca_pem: None,
            secrets,
            progress: Progress::Off,
            total_rows: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            input_file: String::new(),
            input_sha256: String::new(),
            command_line: String::new(),
            create_log: None,
            upsert_order: order::UpsertOrder::Auto,
        })
    }

    /// Checks the numbers (after flags have been applied).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Usage(m.to_string()));
        if self.concurrency == 0 || self.concurrency > 1024 {
            return bad("--concurrency must be between 1 and 1024");
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return bad("--rate must be above zero");
        }
        if self.burst == 0 {
            return bad("--burst must be at least 1");
        }
        if self.max_attempts == 0 {
            return bad("--max-attempts must be at least 1");
        }
        if self.timeout.is_zero()
            || self.connect_timeout.is_zero()
            || self.max_row_time.is_zero()
            || self.max_pause.is_zero()
        {
            return bad("timeouts must be above zero");
        }
        Ok(())
    }
}

/// Request counters for the summary, updated by every worker (relaxed atomics: they are
/// only read once all workers are done).
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests sent (every attempt, lookups and logins included).
    requests: AtomicU64,
    /// Sends that repeated an earlier one (backoff retries, replays after a re-login).
    retries: AtomicU64,
    /// 429 responses.
    throttled: AtomicU64,
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
}

/// What every worker shares (behind one `Arc`).
///
/// Each runtime thread of a run has its own `Shared` (its own HTTP client and connection
/// pool, so a request and its connection stay on one thread); everything else in it is
/// the run's one copy.
struct Shared {
    profile: Arc<Profile>,
    settings: RunSettings,
    http: client::Http,
    gate: Arc<limiter::Gate>,
    auth: Arc<auth::Authenticator>,
    stats: Arc<Stats>,
    /// What the run's upserts have shown so far: create or look up first.
    order: Arc<order::Order>,
    /// Cancelled to stop dispatching: on shutdown, or when the run cannot go on. The
    /// reader checks it before queueing a row.
    stop: CancellationToken,
    /// Cancelled when the drain deadline passes: rows still in flight are abandoned.
    abort: CancellationToken,
    /// This runtime thread's children of `stop` and `abort`, which its workers wait on.
    /// Every worker waits on both for every row; a token's waiters sit behind a lock, and
    /// with one pair per thread that lock is never fought over by two threads.
    stopped: CancellationToken,
    aborted: CancellationToken,
    /// Why the run could not go on (a re-login that failed); the first reason wins.
    fatal: Arc<std::sync::Mutex<Option<Error>>>,
}

impl Shared {
    /// The same run with another HTTP client (for another runtime thread).
    fn with_http(&self, http: client::Http) -> Shared {
        Shared {
            profile: self.profile.clone(),
            settings: self.settings.clone(),
            http,
            gate: self.gate.clone(),
            auth: self.auth.clone(),
            stats: self.stats.clone(),
            order: self.order.clone(),
            stop: self.stop.clone(),
            abort: self.abort.clone(),
            stopped: self.stop.child_token(),
            aborted: self.abort.child_token(),
            fatal: self.fatal.clone(),
        }
    }

    fn fail(&self, e: Error) {
        let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            tracing::error!("{e}; stopping the run");
            *f = Some(e);
        }
        self.stop.cancel();
    }
}

/// The message of rows the run never got to.
const NOT_SENT: &str = "the run stopped before this row was sent";

/// Sends every planned row and returns the summary once every row has an outcome and the
/// sinks are finished.
///
/// `shutdown` resolves when the run should stop (Ctrl-C in the binary; tests pass their own
/// future). Errors: the run could not start (login refused, bad CA file) or had to stop
/// (re-login refused: `Error::CannotStart`, after the outcomes were recorded), or a sink
/// could not write (`Error::Unrecorded`, which carries the summary: the collector stopped
/// the run at the first failed write, and every row still has an outcome in the sinks
/// that work).
pub async fn run(
    profile: Arc<Profile>,
    settings: RunSettings,
    rows: impl Iterator<Item = PlannedRow> + Send + 'static,
    mut sinks: Vec<Box<dyn OutcomeSink>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunSummary> {
    let started = tokio::time::Instant::now();
    let started_at = now_rfc3339();
    let client_opts = client::ClientOptions {
        concurrency: settings.concurrency,
        timeout: settings.timeout,
        connect_timeout: settings.connect_timeout,
        ca_pem: settings.ca_pem.clone(),
    };
    let ready = async {
        settings.validate()?;
        // One client per runtime thread, all built before anything starts.
        let threads = settings.threads.clamp(1, settings.concurrency);
        let mut clients = (0..threads)
            .map(|_| client::Http::new(&settings.base_url, &profile.content_type, &client_opts))
            .collect::<Result<Vec<_>>>()?;
        let http = clients.remove(0);
        let gate = limiter::Gate::new(settings.rate, settings.burst);
        let auth = auth::Authenticator::new(&profile, &settings.secrets)?;
        let stats = Stats::default();
        // Log in before reading a single row: bad credentials stop the run here, once.
        auth.start(&http, &gate, &stats, settings.max_attempts.min(3))
            .await?;
        Ok::<_, Error>((http, clients, gate, auth, stats))
    };
    // The reader and the collector get threads of their own, started (idle) before any
    // work is handed to them: a thread that cannot start stops the run here.
    let ready = async {
        let ready = ready.await?;
        let collector = background(
            "enlist-collector",
            |(rx, sinks, progress, total, rt, stop)| {
                collect::collect(rx, sinks, progress, total, rt, stop)
            },
        )?;
        let reader = background(
            "enlist-reader",
            |(rows, jobs, out, stop, rt): (_, Vec<mpsc::Sender<PlannedRow>>, _, _, _)| {
                feed(rows, &jobs, &out, &stop, &rt)
            },
        )?;
        Ok::<_, Error>((ready, collector, reader))
    };
    let ((http, clients, gate, auth, stats), (give_collector, collector), (give_reader, reader)) =
        match ready.await {
            Ok(ready) => ready,
            Err(e) => {
                // Not one row was sent: the sinks (the journal) may forget this run.
                for sink in sinks.iter_mut() {
                    sink.abandon();
                }
                return Err(e);
            }
        };

    let concurrency = settings.concurrency;
    let drain = settings.drain_timeout;
    let progress = settings.progress.clone();
    let total_rows = settings.total_rows;
    let threads = clients.len() + 1;
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let order = Arc::new(order::Order::new(settings.upsert_order, &profile));
    let shared = Arc::new(Shared {
        profile: profile.clone(),
        settings,
        http,
        gate: Arc::new(gate),
        auth: Arc::new(auth),
        stats: Arc::new(stats),
        order,
        stopped: stop.child_token(),
        aborted: abort.child_token(),
        stop,
        abort,
        fatal: Arc::new(std::sync::Mutex::new(None)),
    });

    // One job channel per runtime thread. A thread's workers take turns on its receiver:
    // the mutex guards only the receiver, is held while a worker waits for its next row
    // (never while a row is worked on), and is only ever wanted by workers of that one
    // thread. The reader hands the rows out a batch at a time, to whichever thread has room.
    let room = (2 * concurrency / threads + 64).max(2 * FEED_BATCH);
    let (job_txs, job_rxs): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<PlannedRow>(room);
            (tx, Arc::new(tokio::sync::Mutex::new(rx)))
        })
        .unzip();
    let (out_tx, out_rx) = mpsc::channel::<Outcome>(OUTCOMES_IN_FLIGHT);
    let runtime = tokio::runtime::Handle::current();
    // (A thread that took its work never drops it: these sends cannot fail.)
    let _ = give_collector.send((
        out_rx,
        sinks,
        progress,
        total_rows,
        runtime.clone(),
        shared.stop.clone(),
    ));
    let _ = give_reader.send((rows, job_txs, out_tx.clone(), shared.stop.clone(), runtime));

    // The workers are spread over `threads` runtime threads: this one, and each further
    // one a single-threaded runtime with its own HTTP client. A request, its connection and
    // its worker stay on one thread, with no hand-offs between threads per request.
    let share = |t: usize| concurrency / threads + usize::from(t < concurrency % threads);
    let mut workers = JoinSet::new();
    spawn_workers(&mut workers, share(0), &shared, &job_rxs[0], &out_tx);
    let mut others = Vec::new();
    for (t, http) in (1..threads).zip(clients) {
        let sh = Arc::new(shared.with_http(http));
        let (jobs, out) = (job_rxs[t].clone(), out_tx.clone());
        let n = share(t);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("enlist-http-{t}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        // As below: what this thread holds is recorded as not attempted.
                        tracing::warn!("cannot start runtime thread {t}: {e}");
                        jobs.blocking_lock().close();
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut set = JoinSet::new();
                    spawn_workers(&mut set, n, &sh, &jobs, &out);
                    join_workers(set).await;
                });
                let _ = done_tx.send(());
            });
        match thread {
            Ok(_) => others.push(done_rx),
            Err(e) => {
                // Nobody takes this thread's rows: the reader gives it no more, and what
                // it holds already is recorded as not attempted below.
                tracing::warn!("cannot start runtime thread {t}: {e}");
                job_rxs[t].lock().await.close();
            }
        }
    }
    let all_done = async move {
        join_workers(workers).await;
        for done in others {
            // An error means the thread ended without saying so (it panicked): its rows
            // in flight are lost to it, and the channel drain below still covers the rest.
            let _ = done.await;
        }
    };
    tokio::pin!(all_done);
    tokio::pin!(shutdown);
    let mut interrupted = false;
    tokio::select! {
        _ = &mut all_done => {}
        _ = &mut shutdown => {
            interrupted = true;
            shared.stop.cancel();
            tracing::warn!(
                "interrupted: sending nothing new; waiting up to {}s for requests in flight",
                drain.as_secs()
            );
            if tokio::time::timeout(drain, &mut all_done).await.is_err() {
                shared.abort.cancel();
                all_done.await;
            }
        }
    }

    // Rows queued but never taken: not attempted. Closing the channels also wakes a
    // reader blocked on full channels, which then records its remaining rows itself.
    for rx in &job_rxs {
        let mut rx = rx.lock().await;
        rx.close();
        while let Some(row) = rx.recv().await {
            let _ = out_tx.send(not_attempted(&row, NOT_SENT)).await;
        }
    }
    let routed = match reader.await {
        Ok(routed) => Some(routed),
        Err(_) => {
            tracing::error!("the reader failed (its thread ended without finishing)");
            None
        }
    };
    drop(out_tx);
    let mut collected = collector.await.map_err(|_| {
        Error::Other(anyhow::anyhow!(
            "the collector failed (its thread ended without finishing)"
        ))
    })?;
    // Every row handed out must have come back once; one that did not is a bug, and is
    // counted as failed so that the summary and the exit code show it.
    if let Some(routed) = routed {
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
    let s = &shared.stats;
    let requests = s.requests.load(Ordering::Relaxed);
    let unchanged = collected
        .counts
        .get(&Status::Unchanged)
        .copied()
        .unwrap_or(0);
    let summary = RunSummary {
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
        retries: s.retries.load(Ordering::Relaxed),
        throttled_429: s.throttled.load(Ordering::Relaxed),
        profile: profile.name.clone(),
        base_url: shared.settings.base_url.to_string(),
        input_file: shared.settings.input_file.clone(),
        input_sha256: shared.settings.input_sha256.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: shared.settings.command_line.clone(),
        unchanged,
        interrupted,
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
    let fatal = shared
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(e) = fatal {
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

/// The reader thread: routes every row exactly once: invalid and skipped
/// rows straight to the collector, valid ones to the workers, and after a stop every row
/// left to the collector as not attempted (reading on is cheap; no request is sent).
///
/// Room in the job channels is reserved several rows at a time (see [`reserve`]): waiting
/// for one free slot per row would wake this thread (a system call on the workers' side)
/// for every row.
///
/// Returns the rows it routed (by seq), which the collector must each have seen once.
fn feed(
    rows: impl Iterator<Item = PlannedRow>,
    jobs: &[mpsc::Sender<PlannedRow>],
    out: &mpsc::Sender<Outcome>,
    stop: &CancellationToken,
    runtime: &tokio::runtime::Handle,
) -> collect::SeqSet {
    let mut room: Option<mpsc::PermitIterator<'_, PlannedRow>> = None;
    let mut turn = 0usize;
    let mut warned = 0u64;
    let mut routed = collect::SeqSet::default();
    for row in rows {
        routed.insert(row.seq);
        if !row.is_invalid() && row.settled.is_none() {
            warned += show_warnings(&row, warned);
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
            room = None; // hand back the reserved slots: the channels are being drained
            Some(not_attempted(&row, NOT_SENT))
        } else {
            let permit = match room.as_mut().and_then(Iterator::next) {
                Some(p) => Some(p),
                None => {
                    room = reserve(jobs, &mut turn, runtime);
                    room.as_mut().and_then(Iterator::next)
                }
            };
            match permit {
                Some(p) => {
                    p.send(row);
                    None
                }
                // Every channel was closed: the run stopped.
                None => Some(not_attempted(&row, NOT_SENT)),
            }
        };
        if let Some(o) = outcome {
            if out.blocking_send(o).is_err() {
                break;
            }
        }
    }
    if warned > SHOWN_WARNINGS {
        tracing::warn!(
            "and {} more rows with warnings; `enlist check` on the sheet lists them all",
            warned - SHOWN_WARNINGS
        );
    }
    routed
}

/// Rows whose warnings are printed; later ones are only counted.
const SHOWN_WARNINGS: u64 = 20;

/// Logs the warnings of a row that will be sent (the first [`SHOWN_WARNINGS`] rows with
/// any); returns 1 when the row had one.
fn show_warnings(row: &PlannedRow, warned_before: u64) -> u64 {
    let mut warnings = row
        .findings
        .iter()
        .filter(|f| f.severity == crate::plan::Severity::Warning)
        .peekable();
    if warnings.peek().is_none() {
        return 0;
    }
    if warned_before < SHOWN_WARNINGS {
        for f in warnings {
            tracing::warn!("{}", f.describe(row.row));
        }
    }
    1
}

/// Room for the next rows. First [`FEED_CHUNK`] slots in the first channel, taken in
/// turn, that has them now: the threads get rows alike, and a small sheet is spread over
/// every thread's workers. When every channel is full, [`FEED_BATCH`] slots in whichever
/// has them first: a thread that works faster gets more rows, and this thread sleeps
/// once per batch, not once per row. `None`: every channel is closed.
fn reserve<'a>(
    jobs: &'a [mpsc::Sender<PlannedRow>],
    turn: &mut usize,
    runtime: &tokio::runtime::Handle,
) -> Option<mpsc::PermitIterator<'a, PlannedRow>> {
    for i in 0..jobs.len() {
        let k = (*turn + i) % jobs.len();
        if let Ok(p) = jobs[k].try_reserve_many(FEED_CHUNK) {
            *turn = k + 1;
            return Some(p);
        }
    }
    let mut waits: Vec<_> = jobs
        .iter()
        .filter(|j| !j.is_closed())
        .map(|j| Box::pin(j.reserve_many(FEED_BATCH)))
        .collect();
    runtime.block_on(async move {
        while !waits.is_empty() {
            match futures::future::select_all(waits).await {
                (Ok(p), _, _) => return Some(p),
                (Err(_), _, rest) => waits = rest, // that channel closed: the others may not be
            }
        }
        None
    })
}

/// Starts a thread of the run's own that waits for its work (sent on the returned sender),
/// does it at a lower priority than the threads that send requests, and sends back what
/// `work` returned. (Dropping the sender unused ends the thread.)
///
/// The reader (reading, planning, routing) and the collector (journal, reports, progress)
/// can always catch up while the request threads wait for answers; when they compete for
/// the cores, as on a small machine that also runs the target or other work, the request
/// threads should win, so that the target is kept busy. On two cores shared with a local
/// target this raised the rate of an unthrottled run by 5-8 %.
fn background<A: Send + 'static, T: Send + 'static>(
    name: &str,
    work: impl FnOnce(A) -> T + Send + 'static,
) -> Result<(
    std::sync::mpsc::SyncSender<A>,
    tokio::sync::oneshot::Receiver<T>,
)> {
    let (give, take) = std::sync::mpsc::sync_channel::<A>(1);
    let (done, result) = tokio::sync::oneshot::channel::<T>();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let Ok(input) = take.recv() else {
                return; // the run did not start
            };
            lower_priority();
            let _ = done.send(work(input));
        })
        .map_err(|e| Error::CannotStart(format!("cannot start a thread ({name}): {e}")))?;
    Ok((give, result))
}

/// Lowers the calling thread's priority (a nice value of about 10 on Linux). Best effort:
/// where it is refused, the thread runs as before.
fn lower_priority() {
    use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};
    let Ok(p) = ThreadPriorityValue::try_from(22u8) else {
        return;
    };
    if let Err(e) = set_current_thread_priority(ThreadPriority::Crossplatform(p)) {
        tracing::debug!("thread priority unchanged: {e:?}");
    }
}

/// Starts `n` workers on the current runtime.
fn spawn_workers(
    set: &mut JoinSet<()>,
    n: usize,
    shared: &Arc<Shared>,
    jobs: &Arc<tokio::sync::Mutex<mpsc::Receiver<PlannedRow>>>,
    out: &mpsc::Sender<Outcome>,
) {
    for _ in 0..n {
        set.spawn(worker::work(shared.clone(), jobs.clone(), out.clone()));
    }
}

/// Waits for every worker of a set; a worker that panicked is logged.
async fn join_workers(mut set: JoinSet<()>) {
    while let Some(r) = set.join_next().await {
        if let Err(e) = r {
            tracing::error!("a worker failed: {e}");
        }
    }
}

/// Job slots the reader reserves at once while the channels have room, and once they are
/// full (see [`reserve`]).
const FEED_CHUNK: usize = 8;
const FEED_BATCH: usize = 256;
/// Outcomes that may wait for the collector (it takes them in batches, see
/// [`crate::collect`]); a worker only waits for room beyond that.
const OUTCOMES_IN_FLIGHT: usize = 4096;

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

/// SHA-256 (hex) of a file, read in 64 KiB pieces: the summary names the exact input run.
pub fn file_sha256(path: &std::path::Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::input(path, format!("cannot read the file: {e}")))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::plan::hex_text(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread, from /proc (Linux).
    #[cfg(target_os = "linux")]
    fn own_nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        // Field 19 (nice), counted after the command name, which may hold spaces.
        let after = stat.rsplit_once(')').expect("comm").1;
        after
            .split_whitespace()
            .nth(16)
            .expect("nice")
            .parse()
            .expect("number")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn background_threads_run_below_the_request_threads() {
        let (give, result) = background("test-bg", |x: i64| (x, own_nice())).expect("thread");
        give.send(7).expect("send");
        let (x, nice) = result.blocking_recv().expect("result");
        assert_eq!(x, 7);
        assert!(nice > own_nice(), "nice {nice} on the background thread");
        // A thread never given its work ends without running it.
        let (give, result) = background("test-bg", |x: i64| x).expect("thread");
        drop(give);
        assert!(result.blocking_recv().is_err());
    }
}
