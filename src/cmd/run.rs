//! `enlist run`: send a sheet's jobs to the target.
//!
//! Turns the command line into [`RunSettings`] (validated once, before any work), sets up
//! logging and the progress display, wires Ctrl-C / SIGTERM to the executor's shutdown
//! future, and prints the summary: for people on stderr, one parseable line on stdout.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::InputArgs;
use crate::collect::{self, Progress};
use crate::console;
use crate::console::Problems;
use crate::error::{exit, Error, Result};
use crate::execute::order::UpsertOrder;
use crate::execute::{Concurrency, RunSettings};
use crate::input::Input;
use crate::journal::{target_id, Journal, Shard};
use crate::outcome::{OutcomeSink, RunSummary, Status};
use crate::plan::PlannedRow;
use crate::profile::Profile;
use crate::report::feedback::{OnlyFilter, Origin};
use crate::report::{self, ReportFormat};
use crate::source::secrets::SecretFill;
use crate::source::RawRow;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProgressArg {
    Auto,
    Never,
    Always,
}

/// `--upsert-order`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum UpsertOrderArg {
    CreateFirst,
    LookupFirst,
    Auto,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The target's base URL (default: the environment variable the profile names).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Rows in flight at once: `auto` (the default) starts at the profile's `concurrency`
    /// and follows the target's latency and errors; a number fixes it.
    #[arg(long, value_name = "auto|N", default_value = "auto", value_parser = parse_auto::<usize>)]
    pub concurrency: Auto<usize>,
    /// With `--concurrency auto`: never more rows in flight than this.
    #[arg(long, value_name = "N", default_value_t = crate::execute::adaptive::MAX)]
    pub max_concurrency: usize,
    /// Requests per second, all requests together (default: the profile's). `auto`: start
    /// at the profile's rate and find the rate the target allows (it slows down when the
    /// target answers 429, and never goes past the budget its RateLimit headers announce).
    #[arg(long, value_name = "auto|R", value_parser = parse_auto::<f64>)]
    pub rate: Option<Auto<f64>>,
    /// Requests that may start back to back after an idle spell.
    #[arg(long, value_name = "B", default_value_t = 1)]
    pub burst: u32,
    /// Most sends of one request, the first included; a refusal (429, or 503 with
    /// Retry-After: nothing applied) is not counted: --max-row-time bounds those.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_attempts: u32,
    /// Most seconds one row may take, retries included.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub max_row_time: f64,
    /// Longest pause (seconds) a server's Retry-After or RateLimit-Reset may impose; a
    /// server that asks for more than a row has left of --max-row-time fails that row.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub max_pause: f64,
    /// Seconds one request may take.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Seconds to establish a connection.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// After Ctrl-C: seconds requests in flight may take before they are abandoned.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// Allow plain http:// to hosts other than this machine.
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Credentials as NAME=value lines (overriding the environment).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// The outcome report: .xlsx (workbook), .csv or .jsonl by extension
    /// (default: `<input>.outcome.xlsx` beside the input; an earlier report is never overwritten).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Also write the outcomes as csv or jsonl beside the input (repeatable).
    #[arg(long, value_name = "FORMAT", value_parser = parse_report_format)]
    pub report_format: Vec<ReportFormat>,
    /// Send only the rows of an outcome workbook whose Outcome is in this list,
    /// e.g. `failed,not-attempted`.
    #[arg(long, value_name = "OUTCOMES")]
    pub only: Option<String>,
    /// An outcome report fed back shows secrets masked: take them from this sheet (the key
    /// column and the secret columns; matched by key) rather than from the original input
    /// the report records.
    #[arg(long, value_name = "FILE")]
    pub secrets_from: Option<PathBuf>,
    /// Progress bar on a terminal, else progress lines (auto); never; or always.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressArg,
    /// Seconds between progress lines when there is no terminal.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub progress_interval: f64,
    /// Which request an upsert sends first: the create (one request for a new user), the
    /// lookup (two for any user), or auto, which learns from the rows which is cheaper.
    /// Creating first needs a profile whose create has a conflict rule.
    #[arg(long, value_enum, default_value = "auto")]
    pub upsert_order: UpsertOrderArg,
    /// Every stderr line as text or JSON: log lines (filter with RUST_LOG), progress, the
    /// summary, errors. JSON draws no bar: progress comes as lines.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub journal: JournalArgs,
    #[command(flatten)]
    pub leavers: super::leavers::LeaverArgs,
}

/// A flag that takes `auto` or a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Auto<T> {
    Auto,
    Value(T),
}

