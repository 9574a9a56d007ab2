//! `enlist profiles test`: check a profile against the live target before a real run.
//!
//! Logs in, looks up a key that cannot exist (expecting "not found"), looks up `--key` when
//! given, and with `--canary` creates a throw-away user and finds it again. Every request
//! goes through the run's own machinery (its client, gate, auth and row rules), one at a
//! time; this file only decides what the answers say about the profile, and names the key
//! to fix when a check fails. Nothing that writes is sent without `--canary`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::out;
use crate::cell::Cell;
use crate::error::{exit, Error, Result};
use crate::execute::auth::LoginFailure;
use crate::execute::{Concurrency, Found, Resp, RunSettings, Shared};
use crate::outcome::{Outcome, Status};
use crate::plan::Layout;
use crate::plan::{PlanOptions, PlannedRow, Planner};
use crate::profile::template::value_text;
use crate::profile::{Auth, Profile, RequestSpec};
use crate::source::RawRow;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// A built-in profile name or the path of a profile .toml file.
    #[arg(short, long, env = "ENLIST_PROFILE")]
    pub profile: String,
    /// The target's base URL (default: the environment variable the profile names).
    #[arg(long)]
    pub base_url: Option<String>,
    /// A key that exists on the target: show which user and remote id the lookup finds.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Also create a throw-away user from the columns' examples and find it again (this
    /// writes to the target; profiles have no delete, so the user is left there).
    #[arg(long)]
    pub canary: bool,
    /// Allow plain http:// to hosts other than this machine.
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Credentials as NAME=value lines (overriding the environment).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Seconds one request may take.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
}

/// The lines printed so far and whether any check failed.
#[derive(Default)]
struct Report {
    failed: usize,
    passed: usize,
}

impl Report {
    fn pass(&mut self, line: String) -> Result<()> {
        self.passed += 1;
        out(&format!("✓ {line}\n"))
    }
    fn fail(&mut self, line: String) -> Result<()> {
        self.failed += 1;
        out(&format!("✗ {line}\n"))
    }
    fn note(&self, line: String) -> Result<()> {
        out(&format!("- {line}\n"))
    }
}

/// A run of one row at a time, without the reader, the journal or the collector.
struct Preflight {
    sh: Arc<Shared>,
}

impl Preflight {
    /// Builds the client, the gate and the authenticator; sends nothing yet.
    fn new(profile: Arc<Profile>, mut settings: RunSettings) -> Result<Preflight> {
        settings.concurrency = Concurrency::Fixed(1);
        settings.upsert_order = crate::execute::order::UpsertOrder::LookupFirst;
        let sh = Shared::new(profile, settings, Default::default(), Default::default())?;
        Ok(Preflight { sh: Arc::new(sh) })
    }

    /// Looks up `row`'s key with its job's lookup request, as a row of a run would.
    async fn lookup(&self, row: &PlannedRow) -> Result<Option<(Found, Option<Resp>)>> {
        let Some(req) = row.job.as_ref().and_then(|j| j.lookup.as_ref()) else {
            return Ok(None);
        };
        crate::execute::probe_lookup(&self.sh, row, req)
            .await
            .map(Some)
    }

    /// Carries `row` to its outcome exactly as a run's worker does (`None` only if the
    /// worker was lost, which a worker never is).
    async fn send_row(&self, row: PlannedRow) -> Option<Outcome> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let permit = self.sh.limit.acquire().await;
        crate::execute::work(self.sh.clone(), row, tx, permit).await;
        rx.recv().await
    }

    /// Requests sent so far (logins and retries included).
    fn requests(&self) -> u64 {
        self.sh.net.stats.counts().0
    }
}

