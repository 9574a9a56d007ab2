//! Source and plan put together: an input file read for one profile.
//!
//! Opening an [`Input`] reads the sheet once to map its headers, count its rows and find
//! duplicate keys (a key on two rows makes both invalid, so it must be known before the first
//! row is sent). A CSV is read for that with only its key column decoded; a workbook is
//! decoded in full once and its rows spooled to a temporary file ([`crate::source::spool`]).
//! [`Input::rows`] then reads the rows again (from the CSV, or from the spool) and yields
//! them planned, in file order, so memory does not grow with the sheet. A run reads and
//! plans each row on the thread that takes it (its requests set the pace); `check`, where
//! planning is the whole job, reads on a thread of its own and plans on every core
//! ([`Input::planned_map`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::Result;
use crate::plan::{
    find_duplicates, is_header, repeated_keys, Duplicates, Layout, PlanOptions, PlannedRow, Planner,
};
use crate::profile::Profile;
use crate::source::spool::{Spool, SpoolWriter};
use crate::source::{self, RawRow, RowError, RowResult, SourceOptions};

/// What to read and how to plan it.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub path: PathBuf,
    pub source: SourceOptions,
    pub plan: PlanOptions,
    pub profile: Arc<Profile>,
}

/// An input file whose header row has been mapped onto the profile.
pub struct Input {
    pub spec: InputSpec,
    /// The Excel sheet used (None for CSV).
    pub sheet_name: Option<String>,
    /// Spreadsheet row number of the header row.
    pub header_row: u64,
    pub layout: Layout,
    duplicates: Duplicates,
    /// Data rows in the sheet (readable or not), counted by the first pass.
    pub rows_total: u64,
    /// A workbook's rows as the first pass decoded them (None for CSV, or when no
    /// temporary file could be written: the workbook is then parsed again).
    spool: Option<Spool>,
    /// Data rows an xlsx hides (a filter): read like the others, and named in a warning.
    pub hidden_rows: Vec<(u64, u64)>,
}

