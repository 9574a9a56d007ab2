//! Plan: rows of cells become validated, rendered [`Job`]s.
//!
//! Everything that can be known without the network is decided here, before the first
//! request: which profile column each header means, whether every value is acceptable
//! (all problems of a row at once), what each row asks for, and the exact requests it
//! will send. A template mistake or a bad cell is found in `check`, not on row 40 000 of a
//! nightly run.

mod convert;
mod layout;
mod steps;
pub mod text;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::outcome::{now_rfc3339, Outcome, Status};
use crate::profile::template::{self, Scope, Var};
use crate::profile::{Action, EmptyCell, Profile, RequestSpec, Semantics};
use crate::source::{RawRow, RowResult};

pub use convert::convert;
pub use layout::{is_header, Layout};
pub use steps::{steps_done_text, StepJob};

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
    /// The JSON body, already serialised (rendered once, sent as is on every attempt).
    pub body: Option<bytes::Bytes>,
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
            if let Some(replaced) = replace_remote_id(b, id) {
                *b = replaced.into();
            }
        }
        r
    }

    /// The body as a JSON value (for display).
    pub fn body_json(&self) -> Option<Value> {
        self.body
            .as_ref()
            .and_then(|b| serde_json::from_slice(b).ok())
    }

    /// Whether the body carries the remote id as a typed JSON value (a number stays a
    /// number): only an id as the target gave it may fill it, not one kept as text.
    pub fn body_needs_remote_id(&self) -> bool {
        self.body.as_deref().is_some_and(body_has_remote_id)
    }

    pub fn needs_remote_id(&self) -> bool {
        self.path.contains(REMOTE_ID)
            || self.query.iter().any(|(_, v)| v.contains(REMOTE_ID))
            || self.body.as_deref().is_some_and(body_has_remote_id)
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

/// The remote id placeholder as a whole JSON string in a rendered body: a body leaf that was
/// exactly `{{remote_id}}` takes the id's typed value (a number stays a number).
const REMOTE_ID_JSON: &[u8] = b"\"{{remote_id}}\"";

/// The body with every whole-string `"{{remote_id}}"` replaced by `id` as JSON; `None` when
/// the body has none.
fn replace_remote_id(body: &[u8], id: &Value) -> Option<Vec<u8>> {
    body_has_remote_id(body).then(|| {
        let id_json = serde_json::to_vec(id).unwrap_or_else(|_| b"null".to_vec());
        let mut out = Vec::with_capacity(body.len() + id_json.len());
        let mut last = 0;
        for at in memchr::memmem::find_iter(body, REMOTE_ID_JSON) {
            out.extend_from_slice(&body[last..at]);
            out.extend_from_slice(&id_json);
            last = at + REMOTE_ID_JSON.len();
        }
        out.extend_from_slice(&body[last..]);
        out
    })
}

fn body_has_remote_id(body: &[u8]) -> bool {
    memchr::memmem::find(body, REMOTE_ID_JSON).is_some()
}

/// What a path segment keeps as is: user ids hold `@`, `+`, spaces, `/`.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'@');

/// Percent-encodes one path segment.
pub fn encode_path_segment(s: &str) -> String {
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
    /// The row's secret cells as sent: masked in any server text about this row.
    pub secrets: Vec<String>,
    /// An upsert the interrupted run was creating with this very content when it died: a
    /// lookup that finds the user means that create was applied (no update is needed).
    pub created_in_flight: bool,
    /// The journal shows this user applied to this target by an earlier run: an update is
    /// sent straight to it, without a lookup first.
    pub known: Option<KnownUser>,
    /// The row's follow-up steps not yet done (see [`crate::profile::Step`]).
    pub steps: Vec<StepJob>,
    /// The journal shows this exact content applied (with this status, created or updated)
    /// but some of its steps not done: only those are sent, never a second create.
    pub steps_only: Option<Status>,
    /// Secret columns a `replace` update sends that the row leaves empty: such an update is
    /// not sent (it would clear the stored secret), and the row says which to fill in.
    pub missing_for_update: Vec<String>,
    /// A disable, enable or delete: the request, which may still hold [`REMOTE_ID`].
    pub lifecycle: Option<Request>,
}

/// A user the journal shows applied to the run's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownUser {
    /// The remote id the target gave the user, when a run learnt one.
    pub remote_id: Option<String>,
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
    pub status: Status,
    pub message: String,
    pub remote_id: Option<String>,
}