pub fn run(args: TestArgs) -> Result<u8> {
    let profile = Arc::new(Profile::load(&args.profile)?);
    let mut settings = RunSettings::from_env(
        &profile,
        args.base_url.as_deref(),
        args.allow_insecure_http,
        args.secret_file.as_deref(),
    )?;
    settings.timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::Usage("--timeout must be a positive number of seconds".into()))?;
    settings.max_attempts = 3;
    settings.max_row_time = Duration::from_secs(60);
    if let Some(p) = &args.ca_file {
        settings.ca_pem = Some(std::fs::read(p).map_err(|e| {
            Error::CannotStart(format!("cannot read --ca-file {}: {e}", p.display()))
        })?);
    }
    if args.canary {
        profile
            .supports(crate::profile::Action::Create)
            .map_err(|why| Error::Usage(format!("--canary creates a user: {why}")))?;
    }
    let base = settings.base_url.to_string();
    out(&format!(
        "testing profile {} against {base}\n",
        profile.name
    ))?;
    let pf = Preflight::new(profile.clone(), settings)?;
    super::runtime()?.block_on(checks(&pf, &profile, &args))
}

async fn checks(pf: &Preflight, profile: &Arc<Profile>, args: &TestArgs) -> Result<u8> {
    let mut r = Report::default();
    let logged_in = login(pf, profile, &mut r).await?;
    if logged_in {
        impossible_lookup(pf, profile, &mut r).await?;
        if let Some(key) = &args.key {
            key_lookup(pf, profile, key, &mut r).await?;
        }
        if args.canary {
            canary(pf, profile, &mut r).await?;
        }
    }
    let written = if args.canary { "" } else { ", nothing written" };
    if r.failed == 0 && r.passed == 0 {
        out(&format!(
            "nothing could be checked without writing ({} requests): --canary checks the \
             profile by creating one throw-away user\n",
            pf.requests()
        ))?;
        Ok(exit::OK)
    } else if r.failed == 0 {
        out(&format!(
            "every check passed ({} checks, {} requests{written})\n",
            r.passed,
            pf.requests()
        ))?;
        Ok(exit::OK)
    } else {
        out(&format!(
            "{} of {} checks failed ({} requests{written}): fix the keys named above and run \
             `enlist profiles test` again\n",
            r.failed,
            r.failed + r.passed,
            pf.requests()
        ))?;
        Ok(exit::ROWS_FAILED)
    }
}

// ---- auth ---------------------------------------------------------------------------

/// Where the credentials come from, in the profile's words.
fn auth_source(profile: &Profile) -> String {
    match &profile.auth {
        Auth::None => "no credentials (auth type none)".into(),
        Auth::Basic {
            username_env,
            password_env,
        } => format!("basic auth from ${username_env} / ${password_env}"),
        Auth::Bearer { token_env } => format!("bearer token from ${token_env}"),
        Auth::ApiKey {
            header, key_env, ..
        } => format!("{header} header from ${key_env}"),
        Auth::TokenLogin(t) => format!(
            "token login {} {} as ${} (token at {}, sent in {})",
            t.login.method,
            t.login.path.source(),
            t.username_env,
            t.token_pointer,
            t.header
        ),
    }
}

/// What to check when the target refuses the credentials.
fn auth_fix(profile: &Profile) -> String {
    match &profile.auth {
        Auth::None => "the target wants credentials: give the profile an [auth] section".into(),
        Auth::Basic {
            username_env,
            password_env,
        } => format!("check ${username_env} / ${password_env}"),
        Auth::Bearer { token_env } => format!("check ${token_env}"),
        Auth::ApiKey {
            header, key_env, ..
        } => format!("check ${key_env}, auth.header ({header:?}) and auth.prefix"),
        Auth::TokenLogin(_) => "the login's token was not accepted: check auth.header and \
                                auth.prefix"
            .into(),
    }
}

