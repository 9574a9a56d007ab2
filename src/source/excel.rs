//! Excel and OpenDocument workbooks through calamine.
//!
//! xlsx/xlsm are streamed: calamine's cell reader is grouped into rows on a reader
//! thread that sends small batches through a bounded channel, so memory does not grow
//! with the number of rows and nothing is allocated from the sheet's declared
//! dimensions. xls, xlsb and ods are loaded as a range (calamine has no streaming
//! reader for them that we use), then walked row by row.

use std::fs::File;
use std::io::BufReader;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use calamine::{Data, DataRef, ExcelDateTime, Ods, Range, Reader, Xls, Xlsb, Xlsx, XlsxError};
use chrono::{NaiveDate, NaiveDateTime, Timelike};

use super::{
    locate_header, DataRows, HeaderProbe, Kind, Located, RawRow, RowError, RowResult, RowSource,
    Sheet, SourceOptions, MAX_COLUMNS,
};
use crate::cell::Cell;
use crate::error::{Error, Result};

type Rs = BufReader<File>;

/// Rows per batch sent from the xlsx reader thread.
const BATCH: usize = 512;

pub(super) fn open(
    path: &Path,
    ext: &str,
    kind: Kind,
    opts: &SourceOptions,
    probe: &dyn HeaderProbe,
) -> Result<Sheet> {
    match catch_unwind(AssertUnwindSafe(|| {
        open_workbook(path, ext, kind, opts, probe)
    })) {
        Ok(r) => r,
        Err(_) => Err(Error::input(
            path,
            "cannot be read: the workbook has content the Excel reader does not understand: \
             open it in Excel and save it again as .xlsx, or save the sheet as CSV",
        )),
    }
}

fn open_workbook(
    path: &Path,
    ext: &str,
    kind: Kind,
    opts: &SourceOptions,
    probe: &dyn HeaderProbe,
) -> Result<Sheet> {
    let reader = || -> Result<Rs> {
        File::open(path).map(BufReader::new).map_err(|e| {
            Error::input(
                path,
                format!("cannot open the file ({e}): check the path and that you may read it"),
            )
        })
    };
    match kind {
        Kind::Cfb => match Xls::new(reader()?) {
            Ok(wb) => open_ranges(wb, path, opts, probe),
            Err(e) => Err(workbook_error(path, ext, &e.to_string(), true)),
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
    mut attempt: impl FnMut(&str) -> std::result::Result<(Located, T), String>,
) -> Result<(String, Located, T)> {
    if names.is_empty() {
        return Err(Error::input(
            path,
            "has no sheets: export the workbook again with the users on a sheet",
        ));
    }
    if let Some(wanted) = &opts.sheet {
        let name = named_sheet(path, names, wanted)?;
        let (located, t) = attempt(&name).map_err(|m| Error::input(path, m))?;
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
            Err(m) => {
                if first_err.is_none() {
                    first_err = Some(m);
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
        header_row: located.header_row,
        headers: located.headers,
        rows: Box::new(DataRows::new(located.pending, src, width)),
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

type CellItem<'a> = calamine::Cell<DataRef<'a>>;

/// Groups a stream of cells (in row order) into rows. `next_cell` is calamine's
/// `XlsxCellReader::next_cell` (whose type calamine does not export).
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

    fn place(&self, cells: &mut Vec<Cell>, col: u32, value: &DataRef<'a>) {
        let col = col as usize;
        if col >= self.width || matches!(value, DataRef::Empty) {
            return;
        }
        let cell = data_ref_cell(value);
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
        let (row, col) = first.get_position();
        let mut cells = Vec::with_capacity(self.capacity.min(self.width));
        self.place(&mut cells, col, first.get_value());
        while let Some(c) = self.pull() {
            let (r, col) = c.get_position();
            if r != row {
                self.lookahead = Some(c);
                break;
            }
            self.place(&mut cells, col, c.get_value());
        }
        let number = row as u64 + 1;
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
        let mut src = XlsxRows::new(|| reader.next_cell(), declared, MAX_COLUMNS);
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
    let mut src = XlsxRows::new(|| reader.next_cell(), width as u64, width);
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(r) = src.next_row() {
        if let Ok(row) = &r {
            if row.number <= skip_to || row.cells.is_empty() {
                continue;
            }
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
        return Cell::Text(format!(
            "{sign}{:02}:{:02}:{:02}",
            t / 3600,
            (t / 60) % 60,
            t % 60
        ));
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
