//! Source: turns a spreadsheet file (CSV or Excel) into a stream of [`RawRow`]s.
//!
//! The reader knows nothing about targets or profiles. It finds the header row with the
//! help of a caller-supplied [`HeaderProbe`], normalises every cell into a [`Cell`] once,
//! and keeps each row's spreadsheet row number (the number a person sees in Excel) so that
//! every later message can name it. CSV and xlsx are streamed row by row.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::cell::Cell;
use crate::error::{Error, Result};

mod bounds;
mod csv;
mod excel;
pub mod hidden;
pub mod secrets;
pub mod spool;

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
    /// Read only these columns (0-based), each at its own index; the others are not
    /// decoded: the first of them that is filled comes back as [`UNREAD`] at its index, the
    /// rest are left out (enough to tell a blank row). For a pass that needs one column,
    /// such as the duplicate-key pass. (Excel sheets ignore it.)
    pub only_columns: Option<Vec<usize>>,
    /// The CSV encoding in [`Self::encoding`] is the reader's guess (no BOM, not UTF-8),
    /// not the user's word: a cell the guess decodes to control characters is a row error
    /// rather than text to send.
    pub encoding_guessed: bool,
    /// Data rows accepted (default [`DEFAULT_MAX_ROWS`]); a sheet with more is refused.
    pub max_rows: Option<u64>,
    /// How far a workbook may expand, in MiB (default [`DEFAULT_MAX_EXPANDED_MIB`]).
    pub max_expanded_mib: Option<u64>,
    /// Read the bytes from this file instead of the path given to [`open`] (a private copy
    /// of it); messages still name the path the user gave.
    pub read_from: Option<PathBuf>,
}

/// Data rows a sheet may have unless `--max-rows` says otherwise: ten times Excel's own
/// limit of 1,048,576 rows, far beyond any genuine onboarding sheet, yet a bound on a
/// hostile file's time and output.
pub const DEFAULT_MAX_ROWS: u64 = 10_000_000;

/// How far a workbook's parts may expand unless `--max-expanded-mib` says otherwise.
pub const DEFAULT_MAX_EXPANDED_MIB: u64 = 512;

/// The last row number Excel can hold; a larger one in a workbook is a damaged or
/// hostile file (and calamine keeps row numbers in 32 bits).
pub const EXCEL_MAX_ROW: u64 = 1_048_576;

/// A filled cell that [`SourceOptions::only_columns`] left undecoded.
pub const UNREAD: Cell = Cell::Bool(true);

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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowError {
    pub number: u64,
    pub message: String,
}

