//! Plan: rows of cells become validated, rendered [`Job`]s.
//!
//! Everything that can be known without the network is decided here, before the first
//! request: which profile column each header means, whether every value is acceptable
//! (all problems of a row at once), what each row asks for, and the exact requests it
//! will send. A template mistake or a bad cell is found in `check`, not on row 40 000 of a
//! nightly run.

mod convert;
mod layout;

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::profile::template::{self, Scope, Var};
use crate::profile::{Action, Profile, RequestSpec};
use crate::source::{RawRow, RowResult};

pub use convert::convert;
pub use layout::{is_header, Layout};

/// The text put in place of a secret wherever a person or a file could see it.
pub const MASK: &str = "********";

/// The placeholder left in an update request until a lookup has found the remote id.
pub const REMOTE_ID: &str = "{{remote_id}}";

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The row will not be sent.
    Error,
    /// The row is sent, but a person should look.
    Warning,
}

/// One problem found in one row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// The header text as the sheet spells it (or the profile's name for a missing column).
    pub column: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn error(column: Option<&str>, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Error,
            column: column.map(str::to_string),
            message: message.into(),
        }
    }
    pub fn warning(column: Option<&str>, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            column: column.map(str::to_string),
            message: message.into(),
        }
    }

    /// `row 14, column extension: "12a4" is not a number`.
    pub fn describe(&self, row: u64) -> String {
        match &self.column {
            Some(c) => format!("row {row}, column {c}: {}", self.message),
            None => format!("row {row}: {}", self.message),
        }
    }
}

/// One HTTP request, rendered for one row. Paths are relative to the base URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: reqwest::Method,
    /// Path with placeholders filled in and URL-encoded; may still hold [`REMOTE_ID`].
    pub path: String,
    /// Query pairs, not yet encoded.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Request {
    /// Fills in the remote id a lookup (or a create) returned.
    pub fn with_remote_id(&self, id: &Value) -> Request {
        let text = template::value_text(id);
        let encoded = encode_path_segment(&text);
        let mut r = self.clone();
        r.path = r.path.replace(REMOTE_ID, &encoded);
        for (_, v) in r.query.iter_mut() {
            *v = v.replace(REMOTE_ID, &text);
        }
        if let Some(b) = r.body.as_mut() {
            replace_remote_id(b, id);
        }
        r
    }

    pub fn needs_remote_id(&self) -> bool {
        self.path.contains(REMOTE_ID)
            || self.query.iter().any(|(_, v)| v.contains(REMOTE_ID))
            || self.body.as_ref().is_some_and(body_has_remote_id)
    }

    /// The full URL for display (`base` may be an unresolved `$ENV` name).
    pub fn display_url(&self, base: &str) -> String {
        let mut url = format!("{}{}", base.trim_end_matches('/'), self.path);
        if !self.query.is_empty() {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(self.query.iter())
                .finish();
            url.push('?');
            url.push_str(&q);
        }
        url
    }
}

fn replace_remote_id(v: &mut Value, id: &Value) {
    match v {
        Value::String(s) if s == REMOTE_ID => *v = id.clone(),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_remote_id(x, id)),
        Value::Object(o) => o.values_mut().for_each(|x| replace_remote_id(x, id)),
        _ => {}
    }
}

fn body_has_remote_id(v: &Value) -> bool {
    match v {
        Value::String(s) => s == REMOTE_ID,
        Value::Array(a) => a.iter().any(body_has_remote_id),
        Value::Object(o) => o.values().any(body_has_remote_id),
        _ => false,
    }
}

/// Percent-encodes one path segment (user ids hold `@`, `+`, spaces, `/`).
pub fn encode_path_segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'@');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// The work for one valid row.
#[derive(Debug, Clone)]
pub struct Job {
    /// create, update or upsert (never skip).
    pub action: Action,
    /// Finds the user: before an update or upsert, and after an uncertain create attempt.
    pub lookup: Option<Request>,
    pub create: Option<Request>,
    pub update: Option<Request>,
    /// Columns needed to create the user that the row leaves empty: an upsert that finds no
    /// user fails with this rather than sending a create the server would refuse.
    pub missing_for_create: Vec<String>,
    /// SHA-256 (hex) of what the row asks the target to hold, secrets left out: the delta
    /// sync compares it with what was applied last time.
    pub fingerprint: String,
    /// Look the user up before any create: set on a resume, because the interrupted run may
    /// have applied this row without living to record it.
    pub reconcile: bool,
}