/// The login (token profiles); static credentials are proved by the lookups that follow.
/// False when the checks cannot go on.
async fn login(pf: &Preflight, profile: &Profile, r: &mut Report) -> Result<bool> {
    let Auth::TokenLogin(t) = &profile.auth else {
        r.note(format!(
            "auth: {} (checked by the lookups below)",
            auth_source(profile)
        ))?;
        return Ok(true);
    };
    let Err(e) = pf.sh.login().await else {
        r.pass(format!("auth.login: {}", auth_source(profile)))?;
        return Ok(true);
    };
    let req = format!("{} {}", t.login.method, t.login.path.source());
    let line = match &e {
        Error::Login(l) => match (&l.kind, l.status) {
            (LoginFailure::NoToken { pointer, instead }, _) => {
                format!("auth.token_pointer {pointer}: not in the answer to {req}{instead}")
            }
            (LoginFailure::NotFound | LoginFailure::Refused | LoginFailure::Rejected, Some(_)) => {
                let advice = l.advice().unwrap_or_default();
                format!("auth.login: {req} answered {}: {advice}", l.detail)
            }
            _ => format!("auth.login: {e}"),
        },
        _ => format!("auth.login: {e}"),
    };
    r.fail(line)?;
    Ok(false)
}

// ---- lookups ------------------------------------------------------------------------

/// A row for `key` with every other column's example, planned as a sheet row would be.
/// `action`: the action cell ("" for the profile's default).
fn planned(profile: &Arc<Profile>, key: &str, action: &str) -> Result<PlannedRow> {
    let ki = profile.key_index();
    let mut headers: Vec<String> = profile.columns.iter().map(|c| c.name.clone()).collect();
    headers.push("action".into());
    let mut cells: Vec<Cell> = profile
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| match (i == ki, &c.example) {
            (true, _) => Cell::text(key),
            (false, Some(e)) => Cell::text(e),
            (false, None) => Cell::Empty,
        })
        .collect();
    cells.push(Cell::text(action));
    let layout = Layout::new(profile, &headers, Path::new("(preflight)"))?;
    let planner = Planner::new(
        profile.clone(),
        layout,
        PlanOptions::default(),
        Default::default(),
    );
    Ok(planner.plan_at(0, Ok(RawRow { number: 2, cells })))
}

