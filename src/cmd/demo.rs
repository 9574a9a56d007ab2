//! `enlist demo`: the whole job on a fresh machine, with no setup and no credentials.
//!
//! Starts the embedded sandbox in-process on a free 127.0.0.1 port, writes the profile's
//! sample sheet (embedded in the binary, so the demo works from any directory) into a work
//! directory, runs it exactly as `enlist run` would, writes the outcome report and prints
//! the summary. The sample sheets hide a few deliberately wrong rows (samples/README.md),
//! so the demo also shows what an invalid row looks like in the report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::collect::Progress;
use crate::error::{exit, Error, Result};
use crate::execute::{RunSettings, Secrets};
use crate::input::{Input, InputSpec};
use crate::outcome::{OutcomeSink, RunSummary, Status};
use crate::plan::PlanOptions;
use crate::profile::{Auth, Profile};
use crate::sandbox::{self, SandboxConfig, SandboxKind};
use crate::source::SourceOptions;

/// Run a sample sheet against the embedded sandbox: no setup, no credentials, a few seconds.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Exit code: 0 when the run behaved as expected: every valid row of the sample was created \
and the deliberately wrong rows were reported invalid (samples/README.md lists them). \
`enlist run` on the same sheet would exit 1 because of those rows; the demo does not, since \
they are there on purpose. 1 when a valid row did not end created, 6 when interrupted.")]
pub struct DemoArgs {
    /// Which built-in profile to demonstrate: odin, superoffice, users-api or scim.
    #[arg(short, long, value_name = "NAME", default_value = "odin")]
    pub profile: SandboxKind,
    /// Work directory for the sample sheet and the outcome report (created if missing).
    #[arg(long, value_name = "DIR", default_value = "enlist-demo")]
    pub dir: PathBuf,
}

/// The sample sheets, embedded so that the demo needs no checkout of the repository.
fn sample(kind: SandboxKind) -> &'static [u8] {
    match kind {
        SandboxKind::Odin => include_bytes!("../../samples/odin.xlsx"),
        SandboxKind::SuperOffice => include_bytes!("../../samples/superoffice.xlsx"),
        SandboxKind::UsersApi => include_bytes!("../../samples/users-api.xlsx"),
        SandboxKind::Scim => include_bytes!("../../samples/scim.xlsx"),
    }
}

/// Mild realism: a little latency and a few 503s so that the retry path shows in the
/// summary. The seed is fixed so every demo meets the same faults (seed 3 shows a few
/// retries on every profile); 3% with 5 attempts per request leaves a valid row failing
/// with odds far below one in a million.
fn sandbox_config(kind: SandboxKind) -> SandboxConfig {
    SandboxConfig {
        kind,
        latency: Duration::from_millis(5),
        fail_rate: 0.03,
        seed: 3,
        ..SandboxConfig::default()
    }
}

/// The sandbox's credentials under the names the profile reads them from, so the run needs
/// nothing from the environment.
fn secrets(profile: &Profile, cfg: &SandboxConfig) -> Secrets {
    let pairs: Vec<(&str, &str)> = match &profile.auth {
        Auth::None => Vec::new(),
        Auth::Basic {
            username_env,
            password_env,
        } => vec![
            (username_env.as_str(), cfg.username.as_str()),
            (password_env.as_str(), cfg.password.as_str()),
        ],
        Auth::Bearer { token_env } => vec![(token_env.as_str(), cfg.token.as_str())],
        Auth::ApiKey { key_env, .. } => vec![(key_env.as_str(), cfg.token.as_str())],
        Auth::TokenLogin(t) => vec![
            (t.username_env.as_str(), cfg.username.as_str()),
            (t.password_env.as_str(), cfg.password.as_str()),
        ],
    };
    Secrets::from_pairs(pairs)
}

/// `dir/stem.ext`, or `dir/stem-2.ext`, `-3`, ... : the first name not taken. The file is
/// created empty here (create_new), so two demos at once cannot pick the same name.
fn unique_path(dir: &Path, stem: &str, ext: &str) -> Result<PathBuf> {
    for n in 1u32.. {
        let name = if n == 1 {
            format!("{stem}.{ext}")
        } else {
            format!("{stem}-{n}.{ext}")
        };
        let p = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::input(&p, format!("cannot create the file: {e}")));
            }
        }
    }
    unreachable!("u32 names ran out")
}