/// One data row after planning: either a job, a skip, or the reasons it is invalid.
#[derive(Debug, Clone)]
pub struct PlannedRow {
    /// Position among the data rows (0-based), the order of the outcome report.
    pub seq: u64,
    /// The spreadsheet row number.
    pub row: u64,
    /// The value of the key column ("" when missing).
    pub key: String,
    pub action: Action,
    /// The row's cells as a person sees them, in sheet column order, secrets masked.
    pub cells: Vec<String>,
    pub findings: Vec<Finding>,
    /// `None` when the row is invalid or skipped.
    pub job: Option<Job>,
    /// Already decided before execution (the journal shows it applied): the executor turns
    /// it straight into an outcome and sends nothing.
    pub settled: Option<Settled>,
}

/// The outcome of a row decided without a request (delta sync, resume).
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub status: crate::outcome::Status,
    pub message: String,
    pub remote_id: Option<String>,
}

impl PlannedRow {
    pub fn is_invalid(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// All error messages joined, for reports.
    pub fn error_message(&self) -> String {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| match &f.column {
                Some(c) => format!("{c}: {}", f.message),
                None => f.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What the planner needs besides the profile and the sheet layout.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--mode`: the action for rows without an `action` cell.
    pub mode: Option<Action>,
}

/// Keys that occur on more than one row, with all their row numbers.
pub type Duplicates = HashMap<u64, Vec<u64>>;

/// A stable 64-bit hash of a normalised key (case and surrounding space ignored).
pub fn key_hash(key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.trim().to_lowercase().hash(&mut h);
    h.finish()
}

/// First pass over a sheet: finds keys that occur on more than one row. Holds one small
/// entry per row (a 64-bit hash and a row number), then keeps only the duplicates.
pub fn find_duplicates(
    rows: impl Iterator<Item = RowResult>,
    layout: &Layout,
    profile: &Profile,
) -> Duplicates {
    let key_ci = profile.key_index();
    let mut first: HashMap<u64, u64> = HashMap::new();
    let mut dups: Duplicates = HashMap::new();
    for r in rows.flatten() {
        let Some(key) = layout.key_text_for(&r, key_ci) else {
            continue;
        };
        let h = key_hash(&key);
        match first.get(&h) {
            None => {
                first.insert(h, r.number);
            }
            Some(&row) => dups.entry(h).or_insert_with(|| vec![row]).push(r.number),
        }
    }
    dups
}

/// Turns rows into [`PlannedRow`]s. Holds the profile, the layout and the duplicate keys.
pub struct Planner {
    profile: Arc<Profile>,
    layout: Layout,
    opts: PlanOptions,
    dups: Duplicates,
    next_seq: u64,
}

/// The typed values of one row, by profile column; `None` = empty, `Some(Null)` = clear.
struct Values<'a> {
    profile: &'a Profile,
    values: &'a [Option<Value>],
    mask: bool,
    /// What `{{remote_id}}` renders as in this request.
    remote_id: bool,
}

impl Scope for Values<'_> {
    fn var(&self, name: &str) -> Var<'_> {
        if name == "remote_id" {
            return if self.remote_id {
                Var::Value(Cow::Owned(Value::String(REMOTE_ID.into())))
            } else {
                Var::Empty
            };
        }
        let Some(i) = self.profile.column_index(name) else {
            return Var::Empty;
        };
        match &self.values[i] {
            None => Var::Empty,
            Some(Value::Null) => Var::Clear,
            Some(_) if self.mask && self.profile.columns[i].secret => {
                Var::Value(Cow::Owned(Value::String(MASK.into())))
            }
            Some(v) => Var::Value(Cow::Borrowed(v)),
        }
    }
}

impl Planner {
    pub fn new(
        profile: Arc<Profile>,
        layout: Layout,
        opts: PlanOptions,
        dups: Duplicates,
    ) -> Planner {
        Planner {
            profile,
            layout,
            opts,
            dups,
            next_seq: 0,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    /// Plans one row the reader produced (or could not read).
    pub fn plan(&mut self, raw: RowResult) -> PlannedRow {
        let seq = self.next_seq;
        self.next_seq += 1;
        match raw {
            Ok(r) => self.plan_row(seq, &r),
            Err(e) => PlannedRow {
                seq,
                row: e.number,
                key: String::new(),
                action: Action::Skip,
                cells: Vec::new(),
                findings: vec![Finding::error(None, e.message)],
                job: None,
                settled: None,
            },
        }
    }

    fn plan_row(&self, seq: u64, raw: &RawRow) -> PlannedRow {
        let p = &*self.profile;
        let layout = &self.layout;
        let mut findings = Vec::new();
        let cells = layout.display_cells(p, raw);

        // The action: the row's own cell, else --mode, else the profile's default.
        let mut action = self.opts.mode.unwrap_or_else(|| p.default_action());
        if let Some(text) = layout.action_text(raw) {
            match Action::parse(&text) {
                Some(a) => action = a,
                None => findings.push(Finding::error(
                    Some(layout.action_header()),
                    format!("{text:?} is not an action; use create, update, upsert or skip"),
                )),
            }
        }

        let (mut values, broken) = self.convert_row(raw, &mut findings);
        // What the sheet itself says: an update sends only this, so a default (calling line
        // id = first name, active = true) never overwrites what the target holds.
        let given = values.clone();
        self.apply_defaults(&mut values, &broken);
        let key_idx = p.key_index();
        let key = match &values[key_idx] {
            Some(v) if !v.is_null() => template::value_text(v).into_owned(),
            _ => String::new(),
        };

        if action != Action::Skip {
            for (ci, col) in p.columns.iter().enumerate() {
                let empty = matches!(values[ci], None | Some(Value::Null));
                if !empty || broken[ci] {
                    continue;
                }
                let label = layout.label(ci, p);
                let what = if values[ci].is_some() {
                    "cannot be cleared"
                } else {
                    "is required"
                };
                if col.required || ci == key_idx {
                    findings.push(Finding::error(Some(&label), format!("{what}: fill it in")));
                } else if col.required_on_create && action == Action::Create {
                    findings.push(Finding::error(
                        Some(&label),
                        format!("{what} to create a user: fill it in"),
                    ));
                }
            }
            if let Err(why) = p.supports(action) {
                findings.push(Finding::error(None, why));
            }
            if !key.is_empty() {
                if let Some(rows) = self.dups.get(&key_hash(&key)) {
                    let others: Vec<String> = rows
                        .iter()
                        .filter(|r| **r != raw.number)
                        .map(|r| r.to_string())
                        .collect();
                    findings.push(Finding::error(
                        Some(&layout.label(key_idx, p)),
                        format!(
                            "{key:?} appears more than once in the sheet (also on row {}); keep one row per user",
                            others.join(", ")
                        ),
                    ));
                }
            }
        }

        let invalid = findings.iter().any(|f| f.severity == Severity::Error);
        let job = if invalid || action == Action::Skip {
            None
        } else {
            Some(self.job(action, &values, &given))
        };
        PlannedRow {
            seq,
            row: raw.number,
            key,
            action,
            cells,
            findings,
            job,
            settled: None,
        }
    }

    /// Converts every mapped cell, reporting all problems at once. Also returns, per
    /// column, whether a filled cell was unusable (already reported: not "required" too).
    fn convert_row(
        &self,
        raw: &RawRow,
        findings: &mut Vec<Finding>,
    ) -> (Vec<Option<Value>>, Vec<bool>) {
        let p = &*self.profile;
        let mut values: Vec<Option<Value>> = vec![None; p.columns.len()];
        let mut broken = vec![false; p.columns.len()];
        for (ci, col) in p.columns.iter().enumerate() {
            let Some(si) = self.layout.sheet_index(ci) else {
                continue;
            };
            let cell = raw.cells.get(si).unwrap_or(&crate::cell::Cell::Empty);
            match convert(col, cell, &p.clear_marker, self.layout.header(si), findings) {
                Ok(v) => values[ci] = v,
                Err(f) => {
                    broken[ci] = true;
                    findings.push(f);
                }
            }
        }
        (values, broken)
    }

    /// Fills empty columns from their defaults. Defaults may name other columns, so this
    /// runs after every cell is typed.
    fn apply_defaults(&self, values: &mut [Option<Value>], broken: &[bool]) {
        let p = &*self.profile;
        for (ci, col) in p.columns.iter().enumerate() {
            if values[ci].is_some() || broken[ci] {
                continue;
            }
            let Some(d) = &col.default else {
                continue;
            };
            let scope = Values {
                profile: p,
                values,
                mask: false,
                remote_id: false,
            };
            let text = template::interpolate(d, &scope, &|s| s.to_string());
            if let Some(text) = text {
                let cell = crate::cell::Cell::text(&text);
                let mut ignore = Vec::new();
                if let Ok(v) = convert(col, &cell, &p.clear_marker, &col.name, &mut ignore) {
                    values[ci] = v;
                }
            }
        }
    }

    /// `values`: with defaults (creates, lookups); `given`: only what the sheet says (updates).
    fn job(&self, action: Action, values: &[Option<Value>], given: &[Option<Value>]) -> Job {
        let p = &*self.profile;
        let r = &p.requests;
        let render = |spec: &Option<RequestSpec>, remote_id: bool, mask: bool| {
            let values = if remote_id { given } else { values };
            spec.as_ref().map(|s| {
                render_request(
                    s,
                    &Values {
                        profile: p,
                        values,
                        mask,
                        remote_id,
                    },
                )
            })
        };
        let (lookup, create, update) = match action {
            // A create renders the lookup too: after an attempt that may have been applied
            // (timeout, dropped connection) the executor looks the user up before resending.
            Action::Create => (
                render(&r.lookup, false, false),
                render(&r.create, false, false),
                None,
            ),
            Action::Update => (
                render(&r.lookup, false, false),
                None,
                render(&r.update, true, false),
            ),
            _ => (
                render(&r.lookup, false, false),
                render(&r.create, false, false),
                render(&r.update, true, false),
            ),
        };
        let missing_for_create = p
            .columns
            .iter()
            .zip(values)
            .filter(|(c, v)| c.required_on_create && matches!(v, None | Some(Value::Null)))
            .map(|(c, _)| c.name.clone())
            .collect();
        Job {
            action,
            lookup,
            create,
            update,
            missing_for_create,
            fingerprint: fingerprint(p, action, values),
            reconcile: false,
        }
    }

    /// Renders a row's requests again with secrets masked, for display (`--show-requests`).
    pub fn masked_requests(&self, row: &RawRow) -> Vec<(&'static str, Request)> {
        let p = &*self.profile;
        let (mut values, broken) = self.convert_row(row, &mut Vec::new());
        let given = values.clone();
        self.apply_defaults(&mut values, &broken);
        let mut out = Vec::new();
        let r = &p.requests;
        for (name, spec, rid) in [
            ("lookup", &r.lookup, false),
            ("create", &r.create, false),
            ("update", &r.update, true),
        ] {
            if let Some(s) = spec {
                let scope = Values {
                    profile: p,
                    values: if rid { &given } else { &values },
                    mask: true,
                    remote_id: rid,
                };
                out.push((name, render_request(s, &scope)));
            }
        }
        out
    }
}

/// Renders one request of the profile for one row.
pub fn render_request(spec: &RequestSpec, scope: &dyn Scope) -> Request {
    let encode = |s: &str| {
        if s == REMOTE_ID {
            s.to_string()
        } else {
            encode_path_segment(s)
        }
    };
    let path =
        template::interpolate(&spec.path, scope, &encode).unwrap_or_else(|| spec.path.clone());
    let query = spec
        .query
        .iter()
        .filter_map(|(k, v)| {
            template::interpolate(v, scope, &|s| s.to_string()).map(|v| (k.clone(), v))
        })
        .collect();
    let headers = spec
        .headers
        .iter()
        .filter_map(|(k, v)| {
            template::interpolate(v, scope, &|s| s.to_string()).map(|v| (k.clone(), v))
        })
        .collect();
    let body = spec.template.as_ref().map(|t| t.render(scope));
    Request {
        method: reqwest::Method::from_bytes(spec.method.as_bytes())
            .unwrap_or(reqwest::Method::POST),
        path,
        query,
        headers,
        body,
    }
}

/// Hash of what a row asks the target to hold: action and every non-secret value.
fn fingerprint(p: &Profile, action: Action, values: &[Option<Value>]) -> String {
    let mut h = Sha256::new();
    h.update(p.name.as_bytes());
    h.update([0]);
    h.update(action.as_str().as_bytes());
    for (c, v) in p.columns.iter().zip(values) {
        if c.secret {
            continue;
        }
        h.update([0]);
        h.update(c.name.as_bytes());
        h.update([1]);
        match v {
            None => h.update(b"-"),
            // Streamed into the hash: the same bytes as `v.to_string()`, without a String
            // per value per row.
            // (Writing a `Value` into a hasher cannot fail.)
            Some(v) => {
                let _ = serde_json::to_writer(&mut h, v);
            }
        }
    }
    hex::encode(h.finalize())
}
