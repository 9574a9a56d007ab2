//! Excel and OpenDocument workbooks through calamine.
//!
//! xlsx/xlsm are streamed: calamine's cell reader is grouped into rows on a reader
//! thread that sends small batches through a bounded channel, so memory does not grow
//! with the number of rows and nothing is allocated from the sheet's declared
//! dimensions. xls, xlsb and ods are loaded as a range (calamine has no streaming
//! reader for them that we use), then walked row by row.

use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use calamine::{Data, DataRef, ExcelDateTime, Ods, Range, Reader, Xls, Xlsb, Xlsx, XlsxError};
use chrono::{NaiveDate, NaiveDateTime, Timelike};

use super::{
    locate_header, DataRows, HeaderProbe, Kind, LocateError, Located, RawRow, RowError, RowResult,
    RowSource, Sheet, SourceOptions, EXCEL_MAX_ROW, MAX_COLUMNS,
};
use crate::cell::{Cell, UNCALCULATED};
use crate::error::{Error, Result};

type Rs = BufReader<File>;

/// Rows per batch sent from the xlsx reader thread.
const BATCH: usize = 512;

pub(super) fn open(
    path: &Path,
    read: &Path,
    ext: &str,
    kind: Kind,
    opts: &SourceOptions,
    probe: &dyn HeaderProbe,
) -> Result<Sheet> {
    if kind == Kind::Zip {
        if let Some(what) = zip_not_a_workbook(read, ext) {
            return Err(Error::input(path, what));
        }
        let cap = opts
            .max_expanded_mib
            .unwrap_or(super::DEFAULT_MAX_EXPANDED_MIB);
        // The ratio check stands in for the cap the user did not choose.
        super::bounds::check_zip(path, read, cap, opts.max_expanded_mib.is_none())?;
    }
    match catch_unwind(AssertUnwindSafe(|| {
        open_workbook(path, read, ext, kind, opts, probe)
    })) {
        Ok(r) => r,
        Err(_) => Err(Error::input(
            path,
            "cannot be read: the workbook has content the Excel reader does not understand: \
             open it in Excel and save it again as .xlsx, or save the sheet as CSV",
        )),
    }
}

/// What a zip that is no workbook is, from the names of its parts: Office files are all
/// zips, so a Word document or a PowerPoint file renamed .xlsx would otherwise be refused
/// as a damaged workbook. A zip the `zip` crate cannot read is left to calamine.
fn zip_not_a_workbook(read: &Path, ext: &str) -> Option<String> {
    let mut zip = zip::ZipArchive::new(BufReader::new(File::open(read).ok()?)).ok()?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let has = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
    let what = if has("xl/") {
        return None;
    } else if has("word/") {
        "a Word document"
    } else if has("ppt/") {
        "a PowerPoint file"
    } else if has("[Content_Types].xml") {
        "an Office file but not an Excel workbook"
    } else {
        // OpenDocument says what it is in its first part.
        let mut mime = String::new();
        if let Ok(part) = zip.by_name("mimetype") {
            let _ = part.take(100).read_to_string(&mut mime);
        }
        match mime.trim() {
            "application/vnd.oasis.opendocument.spreadsheet" => return None,
            m if m.ends_with(".text") => "an OpenDocument text (Writer) document",
            m if m.ends_with(".presentation") => "an OpenDocument presentation (Impress)",
            _ => return Some(plain_zip(&names, ext)),
        }
    };
    Some(another_document(what, ext))
}

/// The refusal of a zip archive that is no Office file, naming the sheets inside it.
fn plain_zip(names: &[String], ext: &str) -> String {
    let sheets: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| {
            let n = n.to_ascii_lowercase();
            [".xlsx", ".xls", ".ods", ".csv"]
                .iter()
                .any(|e| n.ends_with(e))
        })
        .take(3)
        .collect();
    let inside = match sheets.is_empty() {
        true => ", or export the sheet again as .xlsx or CSV".to_string(),
        false => format!(" ({})", sheets.join(", ")),
    };
    format!(
        "is a zip archive{}, not a workbook: unpack it and give the spreadsheet inside{inside}",
        super::named_as(ext)
    )
}

/// The refusal of a document of another kind (`what`: "a Word document").
fn another_document(what: &str, ext: &str) -> String {
    format!(
        "is {what}{}, not a workbook: open the spreadsheet with the users instead, or copy \
         the table into a sheet and save it as .xlsx or CSV",
        super::named_as(ext)
    )
}

