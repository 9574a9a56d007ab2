//! `enlist check`: everything a run does except send.
//!
//! Reads the sheet, validates every row (all problems of a row at once), renders every
//! request, and prints a summary, the problems as `row 14, column extension: ...` lines and,
//! on request, the first rendered requests with secrets masked.

use std::collections::BTreeMap;
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::{Format, InputArgs};
use crate::error::{exit, Result};
use crate::input::Input;
use crate::outcome::{now_rfc3339, Outcome, RunSummary, Status};
use crate::plan::{Finding, PlannedRow, Request, Severity, MASK};
use crate::profile::{Action, Auth, Profile};
use crate::report::{self, ReportFormat};
use crate::source::secrets::SecretFill;

use super::out;
use crate::console::Problems;

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Print the first N fully rendered requests (secrets masked).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub show_requests: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Base URL to show in rendered requests (default: the profile's environment variable).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Also write an outcome report (.xlsx, .csv or .jsonl by extension): invalid rows as
    /// `invalid`, valid rows as `not-attempted` (nothing is sent), so `enlist retry` on it
    /// later sends exactly the rows that are still to do.
    #[arg(long, value_name = "PATH")]
    pub report: Option<std::path::PathBuf>,
    /// A report fed back shows secrets masked: take them from this sheet (the key column
    /// and the secret columns) rather than from the original input the report records.
    #[arg(long, value_name = "FILE")]
    pub secrets_from: Option<std::path::PathBuf>,
    /// Print the problems of the first N rows that have any; the rest are counted (and are
    /// all in --report).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_problems: u64,
    /// With --leavers: the state directory whose users are compared with the sheet
    /// (default: .enlist-state beside the input, as for `run`).
    #[arg(long, value_name = "DIR")]
    pub state: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub leavers: super::leavers::LeaverArgs,
}

/// Counts for the summary.
#[derive(Debug, Default)]
struct Tally {
    rows: u64,
    valid: BTreeMap<&'static str, u64>,
    skipped: u64,
    invalid: u64,
    warnings: u64,
}