fn parse_auto<T: std::str::FromStr>(s: &str) -> std::result::Result<Auto<T>, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(Auto::Auto);
    }
    s.parse()
        .map(Auto::Value)
        .map_err(|_| format!("expected `auto` or a number, not {s:?}"))
}

fn parse_report_format(s: &str) -> std::result::Result<ReportFormat, String> {
    ReportFormat::parse(s).ok_or_else(|| format!("{s:?}: use xlsx, csv or jsonl"))
}

// ---- the journal: state, delta sync, resume, shards (kept together to ease merges) ----

/// Where the state lives and how much of its history a run uses.
#[derive(Debug, Args)]
pub struct JournalArgs {
    /// State directory: the journal and its lock (default: .enlist-state beside the input).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Ignore the journal's history: send every row (outcomes are still recorded).
    #[arg(long)]
    pub fresh: bool,
    /// Send every row, even those the journal shows unchanged (outcomes are still recorded).
    #[arg(long)]
    pub full: bool,
    /// Take only share I of N of the keys (0 ≤ I < N), each shard with its own --state.
    #[arg(long, value_name = "I/N", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
}

/// The state directory: `--state`, else `.enlist-state` beside the input file.
fn state_dir(args: &JournalArgs, sheet: &Path) -> PathBuf {
    state_dir_of(args.state.as_deref(), sheet)
}

/// `--state`, else `.enlist-state` beside the input file (`run` and `check --leavers`).
pub(super) fn state_dir_of(state: Option<&Path>, sheet: &Path) -> PathBuf {
    match state {
        Some(d) => d.to_path_buf(),
        None => sheet
            .parent()
            .unwrap_or(Path::new(""))
            .join(".enlist-state"),
    }
}

/// Takes the state's lock (a second run gets exit 5 here, before any work) and starts
/// this run's record. The journal then goes into the sinks, so every outcome is recorded
/// as it finishes.
fn open_journal(
    args: &JournalArgs,
    sheet: &Path,
    profile: &Profile,
    settings: &RunSettings,
) -> Result<Journal> {
    let dir = state_dir(args, sheet);
    let target = target_id(&profile.name, settings.base_url.as_str());
    let journal = Journal::open_input(&dir, &target, &settings.input_sha256, &settings.input_file)?;
    if let Some(earlier) = journal.resumed_run() {
        let (file, sha) = (&settings.input_file, &settings.input_sha256);
        tracing::warn!("{}", earlier.warning(file, sha));
    }
    Ok(journal)
}

/// Between plan and execute (on the reader's thread): drops the rows of other shards and
/// settles or marks rows from the journal's history.
fn delta_filter(
    rows: impl Iterator<Item = PlannedRow> + Send + 'static,
    args: &JournalArgs,
    journal: &Journal,
) -> Result<impl Iterator<Item = PlannedRow> + Send + 'static> {
    let shard = args.shard;
    let delta = journal.delta(!(args.full || args.fresh));
    // --fresh: the history is not consulted at all (a resume still looks creates up).
    // Otherwise even --full reads it: a known user's update needs no lookup.
    let reader = if !args.fresh {
        Some(journal.reader()?)
    } else {
        None
    };
    let mut warned = false;
    Ok(rows.filter_map(move |mut row| {
        if let Some(s) = shard {
            // A row without a key is invalid anyway; one shard reports it, not all N.
            let mine = if row.key.trim().is_empty() {
                s.index == 0
            } else {
                s.owns(&row.key)
            };
            if !mine {
                return None;
            }
        }
        let applied = match (&reader, row.job.is_some()) {
            (Some(r), true) => match r.get(&row.key) {
                Ok(a) => a,
                Err(e) => {
                    // Sending is the safe side: the worst case is a request too many.
                    if !warned {
                        tracing::warn!("cannot read the journal ({e}): sending rows as new");
                        warned = true;
                    }
                    None
                }
            },
            _ => None,
        };
        delta.decide(&mut row, applied.as_ref());
        Some(row)
    }))
}

// ---- end of the journal block ----

fn secs(flag: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::Usage(format!("--{flag} must be a positive number of seconds")))
}