/// How much of an OLE compound file is searched for its stream names.
const CFB_SCAN: u64 = 16 * 1024 * 1024;

/// What an OLE compound file that is no workbook is (Word and PowerPoint 97-2003 files are
/// such files too), from the names of its streams, which its directory holds in UTF-16.
fn cfb_not_a_workbook(read: &Path, ext: &str) -> Option<String> {
    let mut bytes = Vec::new();
    File::open(read)
        .ok()?
        .take(CFB_SCAN)
        .read_to_end(&mut bytes)
        .ok()?;
    let has = |name: &str| {
        let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        memchr::memmem::find(&bytes, &utf16).is_some()
    };
    if has("Workbook") || has("Book") || has("EncryptedPackage") {
        return None;
    }
    let what = if has("WordDocument") {
        "a Word 97-2003 document"
    } else if has("PowerPoint Document") {
        "a PowerPoint 97-2003 file"
    } else {
        return None;
    };
    Some(another_document(what, ext))
}

fn open_workbook(
    path: &Path,
    read: &Path,
    ext: &str,
    kind: Kind,
    opts: &SourceOptions,
    probe: &dyn HeaderProbe,
) -> Result<Sheet> {
    let reader = || -> Result<Rs> {
        File::open(read).map(BufReader::new).map_err(|e| {
            Error::input(
                path,
                format!("cannot open the file ({e}): check the path and that you may read it"),
            )
        })
    };
    match kind {
        Kind::Cfb => match Xls::new(reader()?) {
            Ok(wb) => open_ranges(wb, path, opts, probe),
            Err(e) => Err(match cfb_not_a_workbook(read, ext) {
                Some(what) => Error::input(path, what),
                None => workbook_error(path, ext, &e.to_string(), true),
            }),
        },
        _ => match ext {
            "ods" => match Ods::new(reader()?) {
                Ok(wb) => open_ranges(wb, path, opts, probe),
                Err(e) => Err(workbook_error(path, ext, &e.to_string(), false)),
            },
            "xlsb" => match Xlsb::new(reader()?) {
                Ok(wb) => open_ranges(wb, path, opts, probe),
                Err(e) => Err(workbook_error(path, ext, &e.to_string(), false)),
            },
            _ => match Xlsx::new(reader()?) {
                Ok(wb) => open_xlsx(wb, path, opts, probe),
                Err(e) => {
                    // A zip with another extension may still be an ods or xlsb workbook.
                    if !matches!(ext, "xlsx" | "xlsm" | "xlam") {
                        if let Ok(wb) = Ods::new(reader()?) {
                            return open_ranges(wb, path, opts, probe);
                        }
                        if let Ok(wb) = Xlsb::new(reader()?) {
                            return open_ranges(wb, path, opts, probe);
                        }
                    }
                    Err(workbook_error(path, ext, &e.to_string(), false))
                }
            },
        },
    }
}

/// A clear message for a workbook calamine refused to open.
fn workbook_error(path: &Path, ext: &str, detail: &str, cfb: bool) -> Error {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("password") || lower.contains("encrypt") || (cfb && ext != "xls") {
        return Error::input(
            path,
            "is password-protected (encrypted): open it in Excel, remove the password \
             (File > Info > Protect Workbook) and save it again",
        );
    }
    Error::input(
        path,
        format!(
            "cannot be read as a workbook: the file is damaged or incomplete ({detail}): \
             download or export it again, or open it in Excel and save it again"
        ),
    )
}

/// The sheet the caller asked for by name (exact, else ignoring case and spaces).
fn named_sheet(path: &Path, names: &[String], wanted: &str) -> Result<String> {
    if let Some(n) = names.iter().find(|n| n.as_str() == wanted) {
        return Ok(n.clone());
    }
    let w = wanted.trim().to_lowercase();
    if let Some(n) = names.iter().find(|n| n.trim().to_lowercase() == w) {
        return Ok(n.clone());
    }
    let list = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::input(
        path,
        format!("has no sheet named \"{wanted}\": the sheets are {list}; choose one of these"),
    ))
}