impl PlannedRow {
    /// The outcome of a row that is never sent (invalid or skipped).
    pub fn unsent(&self, status: Status, message: String) -> Outcome {
        Outcome {
            seq: self.seq,
            row: self.row,
            key: self.key.clone(),
            status,
            action: self.action,
            http_status: None,
            attempts: 0,
            requests: 0,
            duration_ms: 0,
            message,
            remote_id: None,
            finished_at: now_rfc3339(),
            cells: self.cells.clone(),
            fingerprint: None,
            steps: None,
            problem_columns: self.error_columns(),
        }
    }

    /// The columns the row's errors name, each once.
    fn error_columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = Vec::new();
        for f in &self.findings {
            if let (Severity::Error, Some(c)) = (f.severity, &f.column) {
                if !cols.contains(c) {
                    cols.push(c.clone());
                }
            }
        }
        cols
    }

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
    /// Compute each job's [`Job::fingerprint`] (a run with a journal needs it; `check` not).
    pub fingerprint: bool,
    /// Leave [`PlannedRow::cells`] empty (`check` without a report shows no cells): the
    /// cells' text then becomes the values without a copy.
    pub without_cells: bool,
    /// The key of the secret cells' keyed hash in the fingerprint (the state's
    /// [`crate::journal::secret_key`]): without one, secrets are left out of it entirely.
    pub secret_key: Option<SecretKey>,
}

/// The key of the keyed hash of a row's secret cells. Never printed.
#[derive(Clone)]
pub struct SecretKey(Arc<[u8; 32]>);

impl SecretKey {
    pub fn new(key: [u8; 32]) -> SecretKey {
        SecretKey(Arc::new(key))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(********)")
    }
}

/// Keys that occur on more than one row, with all their row numbers.
pub type Duplicates = HashMap<u64, Vec<u64>>;

/// A converted text value as it may be sent: the key in its one form and free of invisible
/// characters (a warning when its letters mix look-alike scripts); no text with a
/// character that reorders the display.
fn checked_text(
    v: Option<Value>,
    col: &crate::profile::Column,
    is_key: bool,
    header: &str,
    findings: &mut Vec<Finding>,
) -> Result<Option<Value>, Finding> {
    let Some(Value::String(s)) = v else {
        return Ok(v);
    };
    if !is_key {
        return match text::check_text(&s, col.secret) {
            Ok(()) => Ok(Some(Value::String(s))),
            Err(why) => Err(Finding::error(Some(header), why)),
        };
    }
    let s = match text::key_form(&s) {
        Cow::Borrowed(b) if b.len() == s.len() => s,
        other => other.into_owned(),
    };
    match text::check_key(&s) {
        Ok(warning) => {
            if let Some(w) = warning {
                findings.push(Finding::warning(Some(header), format!("{s:?} {w}")));
            }
            Ok(Some(Value::String(s)))
        }
        Err(why) => Err(Finding::error(Some(header), why)),
    }
}

/// A set of [`key_hash`]es.
pub type KeyHashes = std::collections::HashSet<u64>;

/// A key as the duplicate check and the journal compare it: outer spaces and case
/// ignored, in one Unicode form ([`text::key_form`]). Most keys are lower-case ASCII already and come back borrowed; other ASCII is
/// lower-cased byte by byte, not `char` by `char`.
pub fn normal_key(key: &str) -> Cow<'_, str> {
    let key = key.trim();
    if key.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(key)
    } else if key.is_ascii() {
        Cow::Owned(key.to_ascii_lowercase())
    } else {
        Cow::Owned(text::key_form(key).to_lowercase())
    }
}

