//! A spool: the rows of a workbook, decoded once and kept in a temporary file.
//!
//! Planning reads a sheet twice (duplicate keys must be known before the first row is
//! sent). Decoding an xlsx means inflating and parsing its XML, which costs far more than
//! reading back rows already decoded, so the first pass writes every row it decodes here
//! (one JSON line per row) and the second pass reads them back. The file is deleted when
//! the spool is dropped. A CSV needs no spool: re-reading it is cheap.
//!
//! JSON rather than a binary format: MessagePack (rmp-serde) did not pay for its crate
//! (the measurement is in the README).
//!
//! A run also reads its input from a [`PrivateCopy`]: the passes over a sheet (duplicate
//! keys, then planning) must see one version of it, even when someone appends to or
//! rewrites the file while enlist reads it.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

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
        serde_json::to_writer(&mut self.out, row)?;
        self.out.write_all(b"\n")?;
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
        let mut line = String::new();
        let total = self.rows;
        let mut read = 0u64;
        let mut last = 0u64;
        Ok(std::iter::from_fn(move || {
            if read >= total {
                return None;
            }
            read += 1;
            line.clear();
            let record = match input.read_line(&mut line) {
                Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => serde_json::from_str::<RowResult>(&line).map_err(std::io::Error::from),
                Err(e) => Err(e),
            };
            match record {
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

/// A private copy of an input file, taken once and hashed as it is copied; deleted when
/// dropped. Every pass reads the copy, so a run acts on exactly the bytes it hashed.
#[derive(Debug)]
pub struct PrivateCopy {
    path: tempfile::TempPath,
    sha256: String,
}

/// What tells two versions of a file apart without reading it: size and modification time.
fn stamp(path: &Path) -> std::io::Result<(u64, Option<std::time::SystemTime>)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.len(), meta.modified().ok()))
}

/// The refusal when the file changed under the copy.
pub const CHANGED: &str = "the file changed while enlist was reading it; run again on a file \
                           that is not being written";

impl PrivateCopy {
    /// Copies `path` into the system's temporary directory, hashing what is copied. Refuses
    /// (exit 3) when the file changed while it was copied: its size or modification time
    /// before and after differ, or the bytes copied are not its size.
    pub fn of(path: &Path) -> crate::error::Result<PrivateCopy> {
        Self::of_with(path, || {})
    }

    fn of_with(path: &Path, during: impl FnOnce()) -> crate::error::Result<PrivateCopy> {
        use crate::error::Error;
        use sha2::{Digest, Sha256};
        let cannot_read = |e: std::io::Error| {
            Error::input(
                path,
                format!("cannot read the file ({e}): check the path and that you may read it"),
            )
        };
        let cannot_copy = |e: std::io::Error| {
            Error::input(
                path,
                format!(
                    "cannot make enlist's private copy of the file in {} ({e}): set TMPDIR \
                     to a directory with room for a copy of the sheet",
                    std::env::temp_dir().display()
                ),
            )
        };
        let before = stamp(path).map_err(cannot_read)?;
        let mut input = File::open(path).map_err(cannot_read)?;
        during();
        let file = tempfile::Builder::new()
            .prefix("enlist-input-")
            .tempfile()
            .map_err(cannot_copy)?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut copied: u64 = 0;
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(cannot_read(e)),
            };
            hash.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(cannot_copy)?;
            copied += n as u64;
        }
        out.flush().map_err(cannot_copy)?;
        let after = stamp(path).map_err(cannot_read)?;
        if before != after || copied != after.0 {
            return Err(Error::input(path, CHANGED));
        }
        let file = out.into_inner().map_err(|e| cannot_copy(e.into_error()))?;
        Ok(PrivateCopy {
            path: file.into_temp_path(),
            sha256: crate::plan::hex_text(&hash.finalize()),
        })
    }

    /// Where the copy is (give it to [`crate::source::SourceOptions::read_from`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 of the copy, in hex: the hash of what the run reads and sends.
    pub fn sha256(&self) -> &str {
        &self.sha256
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

    /// Every float comes back to the bit: shortest-repr edge cases, subnormals, infinities
    /// and NaN (which no JSON number can hold), and text that looks like JSON.
    #[test]
    fn floats_and_odd_text_come_back_to_the_bit() {
        let floats = [
            0.1 + 0.2,
            -0.0,
            5e-324,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let mut cells: Vec<Cell> = floats.iter().map(|f| Cell::Float(*f)).collect();
        let text = Cell::Text("a \"quoted\"\nline\\ \u{1F600}".into());
        cells.push(text.clone());
        let row: RowResult = Ok(RawRow { number: 9, cells });
        let mut w = SpoolWriter::create().unwrap();
        w.push(&row).unwrap();
        let back = w.finish().unwrap().rows().unwrap().next().unwrap().unwrap();
        for (i, f) in floats.iter().enumerate() {
            assert!(
                matches!(back.cells[i], Cell::Float(b) if b.to_bits() == f.to_bits()),
                "{f}"
            );
        }
        assert_eq!(back.cells[floats.len()], text);
    }

    #[test]
    fn a_spool_cut_short_ends_with_a_row_error() {
        let mut w = SpoolWriter::create().unwrap();
        for n in 2..5 {
            w.push(&Ok(RawRow {
                number: n,
                cells: vec![Cell::Int(1)],
            }))
            .unwrap();
        }
        let spool = w.finish().unwrap();
        let len = std::fs::metadata(&spool.path).unwrap().len();
        File::options()
            .write(true)
            .open(&spool.path)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let rows: Vec<RowResult> = spool.rows().unwrap().collect();
        assert_eq!(rows.len(), 3);
        let e = rows[2].as_ref().unwrap_err();
        assert_eq!(e.number, 4);
        assert!(e.message.contains("after row 3"), "{}", e.message);
    }

    #[test]
    fn a_private_copy_is_the_file_and_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.csv");
        std::fs::write(&p, b"email\na@x.io\n").unwrap();
        let copy = PrivateCopy::of(&p).unwrap();
        assert_eq!(std::fs::read(copy.path()).unwrap(), b"email\na@x.io\n");
        assert_eq!(
            copy.sha256(),
            crate::source::file_sha256(&p).unwrap().as_str()
        );
        // Appended to while it is copied: refused, never a copy of half a row.
        let copy = PrivateCopy::of_with(&p, || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(b"b@x.io\n").unwrap();
        });
        let e = copy.unwrap_err().to_string();
        assert!(e.contains(CHANGED), "{e}");
    }
}
