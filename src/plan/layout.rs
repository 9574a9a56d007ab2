//! Which profile column each header of the sheet means.

use std::path::Path;

use crate::cell::Cell;
use crate::error::{Error, Result};
use crate::plan::MASK;
use crate::profile::{normalize_header, Action, Profile};
use crate::source::RawRow;

/// Headers of an outcome workbook fed back as input; they are not the user's data.
const REPORT_HEADERS: &[&str] = &[
    "outcome",
    "httpstatus",
    "attempts",
    "requests",
    "durationms",
    "message",
    "remoteid",
    "finishedat",
    "sourcerow",
];

/// The mapping between a sheet's columns and a profile's columns.
#[derive(Debug, Clone)]
pub struct Layout {
    headers: Vec<String>,
    /// For each profile column, the sheet column that carries it.
    by_profile: Vec<Option<usize>>,
    /// For each sheet column: is it a secret column (masked in every output)?
    secret: Vec<bool>,
    action_col: Option<usize>,
    outcome_col: Option<usize>,
    source_row_col: Option<usize>,
    /// Sheet headers the profile does not know (ignored, with a warning).
    pub unknown: Vec<String>,
    /// Required columns the sheet lacks, each described (with the closest header found):
    /// allowed only in a sheet with an action column, whose disable, enable and delete
    /// rows need the key alone; a row that creates or updates is invalid without them.
    pub absent: Vec<String>,
}

/// Decides whether a row of cells is the header row for `profile`: at least two of its
/// cells name profile columns (titles and instructions above the header do not).
pub fn is_header(profile: &Profile, cells: &[String]) -> bool {
    let hits = cells
        .iter()
        .filter(|c| profile.match_header(c).is_some() || normalize_header(c) == "action")
        .count();
    hits >= 2 || (hits == 1 && profile.columns.len() == 1)
}

impl Layout {
    /// Maps `headers` onto `profile`, refusing a sheet that lacks a required column (but
    /// see [`Layout::absent`]).
    pub fn new(profile: &Profile, headers: &[String], path: &Path) -> Result<Layout> {
        let mut by_profile = vec![None; profile.columns.len()];
        let mut secret = vec![false; headers.len()];
        let mut action_col = None;
        let mut outcome_col = None;
        let mut source_row_col = None;
        let mut unknown = Vec::new();
        for (si, h) in headers.iter().enumerate() {
            let norm = normalize_header(h);
            if norm.is_empty() {
                continue;
            }
            if let Some(ci) = profile.match_header(h) {
                if let Some(prev) = by_profile[ci] {
                    return Err(Error::input(
                        path,
                        format!(
                            "columns {:?} and {:?} both mean {}; keep one of them",
                            headers[prev], h, profile.columns[ci].name
                        ),
                    ));
                }
                by_profile[ci] = Some(si);
                secret[si] = profile.columns[ci].secret;
            } else if norm == "action" {
                action_col = Some(si);
            } else if norm == "outcome" {
                outcome_col = Some(si);
            } else if norm == "sourcerow" {
                source_row_col = Some(si);
            } else if !REPORT_HEADERS.contains(&norm.as_str()) {
                unknown.push(h.clone());
            }
        }
        let missing: Vec<usize> = profile
            .columns
            .iter()
            .enumerate()
            .filter(|(ci, c)| {
                (c.required || *ci == profile.key_index())
                    && c.default.is_none()
                    && by_profile[*ci].is_none()
            })
            .map(|(ci, _)| ci)
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            for ci in &missing {
                let col = &profile.columns[*ci];
                let want = normalize_header(&col.name);
                let closest = unknown
                    .iter()
                    .map(|h| (strsim::jaro_winkler(&normalize_header(h), &want), h))
                    .filter(|(score, _)| *score > 0.7)
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                parts.push(match closest {
                    Some((_, h)) => format!("{} (the closest header found is {h:?})", col.name),
                    None => col.name.clone(),
                });
            }
        }
        // A sheet of disable, enable and delete rows needs only the key and the action.
        let key_only = action_col.is_some()
            && by_profile[profile.key_index()].is_some()
            && [Action::Disable, Action::Enable, Action::Delete]
                .iter()
                .any(|a| profile.requests.lifecycle(*a).is_some());
        if !missing.is_empty() && !key_only {
            return Err(Error::input(
                path,
                format!(
                    "the sheet lacks required column{} for profile {}: {}. Headers found: {}. Rename the header \
                     (any of the names in `enlist profiles show {}` works) or add the column; no row was processed.",
                    if missing.len() > 1 { "s" } else { "" },
                    profile.name,
                    parts.join(", "),
                    headers.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>().join(", "),
                    profile.name,
                ),
            ));
        }
        Ok(Layout {
            headers: headers.to_vec(),
            by_profile,
            secret,
            action_col,
            outcome_col,
            source_row_col,
            unknown,
            absent: parts,
        })
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The sheet column index that carries profile column `ci`.
    pub fn sheet_index(&self, ci: usize) -> Option<usize> {
        self.by_profile[ci]
    }

