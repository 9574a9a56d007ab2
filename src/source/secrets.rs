//! Secrets for the rows of a report fed back as input (`enlist retry OUTCOME.xlsx`).
//!
//! A report never holds a secret: its secret cells show the mask. So that a retry can still
//! create users whose create needs one, each masked cell of a row that goes again is taken
//! from where the secret still is:
//! - `--secrets-from FILE`: a sheet with the key column and secret columns, matched by key;
//! - else the original input the report records ([`Origin`]: path and SHA-256), when it is
//!   still there and unchanged, matched by source row *and* key: a row is never given
//!   another row's secret because rows moved or were edited.
//!
//! A masked cell neither source fills keeps the mask: the planner refuses the row (invalid,
//! nothing sent) and [`SecretFill::explain`] says why in its message. The secrets are held
//! in memory for the run and put into the rows as they are read; nothing here writes them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::cell::Cell;
use crate::error::{Error, Result};
use crate::input::Input;
use crate::plan::{normal_key, Finding, PlannedRow, MASK};
use crate::profile::Profile;
use crate::report::feedback::Origin;
use crate::source::spool::PrivateCopy;
use crate::source::{RawRow, SourceOptions};

/// The part of the planner's message that marks a cell holding the mask.
pub const MASK_HELD: &str = "holds the mask from an outcome report";

/// The masked secret cells of the fed-back rows, filled where a source has them.
pub struct SecretFill {
    /// By the report's row number: (sheet column, secret cell) to put in place of the mask.
    fills: HashMap<u64, Vec<(usize, Cell)>>,
    /// By the report's row number: (header, why) per cell still masked.
    missing: BTreeMap<u64, Vec<(String, String)>>,
}

impl std::fmt::Debug for SecretFill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFill")
            .field("rows_filled", &self.fills.len())
            .field("rows_missing", &self.missing.len())
            .finish()
    }
}

/// A row of the report whose secret cells hold the mask.
struct Wanted {
    row: u64,
    source_row: Option<u64>,
    /// Its key as [`normal_key`] makes it.
    key: String,
    /// (sheet column, profile column) of each masked cell.
    cells: Vec<(usize, usize)>,
}

/// One row of a sheet that holds secrets: its key and its secret cells by profile column.
struct SecretRow {
    key: String,
    cells: Vec<(usize, Cell)>,
}

impl SecretRow {
    /// The secret of profile column `ci`, if the row has one (not empty, not the mask).
    fn get(&self, ci: usize) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|(c, cell)| *c == ci && !cell.is_empty() && !holds_mask(cell))
            .map(|(_, cell)| cell)
    }
}

fn holds_mask(cell: &Cell) -> bool {
    cell.to_text().trim() == MASK
}