/// The settings for this run, checked before anything is read or sent.
pub fn settings(args: &RunArgs, profile: &crate::profile::Profile) -> Result<RunSettings> {
    let mut s = RunSettings::from_env(
        profile,
        args.base_url.as_deref(),
        args.allow_insecure_http,
        args.secret_file.as_deref(),
    )?;
    s.concurrency = match args.concurrency {
        Auto::Auto => Concurrency::Auto {
            start: profile.concurrency,
            max: args.max_concurrency,
        },
        Auto::Value(n) => Concurrency::Fixed(n),
    };
    match args.rate {
        Some(Auto::Value(r)) => s.rate = r,
        Some(Auto::Auto) => s.auto_rate = true,
        None => {}
    }
    s.burst = args.burst;
    s.upsert_order = match args.upsert_order {
        UpsertOrderArg::CreateFirst => UpsertOrder::CreateFirst,
        UpsertOrderArg::LookupFirst => UpsertOrder::LookupFirst,
        UpsertOrderArg::Auto => UpsertOrder::Auto,
    };
    s.upsert_order.check(profile)?;
    s.max_attempts = args.max_attempts;
    s.max_row_time = secs("max-row-time", args.max_row_time)?;
    s.max_pause = secs("max-pause", args.max_pause)?;
    s.timeout = secs("timeout", args.timeout)?;
    s.connect_timeout = secs("connect-timeout", args.connect_timeout)?;
    s.drain_timeout = secs("drain-timeout", args.drain_timeout)?;
    if let Some(p) = &args.ca_file {
        s.ca_pem = Some(std::fs::read(p).map_err(|e| {
            Error::CannotStart(format!("cannot read --ca-file {}: {e}", p.display()))
        })?);
    }
    let interval = secs("progress-interval", args.progress_interval)?;
    // A bar is not JSON: with --log-format json progress comes as (JSON) lines.
    let bar = args.log_format == LogFormat::Text;
    s.progress = match args.progress {
        ProgressArg::Never => Progress::Off,
        ProgressArg::Always if bar => Progress::Bar,
        ProgressArg::Auto if bar && std::io::stderr().is_terminal() => Progress::Bar,
        ProgressArg::Always | ProgressArg::Auto => Progress::Lines(interval),
    };
    // `input_sha256` is set by the caller, from the private copy the run reads.
    s.input_file = args.input.sheet.display().to_string();
    s.command_line = super::command_line();
    s.validate()?;
    Ok(s)
}