/// An opened sheet: its header and an iterator over its data rows.
pub struct Sheet {
    pub path: PathBuf,
    /// The Excel sheet name (None for CSV).
    pub sheet_name: Option<String>,
    /// The CSV delimiter used (detected or given; None for Excel). Pass it back in
    /// [`SourceOptions::delimiter`] to read the file again exactly the same way.
    pub delimiter: Option<u8>,
    /// The CSV encoding used (detected or given; None for Excel).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// Whether [`Self::encoding`] is a guess (no BOM, not valid UTF-8, none given).
    pub encoding_guessed: bool,
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
            .field("delimiter", &self.delimiter.map(char::from))
            .field("encoding", &self.encoding.map(|e| e.name()))
            .field("header_row", &self.header_row)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// How many bytes the reader looks at to decide what a file is (format, encoding,
/// delimiter). Detection never reads the whole file.
pub(crate) const SNIFF_LEN: usize = 64 * 1024;

/// How many non-empty rows are searched for the header row.
pub(crate) const HEADER_SCAN_ROWS: usize = 50;

/// Hard cap on the number of columns kept from any row (Excel's own limit is 16,384);
/// it bounds memory on hostile files that place a cell in a far-away column.
pub(crate) const MAX_COLUMNS: usize = 16_384;

/// Opens `path` (CSV or Excel, chosen by content and extension) and positions it after
/// the header row.
pub fn open(path: &Path, opts: &SourceOptions, probe: &dyn HeaderProbe) -> Result<Sheet> {
    let read = opts.read_from.as_deref().unwrap_or(path);
    let mut file = std::fs::File::open(read).map_err(|e| {
        Error::input(
            path,
            format!("cannot open the file ({e}): check the path and that you may read it"),
        )
    })?;
    let prefix = read_prefix(&mut file, SNIFF_LEN).map_err(|e| {
        Error::input(
            path,
            format!("cannot read the file ({e}): check that it is a complete, readable file"),
        )
    })?;
    if prefix.is_empty() {
        return Err(Error::input(
            path,
            "the file is empty: export the sheet again with a header row",
        ));
    }
    let at_eof = prefix.len() < SNIFF_LEN;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let kind = Kind::sniff(&prefix);
    let excel_ext = matches!(
        ext.as_str(),
        "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" | "xlam" | "xla"
    );
    if let Some(what) = not_a_sheet(&prefix, &ext) {
        return Err(Error::input(path, what));
    }
    match kind {
        Kind::Zip | Kind::Cfb => {
            drop(file);
            excel::open(path, read, &ext, kind, opts, probe)
        }
        Kind::Text if excel_ext => Err(Error::input(
            path,
            format!(
                "is not an Excel workbook (it looks like CSV text): rename it to .csv, \
                 or export the sheet again from Excel as .{ext}"
            ),
        )),
        Kind::Binary if excel_ext => Err(Error::input(
            path,
            format!(
                "is not an Excel workbook (its content is not a spreadsheet format enlist \
                 can read): export the sheet again from Excel as .{ext} or as CSV"
            ),
        )),
        Kind::Binary if opts.encoding.is_none() => Err(Error::input(
            path,
            "does not look like CSV text (it contains binary data): export the sheet again \
             as CSV (UTF-8) or as .xlsx; if it is UTF-16 text without a byte-order mark, \
             give its encoding (utf-16le or utf-16be)",
        )),
        Kind::Text | Kind::Binary => csv::open(path, read, file, prefix, at_eof, opts, probe),
    }
}

/// What a file that is no sheet at all is, and what to do instead, from its first bytes: a
/// PDF, a web page (web applications export tables as HTML named .xls), an Excel 2003 XML
/// spreadsheet. Such a file would otherwise be read as CSV text and fail on its header.
fn not_a_sheet(prefix: &[u8], ext: &str) -> Option<String> {
    let named = named_as(ext);
    if prefix.starts_with(b"%PDF") {
        return Some(format!(
            "is a PDF document{named}, not a spreadsheet: a table in a PDF cannot be read \
             back reliably; ask for the original sheet, or export it as .xlsx or CSV"
        ));
    }
    let start = prefix.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(prefix);
    let head = String::from_utf8_lossy(&start[..start.len().min(1024)]).to_ascii_lowercase();
    let head = head.trim_start();
    if head.contains("urn:schemas-microsoft-com:office:spreadsheet") {
        return Some(format!(
            "is an Excel 2003 XML spreadsheet{named}, which enlist cannot read: open it in \
             Excel and save it as .xlsx (File > Save As > Excel Workbook), or save it as CSV"
        ));
    }
    let html = [
        "<!doctype html",
        "<html",
        "<table",
        "<head",
        "<body",
        "<meta",
    ];
    if html.iter().any(|t| head.starts_with(t)) {
        return Some(format!(
            "is a web page (HTML){named}, not a spreadsheet: web applications often export \
             \"Excel\" files this way; open it in Excel and save it as .xlsx (File > Save \
             As > Excel Workbook), or export the data as CSV"
        ));
    }
    None
}

/// " named .xlsx" (nothing for a file without an extension), for messages that say what a
/// file really is.
pub(crate) fn named_as(ext: &str) -> String {
    if ext.is_empty() {
        String::new()
    } else {
        format!(" named .{ext}")
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A zip archive: xlsx, xlsm, xlsb or ods.
    Zip,
    /// An OLE compound file: xls (or an encrypted xlsx).
    Cfb,
    /// Text (UTF-8, UTF-16 with BOM, or a single-byte encoding).
    Text,
    /// Something else.
    Binary,
}

impl Kind {
    pub(crate) fn sniff(prefix: &[u8]) -> Kind {
        if prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(b"PK\x05\x06") {
            return Kind::Zip;
        }
        if prefix.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
            return Kind::Cfb;
        }
        if prefix.starts_with(&[0xFF, 0xFE]) || prefix.starts_with(&[0xFE, 0xFF]) {
            return Kind::Text;
        }
        // Text has no NUL bytes and few control characters besides tab, CR and LF.
        let sample = &prefix[..prefix.len().min(8192)];
        let controls = sample
            .iter()
            .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C))
            .count();
        if sample.contains(&0) || controls * 20 > sample.len() {
            Kind::Binary
        } else {
            Kind::Text
        }
    }
}