/// Chooses the sheet: the named one, else the first whose header row the probe
/// recognises, else the first sheet with content. `attempt` locates the header in one sheet.
fn select<T>(
    path: &Path,
    names: &[String],
    opts: &SourceOptions,
    mut attempt: impl FnMut(&str) -> std::result::Result<(Located, T), LocateError>,
) -> Result<(String, Located, T)> {
    if names.is_empty() {
        return Err(Error::input(
            path,
            "has no sheets: export the workbook again with the users on a sheet",
        ));
    }
    if let Some(wanted) = &opts.sheet {
        let name = named_sheet(path, names, wanted)?;
        let (located, t) = attempt(&name).map_err(|e| Error::input(path, e.message))?;
        return Ok((name, located, t));
    }
    let mut fallback: Option<(String, Located, T)> = None;
    let mut first_err: Option<String> = None;
    for name in names {
        match attempt(name) {
            Ok((located, t)) if located.matched => return Ok((name.clone(), located, t)),
            Ok((located, t)) => {
                if fallback.is_none() {
                    fallback = Some((name.clone(), located, t));
                }
            }
            // The sheet the user meant, without data rows: say so rather than fall back.
            Err(e) if e.header_matched => return Err(Error::input(path, e.message)),
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e.message);
                }
            }
        }
    }
    match (fallback, first_err) {
        (Some(f), _) => Ok(f),
        (None, Some(m)) => Err(Error::input(path, m)),
        (None, None) => Err(Error::input(
            path,
            "has no rows with content: export the sheet again with a header row",
        )),
    }
}

fn sheet_label(name: &str) -> String {
    format!("sheet \"{name}\"")
}

// ---------------------------------------------------------------------------------------
// xls, xlsb, ods: whole range

fn open_ranges<R>(
    mut wb: R,
    path: &Path,
    opts: &SourceOptions,
    probe: &dyn HeaderProbe,
) -> Result<Sheet>
where
    R: Reader<Rs>,
    R::Error: std::fmt::Display,
{
    let names = wb.sheet_names();
    let (name, located, range) = select(path, &names, opts, |name| {
        let range = wb.worksheet_range(name).map_err(|e| {
            format!(
                "{} cannot be read ({e}): open the file in Excel and save it again",
                sheet_label(name)
            )
        })?;
        let mut src = RangeRows::new(range, MAX_COLUMNS);
        let located = locate_header(&mut src, opts.header_row, probe, &sheet_label(name))?;
        Ok((located, src))
    })?;
    let mut src = range;
    let width = located.headers.len();
    src.width = width;
    Ok(Sheet {
        path: path.to_path_buf(),
        sheet_name: Some(name),
        delimiter: None,
        encoding: None,
        encoding_guessed: false,
        header_row: located.header_row,
        headers: located.headers,
        rows: Box::new(DataRows::new(located.pending, src, width, opts)),
    })
}

/// Rows of a loaded range, numbered as the spreadsheet numbers them.
struct RangeRows {
    range: Range<Data>,
    next: usize,
    width: usize,
}

impl RangeRows {
    fn new(range: Range<Data>, width: usize) -> Self {
        RangeRows {
            range,
            next: 0,
            width,
        }
    }
}

impl RowSource for RangeRows {
    fn next_row(&mut self) -> Option<RowResult> {
        let (start_row, start_col) = self.range.start()?;
        let (height, w) = self.range.get_size();
        if self.next >= height {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let mut cells = Vec::new();
        for j in 0..w {
            let col = start_col as usize + j;
            if col >= self.width {
                break;
            }
            let cell = self.range.get((i, j)).map(data_cell).unwrap_or(Cell::Empty);
            if !cell.is_empty() {
                if cells.len() < col {
                    cells.resize(col, Cell::Empty);
                }
                cells.push(cell);
            }
        }
        Some(Ok(RawRow {
            number: start_row as u64 + i as u64 + 1,
            cells,
        }))
    }
}

// ---------------------------------------------------------------------------------------
// xlsx, xlsm: streamed

/// A cell with its formula, if any: a formula with no value was never calculated.
type CellItem<'a> = calamine::XlsxCellFormulaMetadataRecord<'a>;

/// Groups a stream of cells (in row order) into rows. `next_cell` is calamine's
/// `XlsxCellReader::next_cell_with_formula_metadata` (whose type calamine does not export).
struct XlsxRows<'a, F> {
    next_cell: F,
    lookahead: Option<CellItem<'a>>,
    width: usize,
    /// Capacity hint from the declared dimensions, capped: never trusted for allocation.
    capacity: usize,
    eof: bool,
    error: Option<String>,
    last_row: u64,
}

