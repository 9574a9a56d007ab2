//! Outcomes as JSON lines, written as rows finish (machines can tail the file).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::outcome::{Outcome, OutcomeSink, RunSummary};
use crate::plan::MASK;

/// One JSON object per finished row, in completion order, plus a final summary object.
pub struct JsonlSink {
    path: PathBuf,
    out: BufWriter<File>,
    /// Input columns shown as `********` (beyond those the planner masked already).
    masked: Vec<usize>,
}

impl JsonlSink {
    pub fn create(path: &Path) -> Result<JsonlSink> {
        let f = File::create(path)
            .map_err(|e| Error::input(path, format!("cannot create the report: {e}")))?;
        Ok(JsonlSink {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(super::STREAM_BUFFER, f),
            masked: Vec::new(),
        })
    }

    /// Masks the cells of the columns whose flag is set (as the other reports do).
    pub fn masking(mut self, secret_columns: Vec<bool>) -> JsonlSink {
        self.masked = (0..secret_columns.len())
            .filter(|i| secret_columns[*i])
            .collect();
        self
    }
}

impl OutcomeSink for JsonlSink {
    fn record(&mut self, o: &Outcome) -> Result<()> {
        let needs_mask = self
            .masked
            .iter()
            .any(|i| o.cells.get(*i).is_some_and(|c| !c.is_empty() && c != MASK));
        if needs_mask {
            let mut o = o.clone();
            for i in &self.masked {
                if let Some(c) = o.cells.get_mut(*i).filter(|c| !c.is_empty()) {
                    *c = MASK.to_string();
                }
            }
            serde_json::to_writer(&mut self.out, &o).map_err(anyhow::Error::from)?;
        } else {
            serde_json::to_writer(&mut self.out, o).map_err(anyhow::Error::from)?;
        }
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn record_all(&mut self, outcomes: &[Outcome]) -> Result<()> {
        outcomes.iter().try_for_each(|o| self.record(o))?;
        if outcomes.len() < super::FLUSH_BELOW {
            self.out
                .flush()
                .map_err(|e| Error::input(&self.path, format!("cannot write the report: {e}")))?;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| Error::input(&self.path, format!("cannot write the report: {e}")))
    }

    fn finish(&mut self, s: &RunSummary) -> Result<()> {
        serde_json::to_writer(&mut self.out, &serde_json::json!({ "summary": s }))
            .map_err(anyhow::Error::from)?;
        self.out.write_all(b"\n")?;
        self.out
            .flush()
            .map_err(|e| Error::input(&self.path, format!("cannot write the report: {e}")))?;
        Ok(())
    }
}