fn key_of(cell: Option<&Cell>) -> String {
    cell.map(|c| normal_key(&c.to_text()).into_owned())
        .unwrap_or_default()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Reads `path` (its bytes from `read`): the key and the secret cells of every row `want`
/// takes (by row number and key), with the row number.
fn read_rows(
    profile: &Profile,
    path: &Path,
    read: &Path,
    want: impl Fn(u64, &str) -> bool,
) -> Result<Vec<(u64, SecretRow)>> {
    let key_ci = profile.key_index();
    let is_secret = |ci: &usize| profile.columns[*ci].secret;
    let probe = |cells: &[String]| {
        let cis: Vec<usize> = cells
            .iter()
            .filter_map(|c| profile.match_header(c))
            .collect();
        cis.contains(&key_ci) && cis.iter().any(is_secret)
    };
    let opts = SourceOptions {
        read_from: Some(read.to_path_buf()),
        ..SourceOptions::default()
    };
    let sheet = crate::source::open(path, &opts, &probe)?;
    let by_sheet: Vec<Option<usize>> = sheet
        .headers
        .iter()
        .map(|h| profile.match_header(h))
        .collect();
    let key_si = by_sheet.iter().position(|c| *c == Some(key_ci));
    let secret_si: Vec<(usize, usize)> = by_sheet
        .iter()
        .enumerate()
        .filter_map(|(si, ci)| ci.filter(is_secret).map(|ci| (si, ci)))
        .collect();
    let Some(key_si) = key_si.filter(|_| !secret_si.is_empty()) else {
        return Err(Error::input(path, needs_columns(profile)));
    };
    let mut out = Vec::new();
    // Rows the reader could not read hold no secret to take.
    for row in sheet.rows.flatten() {
        let key = key_of(row.cells.get(key_si));
        if key.is_empty() || !want(row.number, &key) {
            continue;
        }
        let cells = secret_si
            .iter()
            .filter_map(|(si, ci)| row.cells.get(*si).map(|c| (*ci, c.clone())))
            .collect();
        out.push((row.number, SecretRow { key, cells }));
    }
    Ok(out)
}

/// What a secrets sheet needs, for messages.
fn needs_columns(profile: &Profile) -> String {
    let secrets: Vec<&str> = profile
        .columns
        .iter()
        .filter(|c| c.secret)
        .map(|c| c.name.as_str())
        .collect();
    format!(
        "a secrets sheet needs a header row with the key column {} and the secret column{} {}",
        profile.columns[profile.key_index()].name,
        if secrets.len() == 1 { "" } else { "s" },
        secrets.join(", ")
    )
}

/// The original input's rows by row number, or why it cannot be used.
type Original = std::result::Result<(String, HashMap<u64, SecretRow>), String>;

/// Reads the original input's rows `rows`, if it is still there (at its path, or beside
/// the report under its name) and its bytes are those the report was made from.
fn original(profile: &Profile, origin: &Origin, report: &Path, rows: &HashSet<u64>) -> Original {
    let name = file_name(&origin.path);
    let beside = report
        .parent()
        .map(|d| d.join(&name))
        .unwrap_or_else(|| PathBuf::from(&name));
    let Some(path) = [origin.path.clone(), beside]
        .into_iter()
        .find(|p| p.is_file())
    else {
        return Err(format!(
            "the original input {} is not there any more",
            origin.path.display()
        ));
    };
    let copy =
        PrivateCopy::of(&path).map_err(|e| format!("the original input cannot be read: {e}"))?;
    if !copy.sha256().eq_ignore_ascii_case(&origin.sha256) {
        return Err(format!(
            "the original input {name} changed since the run (SHA-256 differs)"
        ));
    }
    let found = read_rows(profile, &path, copy.path(), |n, _| rows.contains(&n))
        .map_err(|e| format!("the original input cannot be read: {e}"))?;
    Ok((name, found.into_iter().collect()))
}

/// Where the secrets are looked for.
struct Sources {
    /// `--secrets-from`: its name and its rows by key (`None`: the key is on two rows).
    file: Option<(String, HashMap<String, Option<SecretRow>>)>,
    original: Original,
}

impl Sources {
    /// The secret of profile column `ci` (headed `header`) for the row, or why there is
    /// none: `--secrets-from` first, then the original input.
    fn secret(&self, w: &Wanted, ci: usize, header: &str) -> std::result::Result<&Cell, String> {
        let mut why = Vec::new();
        if let Some((name, by_key)) = &self.file {
            match by_key.get(&w.key) {
                Some(Some(r)) => match r.get(ci) {
                    Some(cell) => return Ok(cell),
                    None => why.push(format!("{name} has no {header} for {:?}", w.key)),
                },
                Some(None) => why.push(format!("{:?} is on more than one row of {name}", w.key)),
                None => why.push(format!("{name} has no row with key {:?}", w.key)),
            }
        }
        self.in_original(w, ci, header).map_err(|e| {
            why.push(e);
            why.join("; ")
        })
    }

    fn in_original(
        &self,
        w: &Wanted,
        ci: usize,
        header: &str,
    ) -> std::result::Result<&Cell, String> {
        let (name, rows) = self.original.as_ref().map_err(String::clone)?;
        let n = w
            .source_row
            .ok_or_else(|| "the row has no Source row to find it by".to_string())?;
        let r = rows
            .get(&n)
            .ok_or_else(|| format!("{name} has no user on row {n}"))?;
        if r.key != w.key {
            return Err(format!("row {n} of {name} is {:?}, not {:?}", r.key, w.key));
        }
        r.get(ci)
            .ok_or_else(|| format!("row {n} of {name} has no {header} either"))
    }
}

impl SecretFill {
    /// For an input that is a report fed back (it has an Outcome column): the secrets of
    /// the rows `keep` takes whose secret cells hold the mask. `None` when no such row.
    /// Fails only on a `--secrets-from` file that cannot be used.
    pub fn prepare(
        input: &Input,
        keep: &dyn Fn(&RawRow) -> bool,
        secrets_from: Option<&Path>,
    ) -> Result<Option<SecretFill>> {
        let layout = &input.layout;
        let profile = input.profile();
        if !layout.has_outcome_column() {
            if let Some(f) = secrets_from {
                return Err(Error::Usage(format!(
                    "--secrets-from {}: {} is not an outcome report, so it has no masked \
                     secret to fill; leave --secrets-from out",
                    f.display(),
                    input.path().display()
                )));
            }
            return Ok(None);
        }
        let secret_cols: Vec<(usize, usize)> = (0..profile.columns.len())
            .filter(|ci| profile.columns[*ci].secret)
            .filter_map(|ci| layout.sheet_index(ci).map(|si| (si, ci)))
            .collect();
        let key_si = layout.sheet_index(profile.key_index());
        let mut wanted = Vec::new();
        if !secret_cols.is_empty() {
            for raw in input.raw_rows()?.flatten() {
                let cells: Vec<(usize, usize)> = secret_cols
                    .iter()
                    .filter(|(si, _)| raw.cells.get(*si).is_some_and(holds_mask))
                    .copied()
                    .collect();
                if cells.is_empty() || !keep(&raw) {
                    continue;
                }
                wanted.push(Wanted {
                    row: raw.number,
                    source_row: layout.source_row(&raw),
                    key: key_of(key_si.and_then(|si| raw.cells.get(si))),
                    cells,
                });
            }
        }
        if wanted.is_empty() {
            return Ok(None);
        }

        // --secrets-from: by key (a key on two of its rows gives no secret: which one?).
        let file = match secrets_from {
            None => None,
            Some(f) => {
                let keys: HashSet<&str> = wanted.iter().map(|w| w.key.as_str()).collect();
                let copy = PrivateCopy::of(f)?;
                let mut by_key: HashMap<String, Option<SecretRow>> = HashMap::new();
                for (_, r) in read_rows(profile, f, copy.path(), |_, k| keys.contains(k))? {
                    by_key
                        .entry(r.key.clone())
                        .and_modify(|e| *e = None)
                        .or_insert(Some(r));
                }
                Some((file_name(f), by_key))
            }
        };
        // The original input: by source row, then the key must agree.
        let rows: HashSet<u64> = wanted.iter().filter_map(|w| w.source_row).collect();
        let original = match Origin::recorded_in(input) {
            Some(o) => original(profile, &o, input.path(), &rows),
            None => Err(format!(
                "{} does not record the input it was made from",
                file_name(input.path())
            )),
        };
        let sources = Sources { file, original };

        let mut fill = SecretFill {
            fills: HashMap::new(),
            missing: BTreeMap::new(),
        };
        for w in wanted {
            let mut filled = Vec::new();
            let mut lacking = Vec::new();
            for (si, ci) in &w.cells {
                let header = layout.header(*si);
                match sources.secret(&w, *ci, header) {
                    Ok(cell) => filled.push((*si, cell.clone())),
                    Err(why) => lacking.push((header.to_string(), why)),
                }
            }
            if !filled.is_empty() {
                fill.fills.insert(w.row, filled);
            }
            if !lacking.is_empty() {
                fill.missing.insert(w.row, lacking);
            }
        }
        Ok(Some(fill))
    }

    /// Puts the secrets found in place of the masks of the row (a report's row as read).
    pub fn fill(&self, raw: &mut RawRow) {
        for (si, cell) in self.fills.get(&raw.number).into_iter().flatten() {
            if let Some(c) = raw.cells.get_mut(*si) {
                *c = cell.clone();
            }
        }
    }

    /// A row still masked says why in its message, instead of the planner's general word.
    pub fn explain(&self, row: &mut PlannedRow) {
        let Some(lacking) = self.missing.get(&row.row) else {
            return;
        };
        for (header, why) in lacking {
            let col = Some(header.as_str());
            row.findings
                .retain(|f| !(f.column.as_deref() == col && f.message.contains(MASK_HELD)));
            row.findings.push(Finding::error(
                col,
                format!("{MASK_HELD} and {}", advice(why)),
            ));
        }
    }

    /// How many rows still lack a secret (each is named, with why, by [`Self::explain`]).
    pub fn missing(&self) -> usize {
        self.missing.len()
    }
}

fn advice(why: &str) -> String {
    format!(
        "no secret was found for it: {why}; give --secrets-from FILE (the key column and \
         the secret columns) or type the secret in the cell"
    )
}