impl<'a, F> XlsxRows<'a, F>
where
    F: FnMut() -> std::result::Result<Option<CellItem<'a>>, XlsxError>,
{
    fn new(next_cell: F, declared_columns: u64, width: usize) -> Self {
        XlsxRows {
            next_cell,
            lookahead: None,
            width,
            capacity: declared_columns.min(64) as usize,
            eof: false,
            error: None,
            last_row: 0,
        }
    }

    fn pull(&mut self) -> Option<CellItem<'a>> {
        if let Some(c) = self.lookahead.take() {
            return Some(c);
        }
        if self.eof || self.error.is_some() {
            return None;
        }
        match (self.next_cell)() {
            Ok(Some(c)) => Some(c),
            Ok(None) => {
                self.eof = true;
                None
            }
            Err(e) => {
                self.error = Some(e.to_string());
                None
            }
        }
    }

    fn place(&self, cells: &mut Vec<Cell>, item: &CellItem<'a>) {
        let col = item.pos.1 as usize;
        let cell = match &item.value {
            _ if col >= self.width => return,
            // A program wrote the formula (openpyxl, a script) and nothing computed it: no
            // value to read, which must not pass for an empty cell.
            DataRef::Empty if item.formula.is_some() => Cell::Error(UNCALCULATED.into()),
            DataRef::Empty => return,
            value => data_ref_cell(value),
        };
        if cell.is_empty() {
            return;
        }
        if cells.len() <= col {
            cells.resize(col + 1, Cell::Empty);
        }
        cells[col] = cell;
    }
}

impl<'a, F> RowSource for XlsxRows<'a, F>
where
    F: FnMut() -> std::result::Result<Option<CellItem<'a>>, XlsxError>,
{
    fn next_row(&mut self) -> Option<RowResult> {
        let Some(first) = self.pull() else {
            let message = self.error.take()?;
            self.eof = true;
            let number = self.last_row + 1;
            return Some(Err(RowError {
                number,
                message: format!(
                    "the sheet cannot be read from row {number} on ({message}): open the file \
                     in Excel and save it again"
                ),
            }));
        };
        let row = first.pos.0;
        let mut cells = Vec::with_capacity(self.capacity.min(self.width));
        self.place(&mut cells, &first);
        while let Some(c) = self.pull() {
            if c.pos.0 != row {
                self.lookahead = Some(c);
                break;
            }
            self.place(&mut cells, &c);
        }
        let number = u64::from(row) + 1;
        if number > EXCEL_MAX_ROW || number <= self.last_row {
            // calamine keeps row numbers in 32 bits and wraps a larger `r` attribute
            // (99,999,999,999 comes back as 1,215,752,191): no row from here on can be
            // placed, so none is read.
            self.eof = true;
            self.lookahead = None;
            let after = self.last_row;
            return Some(Err(RowError {
                number: after + 1,
                message: format!(
                    "the sheet places a cell beyond Excel's last row (1,048,576), or its rows \
                     are out of order, after row {after}; no row after row {after} was read: \
                     the file was not saved by Excel; open it in Excel and save it again"
                ),
            }));
        }
        self.last_row = number;
        Some(Ok(RawRow { number, cells }))
    }
}

enum Msg {
    Batch(Vec<RowResult>),
    Done,
}

fn open_xlsx(
    mut wb: Xlsx<Rs>,
    path: &Path,
    opts: &SourceOptions,
    probe: &dyn HeaderProbe,
) -> Result<Sheet> {
    let names = wb.sheet_names();
    let (name, located, ()) = select(path, &names, opts, |name| {
        let mut reader = wb.worksheet_cells_reader(name).map_err(|e| {
            format!(
                "{} cannot be read ({e}): open the file in Excel and save it again",
                sheet_label(name)
            )
        })?;
        let dims = reader.dimensions();
        let declared = (dims.end.1 as u64).saturating_sub(dims.start.1 as u64) + 1;
        let mut src = XlsxRows::new(
            || reader.next_cell_with_formula_metadata(),
            declared,
            MAX_COLUMNS,
        );
        let located = locate_header(&mut src, opts.header_row, probe, &sheet_label(name))?;
        Ok((located, ()))
    })?;
    let width = located.headers.len();
    let skip_to = located.last_read;
    let (tx, rx) = sync_channel::<Msg>(4);
    let thread_name = name.clone();
    std::thread::Builder::new()
        .name("enlist-xlsx-reader".into())
        .spawn(move || {
            let ok = catch_unwind(AssertUnwindSafe(|| {
                stream_xlsx(&mut wb, &thread_name, skip_to, width, &tx)
            }));
            if let Ok(true) = ok {
                let _ = tx.send(Msg::Done);
            }
        })
        .map_err(|e| Error::Other(anyhow::anyhow!("cannot start the xlsx reader thread: {e}")))?;
    Ok(Sheet {
        path: path.to_path_buf(),
        sheet_name: Some(name),
        delimiter: None,
        encoding: None,
        encoding_guessed: false,
        header_row: located.header_row,
        headers: located.headers,
        rows: Box::new(DataRows::new(
            located.pending,
            ChannelRows {
                rx,
                batch: Vec::new().into_iter(),
                finished: false,
                last_row: skip_to,
            },
            width,
            opts,
        )),
    })
}