    pub fn header(&self, si: usize) -> &str {
        self.headers.get(si).map(String::as_str).unwrap_or("")
    }

    /// The name to use for profile column `ci` in messages: the sheet's header if present.
    pub fn label<'a>(&'a self, ci: usize, profile: &'a Profile) -> &'a str {
        match self.by_profile[ci] {
            Some(si) => &self.headers[si],
            None => &profile.columns[ci].name,
        }
    }

    /// Is sheet column `si` a secret?
    pub fn is_secret(&self, si: usize) -> bool {
        self.secret.get(si).copied().unwrap_or(false)
    }

    pub fn action_header(&self) -> &str {
        self.action_col.map(|i| self.header(i)).unwrap_or("action")
    }

    pub fn has_outcome_column(&self) -> bool {
        self.outcome_col.is_some()
    }

    fn text_at(raw: &RawRow, i: Option<usize>) -> Option<String> {
        let c = raw.cells.get(i?)?;
        (!c.is_empty()).then(|| c.to_string())
    }

    /// The row's `action` cell, if filled.
    pub fn action_text(&self, raw: &RawRow) -> Option<String> {
        Self::text_at(raw, self.action_col)
    }

    /// An outcome report fed back as input: a text cell that the CSV report wrote with a
    /// leading `'` (so that a spreadsheet would not run it as a formula: `'+4930123`, and
    /// `''=x` for a cell that was `'=x`) is read as the value it escapes.
    pub fn undo_report_escapes(&self, raw: &mut RawRow) {
        if self.outcome_col.is_none() {
            return;
        }
        for cell in &mut raw.cells {
            if let Cell::Text(t) = cell {
                let unquoted = t.trim_start_matches('\'');
                if unquoted.len() < t.len()
                    && matches!(unquoted.as_bytes().first(), Some(b'=' | b'+' | b'-' | b'@'))
                {
                    *cell = Cell::text(&t[1..]);
                }
            }
        }
    }

    /// The row's `Outcome` cell (an outcome workbook fed back as input).
    pub fn outcome_text(&self, raw: &RawRow) -> Option<String> {
        Self::text_at(raw, self.outcome_col)
    }

    /// The row's `Source row` cell (an outcome workbook fed back as input).
    pub fn source_row(&self, raw: &RawRow) -> Option<u64> {
        Self::text_at(raw, self.source_row_col)?.parse().ok()
    }

    /// The [`key_hash`](super::key_hash) of the row's key cell, if filled (for the
    /// duplicate pass; text cells are hashed without a copy).
    pub fn key_hash_for(&self, raw: &RawRow, key_ci: usize) -> Option<u64> {
        match raw.cells.get(self.by_profile[key_ci]?)? {
            Cell::Empty => None,
            Cell::Text(t) => Some(super::key_hash(t)),
            c => Some(super::key_hash(&c.to_text())),
        }
    }

    /// The row's cells as a person sees them, one per header, secrets masked. Takes the
    /// row: text cells become the strings without a copy.
    pub fn into_display_cells(&self, raw: RawRow) -> Vec<String> {
        let mut cells: Vec<String> = raw
            .cells
            .into_iter()
            .take(self.headers.len())
            .enumerate()
            .map(|(si, c)| match c {
                Cell::Empty => String::new(),
                _ if self.is_secret(si) => MASK.to_string(),
                Cell::Text(t) => t.into_string(),
                c => c.to_text(),
            })
            .collect();
        cells.resize(self.headers.len(), String::new());
        cells
    }
}
