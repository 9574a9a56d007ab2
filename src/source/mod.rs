//! Source: turns a spreadsheet file (CSV or Excel) into a stream of [`RawRow`]s.
//!
//! The reader knows nothing about targets or profiles. It finds the header row with the
//! help of a caller-supplied [`HeaderProbe`], normalises every cell into a [`Cell`] once,
//! and keeps each row's spreadsheet row number (the number a person sees in Excel) so that
//! every later message can name it. CSV and xlsx are streamed row by row.

use std::path::{Path, PathBuf};

use crate::cell::Cell;
use crate::error::{Error, Result};

/// How the caller wants the file read. Everything is optional: the reader detects.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// CSV field delimiter; detected from the header line when `None`.
    pub delimiter: Option<u8>,
    /// CSV text encoding; detected (BOM, UTF-8 validity, else Windows-1252) when `None`.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// Excel sheet name; default: the first sheet that has a matching header row.
    pub sheet: Option<String>,
    /// 1-based spreadsheet row number of the header row; found automatically when `None`.
    pub header_row: Option<u64>,
}

/// Tells the reader whether a row looks like the header row the caller expects.
pub trait HeaderProbe {
    /// `cells` are the trimmed texts of one row (numbers rendered as text).
    fn is_header(&self, cells: &[String]) -> bool;
}

impl<F: Fn(&[String]) -> bool> HeaderProbe for F {
    fn is_header(&self, cells: &[String]) -> bool {
        self(cells)
    }
}

/// One data row, below the header.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    /// The spreadsheet row number (1-based, as Excel and LibreOffice number rows;
    /// for CSV, the physical line where the record starts).
    pub number: u64,
    /// Cells in header order; shorter than the header when trailing cells are empty.
    pub cells: Vec<Cell>,
}

/// A per-row problem the reader itself found (for example an unreadable record).
pub type RowResult = std::result::Result<RawRow, RowError>;

/// A row the reader could not turn into cells; the row number lets the plan report it.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub number: u64,
    pub message: String,
}

/// An opened sheet: its header and an iterator over its data rows.
pub struct Sheet {
    pub path: PathBuf,
    /// The Excel sheet name (None for CSV).
    pub sheet_name: Option<String>,
    /// Spreadsheet row number of the header row.
    pub header_row: u64,
    /// Header texts, trailing empty columns removed.
    pub headers: Vec<String>,
    /// Data rows in file order; entirely empty rows are skipped.
    pub rows: Box<dyn Iterator<Item = RowResult> + Send>,
}

impl std::fmt::Debug for Sheet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sheet")
            .field("path", &self.path)
            .field("sheet_name", &self.sheet_name)
            .field("header_row", &self.header_row)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// Opens `path` (CSV or Excel, chosen by content and extension) and positions it after
/// the header row.
pub fn open(path: &Path, opts: &SourceOptions, probe: &dyn HeaderProbe) -> Result<Sheet> {
    let _ = (opts, probe);
    Err(Error::input(path, "reading is not implemented yet"))
}