/// Reads up to `limit` bytes from the start of `r`.
fn read_prefix(r: &mut impl Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(limit.min(SNIFF_LEN));
    r.take(limit as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A format-specific producer of rows, in file order. Rows may be empty (the framing
/// layer skips them); `cells` are positioned by column (index 0 is column A).
pub(crate) trait RowSource {
    fn next_row(&mut self) -> Option<RowResult>;
}

impl RowSource for Box<dyn RowSource + Send> {
    fn next_row(&mut self) -> Option<RowResult> {
        (**self).next_row()
    }
}

/// The header row as found by [`locate_header`], and the rows already read past it.
pub(crate) struct Located {
    pub header_row: u64,
    pub headers: Vec<String>,
    /// Whether the probe recognised the header row (false: fallback to the first row).
    pub matched: bool,
    /// Rows read after the header while looking for it (already known data rows).
    pub pending: VecDeque<RowResult>,
    /// The number of the last row taken from the source (0 if none).
    pub last_read: u64,
}

/// The texts a [`HeaderProbe`] sees: cells as displayed, trailing empty cells removed.
/// A line break (or any other run of white space) inside a cell reads as one space, so
/// "Service⏎Provider ID", typed with Alt+Enter in Excel, is the header "Service Provider ID".
pub(crate) fn row_texts(cells: &[Cell]) -> Vec<String> {
    let mut texts: Vec<String> = cells.iter().map(|c| one_line(c.to_string())).collect();
    while texts.last().is_some_and(|t| t.is_empty()) {
        texts.pop();
    }
    texts
}

fn one_line(text: String) -> String {
    if text.chars().all(|c| c == ' ' || !c.is_whitespace()) {
        return text;
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_blank(cells: &[Cell]) -> bool {
    cells.iter().all(Cell::is_empty)
}

/// Finds the header row in `src`: the forced row, else the first of the first
/// [`HEADER_SCAN_ROWS`] non-empty rows the probe accepts, else the first non-empty row.
/// `what` names the file or sheet in messages ("the file", "sheet \"Users\"").
/// Fails when there is no row, and when the header row has no data row below it.
pub(crate) fn locate_header(
    src: &mut dyn RowSource,
    forced: Option<u64>,
    probe: &dyn HeaderProbe,
    what: &str,
) -> std::result::Result<Located, LocateError> {
    let mut header_matched = false;
    locate(src, forced, probe, what, &mut header_matched).map_err(|message| LocateError {
        message,
        header_matched,
    })
}

/// Why no header row (with data below it) was found.
#[derive(Debug)]
pub(crate) struct LocateError {
    pub message: String,
    /// The probe recognised a header row, but no data row follows it: this is the
    /// sheet the user meant, so its error must not be hidden behind another sheet.
    pub header_matched: bool,
}

impl From<String> for LocateError {
    fn from(message: String) -> Self {
        LocateError {
            message,
            header_matched: false,
        }
    }
}

fn locate(
    src: &mut dyn RowSource,
    forced: Option<u64>,
    probe: &dyn HeaderProbe,
    what: &str,
    header_matched: &mut bool,
) -> std::result::Result<Located, String> {
    let mut last_read = 0;
    let mut scanned: Vec<RowResult> = Vec::new();
    let mut header: Option<(RawRow, bool)> = None;
    if let Some(n) = forced {
        while let Some(r) = src.next_row() {
            let number = match &r {
                Ok(row) => row.number,
                Err(e) => e.number,
            };
            last_read = number;
            if number < n {
                continue;
            }
            if number > n {
                return Err(format!(
                    "row {n} (the header row you chose) is empty: give the number of \
                     the row that holds the column names, as Excel shows it"
                ));
            }
            match r {
                Ok(row) if !is_blank(&row.cells) => {
                    let matched = probe.is_header(&row_texts(&row.cells));
                    header = Some((row, matched));
                    break;
                }
                Ok(_) => {
                    return Err(format!(
                        "row {n} (the header row you chose) is empty: give the number of \
                         the row that holds the column names, as Excel shows it"
                    ))
                }
                Err(e) => {
                    return Err(format!(
                        "row {n} (the header row you chose) cannot be read ({}): fix that \
                         row or export the sheet again",
                        e.message
                    ))
                }
            }
        }
        if header.is_none() {
            return Err(if last_read == 0 {
                format!("{what} has no rows with content: export the sheet again with a header row")
            } else {
                format!(
                    "{what} ends at row {last_read}, before row {n} (the header row you \
                     chose): give the number of the row that holds the column names"
                )
            });
        }
    } else {
        while let Some(r) = src.next_row() {
            match r {
                Ok(row) => {
                    last_read = row.number;
                    if is_blank(&row.cells) {
                        continue;
                    }
                    if probe.is_header(&row_texts(&row.cells)) {
                        header = Some((row, true));
                        scanned.clear();
                        break;
                    }
                    scanned.push(Ok(row));
                }
                Err(e) => {
                    last_read = e.number;
                    scanned.push(Err(e));
                }
            }
            if scanned.len() >= HEADER_SCAN_ROWS {
                break;
            }
        }
        if header.is_none() {
            let first_ok = scanned.iter().position(|r| r.is_ok());
            match first_ok {
                Some(i) => {
                    let rest = scanned.split_off(i + 1);
                    if let Some(Ok(row)) = scanned.pop() {
                        header = Some((row, false));
                    }
                    scanned = rest;
                }
                None => {
                    return Err(match scanned.first() {
                        Some(Err(e)) => format!(
                            "{what} has no readable row (row {}: {}): export the sheet again",
                            e.number, e.message
                        ),
                        _ => format!(
                            "{what} has no rows with content: export the sheet again with a \
                             header row"
                        ),
                    });
                }
            }
        }
    }
    let Some((row, matched)) = header else {
        return Err(format!(
            "{what} has no rows with content: export the sheet again with a header row"
        ));
    };
    let headers = row_texts(&row.cells);
    let header_row = row.number;
    let mut pending: VecDeque<RowResult> = scanned.into();
    // There must be at least one data row below the header.
    let has_data = pending.iter().any(|r| match r {
        Ok(row) => !is_blank(truncated(&row.cells, headers.len())),
        Err(_) => true,
    });
    if !has_data {
        let mut found = false;
        while let Some(r) = src.next_row() {
            match &r {
                Ok(row) => {
                    last_read = row.number;
                    if is_blank(truncated(&row.cells, headers.len())) {
                        continue;
                    }
                }
                Err(e) => last_read = e.number,
            }
            pending.push_back(r);
            found = true;
            break;
        }
        if !found {
            *header_matched = matched;
            return Err(format!(
                "{what} has a header row (row {header_row}) but no data rows: add the users \
                 below the header row, or check that this is the right file"
            ));
        }
    }
    Ok(Located {
        header_row,
        headers,
        matched,
        pending,
        last_read,
    })
}

fn truncated(cells: &[Cell], width: usize) -> &[Cell] {
    &cells[..cells.len().min(width)]
}

/// The data rows below a located header: rows already read first, then the source.
/// Cells beyond the header are dropped, trailing empty cells trimmed, empty rows skipped.
/// At most `max_rows` rows come out; should there be more, one last row error says so
/// (the caller refuses the sheet when it sees more than `max_rows` rows).
pub(crate) struct DataRows<S> {
    pending: VecDeque<RowResult>,
    src: S,
    width: usize,
    max_rows: u64,
    given: u64,
}

impl<S: RowSource> DataRows<S> {
    pub(crate) fn new(
        pending: VecDeque<RowResult>,
        src: S,
        width: usize,
        opts: &SourceOptions,
    ) -> Self {
        DataRows {
            pending,
            src,
            width,
            max_rows: opts.max_rows.unwrap_or(DEFAULT_MAX_ROWS),
            given: 0,
        }
    }

    fn next_unlimited(&mut self) -> Option<RowResult> {
        loop {
            let r = match self.pending.pop_front() {
                Some(r) => r,
                None => self.src.next_row()?,
            };
            match r {
                Ok(mut row) => {
                    row.cells.truncate(self.width);
                    while row.cells.last().is_some_and(Cell::is_empty) {
                        row.cells.pop();
                    }
                    if !row.cells.is_empty() {
                        return Some(Ok(row));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The row error that ends a sheet with more than `max` data rows.
/// SHA-256 (hex) of a file: the summary names the exact input run.
pub fn file_sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::input(path, format!("cannot read the file: {e}")))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(crate::plan::hex_text(&h.finalize()))
}

pub fn too_many_rows_message(max: u64) -> String {
    format!(
        "the sheet has more than {max} data rows; enlist reads at most {max}: split the \
         sheet, or if it is genuine, pass --max-rows with a larger number"
    )
}

impl<S: RowSource> Iterator for DataRows<S> {
    type Item = RowResult;

    fn next(&mut self) -> Option<RowResult> {
        if self.given > self.max_rows {
            return None;
        }
        let r = self.next_unlimited()?;
        self.given += 1;
        if self.given > self.max_rows {
            let number = match &r {
                Ok(row) => row.number,
                Err(e) => e.number,
            };
            return Some(Err(RowError {
                number,
                message: too_many_rows_message(self.max_rows),
            }));
        }
        Some(r)
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// The probe the tests use: a header row has an `email` column.
    pub fn probe(cells: &[String]) -> bool {
        cells.iter().any(|c| c.eq_ignore_ascii_case("email"))
    }

    pub fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write fixture");
        p
    }

    pub fn open_ok(path: &Path, opts: &SourceOptions) -> (Sheet, Vec<RawRow>) {
        let mut sheet = open(path, opts, &probe).expect("open");
        let rows = std::mem::replace(&mut sheet.rows, Box::new(std::iter::empty()))
            .map(|r| r.expect("row"))
            .collect();
        (sheet, rows)
    }

    pub fn open_err(path: &Path, opts: &SourceOptions) -> String {
        match open(path, opts, &probe) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    pub fn t(s: &str) -> Cell {
        Cell::Text(s.into())
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn sniff_kinds() {
        assert_eq!(Kind::sniff(b"PK\x03\x04rest"), Kind::Zip);
        assert_eq!(
            Kind::sniff(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0]),
            Kind::Cfb
        );
        assert_eq!(Kind::sniff(b"email,name\n"), Kind::Text);
        assert_eq!(Kind::sniff(&[0xFF, 0xFE, b'e', 0]), Kind::Text);
        assert_eq!(Kind::sniff(&[1, 2, 3, 0, 5, 6]), Kind::Binary);
    }

    #[test]
    fn empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["empty.csv", "empty.xlsx"] {
            let p = write(&dir, name, b"");
            let e = open_err(&p, &SourceOptions::default());
            assert!(
                e.contains("the file is empty: export the sheet again"),
                "{e}"
            );
        }
        let p = write(&dir, "blank.csv", b"\xEF\xBB\xBF\r\n , \n");
        let e = open_err(&p, &SourceOptions::default());
        assert!(e.contains("has no rows with content"), "{e}");
    }

    #[test]
    fn header_only_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "h.csv", b"email,name\n,\n");
        let e = open_err(&p, &SourceOptions::default());
        assert!(
            e.contains("has a header row (row 1) but no data rows"),
            "{e}"
        );
    }

    #[test]
    fn xlsx_that_is_csv_or_garbage_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "users.xlsx", b"email,name\na@x,Ann\n");
        let e = open_err(&p, &SourceOptions::default());
        assert!(
            e.contains("is not an Excel workbook (it looks like CSV text): rename it to .csv"),
            "{e}"
        );
        let p = write(&dir, "junk.xls", &[0u8, 1, 2, 3, 4, 0, 0, 9]);
        let e = open_err(&p, &SourceOptions::default());
        assert!(e.contains("is not an Excel workbook"), "{e}");
        let p = write(&dir, "junk.csv", &[0u8, 1, 2, 3, 4, 0, 0, 9]);
        let e = open_err(&p, &SourceOptions::default());
        assert!(e.contains("does not look like CSV text"), "{e}");
    }

    #[test]
    fn corrupt_zip_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = b"PK\x03\x04".to_vec();
        bytes.extend_from_slice(&[7u8; 200]);
        for name in ["bad.xlsx", "bad.ods", "bad.xlsb", "bad.csv"] {
            let p = write(&dir, name, &bytes);
            let e = open_err(&p, &SourceOptions::default());
            assert!(e.contains("damaged or incomplete"), "{name}: {e}");
        }
    }

    #[test]
    fn missing_file_is_refused() {
        let e = open_err(
            Path::new("/nonexistent/users.csv"),
            &SourceOptions::default(),
        );
        assert!(e.contains("cannot open the file"), "{e}");
    }
}