/// Resolves on the first Ctrl-C or SIGTERM; a second one ends the process at once.
async fn interrupted() {
    wait_signal().await;
    tokio::spawn(async {
        wait_signal().await;
        console::error("second interrupt, stopping now (outcomes of rows in flight are lost)");
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `enlist run`.
pub fn run(args: RunArgs) -> Result<u8> {
    summarised(|| run_with(args, false))
}

/// `enlist retry OUTCOME.xlsx`: the rows of an outcome workbook that did not end well.
pub fn retry(args: RunArgs) -> Result<u8> {
    summarised(|| run_with(args, true))
}

/// Runs `run`; when it ends in an error, says it and then prints the summary line that a
/// run prints on stdout all the same: a scheduler finds one as the last line on every exit
/// (docs/scheduling.md).
fn summarised(run: impl FnOnce() -> Result<u8>) -> Result<u8> {
    let started = std::time::Instant::now();
    run().or_else(|e| {
        console::error(&e.to_string());
        super::out(&format!("{}\n", fatal_line(&e, started.elapsed())))?;
        Ok(e.exit_code())
    })
}

/// `enlist summary: status=fatal exit=4 seconds=0.2 error="..."`: the summary line of a run
/// that could not start or had to stop (the error quoted as a JSON string).
pub(crate) fn fatal_line(e: &Error, took: Duration) -> String {
    format!(
        "enlist summary: status=fatal exit={} seconds={:.1} error={}",
        e.exit_code(),
        took.as_secs_f64(),
        serde_json::Value::from(e.to_string())
    )
}

/// The problems of a run's invalid rows, gathered as the rows pass on the reader's thread
/// and printed after the run (in the middle of it they would scroll away under the bar).
struct Invalid {
    problems: Problems,
    lines: Vec<String>,
}

impl Invalid {
    /// Takes in an invalid row.
    fn note(&mut self, row: &PlannedRow) {
        if self.problems.show(&row.findings) {
            let lines = row.findings.iter().map(|f| Problems::line(row.row, f));
            self.lines.extend(lines);
        }
    }

    fn print(&self, report: &Path) {
        for l in &self.lines {
            console::line(l);
        }
        let kind = match ReportFormat::from_path(report) {
            ReportFormat::Xlsx => "workbook",
            _ => "report",
        };
        let hint = format!("see the outcome {kind} {}", report.display());
        if let Some(tail) = self.problems.tail(&hint) {
            console::line(&tail);
        }
    }
}

/// The report sinks: the main report (workbook unless the path says otherwise) and any
/// `--report-format` extras. Returns the sinks and the main report's path.
fn report_sinks(
    args: &RunArgs,
    input: &Input,
    profile: &Profile,
    origin: Option<Origin>,
) -> Result<(Vec<Box<dyn OutcomeSink>>, PathBuf)> {
    let (headers, secret) = report::sink_columns(&input.layout);
    for w in report::secret_column_warnings(&input.layout, &profile.name) {
        tracing::warn!("{w}");
    }
    let unused = report::unused_columns(&input.layout);
    let open = |f: ReportFormat, p: &Path| -> Result<Box<dyn OutcomeSink>> {
        let (sink, warning) = report::open_sink_fitted(
            f,
            p,
            headers.clone(),
            secret.clone(),
            &unused,
            origin.clone(),
        )?;
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        Ok(sink)
    };
    let main = report::unique_report_path(
        &args
            .report
            .clone()
            .unwrap_or_else(|| report::default_report_path(input.path())),
    );
    let mut sinks = vec![open(ReportFormat::from_path(&main), &main)?];
    for f in &args.report_format {
        if *f == ReportFormat::from_path(&main) {
            continue;
        }
        let p = report::unique_report_path(&report::default_report_path_for(input.path(), *f));
        sinks.push(open(*f, &p)?);
    }
    Ok((sinks, main))
}

/// Rows of a report fed back in that `keep` takes get their masked secrets again
/// ([`SecretFill`]); those still lacking one are named here, before anything is sent.
/// Also returns the origin the new report records: the sheet itself for a plain sheet
/// (hashed as `sha256`), else what the report fed back recorded.
fn fed_back_secrets(
    args: &RunArgs,
    input: &Input,
    keep: &dyn Fn(&RawRow) -> bool,
    sha256: &str,
) -> Result<(Option<Arc<SecretFill>>, Option<Origin>)> {
    let origin = Origin::for_report(input, sha256);
    let fill = SecretFill::prepare(input, keep, args.secrets_from.as_deref())?;
    let missing = fill.as_ref().map_or(0, |f| f.missing());
    if missing > 0 {
        // Named with the other invalid rows (and their reasons) when the run ends.
        let rows = if missing == 1 {
            "row still lacks"
        } else {
            "rows still lack"
        };
        tracing::warn!(
            "{missing} {rows} a secret: not sent, reported invalid and named with the reason \
             after the run"
        );
    }
    Ok((fill.map(Arc::new), origin))
}

fn run_with(args: RunArgs, is_retry: bool) -> Result<u8> {
    // First: every later line (a refused profile included) has the format asked for.
    console::init(args.log_format == LogFormat::Json);
    let mut spec = args.input.spec()?;
    // Every pass reads one private copy, so the run acts on one version of the file, the
    // version whose hash the journal and the report record.
    let copy = crate::source::spool::PrivateCopy::of(&spec.path)?;
    spec.source.read_from = Some(copy.path().to_path_buf());
    let profile = spec.profile.clone();
    let only = match (&args.only, is_retry) {
        (Some(list), _) => Some(OnlyFilter::parse(list)?),
        (None, true) => Some(OnlyFilter::retry()),
        (None, false) => None,
    };
    let policy = args.leavers.policy(&profile)?;
    if policy.is_some() && only.is_some() {
        return Err(Error::Usage(
            "--leavers needs the whole sheet: it cannot be used with --only or retry (a \
             filtered sheet would make everyone else a leaver)"
                .into(),
        ));
    }
    let mut settings = settings(&args, &profile)?;
    settings.input_sha256 = copy.sha256().to_string();
    if args.progress == ProgressArg::Always && settings.progress == Progress::Bar {
        console::draw_always();
    }
    if profile.columns.iter().any(|c| c.secret) {
        let dir = state_dir(&args.journal, &args.input.sheet);
        let key = crate::journal::secret_key(&dir)?;
        spec.plan.secret_key = Some(crate::plan::SecretKey::new(key));
    }
    // Before the journal is opened: a target that cannot be listed leaves no run behind.
    let listed = super::leavers::list_target(&args.leavers, policy.as_ref(), &profile, &settings)?;
    let mut journal = open_journal(&args.journal, &args.input.sheet, &profile, &settings)?;
    settings.create_log = Some(journal.create_log()?);
    let invalid = Arc::new(Mutex::new(Invalid {
        problems: Problems::new(crate::console::SHOWN_ROWS),
        lines: Vec::new(),
    }));
    let prepared = (|| {
        let input = Input::open(spec)?;
        test_pause_between_passes();
        for w in input.warnings() {
            tracing::warn!("{w}");
        }
        if let Some(f) = &only {
            f.check_layout(&input.layout, input.path())?;
        }
        // Every row of the sheet gets an outcome; with a filter, how many pass is unknown.
        let total = only.is_none().then_some(input.rows_total);
        let layout = input.layout.clone();
        let keep = move |raw: &RawRow| only.as_ref().is_none_or(|f| f.keep(&layout, raw));
        let (fill, origin) = fed_back_secrets(&args, &input, &keep, copy.sha256())?;
        let filler = fill.clone();
        let rows = input.rows_where(move |raw| {
            let kept = keep(raw);
            if let (true, Some(f)) = (kept, &filler) {
                f.fill(raw);
            }
            kept
        })?;
        let rows = rows.map(move |mut row| {
            if let Some(f) = &fill {
                f.explain(&mut row);
            }
            row
        });
        let rows = delta_filter(rows, &args.journal, &journal)?;
        let invalid = invalid.clone();
        let rows = rows.inspect(move |row| {
            if row.is_invalid() {
                if let Ok(mut i) = invalid.lock() {
                    i.note(row);
                }
            }
        });
        let key_cell = input.layout.sheet_index(profile.key_index());
        let rows = super::leavers::lifecycle(
            rows,
            &journal,
            profile.clone(),
            policy,
            args.journal.shard,
            key_cell,
            listed,
        )?;
        let (sinks, report_path) = report_sinks(&args, &input, &profile, origin)?;
        Ok::<_, Error>((total, rows, sinks, report_path))
    })();
    let (total, rows, mut sinks, report_path) = match prepared {
        Ok(p) => p,
        Err(e) => {
            // Refused before anything was sent: the next run is not a resume of this one.
            journal.abandon();
            return Err(e);
        }
    };
    settings.total_rows = total;
    sinks.insert(0, Box::new(journal));
    let runtime = super::runtime()
        .map_err(|e| Error::CannotStart(format!("cannot start the async runtime: {e}")))?;
    let (summary, unrecorded) =
        match runtime.block_on(collect::run(profile, settings, rows, sinks, interrupted())) {
            Ok(summary) => (summary, None),
            // The summary is printed all the same: it says what was sent.
            Err(Error::Unrecorded { message, summary }) => (*summary, Some(message)),
            Err(e) => return Err(e),
        };
    if let Ok(i) = invalid.lock() {
        i.print(&report_path);
    }
    console::lines(&human_summary(&summary));
    console::line(&format!("outcome report: {}", report_path.display()));
    if let Some(message) = &unrecorded {
        console::error(message);
    }
    let code = match unrecorded {
        Some(_) => exit::UNRECORDED,
        None => exit_code(&summary),
    };
    super::out(&format!("{} exit={code}\n", summary.line()))?;
    Ok(code)
}

/// For tests only: with `ENLIST_TEST_PAUSE_BETWEEN_PASSES=FILE`, creates FILE after the
/// duplicate-key pass and waits (up to a minute) until it is removed, so that a test can
/// change the input between the passes.
fn test_pause_between_passes() {
    let Some(marker) = std::env::var_os("ENLIST_TEST_PAUSE_BETWEEN_PASSES") else {
        return;
    };
    let marker = std::path::PathBuf::from(marker);
    if std::fs::write(&marker, b"paused").is_err() {
        return;
    }
    for _ in 0..6000 {
        if !marker.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// 6 interrupted, 1 any row not ok, else 0.
pub fn exit_code(s: &RunSummary) -> u8 {
    if s.interrupted {
        exit::INTERRUPTED
    } else if !s.all_ok() {
        exit::ROWS_FAILED
    } else {
        exit::OK
    }
}

/// The summary for people.
pub fn human_summary(s: &RunSummary) -> String {
    let mut t = String::new();
    let counts: Vec<String> = Status::ALL
        .iter()
        .filter(|st| s.count(**st) > 0)
        .map(|st| format!("{} {}", s.count(*st), st))
        .collect();
    t.push_str(&format!(
        "\n{} rows in {:.1}s: {}\n",
        s.total(),
        s.duration_secs,
        if counts.is_empty() {
            "nothing to do".to_string()
        } else {
            counts.join(", ")
        }
    ));
    t.push_str(&format!(
        "{} requests ({:.1}/s achieved), {} retries; {}\n",
        s.requests,
        s.achieved_rate,
        s.retries,
        s.pace()
    ));
    if s.unchanged > 0 {
        t.push_str(&format!(
            "{} rows unchanged since the last run were not sent (delta sync; --full sends them)\n",
            s.unchanged
        ));
    }
    if s.interrupted {
        t.push_str("interrupted: rows not sent are marked not-attempted; run again to finish\n");
    }
    t
}