/// Reads the data rows after `skip_to` and sends them in batches. Returns false when the
/// receiver has gone away (the caller stopped reading).
fn stream_xlsx(
    wb: &mut Xlsx<Rs>,
    name: &str,
    skip_to: u64,
    width: usize,
    tx: &SyncSender<Msg>,
) -> bool {
    let mut reader = match wb.worksheet_cells_reader(name) {
        Ok(r) => r,
        Err(e) => {
            let err = RowError {
                number: skip_to + 1,
                message: format!(
                    "the sheet cannot be read from row {} on ({e}): open the file in Excel and \
                     save it again",
                    skip_to + 1
                ),
            };
            return tx.send(Msg::Batch(vec![Err(err)])).is_ok();
        }
    };
    let mut src = XlsxRows::new(
        || reader.next_cell_with_formula_metadata(),
        width as u64,
        width,
    );
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(r) = src.next_row() {
        match &r {
            Ok(row) if row.number <= skip_to || row.cells.is_empty() => continue,
            // Already read (and kept) while the header was looked for.
            Err(e) if e.number <= skip_to => continue,
            _ => {}
        }
        batch.push(r);
        if batch.len() >= BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if tx.send(Msg::Batch(full)).is_err() {
                return false;
            }
        }
    }
    batch.is_empty() || tx.send(Msg::Batch(batch)).is_ok()
}

/// The receiving end of the xlsx reader thread.
struct ChannelRows {
    rx: Receiver<Msg>,
    batch: std::vec::IntoIter<RowResult>,
    finished: bool,
    last_row: u64,
}