pub fn run(args: CheckArgs) -> Result<u8> {
    let mut spec = args.input.spec()?;
    // Nothing is applied, so there is nothing for the journal to compare.
    spec.plan.fingerprint = false;
    // Cells are shown only in a report.
    spec.plan.without_cells = args.report.is_none();
    let profile = spec.profile.clone();
    let policy = args.leavers.policy(&profile)?;
    let input = Input::open(spec)?;
    let base = args
        .base_url
        .clone()
        .or_else(|| std::env::var(&profile.base_url_env).ok())
        .unwrap_or_else(|| format!("${}", profile.base_url_env));
    let json = args.format == Format::Json;

    let mut text = String::new();
    if !json {
        let sheet = input
            .sheet_name
            .as_deref()
            .map(|s| format!(", sheet {s:?}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "checking {}{sheet} (header on row {}) with profile {}\n",
            input.path().display(),
            input.header_row,
            profile.name
        ));
        for w in input.warnings() {
            text.push_str(&format!("warning: {w}\n"));
        }
        out(&text)?;
    }

    let mut report = match &args.report {
        Some(p) => {
            let sha256 = crate::source::file_sha256(input.path())?;
            let path = report::unique_report_path(p);
            let (headers, secret) = report::sink_columns(&input.layout);
            let unused = report::unused_columns(&input.layout);
            let (sink, warning) = report::open_sink_fitted(
                ReportFormat::from_path(&path),
                &path,
                headers,
                secret,
                &unused,
                report::feedback::Origin::for_report(&input, &sha256),
            )?;
            let mut warnings = report::secret_column_warnings(&input.layout, &profile.name);
            warnings.extend(warning);
            if !json {
                for w in warnings {
                    out(&format!("warning: {w}\n"))?;
                }
            }
            Some((sink, path, sha256))
        }
        None => None,
    };
    let started = std::time::Instant::now();
    let started_at = now_rfc3339();
    let mut tally = Tally::default();
    let mut problems = Vec::new();
    let mut requests = Vec::new();
    // Which requests each of the first valid rows sends, to show them afterwards.
    let mut shown: Vec<(u64, [bool; 3])> = Vec::new();
    // Each row is planned in full (bodies rendered); only what check needs of it comes
    // back here, the rest (its requests, its key) is dropped on the planning thread that
    // made it.
    let with_report = report.is_some();
    // A report fed back is checked with its secrets as a run would send them.
    let fill = SecretFill::prepare(&input, &|_| true, args.secrets_from.as_deref())?.map(Arc::new);
    let filler = fill.clone();
    let rows = input.planned_map(
        move |raw| {
            if let Some(f) = &filler {
                f.fill(raw);
            }
            true
        },
        move |mut row| {
            if let Some(f) = &fill {
                f.explain(&mut row);
            }
            Checked::of(row, with_report)
        },
    )?;
    let mut problems_shown = Problems::new(args.max_problems);
    for row in rows {
        count(&mut tally, &row);
        if let (Some((sink, _, _)), Some(o)) = (report.as_mut(), &row.outcome) {
            sink.record(o)?;
        }
        if let Some(used) = row.used.filter(|_| shown.len() < args.show_requests) {
            shown.push((row.row, used));
        }
        if !problems_shown.show(&row.findings) {
            continue;
        }
        for f in &row.findings {
            if json {
                problems.push(json!({"row": row.row, "column": f.column, "severity": f.severity, "message": f.message}));
            } else {
                out(&format!("{}\n", Problems::line(row.row, f)))?;
            }
        }
    }
    let more_rows = problems_shown.more;

    if !json {
        let hint = match &report {
            Some((_, path, _)) => format!("the report has them all: {}", path.display()),
            None => "see --report".to_string(),
        };
        if let Some(more) = problems_shown.tail(&hint) {
            out(&format!("{more}\n"))?;
        }
    }

    if !shown.is_empty() {
        // Rendered again with secrets masked: the rows are read once more, up to the last
        // one shown.
        let last = shown.last().map_or(0, |(row, _)| *row);
        let planner = input.planner();
        let mut wanted = shown.iter().peekable();
        for raw in input.raw_rows()?.flatten() {
            if raw.number > last {
                break;
            }
            let Some((_, used)) = wanted.next_if(|(row, _)| *row == raw.number) else {
                continue;
            };
            for (name, req) in planner.masked_requests(&raw) {
                let i = ["lookup", "create", "update"]
                    .iter()
                    .position(|n| *n == name)
                    .unwrap_or(2);
                if used[i] {
                    requests.push((raw.number, name, display_request(&profile, &base, &req)));
                }
            }
        }
    }

    let leavers = match policy {
        Some(p) => Some(leavers(&args, &input, &base, p)?),
        None => None,
    };
    let code = if tally.invalid > 0 || leavers.as_ref().is_some_and(|(d, _)| d.held.is_some()) {
        exit::ROWS_FAILED
    } else {
        exit::OK
    };
    let valid: u64 = tally.valid.values().sum();
    if let Some((mut sink, path, input_sha256)) = report {
        let mut summary = RunSummary {
            started_at,
            finished_at: now_rfc3339(),
            duration_secs: started.elapsed().as_secs_f64(),
            profile: profile.name.clone(),
            base_url: report::strip_userinfo(&base),
            input_file: input.path().display().to_string(),
            input_sha256,
            version: env!("CARGO_PKG_VERSION").to_string(),
            command_line: super::command_line(),
            ..RunSummary::default()
        };
        summary.counts.insert(Status::Invalid, tally.invalid);
        summary.counts.insert(Status::Skipped, tally.skipped);
        summary.counts.insert(Status::NotAttempted, valid);
        summary.counts.retain(|_, n| *n > 0);
        sink.finish(&summary)?;
        if !json {
            out(&format!("check report: {}\n", path.display()))?;
        }
    }
    if json {
        let doc = json!({
            "file": input.path().display().to_string(),
            "sheet": input.sheet_name,
            "header_row": input.header_row,
            "profile": profile.name,
            "rows": tally.rows,
            "valid": valid,
            "by_action": tally.valid,
            "skipped": tally.skipped,
            "invalid": tally.invalid,
            "warnings": tally.warnings,
            "sheet_warnings": input.warnings(),
            "problems": problems,
            "more_rows_with_problems": more_rows,
            "requests": requests.iter().map(|(row, name, r)| {
                let mut r = r.clone();
                r["row"] = json!(row);
                r["request"] = json!(name);
                r
            }).collect::<Vec<_>>(),
        });
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).map_err(anyhow::Error::from)?
        ))?;
    } else {
        let mut t = String::new();
        for (row, name, r) in &requests {
            t.push_str(&format!(
                "\n--- row {row}: {name}\n{} {}\n",
                r["method"].as_str().unwrap_or(""),
                r["url"].as_str().unwrap_or("")
            ));
            if let Some(h) = r["headers"].as_object() {
                for (k, v) in h {
                    t.push_str(&format!("{k}: {}\n", v.as_str().unwrap_or("")));
                }
            }
            if !r["body"].is_null() {
                t.push_str(&serde_json::to_string_pretty(&r["body"]).unwrap_or_default());
                t.push('\n');
            }
        }
        let actions = tally
            .valid
            .iter()
            .map(|(a, n)| format!("{a} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        t.push_str(&format!(
            "\n{} rows read: {valid} valid{}, {} skipped, {} invalid, {} warnings\n",
            tally.rows,
            if actions.is_empty() {
                String::new()
            } else {
                format!(" ({actions})")
            },
            tally.skipped,
            tally.invalid,
            tally.warnings
        ));
        if tally.invalid > 0 {
            t.push_str("fix the rows above and check again; `enlist run` would not send the invalid rows\n");
        }
        if let Some((d, managed)) = &leavers {
            t.push_str(&super::leavers::describe(d, *managed));
        }
        out(&t)?;
    }
    Ok(code)
}