impl Input {
    /// Opens the file, maps the header and finds duplicate keys. Refuses a file that cannot
    /// be read or lacks required columns.
    pub fn open(spec: InputSpec) -> Result<Input> {
        let profile = spec.profile.clone();
        let probe = |cells: &[String]| is_header(&profile, cells);
        let sheet = source::open(&spec.path, &spec.source, &probe)?;
        let layout = Layout::new(&profile, &sheet.headers, &spec.path)?;
        let sheet_name = sheet.sheet_name.clone();
        let header_row = sheet.header_row;
        // Read on a thread of its own while the first pass decodes the rows.
        let hidden = hidden_rows_scan(&spec, sheet_name.as_deref());
        // The second pass must read the file exactly as the first did.
        let mut spec = spec;
        spec.source.delimiter = spec.source.delimiter.or(sheet.delimiter);
        spec.source.encoding = spec.source.encoding.or(sheet.encoding);
        spec.source.encoding_guessed = sheet.encoding_guessed;
        let mut input = Input {
            spec,
            sheet_name,
            header_row,
            layout,
            duplicates: Duplicates::new(),
            rows_total: 0,
            spool: None,
            hidden_rows: Vec::new(),
        };
        let (repeated, rows_total) = match sheet.delimiter {
            // A CSV is read again for the key column alone: nothing else is decoded.
            Some(_) => {
                drop(sheet.rows);
                repeated_keys(input.key_rows()?, &input.layout, &profile)
            }
            // A workbook is decoded once: its rows go to a spool as they pass.
            None => {
                let mut spool = SpoolWriter::create()
                    .map_err(|e| tracing::warn!("no spool, the workbook is read twice: {e}"))
                    .ok();
                let rows = sheet.rows.inspect(|r| {
                    if let Some(w) = spool.as_mut() {
                        if let Err(e) = w.push(r) {
                            tracing::warn!("spool abandoned, the workbook is read twice: {e}");
                            spool = None;
                        }
                    }
                });
                let repeated = repeated_keys(rows, &input.layout, &profile);
                input.spool = spool.and_then(|w| {
                    w.finish()
                        .map_err(|e| tracing::warn!("spool abandoned: {e}"))
                        .ok()
                });
                repeated
            }
        };
        input.rows_total = rows_total;
        let max_rows = input
            .spec
            .source
            .max_rows
            .unwrap_or(source::DEFAULT_MAX_ROWS);
        if rows_total > max_rows {
            return Err(crate::error::Error::input(
                &input.spec.path,
                source::too_many_rows_message(max_rows),
            ));
        }
        // (A refused sheet leaves the scan behind: it is bounded, and nobody waits for it.)
        input.hidden_rows = hidden
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, last)| *last > header_row)
            .map(|(first, last)| (first.max(header_row + 1), last))
            .collect();
        // Only a sheet with repeated keys is read once more, for their row numbers.
        if !repeated.is_empty() {
            let rows = input.key_rows()?;
            input.duplicates = find_duplicates(rows, &input.layout, &profile, &repeated);
        }
        Ok(input)
    }

    pub fn path(&self) -> &Path {
        &self.spec.path
    }

    pub fn profile(&self) -> &Arc<Profile> {
        &self.spec.profile
    }

    /// Sheet-level warnings (a guessed encoding, columns the profile does not use).
    pub fn warnings(&self) -> Vec<String> {
        let guess = self
            .spec
            .source
            .encoding
            .filter(|_| self.spec.source.encoding_guessed)
            .map(|e| {
                format!(
                    "the file's encoding is a guess: it has no byte-order mark and is not \
                     UTF-8, so it was read as {}; check that names with accents look right, \
                     or save it as UTF-8 (in Excel: \"CSV UTF-8\"), or give --encoding",
                    e.name()
                )
            });
        guess
            .into_iter()
            .chain(self.layout.unknown.iter().map(|h| {
                format!(
                    "column {h:?} is not used by profile {} and is ignored",
                    self.spec.profile.name
                )
            }))
            .chain((!self.hidden_rows.is_empty()).then(|| {
                let one = self.hidden_rows.iter().map(|(a, b)| b - a + 1).sum::<u64>() == 1;
                let (is, them) = if one { ("is", "it") } else { ("are", "them") };
                format!(
                    "{} {is} hidden in the workbook (a filter, or hidden by hand), and enlist \
                     reads {them} like every other row: unhide {them} to see what will be \
                     sent, and delete any row that must not be",
                    source::hidden::describe(&self.hidden_rows),
                )
            }))
            .chain((!self.layout.absent.is_empty()).then(|| {
                format!(
                    "the sheet lacks {}, which profile {} requires to create or update a user: \
                     only its disable, enable and delete rows can be sent",
                    self.layout.absent.join(", "),
                    self.spec.profile.name
                )
            }))
            .collect()
    }

    /// A planner for this input (also used to re-render requests for display).
    pub fn planner(&self) -> Planner {
        Planner::new(
            self.spec.profile.clone(),
            self.layout.clone(),
            self.spec.plan.clone(),
            self.duplicates.clone(),
        )
    }

    /// The data rows again, in file order (from the spool when there is one).
    pub fn raw_rows(&self) -> Result<Box<dyn Iterator<Item = RowResult> + Send>> {
        if let Some(spool) = &self.spool {
            let rows = spool.rows().map_err(|e| {
                crate::error::Error::input(
                    self.path(),
                    format!("cannot read enlist's temporary copy of the rows ({e}); run again"),
                )
            })?;
            return Ok(Box::new(rows));
        }
        self.reopen(None)
    }

    /// Reads the sheet again, positioned after the same header row (see
    /// [`SourceOptions::only_columns`]).
    fn reopen(
        &self,
        only_columns: Option<Vec<usize>>,
    ) -> Result<Box<dyn Iterator<Item = RowResult> + Send>> {
        let mut opts = self.spec.source.clone();
        opts.header_row = Some(self.header_row);
        opts.sheet = opts.sheet.or_else(|| self.sheet_name.clone());
        opts.only_columns = only_columns;
        let never = |_: &[String]| false;
        Ok(source::open(&self.spec.path, &opts, &never)?.rows)
    }

    /// The data rows with only the key column read.
    fn key_rows(&self) -> Result<Box<dyn Iterator<Item = RowResult> + Send>> {
        if self.spool.is_some() {
            return self.raw_rows();
        }
        let key = self.layout.sheet_index(self.spec.profile.key_index());
        self.reopen(Some(key.into_iter().collect()))
    }

    /// Every data row, planned, in file order.
    pub fn rows(&self) -> Result<impl Iterator<Item = PlannedRow> + Send + 'static> {
        self.rows_where(|_| true)
    }

    /// The data rows `keep` accepts (rows the reader could not read are always kept, so
    /// they are reported), read and planned one at a time by the thread that takes them.
    /// `keep` may amend the row it keeps before it is planned (a report fed back gets its
    /// masked secrets again: [`crate::source::secrets`]).
    ///
    /// This is the pace a run needs: the requests, not the planning, set its speed, and a
    /// run's cores are taken by the requests, the collector and often the target itself.
    /// No pool of planners wakes (and spins) for every batch, and no row is handed from
    /// thread to thread before it is routed. Nothing is read ahead, so memory does not
    /// grow with the sheet.
    pub fn rows_where(
        &self,
        keep: impl Fn(&mut RawRow) -> bool + Send + 'static,
    ) -> Result<impl Iterator<Item = PlannedRow> + Send + 'static> {
        Ok(PlanEach {
            rows: self.raw_rows()?,
            keep,
            planner: self.planner(),
            seq: 0,
            last: 0,
            done: false,
        })
    }

    /// Every row `keep` accepts (and may amend, as in [`Input::rows_where`]), planned as
    /// fast as the machine allows (`check`: planning is the whole job), with `f` applied to each planned row on the thread that planned
    /// it: a caller that needs only part of a row drops the rest there, on the thread that
    /// allocated it, instead of moving it across.
    ///
    /// A reader thread parses the sheet into batches while the batches are planned on
    /// every core; rows come out in file order. At most [`BATCHES_IN_FLIGHT`] batches are
    /// held, so memory does not grow with the sheet.
    pub fn planned_map<T: Send + 'static>(
        &self,
        keep: impl Fn(&mut RawRow) -> bool + Send + 'static,
        f: impl Fn(PlannedRow) -> T + Send + Sync + 'static,
    ) -> Result<impl Iterator<Item = T> + Send + 'static> {
        let rows = self.raw_rows()?;
        let planner = self.planner();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<RowResult>>(BATCHES_IN_FLIGHT);
        std::thread::Builder::new()
            .name("enlist-reader".into())
            .spawn(move || read_batches(rows, keep, &tx))
            .map_err(|e| anyhow::anyhow!("cannot start the reader thread: {e}"))?;
        let mut next_seq = 0u64;
        Ok(rx.into_iter().flat_map(move |batch| {
            let base = next_seq;
            next_seq += batch.len() as u64;
            let planned: Vec<T> = batch
                .into_par_iter()
                .enumerate()
                .map(|(i, r)| f(planner.plan_at(base + i as u64, r)))
                .collect();
            planned
        }))
    }
}

