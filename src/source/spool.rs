//! A spool: the rows of a workbook, decoded once and kept in a temporary file.
//!
//! Planning reads a sheet twice (duplicate keys must be known before the first row is
//! sent). Decoding an xlsx means inflating and parsing its XML, which costs far more than
//! reading back rows already decoded, so the first pass writes every row it decodes here
//! (MessagePack, one record per row) and the second pass reads them back. The file is
//! deleted when the spool is dropped. A CSV needs no spool: re-reading it is cheap.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};

use super::RowResult;

/// Rows written once, readable any number of times.
#[derive(Debug)]
pub struct Spool {
    path: tempfile::TempPath,
    rows: u64,
}

/// Writes rows into a new spool.
pub struct SpoolWriter {
    out: BufWriter<tempfile::NamedTempFile>,
    rows: u64,
}

impl SpoolWriter {
    /// A new, empty spool in the system's temporary directory.
    pub fn create() -> std::io::Result<SpoolWriter> {
        let file = tempfile::Builder::new()
            .prefix("enlist-spool-")
            .tempfile()?;
        Ok(SpoolWriter {
            out: BufWriter::with_capacity(256 * 1024, file),
            rows: 0,
        })
    }

    pub fn push(&mut self, row: &RowResult) -> std::io::Result<()> {
        rmp_serde::encode::write(&mut self.out, row).map_err(std::io::Error::other)?;
        self.rows += 1;
        Ok(())
    }

    /// Writes out what is buffered; the spool can then be read. (No fsync: the spool only
    /// has to outlive this process, not a crash.)
    pub fn finish(mut self) -> std::io::Result<Spool> {
        self.out.flush()?;
        let rows = self.rows;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        let (_, path) = file.into_parts();
        Ok(Spool { path, rows })
    }
}

impl Spool {
    /// The rows in the order they were written. A record that cannot be read back (the
    /// temporary file changed under us) ends the rows with a row error, never silently.
    pub fn rows(&self) -> std::io::Result<impl Iterator<Item = RowResult> + Send + 'static> {
        let mut input = BufReader::with_capacity(256 * 1024, File::open(&self.path)?);
        let total = self.rows;
        let mut read = 0u64;
        let mut last = 0u64;
        Ok(std::iter::from_fn(move || {
            if read >= total {
                return None;
            }
            read += 1;
            match rmp_serde::decode::from_read::<_, RowResult>(&mut input) {
                Ok(row) => {
                    last = match &row {
                        Ok(r) => r.number,
                        Err(e) => e.number,
                    };
                    Some(row)
                }
                Err(e) => {
                    read = total;
                    Some(Err(super::RowError {
                        number: last + 1,
                        message: format!(
                            "the rows after row {last} could not be read back from enlist's \
                             temporary copy ({e}); run again"
                        ),
                    }))
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::Cell;
    use crate::source::{RawRow, RowError};

    #[test]
    fn rows_come_back_exactly() {
        let rows: Vec<RowResult> = vec![
            Ok(RawRow {
                number: 2,
                cells: vec![
                    Cell::Text("+4412".into()),
                    Cell::Empty,
                    Cell::Int(1234),
                    Cell::Float(1.5),
                    Cell::Bool(true),
                    Cell::Date("2024-03-01".into()),
                    Cell::Error("#N/A".into()),
                ],
            }),
            Err(RowError {
                number: 3,
                message: "bad".into(),
            }),
        ];
        let mut w = SpoolWriter::create().unwrap();
        for r in &rows {
            w.push(r).unwrap();
        }
        let spool = w.finish().unwrap();
        assert_eq!(spool.rows().unwrap().collect::<Vec<_>>(), rows);
        // Readable again, from the start.
        assert_eq!(spool.rows().unwrap().count(), 2);
    }
}
