//! What happened to each row: the vocabulary shared by the executor, the journal and the
//! reporters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::profile::Action;

/// How a row ended. Every input row ends as exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Created,
    Updated,
    /// A create found the user already there (and the row did not ask for an update).
    Exists,
    /// The journal shows this content was already applied (delta sync): nothing sent.
    Unchanged,
    /// The row asked to be skipped.
    Skipped,
    /// The row broke a rule; nothing was sent.
    Invalid,
    /// Sent, and the target refused it or never answered in time.
    Failed,
    /// The run stopped before this row was sent.
    NotAttempted,
    /// Disabled as a leaver before, back in the sheet: enabled again.
    ReEnabled,
    /// Locked out (a leaver, or a row asking for it).
    Disabled,
    /// Removed (a leaver disabled long enough, or a row asking for it).
    Deleted,
    /// A leaver on the protect list: never touched.
    Protected,
    /// A leaver not acted on because a safety guard tripped (over the cap, a bad sheet).
    Held,
}

impl Status {
    pub const ALL: [Status; 13] = [
        Status::Created,
        Status::Updated,
        Status::Exists,
        Status::Unchanged,
        Status::Skipped,
        Status::Invalid,
        Status::Failed,
        Status::NotAttempted,
        Status::ReEnabled,
        Status::Disabled,
        Status::Deleted,
        Status::Protected,
        Status::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Updated => "updated",
            Status::Exists => "exists",
            Status::Unchanged => "unchanged",
            Status::Skipped => "skipped",
            Status::Invalid => "invalid",
            Status::Failed => "failed",
            Status::NotAttempted => "not-attempted",
            Status::ReEnabled => "re-enabled",
            Status::Disabled => "disabled",
            Status::Deleted => "deleted",
            Status::Protected => "protected",
            Status::Held => "held",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether the row ended well (the run may exit 0).
    pub fn is_ok(self) -> bool {
        !matches!(
            self,
            Status::Invalid | Status::Failed | Status::NotAttempted | Status::Held
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one input row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Position among the data rows (0-based): the report's order.
    pub seq: u64,
    /// The spreadsheet row number.
    pub row: u64,
    pub key: String,
    pub status: Status,
    pub action: Action,
    /// The HTTP status of the last response, if any.
    pub http_status: Option<u16>,
    /// Sends of the row's own request, its create or update (1 when the first send
    /// succeeded; 0 when none was sent). A row that ends on another request (a conflict
    /// answered by an update) counts the last one's sends.
    pub attempts: u32,
    /// Every HTTP request the row caused: its own, lookups and follow-up steps (logins
    /// are the run's, not a row's).
    #[serde(default)]
    pub requests: u32,
    pub duration_ms: u64,
    /// What happened, in words; the server's error message for failures.
    pub message: String,
    /// The target's id for the user.
    pub remote_id: Option<String>,
    /// RFC 3339 UTC time the row finished.
    pub finished_at: String,
    /// The original cells, secrets masked, in sheet column order.
    pub cells: Vec<String>,
    /// What was applied (delta sync), for rows that reached the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// What the row's follow-up steps did, for rows whose profile has steps that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Box<StepLog>>,
    /// The headers (as the sheet spells them) of the cells an invalid row's problems are
    /// about: the outcome workbook highlights those cells. Only the workbook shows it.
    #[serde(skip)]
    pub problem_columns: Vec<String>,
}

/// What a row's follow-up steps (`[[steps]]`) did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// How the row's own request ended before its steps ran (created or updated; on a
    /// re-run that sends only missing steps, what the journal had). The journal records
    /// the user as this even when a step then failed: the user exists, and a re-run goes
    /// straight to the missing steps.
    pub base: Option<Status>,
    /// The step requests done in this run, as `name` or `name: item`.
    pub done: Vec<String>,
    /// Their journal ids (see [`crate::plan::StepJob::id`]).
    #[serde(skip)]
    pub ids: Vec<String>,
    /// The step request that failed, as `step 'name' failed for 'item': why`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The figures of a whole run, for the summary line and the Summary sheet.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub counts: BTreeMap<Status, u64>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_secs: f64,
    /// Requests per second actually achieved.
    pub achieved_rate: f64,
    pub requests: u64,
    pub retries: u64,
    pub throttled_429: u64,
    /// Rows in flight at the end (the concurrency the run settled at).
    pub settled_concurrency: u64,
    /// Requests per second the rate gate allowed at the end (the rate the run settled at).
    pub settled_rate: f64,
    pub profile: String,
    /// Base URL without credentials.
    pub base_url: String,
    pub input_file: String,
    pub input_sha256: String,
    pub version: String,
    /// The command line with secrets masked.
    pub command_line: String,
    /// Rows skipped because the journal shows them applied already.
    pub unchanged: u64,
    pub interrupted: bool,
}

impl RunSummary {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn count(&self, s: Status) -> u64 {
        self.counts.get(&s).copied().unwrap_or(0)
    }

    /// True when no row failed, was invalid or was left unsent.
    pub fn all_ok(&self) -> bool {
        self.counts.iter().all(|(s, n)| s.is_ok() || *n == 0)
    }

    /// `settled at 38 in flight, 142 requests/s (limit 150/s); 3 × 429`: the rows in
    /// flight and the rate limit at the end, and the rate the whole run achieved.
    pub fn pace(&self) -> String {
        format!(
            "settled at {} in flight, {:.0} requests/s (limit {:.0}/s); {} × 429",
            self.settled_concurrency, self.achieved_rate, self.settled_rate, self.throttled_429
        )
    }

    /// One line a scheduler can parse: `enlist: created=3 updated=1 ... exit=0`.
    pub fn line(&self) -> String {
        let parts: Vec<String> = Status::ALL
            .iter()
            .map(|s| format!("{}={}", s.as_str(), self.count(*s)))
            .collect();
        format!(
            "enlist summary: rows={} {} requests={} retries={} throttled={} seconds={:.1}",
            self.total(),
            parts.join(" "),
            self.requests,
            self.retries,
            self.throttled_429,
            self.duration_secs
        )
    }
}

/// Where finished outcomes go (a JSON-lines file, the outcome workbook, the journal).
/// The collector owns every sink; outcomes arrive in completion order, not input order.
pub trait OutcomeSink: Send {
    fn record(&mut self, outcome: &Outcome) -> crate::error::Result<()>;
    /// Records outcomes in the order given. The collector hands them over as they
    /// arrive, a batch at a time; a sink that pays a fixed price per call (the journal
    /// finds its prepared statement) pays it once per batch.
    fn record_all(&mut self, outcomes: &[Outcome]) -> crate::error::Result<()> {
        outcomes.iter().try_for_each(|o| self.record(o))
    }
    /// Called by the collector at least every [`crate::collect::TICK`], outcomes or not:
    /// a sink that holds outcomes back (a transaction, a buffer) writes out those that
    /// have waited long enough, so a row is on disk soon after it finished even when the
    /// next rows are slow to come. An error here is a sink that cannot write.
    fn tick(&mut self) -> crate::error::Result<()> {
        Ok(())
    }
    /// Called once, after the last outcome.
    fn finish(&mut self, summary: &RunSummary) -> crate::error::Result<()>;
    /// Called instead of [`OutcomeSink::finish`] when the run could not start (no row was
    /// sent): a login that failed, a bad CA file.
    fn abandon(&mut self) {}
}