/// [`Input::rows_where`]'s rows: read, filtered and planned in `next`. Should reading or
/// planning panic (it must not, on any input), the panic becomes a last row error, so the
/// run is not taken for complete: the rows after it are reported missing, never silently
/// dropped.
struct PlanEach<K> {
    rows: Box<dyn Iterator<Item = RowResult> + Send>,
    keep: K,
    planner: Planner,
    /// Rows planned so far (the next row's `seq`).
    seq: u64,
    /// The sheet row last read.
    last: u64,
    done: bool,
}

impl<K: Fn(&mut RawRow) -> bool> Iterator for PlanEach<K> {
    type Item = PlannedRow;

    fn next(&mut self) -> Option<PlannedRow> {
        if self.done {
            return None;
        }
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
            let mut r = self.rows.next()?;
            self.last = row_number(&r);
            if r.as_mut().map(&self.keep).unwrap_or(true) {
                return Some(self.planner.plan_at(self.seq, r));
            }
        }));
        match step {
            Ok(Some(row)) => {
                self.seq += 1;
                Some(row)
            }
            Ok(None) => None,
            Err(_) => {
                self.done = true;
                Some(
                    self.planner
                        .plan_at(self.seq, Err(reader_failed(self.last))),
                )
            }
        }
    }
}

fn row_number(r: &RowResult) -> u64 {
    match r {
        Ok(r) => r.number,
        Err(e) => e.number,
    }
}

/// The row error that stands for every row after `last` when reading them panicked.
fn reader_failed(last: u64) -> RowError {
    RowError {
        number: last + 1,
        message: format!(
            "enlist failed while reading the rows after row {last}; no row from here on was \
             processed. Please report this with the file's layout"
        ),
    }
}