/// A 64-bit hash of a [`normal_key`]. The same key gives the same hash within a run
/// (fixed seed); it is never stored.
pub fn key_hash(key: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(&*normal_key(key))
}

/// First pass over a sheet: the hashes of keys that occur on more than one row, and the
/// number of data rows (readable or not). Holds one 64-bit hash per distinct key (about
/// 18 MB for a million rows), nothing else.
///
/// Nothing can be planned before this pass ends, so it is split over two threads: one
/// reads the rows and hashes their keys, this one keeps the sets.
pub fn repeated_keys(
    rows: impl Iterator<Item = RowResult> + Send,
    layout: &Layout,
    profile: &Profile,
) -> (KeyHashes, u64) {
    const BATCH: usize = 4096;
    const IN_FLIGHT: usize = 4;
    let key_ci = profile.key_index();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u64>>(IN_FLIGHT);
    // Emptied batches go back to the reader: a batch freed on another thread than the one
    // that allocated it is not reused soon, and new ones would pile up (+10 MB on 1M rows).
    let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Vec<u64>>(IN_FLIGHT + 2);
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let fresh = || {
                back_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BATCH))
            };
            let mut total = 0u64;
            let mut batch = fresh();
            for r in rows {
                total += 1;
                let Some(h) = r.ok().and_then(|r| layout.key_hash_for(&r, key_ci)) else {
                    continue;
                };
                batch.push(h);
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, fresh());
                    if tx.send(full).is_err() {
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
            total
        });
        let mut seen = KeyHashes::default();
        let mut repeated = KeyHashes::default();
        for mut batch in rx {
            for &h in &batch {
                if !seen.insert(h) {
                    repeated.insert(h);
                }
            }
            batch.clear();
            let _ = back_tx.try_send(batch);
        }
        let total = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (repeated, total)
    })
}

/// Second look, only when [`repeated_keys`] found some: the row numbers of every repeated
/// key.
pub fn find_duplicates(
    rows: impl Iterator<Item = RowResult>,
    layout: &Layout,
    profile: &Profile,
    repeated: &KeyHashes,
) -> Duplicates {
    let key_ci = profile.key_index();
    let mut dups: Duplicates = HashMap::new();
    if repeated.is_empty() {
        return dups;
    }
    for r in rows.flatten() {
        if let Some(h) = layout.key_hash_for(&r, key_ci) {
            if repeated.contains(&h) {
                dups.entry(h).or_default().push(r.number);
            }
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
    /// [`Profile::supports`] for each action, asked once rather than per row.
    supports: Vec<std::result::Result<(), String>>,
}

/// The typed values of one row, by profile column; `None` = empty, `Some(Null)` = clear.
struct Values<'a> {
    profile: &'a Profile,
    values: &'a [Option<Value>],
    /// Columns filled from a default, not by the sheet: an update leaves them out.
    hide: Option<&'a [bool]>,
    /// The filled values serialised once, for the bodies (None: serialise as needed).
    json: Option<&'a RowJson>,
    mask: bool,
    /// What `{{remote_id}}` renders as in this request.
    remote_id: bool,
    /// Empty cells send what their column's `empty` rule says (requests); off while
    /// defaults are worked out, where an empty cell is just empty.
    rules: bool,
}

impl Values<'_> {
    fn column(&self, i: usize) -> Var<'_> {
        if self.hide.is_some_and(|h| h[i]) {
            return self.empty(i);
        }
        match &self.values[i] {
            None => self.empty(i),
            Some(Value::Null) => Var::Clear,
            Some(_) if self.mask && self.profile.columns[i].secret => {
                Var::Value(Cow::Owned(Value::String(MASK.into())))
            }
            Some(v) => Var::Value(Cow::Borrowed(v)),
        }
    }

    /// What column `i` sends when its cell is empty (and no default fills it).
    fn empty(&self, i: usize) -> Var<'_> {
        if !self.rules {
            return Var::Empty;
        }
        match self.profile.columns[i].empty {
            EmptyCell::Omit | EmptyCell::Default => Var::Empty,
            EmptyCell::EmptyString => Var::Value(Cow::Owned(Value::String(String::new()))),
            EmptyCell::Null => Var::Clear,
            EmptyCell::EmptyList => Var::Value(Cow::Owned(Value::Array(Vec::new()))),
        }
    }
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
        match self.profile.column_index(name) {
            Some(i) => self.column(i),
            None => Var::Empty,
        }
    }

    fn var_of(&self, name: &template::Name) -> Var<'_> {
        match name.slot {
            Some(i) if i < self.values.len() => self.column(i),
            _ => self.var(&name.text),
        }
    }

    fn json_of(&self, name: &template::Name) -> Option<&[u8]> {
        // Asked for every field of every body: decided without building a `Var`. Only the
        // row's own values were serialised: not a hidden one, not the mask (`None` sends
        // those to `var_of`, as it does an empty or cleared value).
        let (i, json) = (name.slot?, self.json?);
        if self.hide.is_some_and(|h| h[i]) || (self.mask && self.profile.columns[i].secret) {
            return None;
        }
        json.get(i)
    }
}