/// `check --leavers`: the sheet's keys (read once more) against the state's users of
/// the target; nothing is sent. Returns the decision and the number of managed users.
fn leavers(
    args: &CheckArgs,
    input: &Input,
    base: &str,
    policy: crate::leavers::Policy,
) -> Result<(crate::leavers::Decision, usize)> {
    let url = crate::execute::check_base_url(base, true).map_err(|_| {
        crate::error::Error::Usage(format!(
            "--leavers needs the target's base URL (the state keeps users per target): give \
             --base-url or set ${}",
            input.profile().base_url_env
        ))
    })?;
    let state = super::run::state_dir_of(args.state.as_deref(), &args.input.sheet);
    let target = crate::journal::target_id(&input.profile().name, url.as_str());
    let mut members = crate::journal::read_members(&state, &target)?;
    // `--leavers-scope target`: the one thing check sends, the list requests.
    if args.leavers.leavers_scope == super::leavers::ScopeArg::Target {
        let profile = input.profile();
        let settings = crate::execute::RunSettings::from_env(profile, Some(base), false, None)?;
        let listed = super::leavers::list_target(&args.leavers, Some(&policy), profile, &settings)?;
        members = super::leavers::listed_members(listed.unwrap_or_default(), &members);
    }
    let managed = members.len();
    // The same tally a run keeps, typed keys of unusable rows included, so that check
    // names exactly the leavers the run would.
    let key_cell = input.layout.sheet_index(input.profile().key_index());
    let mut tally = crate::leavers::Tally::default();
    for row in input.rows()? {
        tally.see(&row, key_cell);
    }
    Ok((crate::leavers::decide(members, &tally, &policy), managed))
}

/// A row's line in a check report: nothing was sent, so valid rows are `not-attempted`.
fn check_outcome(row: &PlannedRow) -> Outcome {
    if row.is_invalid() {
        row.unsent(Status::Invalid, row.error_message())
    } else if row.action == Action::Skip {
        row.unsent(
            Status::Skipped,
            "skipped: the row asks to be skipped".into(),
        )
    } else {
        row.unsent(
            Status::NotAttempted,
            format!(
                "valid: would {} (checked only, nothing sent)",
                row.action.as_str()
            ),
        )
    }
}

/// What check keeps of a planned row.
struct Checked {
    row: u64,
    action: Action,
    invalid: bool,
    findings: Vec<Finding>,
    /// Which of lookup, create, update the row would send (None: it sends nothing).
    used: Option<[bool; 3]>,
    /// The row's line in the report, when there is one.
    outcome: Option<Box<Outcome>>,
}

impl Checked {
    fn of(mut row: PlannedRow, with_report: bool) -> Checked {
        let used = row
            .job
            .take()
            .map(|j| [j.lookup.is_some(), j.create.is_some(), j.update.is_some()]);
        Checked {
            row: row.row,
            action: row.action,
            invalid: row.is_invalid(),
            outcome: with_report.then(|| Box::new(check_outcome(&row))),
            findings: std::mem::take(&mut row.findings),
            used,
        }
    }
}

fn count(t: &mut Tally, row: &Checked) {
    t.rows += 1;
    t.warnings += row
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count() as u64;
    if row.invalid {
        t.invalid += 1;
    } else if row.action == Action::Skip {
        t.skipped += 1;
    } else {
        *t.valid.entry(row.action.as_str()).or_default() += 1;
    }
}

/// A request as JSON for display: method, URL, headers (auth masked), body.
fn display_request(profile: &Profile, base: &str, r: &Request) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    if r.body.is_some() {
        headers.insert("Content-Type".into(), json!(profile.content_type));
    }
    match &profile.auth {
        Auth::None => {}
        Auth::Basic { .. } => {
            headers.insert("Authorization".into(), json!(format!("Basic {MASK}")));
        }
        Auth::Bearer { .. } => {
            headers.insert("Authorization".into(), json!(format!("Bearer {MASK}")));
        }
        Auth::ApiKey { header, prefix, .. } => {
            headers.insert(header.clone(), json!(format!("{prefix}{MASK}")));
        }
        Auth::TokenLogin(t) => {
            headers.insert(t.header.clone(), json!(format!("{}{MASK}", t.prefix)));
        }
    }
    for (k, v) in &r.headers {
        headers.insert(k.clone(), json!(v));
    }
    json!({
        "method": r.method.as_str(),
        "url": r.display_url(base),
        "headers": headers,
        "body": r.body_json(),
    })
}
