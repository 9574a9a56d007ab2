//! The Results columns as CSV, for machines.
//!
//! Rows are written as they finish, in **completion order**, not input order: a script can
//! tail the file during the run, and nothing has to be held back (the `Source row` column
//! puts rows back in input order with one sort). The outcome workbook is the ordered view.

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
        out.write_record(columns.header_row())
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
            o.duration_ms.to_string(),
            o.message.clone(),
            o.remote_id.clone().unwrap_or_default(),
            o.finished_at.clone(),
            source_row.to_string(),
        ]);
        self.out
            .write_record(&cells)
            .map_err(|e| report_error(&self.path, e))
    }

    fn record_all(&mut self, outcomes: &[Outcome]) -> Result<()> {
        outcomes.iter().try_for_each(|o| self.record(o))?;
        if outcomes.len() < super::FLUSH_BELOW {
            self.out.flush().map_err(|e| report_error(&self.path, e))?;
        }
        Ok(())
    }

    fn finish(&mut self, _summary: &RunSummary) -> Result<()> {
        self.out.flush().map_err(|e| report_error(&self.path, e))
    }
}
