//! Feeding an outcome workbook back in: `enlist run OUTCOME.xlsx --only failed,not-attempted`
//! and `enlist retry OUTCOME.xlsx`.
//!
//! The workbook is a valid input as it stands: its original columns come first, and
//! [`Layout`] recognises its `Outcome` and `Source row` columns and ignores the other report
//! columns. This module decides which rows go again. Secret columns, which the workbook shows
//! as `********`, are refused by the planner (a row holding the mask is invalid and says to
//! supply the secret again), so a mask is never sent as a password.

use std::path::Path;

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
