//! The Results columns as CSV, for machines.
//!
//! Rows are written as they finish, in **completion order**, not input order: a script can
//! tail the file during the run, and nothing has to be held back (the `Source row` column
//! puts rows back in input order with one sort). The outcome workbook is the ordered view.
//!
//! A CSV file is opened in a spreadsheet by double-click, and a spreadsheet runs a cell that
//! begins with `=`, `+`, `-` or `@` (or a tab or carriage return) as a formula: an input
//! cell or a server's message could then run on the admin's machine (CSV injection). Such
//! cells are written with a leading `'`, as OWASP recommends: `+4930123` becomes `'+4930123`
//! in the file (a spreadsheet shows it as text); fed back as input, the report's cells are
//! read without the `'` again ([`crate::plan::Layout::undo_report_escapes`]). The JSON-lines
//! report keeps every value raw.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::{report_error, Columns};
use crate::error::Result;
use crate::outcome::{Outcome, OutcomeSink, RunSummary};

/// Same columns as the workbook's Results sheet; secret columns hold `********`.
pub struct CsvSink {
    path: PathBuf,
    columns: Columns,
    out: csv::Writer<BufWriter<File>>,
}

impl CsvSink {
    /// Creates the file and writes the header row at once.
    pub fn create(path: &Path, headers: Vec<String>, secret_columns: Vec<bool>) -> Result<CsvSink> {
        let f = File::create(path).map_err(|e| report_error(path, e))?;
        let mut out = csv::Writer::from_writer(BufWriter::with_capacity(super::STREAM_BUFFER, f));
        let columns = Columns::new(headers, secret_columns);
        out.write_record(columns.header_row().iter().map(|h| defuse(h).into_owned()))
            .map_err(|e| report_error(path, e))?;
        Ok(CsvSink {
            path: path.to_path_buf(),
            columns,
            out,
        })
    }
}

impl OutcomeSink for CsvSink {
    fn record(&mut self, o: &Outcome) -> Result<()> {
        let (mut cells, source_row) = self.columns.cells(o);
        cells.extend([
            o.status.as_str().to_string(),
            o.action.as_str().to_string(),
            o.http_status.map(|h| h.to_string()).unwrap_or_default(),
            o.attempts.to_string(),
            o.requests.to_string(),
            o.duration_ms.to_string(),
            o.message.clone(),
            o.remote_id.clone().unwrap_or_default(),
            o.finished_at.clone(),
            // A leaver has no source row.
            if source_row > 0 {
                source_row.to_string()
            } else {
                String::new()
            },
        ]);
        self.out
            .write_record(cells.iter().map(|c| defused_bytes(c)))
            .map_err(|e| report_error(&self.path, e))
    }

    fn record_all(&mut self, outcomes: &[Outcome]) -> Result<()> {
        outcomes.iter().try_for_each(|o| self.record(o))?;
        if outcomes.len() < super::FLUSH_BELOW {
            self.out.flush().map_err(|e| report_error(&self.path, e))?;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| report_error(&self.path, e))
    }

    fn finish(&mut self, _summary: &RunSummary) -> Result<()> {
        self.out.flush().map_err(|e| report_error(&self.path, e))
    }
}

/// A cell a spreadsheet would run as a formula gets a leading `'` (OWASP's advice on CSV
/// injection); every other cell is written as it is.
pub fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    // A cell that already begins with quotes before a formula character gets one more, so
    // that reading the report back (which takes one off) gives the cell as it was.
    let unquoted = cell.trim_start_matches('\'');
    let quoted = unquoted.len() < cell.len();
    match unquoted.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@') => format!("'{cell}").into(),
        Some(b'\t' | b'\r') if !quoted => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// [`defuse`] as the bytes the CSV writer takes, without a copy for ordinary cells.
fn defused_bytes(cell: &str) -> std::borrow::Cow<'_, [u8]> {
    match defuse(cell) {
        std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(s.as_bytes()),
        std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::defuse;

    #[test]
    fn formula_cells_are_defused_and_others_kept() {
        for c in ["=1+2", "+4930123", "-5", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(defuse(c), format!("'{c}"));
        }
        for c in ["", "a=b", "4930123", "'quoted", " =x", "'\tx"] {
            assert_eq!(defuse(c), c);
        }
        // A cell that already looks escaped gets one more quote, so reading it back
        // (one quote off) gives it as it was.
        assert_eq!(defuse("'=x"), "''=x");
        assert_eq!(defuse("''+1"), "'''+1");
    }
}