impl RowSource for ChannelRows {
    fn next_row(&mut self) -> Option<RowResult> {
        loop {
            if let Some(r) = self.batch.next() {
                if let Ok(row) = &r {
                    self.last_row = row.number;
                }
                return Some(r);
            }
            if self.finished {
                return None;
            }
            match self.rx.recv() {
                Ok(Msg::Batch(b)) => self.batch = b.into_iter(),
                Ok(Msg::Done) => {
                    self.finished = true;
                    return None;
                }
                Err(_) => {
                    self.finished = true;
                    let last = self.last_row;
                    return Some(Err(RowError {
                        number: last + 1,
                        message: format!(
                            "reading the sheet stopped unexpectedly after row {last}: open the \
                             file in Excel and save it again"
                        ),
                    }));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Cell normalisation

fn data_cell(d: &Data) -> Cell {
    match d {
        Data::Empty => Cell::Empty,
        Data::String(s) => Cell::text(s),
        Data::Int(i) => Cell::number(*i as f64),
        Data::Float(f) => Cell::number(*f),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(dt) => datetime_cell(dt),
        Data::DateTimeIso(s) => iso_cell(s),
        Data::DurationIso(s) => Cell::text(s),
        Data::Error(e) => Cell::Error(e.to_string()),
    }
}

fn data_ref_cell(d: &DataRef<'_>) -> Cell {
    match d {
        DataRef::Empty => Cell::Empty,
        DataRef::String(s) => Cell::text(s),
        DataRef::SharedString(s) => Cell::text(s),
        DataRef::Int(i) => Cell::number(*i as f64),
        DataRef::Float(f) => Cell::number(*f),
        DataRef::Bool(b) => Cell::Bool(*b),
        DataRef::DateTime(dt) => datetime_cell(dt),
        DataRef::DateTimeIso(s) => iso_cell(s),
        DataRef::DurationIso(s) => Cell::text(s),
        DataRef::Error(e) => Cell::Error(e.to_string()),
    }
}

/// Largest serial Excel can show as a date (9999-12-31).
const MAX_SERIAL: f64 = 2_958_466.0;

/// A date-formatted number: whole days → `2024-03-01`, else `2024-03-01T09:30:00`
/// (rounded to the second); a time of day alone or a duration → text `09:30:00`.
fn datetime_cell(dt: &ExcelDateTime) -> Cell {
    let v = dt.as_f64();
    if !v.is_finite() || v.abs() >= MAX_SERIAL {
        return Cell::number(v);
    }
    if dt.is_duration() || (0.0..1.0).contains(&v) {
        let total = (v * 86_400.0).round() as i64;
        let sign = if total < 0 { "-" } else { "" };
        let t = total.abs();
        return Cell::Text(
            format!("{sign}{:02}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60).into(),
        );
    }
    if v < 0.0 {
        return Cell::number(v);
    }
    match dt.as_datetime() {
        Some(ndt) => Cell::Date(format_datetime(ndt)),
        None => Cell::number(v),
    }
}

fn format_datetime(ndt: NaiveDateTime) -> String {
    let rounded = if ndt.nanosecond() >= 500_000_000 {
        ndt.checked_add_signed(chrono::Duration::seconds(1))
            .unwrap_or(ndt)
    } else {
        ndt
    };
    let rounded = rounded.with_nanosecond(0).unwrap_or(rounded);
    if rounded.num_seconds_from_midnight() == 0 {
        rounded.format("%Y-%m-%d").to_string()
    } else {
        rounded.format("%Y-%m-%dT%H:%M:%S").to_string()
    }
}

/// calamine's ISO date strings (ods): normalised like Excel dates when they parse.
fn iso_cell(s: &str) -> Cell {
    let t = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Cell::Date(d.format("%Y-%m-%d").to_string());
    }
    if let Ok(ndt) = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
        return Cell::Date(format_datetime(ndt));
    }
    Cell::text(t)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use rust_xlsxwriter::{ExcelDateTime as XDate, Format, Formula, Workbook};
    use std::path::PathBuf;

    fn opts() -> SourceOptions {
        SourceOptions::default()
    }

    /// A workbook with an instructions sheet first and the users on the second sheet
    /// (title row, blank row, header on row 3), and a third sheet "Other".
    pub(super) fn users_workbook(path: &Path) {
        let mut wb = Workbook::new();
        let notes = wb.add_worksheet();
        notes.set_name("Notes").unwrap();
        notes.write_string(0, 0, "Fill in the Users sheet").unwrap();

        let users = wb.add_worksheet();
        users.set_name("Users").unwrap();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm");
        users.write_string(0, 0, "New starters, March").unwrap();
        for (c, h) in [
            "Email",
            "Phone",
            "Code",
            "Employee ID",
            "Start",
            "Active",
            "Calc",
            "Ratio",
            "",
        ]
        .iter()
        .enumerate()
        {
            users.write_string(2, c as u16, *h).unwrap();
        }
        users.write_string(3, 0, " ann@example.org ").unwrap();
        users.write_string(3, 1, "+441234").unwrap();
        users.write_string(3, 2, "0123").unwrap();
        users.write_number(3, 3, 1234.0).unwrap();
        users
            .write_datetime_with_format(3, 4, XDate::from_ymd(2024, 3, 1).unwrap(), &date)
            .unwrap();
        users.write_boolean(3, 5, true).unwrap();
        users
            .write_formula(3, 6, Formula::new("=1/0").set_result("#DIV/0!"))
            .unwrap();
        users.write_number(3, 7, 0.25).unwrap();
        users.write_string(3, 9, "beyond the header").unwrap();
        // Row 5 (index 4) left empty; row 6 is the second user.
        users.write_string(5, 0, "bob@example.org").unwrap();
        users
            .write_datetime_with_format(
                5,
                4,
                XDate::from_ymd(2024, 3, 1)
                    .unwrap()
                    .and_hms(9, 30, 0)
                    .unwrap(),
                &datetime,
            )
            .unwrap();
        users.write_boolean(5, 5, false).unwrap();
        users
            .write_formula(5, 6, Formula::new("=NA()").set_result("#N/A"))
            .unwrap();
        users.write_number(5, 3, 1e17).unwrap();

        let other = wb.add_worksheet();
        other.set_name("Other").unwrap();
        other.write_string(0, 0, "email").unwrap();
        other.write_string(1, 0, "zed@example.org").unwrap();
        wb.save(path).unwrap();
    }

    /// What the users sheet must read as, whatever the format.
    pub(super) fn check_users(sheet: &Sheet, rows: &[RawRow], ods: bool) {
        assert_eq!(sheet.sheet_name.as_deref(), Some("Users"));
        assert_eq!(sheet.header_row, 3);
        assert_eq!(
            sheet.headers,
            vec![
                "Email",
                "Phone",
                "Code",
                "Employee ID",
                "Start",
                "Active",
                "Calc",
                "Ratio"
            ]
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].number, 4);
        // The ods fixture went through LibreOffice, which stores these booleans as the
        // numbers 1/0, and calamine's ods reader returns a formula error as its displayed
        // text (see tests/fixtures/README.md).
        let (yes, no) = if ods {
            (Cell::Int(1), Cell::Int(0))
        } else {
            (Cell::Bool(true), Cell::Bool(false))
        };
        let div0 = if ods {
            t("#DIV/0!")
        } else {
            Cell::Error("#DIV/0!".into())
        };
        assert_eq!(
            rows[0].cells,
            vec![
                t("ann@example.org"),
                t("+441234"),
                t("0123"),
                Cell::Int(1234),
                Cell::Date("2024-03-01".into()),
                yes,
                div0,
                Cell::Float(0.25),
            ]
        );
        assert_eq!(rows[1].number, 6);
        assert_eq!(rows[1].cells[0], t("bob@example.org"));
        assert!(
            rows[1].cells[3].is_inexact_integer(),
            "{:?}",
            rows[1].cells[3]
        );
        assert_eq!(rows[1].cells[4], Cell::Date("2024-03-01T09:30:00".into()));
        assert_eq!(rows[1].cells[5], no);
        if !ods {
            assert_eq!(rows[1].cells[6], Cell::Error("#N/A".into()));
        }
    }

    fn xlsx(dir: &tempfile::TempDir) -> PathBuf {
        let p = dir.path().join("users.xlsx");
        users_workbook(&p);
        p
    }

    #[test]
    fn xlsx_users_on_second_sheet_are_found_and_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let p = xlsx(&dir);
        let (sheet, rows) = open_ok(&p, &opts());
        check_users(&sheet, &rows, false);
    }

    #[test]
    fn xlsx_sheet_by_name_and_unknown_sheet() {
        let dir = tempfile::tempdir().unwrap();
        let p = xlsx(&dir);
        let o = SourceOptions {
            sheet: Some("other".into()),
            ..opts()
        };
        let (sheet, rows) = open_ok(&p, &o);
        assert_eq!(sheet.sheet_name.as_deref(), Some("Other"));
        assert_eq!(sheet.headers, vec!["email"]);
        assert_eq!(
            rows,
            vec![RawRow {
                number: 2,
                cells: vec![t("zed@example.org")]
            }]
        );

        let o = SourceOptions {
            sheet: Some("Staff".into()),
            ..opts()
        };
        let e = open_err(&p, &o);
        assert!(
            e.contains(
                "has no sheet named \"Staff\": the sheets are \"Notes\", \"Users\", \"Other\""
            ),
            "{e}"
        );
        // A named sheet with a header but no data rows.
        let o = SourceOptions {
            sheet: Some("Notes".into()),
            ..opts()
        };
        let e = open_err(&p, &o);
        assert!(
            e.contains("sheet \"Notes\" has a header row (row 1) but no data rows"),
            "{e}"
        );
    }

    #[test]
    fn xlsx_header_row_override() {
        let dir = tempfile::tempdir().unwrap();
        let p = xlsx(&dir);
        let o = SourceOptions {
            sheet: Some("Users".into()),
            header_row: Some(4),
            ..opts()
        };
        let (sheet, rows) = open_ok(&p, &o);
        assert_eq!(sheet.header_row, 4);
        assert_eq!(sheet.headers[0], "ann@example.org");
        assert_eq!(sheet.headers[3], "1234");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].number, 6);
    }