/// Rows per batch handed from the reader thread to the planners.
const BATCH_ROWS: usize = 512;
/// Batches read ahead of the planners.
pub const BATCHES_IN_FLIGHT: usize = 4;

/// The reader thread of [`Input::planned_map`]: sends the rows `keep` accepts in batches.
/// A panic while reading becomes a row error, as in [`PlanEach`].
fn read_batches(
    rows: Box<dyn Iterator<Item = RowResult> + Send>,
    keep: impl Fn(&mut RawRow) -> bool,
    tx: &std::sync::mpsc::SyncSender<Vec<RowResult>>,
) {
    let mut last = 0u64;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for mut r in rows {
            last = row_number(&r);
            if !r.as_mut().map(&keep).unwrap_or(true) {
                continue;
            }
            batch.push(r);
            if batch.len() == BATCH_ROWS {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                if tx.send(full).is_err() {
                    return false; // the consumer stopped: nothing more is wanted
                }
            }
        }
        true
    }));
    if read.is_err() {
        batch.push(Err(reader_failed(last)));
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
}

/// Starts reading which rows an xlsx (or xlsm) sheet hides; `None` for other files. A
/// workbook whose hidden rows cannot be read has none as far as the warning goes.
fn hidden_rows_scan(
    spec: &InputSpec,
    sheet: Option<&str>,
) -> Option<std::thread::JoinHandle<Vec<(u64, u64)>>> {
    let ext = spec.path.extension()?.to_str()?.to_ascii_lowercase();
    if !matches!(ext.as_str(), "xlsx" | "xlsm") {
        return None;
    }
    let read = spec.source.read_from.clone().unwrap_or(spec.path.clone());
    let sheet = sheet?.to_string();
    let cap = spec
        .source
        .max_expanded_mib
        .unwrap_or(source::DEFAULT_MAX_EXPANDED_MIB);
    std::thread::Builder::new()
        .name("enlist-hidden-rows".into())
        .spawn(move || {
            source::hidden::hidden_rows(&read, &sheet, cap).unwrap_or_else(|e| {
                tracing::debug!("hidden rows not read: {e}");
                Vec::new()
            })
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(name: &str, text: &str) -> Input {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let input = Input::open(InputSpec {
            path: path.clone(),
            source: SourceOptions::default(),
            plan: PlanOptions::default(),
            profile: Arc::new(Profile::load("users-api").expect("profile")),
        })
        .expect("open");
        // The rows are read again below: keep the file.
        std::mem::forget(dir);
        input
    }

    #[test]
    fn the_first_pass_counts_every_row_the_plan_will_see() {
        // A blank key, a row with only a name, an entirely blank row (not a row), a repeat.
        let input = open(
            "users.csv",
            "email,password,name\na@x.io,Secret-1,A\n,Secret-2,no key\n,,only name\n,,\nA@x.io,Secret-3,again\n",
        );
        let planned: Vec<PlannedRow> = input.rows().expect("rows").collect();
        assert_eq!(input.rows_total, planned.len() as u64);
        assert_eq!(input.rows_total, 4);
        let dup: Vec<u64> = planned
            .iter()
            .filter(|r| r.error_message().contains("more than once"))
            .map(|r| r.row)
            .collect();
        assert_eq!(dup, vec![2, 6]);
    }

    #[test]
    fn a_panic_while_reading_becomes_a_last_row_error() {
        let input = open(
            "users.csv",
            "email,password,name\na@x.io,Secret-1,A\nb@x.io,Secret-2,B\n",
        );
        let rows = input
            .raw_rows()
            .expect("rows")
            .chain(std::iter::from_fn(|| panic!("a reader bug")));
        let planned: Vec<PlannedRow> = PlanEach {
            rows: Box::new(rows),
            keep: |_: &mut RawRow| true,
            planner: input.planner(),
            seq: 0,
            last: 0,
            done: false,
        }
        .collect();
        let seen: Vec<(u64, u64, bool)> = planned
            .iter()
            .map(|r| (r.seq, r.row, r.is_invalid()))
            .collect();
        assert_eq!(seen, vec![(0, 2, false), (1, 3, false), (2, 4, true)]);
        assert!(planned[2].error_message().contains("after row 3"));
    }
}