/// Writes the sample sheet into `dir`. An existing copy with the same bytes is reused; one
/// that differs (someone edited it to experiment) is left alone and a new name is used.
fn write_sheet(dir: &Path, kind: SandboxKind) -> Result<PathBuf> {
    let bytes = sample(kind);
    let plain = dir.join(format!("{}.xlsx", kind.name()));
    if std::fs::read(&plain).is_ok_and(|b| b == bytes) {
        return Ok(plain);
    }
    let p = unique_path(dir, kind.name(), "xlsx")?;
    std::fs::write(&p, bytes)
        .map_err(|e| Error::input(&p, format!("cannot write the sample sheet: {e}")))?;
    Ok(p)
}

/// The outcome report(s) of the demo and the path to tell the user about. Kept in one place
/// so that the xlsx workbook sink replaces the JSON lines here and nowhere else (it will take
/// the sheet's headers and secret columns from `input`).
/// The demo's sinks, the workbook's path and the JSON lines report's path.
type DemoReports = (Vec<Box<dyn OutcomeSink>>, PathBuf, PathBuf);

fn sinks(dir: &Path, input: &Input) -> Result<DemoReports> {
    let stem = format!("{}.outcome", input.profile().name);
    // The outcome workbook a person opens, and JSON lines beside it for machines.
    let book = unique_path(dir, &stem, "xlsx")?;
    let (headers, secret) = crate::report::sink_columns(&input.layout);
    let xlsx = crate::report::xlsx::XlsxSink::create(&book, headers, secret)?;
    let path = unique_path(dir, &stem, "jsonl")?;
    let sink = crate::report::jsonl::JsonlSink::create(&path)?;
    Ok((vec![Box::new(xlsx), Box::new(sink)], book, path))
}

/// Whether the demo behaved as expected: nothing failed, nothing was left unsent, and every
/// row that was sent was created (the sandbox starts empty, so nothing can already exist).
fn as_expected(s: &RunSummary) -> bool {
    !s.interrupted
        && s.count(Status::Failed) == 0
        && s.count(Status::NotAttempted) == 0
        && s.count(Status::Exists) == 0
        && s.count(Status::Created) > 0
}

pub fn run(args: DemoArgs) -> Result<u8> {
    let kind = args.profile;
    let profile = Arc::new(Profile::load(kind.name())?);
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Error::input(&args.dir, format!("cannot create the demo directory: {e}")))?;
    let sheet = write_sheet(&args.dir, kind)?;
    let input = Input::open(InputSpec {
        path: sheet.clone(),
        source: SourceOptions::default(),
        plan: PlanOptions::default(),
        profile: profile.clone(),
    })?;
    let rows = input.rows()?;
    let (sinks, book, report) = sinks(&args.dir, &input)?;

    let bar = std::io::stderr().is_terminal();
    crate::console::init(false);
    let cfg = sandbox_config(kind);
    let runtime = super::runtime()?;
    let (summary, held) = runtime.block_on(async {
        let sandbox = sandbox::start(cfg.clone())
            .await
            .map_err(|e| Error::CannotStart(format!("cannot start the sandbox: {e}")))?;
        eprintln!(
            "enlist demo: {} sandbox on {} (sandbox credentials, nothing leaves this machine)",
            kind,
            sandbox.base_url()
        );
        eprintln!("sheet: {}", sheet.display());
        let result = async {
            let mut s = RunSettings::new(
                &profile,
                &sandbox.base_url(),
                false,
                secrets(&profile, &cfg),
            )?;
            // Brisker than the profiles' production-safe rates, still slow enough to watch.
            s.rate = 40.0;
            s.progress = if bar {
                Progress::Bar
            } else {
                Progress::Lines(Duration::from_secs(1))
            };
            s.total_rows = Some(input.rows_total);
            s.input_file = sheet.display().to_string();
            s.input_sha256 = crate::source::file_sha256(&sheet)?;
            s.command_line = super::command_line();
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            crate::collect::run(profile.clone(), s, rows, sinks, stop).await
        }
        .await;
        let held = sandbox.users().len();
        sandbox.shutdown().await;
        result.map(|r| (r, held))
    })?;

    eprint!("{}", super::run::human_summary(&summary));
    let invalid = summary.count(Status::Invalid);
    if invalid > 0 {
        eprintln!("{invalid} rows were invalid on purpose (see samples/README.md)");
    }
    eprintln!("sandbox now holds {held} users");
    eprintln!(
        "outcome workbook: {} (open it in Excel or LibreOffice)",
        book.display()
    );
    eprintln!("outcome report: {}", report.display());
    let code = if summary.interrupted {
        exit::INTERRUPTED
    } else if as_expected(&summary) {
        exit::OK
    } else {
        exit::ROWS_FAILED
    };
    super::out(&format!("{} exit={code}\n", summary.line()))?;
    Ok(code)
}