    #[test]
    fn xlsx_stops_early_without_leaking_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("many.xlsx");
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(0, 0, "email").unwrap();
        for r in 1..5000u32 {
            ws.write_string(r, 0, format!("u{r}@x")).unwrap();
        }
        wb.save(&p).unwrap();
        let sheet = super::super::open(&p, &opts(), &probe).unwrap();
        let first: Vec<RowResult> = sheet.rows.take(3).collect();
        assert_eq!(first.len(), 3);
        let (_, rows) = open_ok(&p, &opts());
        assert_eq!(rows.len(), 4999);
        assert_eq!(rows[4998].number, 5000);
    }

    #[test]
    fn xlsx_declaring_the_whole_sheet_does_not_allocate_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.xlsx");
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(0, 0, "email").unwrap();
        ws.write_string(1, 0, "a@x").unwrap();
        ws.write_string(0, 16_383, "far away").unwrap();
        ws.write_string(1_048_575, 16_383, "corner").unwrap();
        wb.save(&p).unwrap();
        let (sheet, rows) = open_ok(&p, &opts());
        assert_eq!(sheet.headers.len(), 16_384);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cells, vec![t("a@x")]);
        assert_eq!(rows[1].number, 1_048_576);
    }

    #[test]
    fn fixtures_xls_and_ods_read_like_xlsx() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for (name, ods) in [("users.xls", false), ("users.ods", true)] {
            let (sheet, rows) = open_ok(&root.join(name), &opts());
            check_users(&sheet, &rows, ods);
        }
    }

    #[test]
    fn dates_and_iso_strings() {
        use calamine::ExcelDateTimeType;
        let d = |v| datetime_cell(&ExcelDateTime::new(v, ExcelDateTimeType::DateTime, false));
        assert_eq!(d(45352.0), Cell::Date("2024-03-01".into()));
        assert_eq!(
            d(45352.0 + 0.395_833_333_3),
            Cell::Date("2024-03-01T09:30:00".into())
        );
        // 23:59:59.9 rounds into the next day.
        assert_eq!(
            d(45352.0 + 86_399.9 / 86_400.0),
            Cell::Date("2024-03-02".into())
        );
        assert_eq!(d(0.5), t("12:00:00"));
        assert!(matches!(d(f64::NAN), Cell::Float(f) if f.is_nan()));
        assert_eq!(d(1e300), Cell::Float(1e300));
        assert_eq!(iso_cell("2024-03-01"), Cell::Date("2024-03-01".into()));
        assert_eq!(
            iso_cell("2024-03-01T09:30:00.000"),
            Cell::Date("2024-03-01T09:30:00".into())
        );
        assert_eq!(
            iso_cell("2024-03-01T00:00:00"),
            Cell::Date("2024-03-01".into())
        );
        assert_eq!(iso_cell("PT9H"), t("PT9H"));
    }

    /// Writes the xlsx that `tests/fixtures/users.{xls,ods}` were converted from
    /// (see tests/fixtures/README.md). Run with `--ignored` to regenerate.
    #[test]
    #[ignore]
    fn write_fixture_source() {
        let dir = std::env::temp_dir().join("enlist-fixture-source");
        std::fs::create_dir_all(&dir).unwrap();
        users_workbook(&dir.join("users.xlsx"));
    }

    #[test]
    fn truncated_workbooks_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let full = std::fs::read(xlsx(&dir)).unwrap();
        let xls =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/users.xls"))
                .unwrap();
        for (bytes, name) in [(&full, "cut.xlsx"), (&xls, "cut.xls")] {
            for cut in [5, 40, 300, bytes.len() / 2, bytes.len() - 30] {
                let p = write(&dir, name, &bytes[..cut]);
                match super::super::open(&p, &opts(), &probe) {
                    Err(e) => assert!(!e.to_string().is_empty()),
                    Ok(sheet) => {
                        let _ = sheet.rows.count();
                    }
                }
            }
        }
    }

    #[test]
    fn header_only_users_sheet_is_reported_not_replaced_by_another_sheet() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.xlsx");
        let mut wb = Workbook::new();
        let intro = wb.add_worksheet();
        intro.set_name("Intro").unwrap();
        intro.write_string(0, 0, "How to fill this in").unwrap();
        intro.write_string(1, 0, "One user per row").unwrap();
        let users = wb.add_worksheet();
        users.set_name("Users").unwrap();
        users.write_string(0, 0, "Email").unwrap();
        users.write_string(0, 1, "Name").unwrap();
        wb.save(&p).unwrap();
        let e = open_err(&p, &opts());
        assert!(
            e.contains("sheet \"Users\" has a header row (row 1) but no data rows"),
            "{e}"
        );
    }
}
