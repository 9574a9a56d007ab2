//! Feeding an outcome workbook back in: `enlist run OUTCOME.xlsx --only failed,not-attempted`
//! and `enlist retry OUTCOME.xlsx`.
//!
//! The workbook is a valid input as it stands: its original columns come first, and
//! [`Layout`] recognises its `Outcome` and `Source row` columns and ignores the other report
//! columns. This module decides which rows go again, and reads the [`Origin`] a workbook
//! records. Secret cells, which the workbook shows as `********`, are filled again from that
//! origin or `--secrets-from` ([`crate::source::secrets`]); a cell still holding the mask is
//! refused by the planner (the row is invalid and says why), so a mask is never sent as a
//! password.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::outcome::Status;
use crate::plan::Layout;
use crate::source::RawRow;

/// `--only failed,not-attempted`: the outcomes whose rows are run again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlyFilter(pub Vec<Status>);

impl OnlyFilter {
    /// Parses a comma-separated list of outcomes (`failed,not-attempted`).
    pub fn parse(list: &str) -> Result<OnlyFilter> {
        let mut wanted = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match Status::parse(part) {
                Some(s) if !wanted.contains(&s) => wanted.push(s),
                Some(_) => {}
                None => {
                    return Err(Error::Usage(format!(
                        "--only: {part:?} is not an outcome; use any of {}",
                        Status::ALL.map(Status::as_str).join(", ")
                    )))
                }
            }
        }
        if wanted.is_empty() {
            return Err(Error::Usage(
                "--only needs at least one outcome, for example --only failed,not-attempted".into(),
            ));
        }
        Ok(OnlyFilter(wanted))
    }

    /// What `enlist retry` runs: failed and not-attempted rows, and invalid rows too, since a
    /// person fixes those in the workbook before retrying (an unfixed one is simply invalid
    /// again; nothing is sent for it).
    pub fn retry() -> OnlyFilter {
        OnlyFilter(vec![Status::Failed, Status::Invalid, Status::NotAttempted])
    }

    /// Refuses a sheet that is not an outcome workbook: `--only` on a plain sheet would
    /// silently run nothing.
    pub fn check_layout(&self, layout: &Layout, path: &Path) -> Result<()> {
        if layout.has_outcome_column() {
            Ok(())
        } else {
            Err(Error::input(
                path,
                "--only and retry need an outcome workbook (a sheet with an Outcome column, as \
                 enlist run writes it); this sheet has none",
            ))
        }
    }

    /// Whether the row goes again. A row with an empty `Outcome` cell (added by hand to the
    /// workbook) was never attempted, so it counts as `not-attempted`; a cell that is not an
    /// outcome keeps the row out.
    pub fn keep(&self, layout: &Layout, raw: &RawRow) -> bool {
        let status = match layout.outcome_text(raw) {
            None => Some(Status::NotAttempted),
            Some(t) => Status::parse(&t),
        };
        status.is_some_and(|s| self.0.contains(&s))
    }
}

/// The sheet a report's rows came from first, as the outcome workbook's Summary records it
/// ("Original input", "Original input SHA-256"): where `retry` finds again the secrets the
/// report masks. A run of a plain sheet records that sheet; a run of a report fed back
/// carries over what the report recorded, so a retry of a retry still finds the sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Absolute, so that a retry from another directory finds it.
    pub path: PathBuf,
    pub sha256: String,
}

/// The Summary facts that hold an [`Origin`]. Workbooks written before they existed have
/// only the input's own facts, which mean the same for a run of a plain sheet.
pub(crate) const ORIGIN_FACTS: [&str; 2] = ["Original input", "Original input SHA-256"];
const INPUT_FACTS: [&str; 2] = ["Input file", "Input SHA-256"];

/// Rows of a Summary sheet looked at for the facts (it has about thirty).
const SUMMARY_ROWS: usize = 200;

impl Origin {
    /// `path` made absolute (against the current directory), with the hash of its bytes.
    pub fn of(path: &Path, sha256: &str) -> Origin {
        Origin {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            sha256: sha256.to_string(),
        }
    }

    /// The origin a report of a run of `input` (whose bytes hash to `sha256`) records: the
    /// sheet itself, or for a report fed back, what that report recorded.
    pub fn for_report(input: &crate::input::Input, sha256: &str) -> Option<Origin> {
        if !input.layout.has_outcome_column() {
            return Some(Origin::of(input.path(), sha256));
        }
        Origin::recorded_in(input)
    }

    /// What `input`, a report fed back, records (see [`Origin::recorded`]).
    pub fn recorded_in(input: &crate::input::Input) -> Option<Origin> {
        // Only a workbook has a Summary sheet.
        input.sheet_name.as_ref()?;
        Origin::recorded(input.path(), input.spec.source.read_from.as_deref())
    }

    /// The origin an outcome workbook records on its Summary sheet; `None` for a workbook
    /// without one (a CSV report, a sheet of someone's own). `read` is where its bytes are
    /// (the run's private copy); `path` names it.
    pub fn recorded(path: &Path, read: Option<&Path>) -> Option<Origin> {
        let opts = crate::source::SourceOptions {
            sheet: Some("Summary".into()),
            read_from: read.map(Path::to_path_buf),
            ..Default::default()
        };
        // The first row of two cells (the counts' header) serves as the header: the reader
        // keeps as many cells of a row as the header has, and a fact is a label and a value.
        let pair = |cells: &[String]| cells.len() >= 2;
        let sheet = crate::source::open(path, &opts, &pair).ok()?;
        let mut facts = std::collections::HashMap::new();
        for row in sheet.rows.take(SUMMARY_ROWS).flatten() {
            let mut cells = row.cells.iter().map(|c| c.to_text());
            if let (Some(k), Some(v)) = (cells.next(), cells.next()) {
                facts.insert(k, v);
            }
        }
        [ORIGIN_FACTS, INPUT_FACTS].iter().find_map(|[p, h]| {
            let (p, h) = (facts.get(*p)?, facts.get(*h)?);
            (!p.is_empty() && !h.is_empty()).then(|| Origin {
                path: PathBuf::from(p),
                sha256: h.clone(),
            })
        })
    }
}