/// A key nobody has, in the first shape the key column accepts; `None` when none fits.
fn made_up_key(profile: &Arc<Profile>, prefix: &str, action: &str) -> Result<Option<PlannedRow>> {
    let n: u64 = rand::random();
    let r = format!("{:012x}", n & 0xffff_ffff_ffff);
    let digits = format!("9{:09}", n % 1_000_000_000);
    let key_col = &profile.columns[profile.key_index()];
    let key_header = &key_col.name;
    // A short form for a key column with a max_length: "epf" or "ecy" and 8 hex digits.
    let short = if prefix.ends_with("canary") {
        "ecy"
    } else {
        "epf"
    };
    let r8 = &r[..8];
    for key in [
        format!("{prefix}-{r}"),
        format!("{prefix}-{r}@example.com"),
        format!("{prefix}{r}"),
        format!("{prefix}.{r}"),
        format!("{prefix}_{r}"),
        format!("{short}{r8}"),
        format!("{short}-{r8}@example.com"),
        format!("{}{r8}", key_col.example.as_deref().unwrap_or("")),
        digits,
    ] {
        let row = planned(profile, &key, action)?;
        let key_refused = row.findings.iter().any(|f| {
            f.severity == crate::plan::Severity::Error && f.column.as_deref() == Some(key_header)
        });
        if !key_refused {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

fn lookup_spec(profile: &Profile) -> Option<&RequestSpec> {
    profile.requests.lookup.as_ref()
}

/// The row could not be planned (an example the column refuses, a required column without
/// one): what to fix.
fn example_problem(row: &PlannedRow) -> String {
    format!(
        "the columns' examples do not make a valid row ({}): give those columns an `example` \
         that passes their rules",
        row.error_message()
    )
}

/// Top-level keys of a JSON object, for "not there, but these are".
fn keys_of(v: &Value) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "none".into(),
        Value::Object(m) => m.keys().take(12).cloned().collect::<Vec<_>>().join(", "),
        Value::Array(_) => "it is a list".into(),
        _ => "it is not an object".into(),
    }
}

/// When a lookup failed: the profile key to fix, in words.
fn lookup_failure(profile: &Profile, spec: &RequestSpec, msg: &str, resp: Option<&Resp>) -> String {
    let status = resp.map(|r| r.status);
    match status {
        Some(s @ (401 | 403)) => {
            return format!(
                "auth: the lookup answered {s}: {} ({msg})",
                auth_fix(profile)
            )
        }
        Some(s) if (400..500).contains(&s) && !spec.not_found.contains(&s) => {
            return format!(
                "requests.lookup: answered {s} for a key that cannot exist, and its not_found \
                 does not list {s}: set not_found = [{s}] if that means \"no such user\", else \
                 check requests.lookup.path and query ({msg})"
            )
        }
        _ => {}
    }
    if let (Some(lp), Some(resp)) = (&spec.list, resp) {
        if msg.contains("has no list at") {
            let keys = resp
                .json()
                .map(|v| keys_of(&v))
                .unwrap_or_else(|| "not JSON".into());
            return format!("requests.lookup.list {lp}: not in the answer (keys: {keys})");
        }
    }
    format!("requests.lookup: {msg}")
}

async fn impossible_lookup(pf: &Preflight, profile: &Arc<Profile>, r: &mut Report) -> Result<()> {
    let Some(spec) = lookup_spec(profile) else {
        return r.note(
            "requests.lookup: the profile has none (updates go by key; no lookup to test)".into(),
        );
    };
    let Some(row) = made_up_key(profile, "enlist-preflight", "")? else {
        return r.note(format!(
            "requests.lookup: skipped the not-found check: no made-up key fits the rules of \
             column {}",
            profile.key
        ));
    };
    if row.job.is_none() {
        return r.fail(format!("requests.lookup: {}", example_problem(&row)));
    }
    let Some((looked, resp)) = pf.lookup(&row).await? else {
        return Ok(());
    };
    let key = &row.key;
    let status = resp.as_ref().map_or(0, |r| r.status);
    let url = row
        .job
        .as_ref()
        .and_then(|j| j.lookup.as_ref())
        .map(|req| pf.sh.net.http.url(req))
        .unwrap_or_default();
    match looked {
        Found::No => r.pass(format!(
            "requests.lookup: {} {url} answered {status} for a key that cannot exist ({key}): \
             not found, as it should",
            spec.method,
        )),
        Found::Yes(_) => {
            let fix = match &spec.list {
                Some(_) => "check requests.lookup.match: it must name the field that holds the key",
                None => {
                    "set not_found (the status the target answers for a missing user), \
                         or list and match when it answers with a list"
                }
            };
            r.fail(format!(
                "requests.lookup: answered {status} for a key that cannot exist ({key}), read \
                 as found: {fix}"
            ))
        }
        Found::Failed(msg) => r.fail(lookup_failure(profile, spec, &msg, resp.as_ref())),
    }
}

/// Which item of a list answer is the user found, for people: "item 2 of 3".
fn list_detail(spec: &RequestSpec, resp: &Resp, key: &str) -> (String, Option<Value>) {
    let (Some(lp), Some(Value::Array(items))) = (
        &spec.list,
        spec.list.as_deref().and_then(|lp| resp.json_at(lp)),
    ) else {
        return (String::new(), resp.json());
    };
    let matches = |item: &Value| match &spec.match_field {
        Some(m) => item
            .pointer(m)
            .map(crate::profile::template::value_text)
            .is_some_and(|v| spec.match_case.same(&v, key)),
        None => false,
    };
    let hit = items.iter().position(matches);
    let m = spec.match_field.as_deref().unwrap_or("?");
    match hit {
        Some(i) => (
            format!(
                "; list {lp}: {} item(s) came back, item {} has {m} = {key}",
                items.len(),
                i + 1
            ),
            items.get(i).cloned(),
        ),
        None => (
            format!(
                "; list {lp}: {} item(s) came back, none with {m} = {key}",
                items.len()
            ),
            None,
        ),
    }
}

async fn key_lookup(
    pf: &Preflight,
    profile: &Arc<Profile>,
    key: &str,
    r: &mut Report,
) -> Result<()> {
    let Some(spec) = lookup_spec(profile) else {
        return r.note(format!(
            "--key {key}: the profile has no lookup, so there is nothing to resolve"
        ));
    };
    let row = planned(profile, key, "")?;
    if row.job.is_none() {
        return r.fail(format!("--key {key}: {}", example_problem(&row)));
    }
    let Some((looked, resp)) = pf.lookup(&row).await? else {
        return Ok(());
    };
    let (detail, item) = match &resp {
        Some(resp) => list_detail(spec, resp, &row.key),
        None => (String::new(), None),
    };
    let status = resp.as_ref().map_or(0, |r| r.status);
    match looked {
        Found::Yes(Some(id)) => r.pass(format!(
            "requests.lookup {key}: found, remote id {} (answered {status}{detail})",
            value_text(&id)
        )),
        Found::Yes(None) => match &spec.remote_id {
            Some(ptr) => {
                let keys = item.as_ref().map_or_else(|| "none".into(), keys_of);
                r.fail(format!(
                    "requests.lookup.remote_id {ptr}: not in the item found for {key} (its \
                     keys: {keys}){detail}"
                ))
            }
            None => r.pass(format!(
                "requests.lookup {key}: found (the profile reads no remote id; answered \
                 {status}{detail})"
            )),
        },
        Found::No => r.fail(format!(
            "requests.lookup {key}: not found (answered {status}{detail}): check the key, or \
             requests.lookup's path, query and match"
        )),
        Found::Failed(msg) => r.fail(format!("--key {key}: {msg}")),
    }
}

// ---- canary -------------------------------------------------------------------------

async fn canary(pf: &Preflight, profile: &Arc<Profile>, r: &mut Report) -> Result<()> {
    let Some(row) = made_up_key(profile, "enlist-canary", "create")? else {
        return r.fail(format!(
            "canary: no made-up key fits the rules of column {}: nothing was created",
            profile.key
        ));
    };
    if row.job.is_none() {
        return r.fail(format!(
            "canary: {} (nothing was created)",
            example_problem(&row)
        ));
    }
    let key = row.key.clone();
    let probe = row.clone();
    let Some(o) = pf.send_row(row).await else {
        return r.fail("canary: the create was lost (an internal error)".into());
    };
    let http = o.http_status.map(|s| format!(" ({s})")).unwrap_or_default();
    if o.status != Status::Created {
        return r.fail(format!(
            "requests.create: the canary {key} ended {}{http}: {}",
            o.status.as_str(),
            o.message
        ));
    }
    let created_id = o.remote_id.clone();
    let shown = created_id
        .as_deref()
        .map(|id| format!(" (remote id {id})"))
        .unwrap_or_default();
    r.pass(format!(
        "requests.create: created the canary user {key}{shown}"
    ))?;
    if lookup_spec(profile).is_some() {
        if let Some((looked, _)) = pf.lookup(&probe).await? {
            let id = match &looked {
                Found::Yes(Some(v)) => Some(value_text(v).into_owned()),
                _ => None,
            };
            match looked {
                Found::Yes(_) if id.is_some() && created_id.is_some() && id != created_id => r
                    .fail(format!(
                        "requests.lookup.remote_id: the lookup finds the canary {key} with remote \
                         id {} but the create answered {}: check requests.create.remote_id and \
                         requests.lookup.remote_id",
                        id.unwrap_or_default(),
                        created_id.as_deref().unwrap_or_default()
                    ))?,
                Found::Yes(_) => r.pass(format!(
                    "requests.lookup: finds the canary {key} just created{shown}"
                ))?,
                Found::No => r.fail(format!(
                    "requests.lookup: does not find the canary {key} just created: check its \
                     path, query and match"
                ))?,
                Found::Failed(msg) => r.fail(format!("requests.lookup (canary {key}): {msg}"))?,
            }
        }
    }
    r.note(format!(
        "the canary user {key}{shown} was left on the target (profiles have no delete \
         request): remove it by hand"
    ))
}