/// A row's filled values as JSON, serialised once and copied into every body.
struct RowJson {
    buf: Vec<u8>,
    /// Per column: where its JSON is in `buf` (empty = not filled, or cleared).
    spans: Vec<(u32, u32)>,
}

impl RowJson {
    fn new(values: &[Option<Value>]) -> RowJson {
        let mut buf = Vec::with_capacity(32 * values.len());
        let spans = values
            .iter()
            .map(|v| match v {
                Some(v) if !v.is_null() => {
                    let start = buf.len() as u32;
                    template::write_value(&mut buf, v);
                    (start, buf.len() as u32)
                }
                _ => (0, 0),
            })
            .collect();
        RowJson { buf, spans }
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        let &(a, b) = self.spans.get(i)?;
        (b > a).then(|| &self.buf[a as usize..b as usize])
    }
}

impl Planner {
    pub fn new(
        profile: Arc<Profile>,
        layout: Layout,
        opts: PlanOptions,
        dups: Duplicates,
    ) -> Planner {
        let supports = Action::ALL.iter().map(|a| profile.supports(*a)).collect();
        Planner {
            profile,
            layout,
            opts,
            dups,
            next_seq: 0,
            supports,
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
        self.plan_at(seq, raw)
    }

    /// Plans the `seq`th data row (0-based). Needs no `&mut`: rows are planned on several
    /// threads at once.
    pub fn plan_at(&self, seq: u64, raw: RowResult) -> PlannedRow {
        match raw {
            Ok(r) => self.plan_row(seq, r),
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

    fn plan_row(&self, seq: u64, mut raw: RawRow) -> PlannedRow {
        let p = &*self.profile;
        let layout = &self.layout;
        let mut findings = Vec::new();

        // The action: the row's own cell, else --mode, else the profile's default.
        let mut action = self.opts.mode.unwrap_or_else(|| p.default_action());
        if let Some(text) = layout.action_text(&raw) {
            match Action::parse(&text) {
                Some(a) => action = a,
                None => findings.push(Finding::error(
                    Some(layout.action_header()),
                    format!("{text:?} is not an action; use create, update, upsert, skip, disable, enable or delete"),
                )),
            }
        }

        let take = self.opts.without_cells;
        let (mut values, broken) = self.convert_row(&mut raw, take, &mut findings);
        // Which values came from defaults: an update sends only what the sheet itself says,
        // so a default (calling line id = first name, active = true) never overwrites what
        // the target holds.
        let defaulted = self.apply_defaults(&mut values, &broken);
        let key_idx = p.key_index();
        let key = match &values[key_idx] {
            Some(v) if !v.is_null() => template::value_text(v).into_owned(),
            _ => String::new(),
        };

        if action != Action::Skip {
            // A disable, enable or delete needs the key alone.
            let lifecycle = p.requests.lifecycle(action).is_some();
            for (ci, col) in p.columns.iter().enumerate() {
                let empty = matches!(values[ci], None | Some(Value::Null));
                if !empty || broken[ci] || (lifecycle && ci != key_idx) {
                    continue;
                }
                let label = layout.label(ci, p);
                let what = if values[ci].is_some() {
                    "cannot be cleared"
                } else {
                    "is required"
                };
                if col.required && layout.sheet_index(ci).is_none() && values[ci].is_none() {
                    // A sheet of lifecycle rows may lack it (see `Layout::absent`).
                    findings.push(Finding::error(
                        Some(label),
                        format!(
                            "the sheet has no such column, and a row that {}s needs it: add \
                             the column (a disable, enable or delete row needs only the key)",
                            action.as_str()
                        ),
                    ));
                } else if col.required || ci == key_idx {
                    findings.push(Finding::error(Some(label), format!("{what}: fill it in")));
                } else if col.required_on_create && action == Action::Create {
                    findings.push(Finding::error(
                        Some(label),
                        format!("{what} to create a user: fill it in"),
                    ));
                }
            }
            if let Err(why) = &self.supports[action as usize] {
                findings.push(Finding::error(None, why.clone()));
            }
            if !key.is_empty() && !self.dups.is_empty() {
                if let Some(rows) = self.dups.get(&key_hash(&key)) {
                    let others: Vec<String> = rows
                        .iter()
                        .filter(|r| **r != raw.number)
                        .map(|r| r.to_string())
                        .collect();
                    findings.push(Finding::error(
                        Some(layout.label(key_idx, p)),
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
            Some(self.job(action, &values, &defaulted))
        };
        PlannedRow {
            seq,
            row: raw.number,
            key,
            action,
            cells: if take {
                Vec::new()
            } else {
                layout.into_display_cells(raw)
            },
            findings,
            job,
            settled: None,
        }
    }

    /// Converts every mapped cell, reporting all problems at once. Also returns, per
    /// column, whether a filled cell was unusable (already reported: not "required" too).
    /// `take`: the cells are not needed afterwards; their text moves into the values.
    fn convert_row(
        &self,
        raw: &mut RawRow,
        take: bool,
        findings: &mut Vec<Finding>,
    ) -> (Vec<Option<Value>>, Vec<bool>) {
        let p = &*self.profile;
        self.layout.undo_report_escapes(raw);
        let mut values: Vec<Option<Value>> = vec![None; p.columns.len()];
        let mut broken = vec![false; p.columns.len()];
        let key_idx = p.key_index();
        for (ci, col) in p.columns.iter().enumerate() {
            let Some(si) = self.layout.sheet_index(ci) else {
                continue;
            };
            let cell = match raw.cells.get_mut(si) {
                Some(c) if take => Cow::Owned(std::mem::replace(c, crate::cell::Cell::Empty)),
                Some(c) => Cow::Borrowed(&*c),
                None => Cow::Owned(crate::cell::Cell::Empty),
            };
            let header = self.layout.header(si);
            match convert(col, cell, &p.clear_marker, header, findings)
                .and_then(|v| checked_text(v, col, ci == key_idx, header, findings))
            {
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
    /// runs after every cell is typed. Returns which columns were filled so.
    fn apply_defaults(&self, values: &mut [Option<Value>], broken: &[bool]) -> Vec<bool> {
        let p = &*self.profile;
        let mut defaulted = vec![false; values.len()];
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
                json: None,
                hide: None,
                mask: false,
                remote_id: false,
                rules: false,
            };
            if let Some(text) = d.fill(&scope, &|s, out| out.push_str(s)) {
                let cell = crate::cell::Cell::text(&text);
                let mut ignore = Vec::new();
                if let Ok(v) = convert(
                    col,
                    Cow::Owned(cell),
                    &p.clear_marker,
                    &col.name,
                    &mut ignore,
                ) {
                    defaulted[ci] = v.is_some();
                    values[ci] = v;
                }
            }
        }
        defaulted
    }

    /// `values` with defaults (creates, lookups); a `merge` update leaves out the
    /// `defaulted` ones (except columns whose `empty` is `default`).
    fn job(&self, action: Action, values: &[Option<Value>], defaulted: &[bool]) -> Job {
        let p = &*self.profile;
        if let Some(spec) = p.requests.lifecycle(action) {
            return lifecycle_job(p, action, spec, values);
        }
        let r = &p.requests;
        let json = RowJson::new(values);
        let hidden = self.update_hides(defaulted);
        let render = |spec: &Option<RequestSpec>, remote_id: bool, mask: bool| {
            spec.as_ref().map(|s| {
                render_request(
                    s,
                    &Values {
                        profile: p,
                        values,
                        json: Some(&json),
                        hide: if remote_id { hidden.as_deref() } else { None },
                        mask,
                        remote_id,
                        rules: true,
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
            fingerprint: if self.opts.fingerprint {
                fingerprint(p, action, values, self.opts.secret_key.as_ref())
            } else {
                String::new()
            },
            reconcile: false,
            secrets: p
                .columns
                .iter()
                .zip(values)
                .filter(|(c, _)| c.secret)
                .filter_map(|(_, v)| v.as_ref())
                .map(|v| template::value_text(v).into_owned())
                .filter(|t| !t.trim().is_empty())
                .collect(),
            created_in_flight: false,
            known: None,
            steps: steps::render(p, values, &json, self.opts.secret_key.as_ref()),
            steps_only: None,
            lifecycle: None,
            missing_for_update: match &r.update {
                Some(u) if u.semantics == Semantics::Replace && action != Action::Create => p
                    .columns
                    .iter()
                    .zip(values)
                    // `<clear>` (null) asks to blank it on purpose: sent as asked.
                    .filter(|(c, v)| c.secret && v.is_none())
                    .filter(|(c, _)| u.template.as_ref().is_some_and(|t| t.uses(&c.name)))
                    .map(|(c, _)| c.name.clone())
                    .collect(),
                _ => Vec::new(),
            },
        }
    }

    /// Which defaulted columns an update leaves out: none for a `replace` update (the body
    /// is the whole user), else all but those whose `empty` is `default`. `None` when it
    /// leaves out nothing.
    fn update_hides(&self, defaulted: &[bool]) -> Option<Vec<bool>> {
        let p = &*self.profile;
        let replace = p
            .requests
            .update
            .as_ref()
            .is_some_and(|u| u.semantics == Semantics::Replace);
        if replace || !defaulted.iter().any(|d| *d) {
            return None;
        }
        Some(
            p.columns
                .iter()
                .zip(defaulted)
                .map(|(c, d)| *d && c.empty != EmptyCell::Default)
                .collect(),
        )
    }

    /// Renders a row's requests again with secrets masked, for display (`--show-requests`).
    pub fn masked_requests(&self, row: &RawRow) -> Vec<(&'static str, Request)> {
        let p = &*self.profile;
        let (mut values, broken) = self.convert_row(&mut row.clone(), false, &mut Vec::new());
        let defaulted = self.apply_defaults(&mut values, &broken);
        let hidden = self.update_hides(&defaulted);
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
                    values: &values,
                    json: None,
                    hide: if rid { hidden.as_deref() } else { None },
                    mask: true,
                    remote_id: rid,
                    rules: true,
                };
                out.push((name, render_request(s, &scope)));
            }
        }
        out
    }
}

/// The job of a disable, enable or delete: its request, named by the key alone (the
/// profile's loader allows no other column there), and the lookup that finds the remote id
/// when the journal does not know it.
fn lifecycle_job(p: &Profile, action: Action, spec: &RequestSpec, values: &[Option<Value>]) -> Job {
    let scope = |remote_id| Values {
        profile: p,
        values,
        json: None,
        hide: None,
        mask: false,
        remote_id,
        rules: true,
    };
    Job {
        action,
        lookup: p
            .requests
            .lookup
            .as_ref()
            .map(|l| render_request(l, &scope(false))),
        create: None,
        update: None,
        missing_for_create: Vec::new(),
        fingerprint: String::new(),
        reconcile: false,
        secrets: Vec::new(),
        created_in_flight: false,
        known: None,
        steps: Vec::new(),
        steps_only: None,
        missing_for_update: Vec::new(),
        lifecycle: Some(render_request(spec, &scope(true))),
    }
}

/// A user who is not a row of the sheet (a leaver), to `action` (disable, enable or delete:
/// the profile has its request), with what the journal knows of it. `seq` follows the
/// sheet's rows; the row number is 0 (no source row).
pub fn leaver_row(
    p: &Profile,
    seq: u64,
    key: &str,
    action: Action,
    known: Option<KnownUser>,
) -> Option<PlannedRow> {
    let spec = p.requests.lifecycle(action)?;
    let mut values = vec![None; p.columns.len()];
    values[p.key_index()] = Some(Value::String(key.to_string()));
    let mut job = lifecycle_job(p, action, spec, &values);
    job.known = known;
    Some(PlannedRow {
        seq,
        row: 0,
        key: key.to_string(),
        action,
        cells: Vec::new(),
        findings: Vec::new(),
        job: Some(job),
        settled: None,
    })
}

/// Renders one request of the profile for one row.
pub fn render_request(spec: &RequestSpec, scope: &dyn Scope) -> Request {
    let segment = |s: &str, out: &mut String| {
        if s == REMOTE_ID {
            out.push_str(s)
        } else {
            out.extend(percent_encoding::utf8_percent_encode(s, SEGMENT))
        }
    };
    let as_is = |s: &str, out: &mut String| out.push_str(s);
    let path = match spec.path.as_static() {
        Some(p) => p.to_string(),
        None => spec
            .path
            .fill(scope, &segment)
            .unwrap_or_else(|| spec.path.source().to_string()),
    };
    let pairs = |list: &[(String, template::Text)]| {
        list.iter()
            .filter_map(|(k, v)| v.fill(scope, &as_is).map(|v| (k.clone(), v)))
            .collect()
    };
    let body = spec
        .template
        .as_ref()
        .map(|t| bytes::Bytes::from(t.render(scope)));
    Request {
        method: spec.method.clone(),
        path,
        query: pairs(&spec.query),
        headers: pairs(&spec.headers),
        body,
    }
}

/// Hash of what a row asks the target to hold: action and every non-secret value, and,
/// with a key, the keyed hash (HMAC-SHA256) of the filled secret cells, so that a changed
/// password changes the fingerprint while what is stored reveals nothing of it. A row
/// whose secret cells are all empty hashes as it would without a key.
fn fingerprint(
    p: &Profile,
    action: Action,
    values: &[Option<Value>],
    key: Option<&SecretKey>,
) -> String {
    let mut h = Sha256::new();
    h.update(p.name.as_bytes());
    h.update([0]);
    h.update(action.as_str().as_bytes());
    for (c, v) in p.columns.iter().zip(values) {
        if c.secret || p.is_step_only(&c.name) {
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
    if let Some(key) = key {
        use hmac::Mac;
        // A secret only steps send is left to the steps' own journal ids.
        let secrets = p
            .columns
            .iter()
            .zip(values)
            .filter(|(c, _)| c.secret && !p.is_step_only(&c.name));
        if secrets.clone().any(|(_, v)| v.is_some()) {
            // HMAC takes a key of any length: a 32-byte one cannot be refused.
            if let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(&key.0[..]) {
                for (c, v) in secrets {
                    mac.update(c.name.as_bytes());
                    mac.update(&[1]);
                    match v {
                        None => mac.update(b"-"),
                        Some(v) => mac.update(&serde_json::to_vec(v).unwrap_or_default()),
                    }
                    mac.update(&[0]);
                }
                h.update([2]);
                h.update(mac.finalize().into_bytes());
            }
        }
    }
    hex_text(&h.finalize())
}

/// Bytes (a SHA-256 digest, say) as lower-case hex. `hex::encode` builds its String a
/// `char` at a time, which cost more than hashing the row; this fills one buffer.
pub fn hex_text(bytes: &[u8]) -> String {
    let mut out = vec![0u8; 2 * bytes.len()];
    // The buffer is exactly twice the input: encoding cannot fail, and hex is ASCII.
    let _ = hex::encode_to_slice(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}
