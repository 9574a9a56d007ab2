//! The outcome workbook: one row per input row, in input order, that people can act on.
//!
//! Outcomes arrive in completion order from concurrent workers, but the Results sheet must be
//! in input order, and a 1,000,000-row run must not hold a million outcomes in memory. So every
//! outcome is *spilled* as it arrives into a scratch SQLite file (a table keyed by `seq`,
//! inserted in transactions of [`BATCH`] rows), and [`XlsxSink::finish`] streams the table back
//! in `seq` order into rust_xlsxwriter's constant-memory worksheets.
//!
//! Why SQLite rather than an append-only file and an external sort: the table keyed by `seq`
//! *is* the sort (a B-tree on disk, read back in order with a bounded page cache), and the
//! Errors sheet needs a `GROUP BY` of the messages' shapes (see `message_shape`) with the
//! row numbers of each group, which SQLite does on disk too. An external merge sort would
//! need its own run files, merge and grouping code; rusqlite with the bundled SQLite is
//! already a dependency. The scratch file lives beside the report (not in `/tmp`, which is
//! often RAM-backed) and is deleted when the sink is dropped.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use rusqlite::{params, Connection};
use rust_xlsxwriter::{
    Chart, ChartDataLabel, ChartFormat, ChartPoint, ChartSolidFill, Color, ConditionalFormatCell,
    ConditionalFormatCellRule, Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError,
};
use serde::{Deserialize, Serialize};

use super::{mask_command_line, report_error, strip_userinfo, Columns};
use crate::error::Result;
use crate::outcome::{Outcome, OutcomeSink, RunSummary, Status};
use crate::profile::Action;

/// Excel's rows per worksheet (header included).
pub const EXCEL_MAX_ROWS: u32 = 1_048_576;
/// Excel's columns per worksheet (A to XFD).
pub const EXCEL_MAX_COLUMNS: usize = 16_384;
/// Excel's characters per cell.
pub const EXCEL_MAX_CELL_CHARS: usize = 32_767;
/// Widths (in characters) of the wrapped columns: Results' Message, and Errors' Message and
/// Row numbers.
const MESSAGE_WIDTH: f64 = 60.0;
const ERRORS_MESSAGE_WIDTH: f64 = 70.0;
const ROW_LIST_WIDTH: f64 = 50.0;
/// The What next lines of the Summary sheet span columns A to H, about this many characters.
const NEXT_LAST_COLUMN: u16 = 7;
const NEXT_WIDTH: f64 = 84.0;
/// The Summary facts' values span columns B to H (12 + 6 × 8.43 characters).
const FACT_WIDTH: f64 = 62.0;
/// Points per line of text in the default font (Calibri 11); Excel's tallest row.
const LINE_HEIGHT: f64 = 15.0;
const MAX_ROW_HEIGHT: f64 = 409.0;
/// Outcomes per spill transaction: one fsync-free commit per thousand rows keeps inserting
/// cheap without holding many rows in SQLite's page cache.
const BATCH: usize = 1000;
/// Rows sampled (in input order) to size the input columns.
const WIDTH_SAMPLE: i64 = 1000;

/// What is kept of one outcome until the workbook is written: the shown cells (already
/// masked), the report columns and the source row.
#[derive(Serialize, Deserialize)]
struct Stored {
    status: Status,
    action: Action,
    http_status: Option<u16>,
    attempts: u32,
    #[serde(default)]
    requests: u32,
    duration_ms: u64,
    message: String,
    remote_id: Option<String>,
    finished_at: String,
    cells: Vec<String>,
    source_row: u64,
    /// Shown positions of the cells an invalid row's problems are about.
    #[serde(default)]
    problem_columns: Vec<u16>,
}

/// The scratch file; removed when dropped, whatever happened.
struct SpillFile(PathBuf);

impl Drop for SpillFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes the outcome workbook (sheets Results, Summary, Errors) at [`OutcomeSink::finish`].
pub struct XlsxSink {
    path: PathBuf,
    columns: Columns,
    max_rows: u32,
    conn: Connection,
    in_tx: bool,
    pending: usize,
    finished: bool,
    origin: Option<super::feedback::Origin>,
    // Declared last: dropped after the connection is closed.
    _spill: SpillFile,
}

impl XlsxSink {
    /// Prepares a workbook at `path` for an input with `headers`; `secret_columns[i]` says
    /// whether column `i` is a secret (its cells are shown as `********`, never anything else).
    /// Nothing is written at `path` until [`OutcomeSink::finish`].
    pub fn create(
        path: &Path,
        headers: Vec<String>,
        secret_columns: Vec<bool>,
    ) -> Result<XlsxSink> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "outcome".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let spill = SpillFile(dir.join(format!(".{name}.{}.{nanos}.spill", std::process::id())));
        let conn = Connection::open(&spill.0)
            .map_err(|e| report_error(path, format!("cannot create the scratch file: {e}")))?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA temp_store = FILE;
             PRAGMA cache_size = -8192;
             CREATE TABLE outcomes (
                 seq INTEGER PRIMARY KEY,
                 status TEXT NOT NULL,
                 message TEXT NOT NULL,
                 brief TEXT NOT NULL,
                 shape TEXT NOT NULL,
                 source_row INTEGER NOT NULL,
                 data BLOB NOT NULL
             );",
        )
        .map_err(|e| report_error(path, format!("cannot prepare the scratch file: {e}")))?;
        Ok(XlsxSink {
            path: path.to_path_buf(),
            columns: Columns::new(headers, secret_columns),
            max_rows: EXCEL_MAX_ROWS,
            conn,
            in_tx: false,
            pending: 0,
            finished: false,
            origin: None,
            _spill: spill,
        })
    }

    /// Rows per Results sheet, header included (Excel's 1,048,576 by default). Tests use a
    /// small number to see the overflow onto `Results (2)` without writing a million rows.
    pub fn with_max_rows(mut self, n: u32) -> XlsxSink {
        self.max_rows = n.clamp(2, EXCEL_MAX_ROWS);
        self
    }

    /// Makes the Results sheet fit Excel's [`EXCEL_MAX_COLUMNS`] with the outcome columns
    /// added: unused input columns are left out from the right (the warning says which).
    /// Errors when the used columns alone do not fit: known before any request.
    pub fn fit_width(&mut self, unused: &[bool]) -> Result<Option<String>> {
        let n = self.columns.input_count();
        let max = EXCEL_MAX_COLUMNS - super::REPORT_COLUMNS.len();
        match self.columns.fit(max, unused) {
            Some((0, _)) => Ok(None),
            Some((dropped, first)) => Ok(Some(format!(
                "the sheet has {n} columns and an outcome workbook holds {EXCEL_MAX_COLUMNS} with \
                 the {} outcome columns: {dropped} columns the profile does not use (from {first:?} \
                 on) are left out of {}",
                super::REPORT_COLUMNS.len(),
                self.path.display()
            ))),
            None => Err(report_error(
                &self.path,
                format!(
                    "the sheet has {n} columns, more than an outcome workbook holds ({max} besides \
                     the outcome columns); write the report as CSV or JSON lines (--report out.csv)"
                ),
            )),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records on the Summary sheet the sheet the rows came from first (see
    /// [`super::feedback::Origin`]).
    pub fn with_origin(mut self, origin: Option<super::feedback::Origin>) -> XlsxSink {
        self.origin = origin;
        self
    }

    fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|e| report_error(&self.path, format!("scratch file: {e}")))
    }

    fn commit(&mut self) -> Result<()> {
        if self.in_tx {
            let r = self.conn.execute_batch("COMMIT");
            self.sql(r)?;
            self.in_tx = false;
            self.pending = 0;
        }
        Ok(())
    }
}

impl OutcomeSink for XlsxSink {
    /// Spills the outcome. A second outcome for the same `seq` replaces the first: the last
    /// word on a row is its outcome.
    fn record(&mut self, o: &Outcome) -> Result<()> {
        if !self.in_tx {
            let r = self.conn.execute_batch("BEGIN");
            self.sql(r)?;
            self.in_tx = true;
        }
        let (cells, source_row) = self.columns.cells(o);
        let problem_columns = o
            .problem_columns
            .iter()
            .filter_map(|h| self.columns.shown_index(h))
            .filter_map(|i| u16::try_from(i).ok())
            .collect();
        // Only the Errors sheet groups by shape: other rows are spared the regexes.
        let (brief, shape) = if matches!(o.status, Status::Failed | Status::Invalid) {
            message_shape(&o.message)
        } else {
            (String::new(), String::new())
        };
        let stored = Stored {
            status: o.status,
            action: o.action,
            http_status: o.http_status,
            attempts: o.attempts,
            requests: o.requests,
            duration_ms: o.duration_ms,
            message: o.message.clone(),
            remote_id: o.remote_id.clone(),
            finished_at: o.finished_at.clone(),
            cells,
            source_row,
            problem_columns,
        };
        let data = serde_json::to_vec(&stored).map_err(anyhow::Error::from)?;
        let seq = i64::try_from(o.seq)
            .map_err(|_| report_error(&self.path, "row number out of range"))?;
        let r = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO outcomes
                 (seq, status, message, brief, shape, source_row, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    seq,
                    o.status.as_str(),
                    o.message,
                    brief,
                    shape,
                    source_row as i64,
                    data
                ])
            });
        self.sql(r)?;
        self.pending += 1;
        if self.pending >= BATCH {
            self.commit()?;
        }
        Ok(())
    }

    fn finish(&mut self, summary: &RunSummary) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.commit()?;
        // Only failed and invalid rows are grouped; a partial index keeps it small.
        let r = self.conn.execute_batch(
            "CREATE INDEX errors_by_shape ON outcomes (status, shape, seq)
             WHERE status IN ('failed', 'invalid');",
        );
        self.sql(r)?;
        // Written beside the target, then renamed: a crash never leaves half a workbook
        // under the name a person will open.
        let partial = self.path.with_extension("xlsx.partial");
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let writer = Writer {
            conn: &self.conn,
            columns: &self.columns,
            max_rows: self.max_rows,
            path: &self.path,
            origin: self.origin.as_ref(),
        };
        let written = writer.write(summary, &dir, &partial).and_then(|()| {
            std::fs::rename(&partial, &self.path).map_err(|e| report_error(&self.path, e))
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&partial);
            // The outcomes are all in the scratch file: keep them where a person finds them.
            let rescue = self.rescue_path();
            return Err(match self.rescue(&rescue) {
                Ok(n) => report_error(
                    &self.path,
                    format!(
                        "{e}; the outcomes of all {n} rows are kept as JSON lines in {}",
                        rescue.display()
                    ),
                ),
                Err(r) => report_error(
                    &self.path,
                    format!(
                        "{e}; keeping the outcomes in {} failed too: {r}",
                        rescue.display()
                    ),
                ),
            });
        }
        self.finished = true;
        Ok(())
    }
}

impl XlsxSink {
    /// Where the outcomes go when the workbook cannot be written: `<report>.rescue.jsonl`.
    pub fn rescue_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "outcome".into());
        name.push(".rescue.jsonl");
        self.path.with_file_name(name)
    }

    /// Writes every spilled outcome, in input order, as one JSON object per line (the
    /// shown cells, already masked, and the report columns). Returns how many.
    fn rescue(&self, to: &Path) -> std::result::Result<u64, String> {
        use std::io::Write;
        let f = std::fs::File::create(to).map_err(|e| e.to_string())?;
        let mut out = std::io::BufWriter::new(f);
        let mut st = self
            .conn
            .prepare("SELECT seq, data FROM outcomes ORDER BY seq")
            .map_err(|e| e.to_string())?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(|e| e.to_string())?;
        let mut n = 0u64;
        for r in rows {
            let (seq, data) = r.map_err(|e| e.to_string())?;
            let mut v: serde_json::Value =
                serde_json::from_slice(&data).map_err(|e| e.to_string())?;
            if let Some(o) = v.as_object_mut() {
                o.insert("seq".into(), seq.into());
            }
            serde_json::to_writer(&mut out, &v).map_err(|e| e.to_string())?;
            out.write_all(b"\n").map_err(|e| e.to_string())?;
            n += 1;
        }
        out.flush().map_err(|e| e.to_string())?;
        Ok(n)
    }
}

/// The formats of the workbook, made once.
struct Formats {
    header: Format,
    text: Format,
    title: Format,
    label: Format,
    label_top: Format,
    /// Indented, so a message does not run into the right-aligned duration before it, and
    /// wrapped, so a long one is read in its cell rather than cut at the next column.
    message: Format,
    /// An input cell an invalid row's problem is about: the colour of an invalid Outcome.
    problem: Format,
    /// A command to type, on the Summary sheet.
    command: Format,
    /// Wrapped at the column's width, top-aligned beside other wrapped cells.
    wrap: Format,
    /// Top-aligned: the cells of a row whose message takes several lines.
    top: Format,
    /// A count beside a message: centred, so its digits do not run into the text.
    count: Format,
}

impl Formats {
    fn new() -> Formats {
        Formats {
            header: Format::new()
                .set_bold()
                .set_background_color(Color::RGB(0xD9E1F2))
                .set_border_bottom(FormatBorder::Thin)
                .set_num_format("@"),
            text: Format::new()
                .set_num_format("@")
                .set_align(FormatAlign::Top),
            title: Format::new().set_bold().set_font_size(14),
            label: Format::new().set_bold(),
            label_top: Format::new().set_bold().set_align(FormatAlign::Top),
            message: Format::new()
                .set_indent(1)
                .set_text_wrap()
                .set_align(FormatAlign::Top),
            problem: {
                let (fill, font, _) = colours(Status::Invalid);
                Format::new()
                    .set_num_format("@")
                    .set_align(FormatAlign::Top)
                    .set_background_color(Color::RGB(fill))
                    .set_font_color(Color::RGB(font))
                    .set_border(FormatBorder::Thin)
                    .set_border_color(Color::RGB(font))
            },
            command: Format::new().set_font_name("Consolas").set_indent(1),
            wrap: Format::new().set_text_wrap().set_align(FormatAlign::Top),
            top: Format::new().set_align(FormatAlign::Top),
            count: Format::new()
                .set_align(FormatAlign::Top)
                .set_align(FormatAlign::Center),
        }
    }
}

/// Fill, font and chart colours per outcome: green done, grey nothing to do, red needs a
/// person, amber not tried yet.
fn colours(s: Status) -> (u32, u32, u32) {
    match s {
        Status::Created | Status::Updated | Status::ReEnabled => (0xC6EFCE, 0x006100, 0x70AD47),
        Status::Exists | Status::Unchanged | Status::Skipped | Status::Protected => {
            (0xEDEDED, 0x595959, 0xA5A5A5)
        }
        Status::Failed | Status::Invalid => (0xFFC7CE, 0x9C0006, 0xC00000),
        Status::NotAttempted | Status::Held => (0xFFEB9C, 0x9C5700, 0xFFC000),
        // Offboarding: its own colour, so leavers stand out from joiners and changes.
        Status::Disabled | Status::Deleted => (0xDDEBF7, 0x1F4E78, 0x5B9BD5),
    }
}

/// The "What next" lines of the Summary sheet, one per kind of row that did not end well,
/// and the command that sends those rows again; no lines when every row ended well.
fn what_next(
    counts: &BTreeMap<Status, u64>,
    report: &str,
    sum: &RunSummary,
) -> (Vec<String>, String) {
    let n = |s: Status| counts.get(&s).copied().unwrap_or(0);
    let mut steps = Vec::new();
    if n(Status::Failed) > 0 {
        steps.push(format!(
            "{} failed: the Errors sheet says why; once that is dealt with, send them again:",
            n(Status::Failed)
        ));
    }
    if n(Status::Invalid) > 0 {
        steps.push(format!(
            "{} invalid, nothing sent: fix the red cells on the Results sheet and save, then send \
             them again (or fix your own sheet and run it again):",
            n(Status::Invalid)
        ));
    }
    if n(Status::NotAttempted) > 0 {
        steps.push(format!("{} not sent yet:", n(Status::NotAttempted)));
    }
    let profile = profile_arg(&sum.command_line).unwrap_or(&sum.profile);
    let mut command = format!("enlist retry {}", shell_word(report));
    if !profile.is_empty() {
        command.push_str(&format!(" -p {}", shell_word(profile)));
    }
    (steps, command)
}

/// The profile as the command line named it (`-p X`, `--profile X`, `--profile=X`): a path
/// for a profile file, where the summary's profile is only its name.
fn profile_arg(command_line: &str) -> Option<&str> {
    let mut words = command_line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-p" || w == "--profile" {
            return words.next();
        }
        if let Some(v) = w.strip_prefix("--profile=") {
            return Some(v);
        }
    }
    None
}

/// `word` as a shell reads it back: quoted when it holds anything but plain characters.
fn shell_word(word: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_alphanumeric() || "._-/+@:,=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

/// How the Errors sheet tells problems apart: `(brief, shape)`. The brief is the message
/// without the other rows a duplicate names (the Row numbers column lists them all); the
/// shape is the brief with the values it quotes, row numbers and lengths blanked out.
/// Messages of one shape are one line, shown as their brief when they share it
/// ("\"ann@x\" appears more than once in the sheet; keep one row per user"), else as the
/// shape ("\"…\" appears …"). Numbers elsewhere (an HTTP status) stay: they tell problems
/// apart.
fn message_shape(message: &str) -> (String, String) {
    static OTHER_ROWS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r" \((?:also )?on rows? [0-9]+(?:(?:, | and )[0-9]+)*\)").expect("valid regex")
    });
    static VALUES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
        [
            (r"\brows? [0-9]+(?:(?:, | and )[0-9]+)*", "row …"),
            // A value as the planner quotes it ({:?}), escapes included.
            (r#""(?:[^"\\]|\\.)*""#, "\"…\""),
            // A value a server quotes with single quotes (not an apostrophe in a word).
            (r"(^|[\s(\[:,=])'[^']*'", "$1'…'"),
            (r"\b[0-9]+ characters\b", "… characters"),
        ]
        .into_iter()
        .map(|(re, to)| (Regex::new(re).expect("valid regex"), to))
        .collect()
    });
    let brief = OTHER_ROWS.replace_all(message, "").into_owned();
    let mut shape = brief.clone();
    for (re, to) in VALUES.iter() {
        if re.is_match(&shape) {
            shape = re.replace_all(&shape, *to).into_owned();
        }
    }
    (brief, shape)
}

/// The row height that shows whole each `(text, width)` wrapped cell of a row (width in
/// characters), when one takes more than one line. Neither Excel nor LibreOffice sizes a row
/// to its wrapped text when it opens a file: without a height a long message runs under the
/// next row.
pub(crate) fn wrapped_height<'a>(cells: impl IntoIterator<Item = (&'a str, f64)>) -> Option<f64> {
    // Running text is narrower per character than Excel's width unit (a `0`): about 1.15
    // characters a unit in LibreOffice's rendering, more in Excel's Calibri. Words wrap
    // early and the indent takes room: 1.1 a unit errs on the side of a spare line.
    let lines = |text: &str, width: f64| -> usize {
        let per_line = ((width * 1.1) as usize).max(1);
        text.split('\n')
            .map(|l| l.chars().count().div_ceil(per_line).max(1))
            .sum()
    };
    let most = cells.into_iter().map(|(t, w)| lines(t, w)).max()?;
    (most > 1).then(|| (most as f64 * LINE_HEIGHT).min(MAX_ROW_HEIGHT))
}

/// Cuts text to what one Excel cell holds, saying so.
fn clip(s: &str) -> Cow<'_, str> {
    if s.len() <= EXCEL_MAX_CELL_CHARS || s.chars().count() <= EXCEL_MAX_CELL_CHARS {
        return Cow::Borrowed(s);
    }
    let mut t: String = s.chars().take(EXCEL_MAX_CELL_CHARS - 40).collect();
    t.push_str(" … (cut: longer than an Excel cell)");
    Cow::Owned(t)
}

struct Writer<'a> {
    conn: &'a Connection,
    columns: &'a Columns,
    max_rows: u32,
    path: &'a Path,
    origin: Option<&'a super::feedback::Origin>,
}

impl Writer<'_> {
    fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|e| report_error(self.path, format!("scratch file: {e}")))
    }

    fn xl<T>(&self, r: std::result::Result<T, XlsxError>) -> Result<T> {
        r.map_err(|e| report_error(self.path, e))
    }

    fn write(&self, summary: &RunSummary, dir: &Path, partial: &Path) -> Result<()> {
        let f = Formats::new();
        let mut wb = Workbook::new();
        // Constant-memory sheets stream to temporary files: keep them off a RAM-backed /tmp.
        self.xl(wb.set_tempdir(dir))?;

        let total: i64 = self.sql(self.conn.query_row(
            "SELECT COUNT(*) FROM outcomes",
            [],
            |r| r.get(0),
        ))?;
        let total = total.max(0) as u64;
        let counts = self.counts()?;
        let widths = self.widths()?;

        self.results(&mut wb, &f, total, &widths)?;
        self.summary(&mut wb, &f, summary, total, &counts)?;
        self.errors(&mut wb, &f)?;
        self.xl(wb.save(partial))
    }

    fn counts(&self) -> Result<BTreeMap<Status, u64>> {
        let mut st = self.sql(
            self.conn
                .prepare("SELECT status, COUNT(*) FROM outcomes GROUP BY status"),
        )?;
        let rows =
            self.sql(st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))))?;
        let mut counts = BTreeMap::new();
        for r in rows {
            let (s, n) = self.sql(r)?;
            if let Some(s) = Status::parse(&s) {
                counts.insert(s, n.max(0) as u64);
            }
        }
        Ok(counts)
    }

    /// Column widths for the input columns, from the headers and the first rows.
    fn widths(&self) -> Result<Vec<f64>> {
        let headers = self.columns.header_row();
        let n = self.columns.input_count();
        let mut w: Vec<usize> = headers[..n].iter().map(|h| h.chars().count()).collect();
        let mut st = self.sql(
            self.conn
                .prepare("SELECT data FROM outcomes ORDER BY seq LIMIT ?1"),
        )?;
        let rows = self.sql(st.query_map([WIDTH_SAMPLE], |r| r.get::<_, Vec<u8>>(0)))?;
        for r in rows {
            let data = self.sql(r)?;
            let Ok(s) = serde_json::from_slice::<Stored>(&data) else {
                continue;
            };
            for (i, c) in s.cells.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        Ok(w.into_iter().map(|c| (c.clamp(6, 48) + 2) as f64).collect())
    }

    fn results(&self, wb: &mut Workbook, f: &Formats, total: u64, widths: &[f64]) -> Result<()> {
        let per_sheet = u64::from(self.max_rows - 1);
        let sheets = total.div_ceil(per_sheet).max(1);
        let headers = self.columns.header_row();
        let base = self.columns.input_count() as u16;
        let last_col = headers.len() as u16 - 1;
        let report_widths = [
            14.0,
            9.0,
            11.0,
            9.0,
            9.0,
            12.0,
            MESSAGE_WIDTH,
            22.0,
            25.0,
            11.0,
        ];

        let mut st = self.sql(self.conn.prepare("SELECT data FROM outcomes ORDER BY seq"))?;
        let mut rows = self.sql(st.query([]))?;
        for k in 0..sheets {
            let here = per_sheet.min(total - k * per_sheet) as u32;
            let ws = self.xl(wb.add_worksheet_with_constant_memory())?;
            let name = if k == 0 {
                "Results".to_string()
            } else {
                format!("Results ({})", k + 1)
            };
            self.xl(ws.set_name(name))?;
            // Everything about the sheet's shape is set before the first row is streamed.
            for (i, w) in widths.iter().enumerate() {
                self.xl(ws.set_column_width(i as u16, *w))?;
                self.xl(ws.set_column_format(i as u16, &f.text))?;
            }
            for (i, w) in report_widths.iter().enumerate() {
                self.xl(ws.set_column_width(base + i as u16, *w))?;
            }
            self.xl(ws.set_column_format(base + 7, &f.text))?;
            self.xl(ws.set_freeze_panes(1, 0))?;
            self.xl(ws.autofilter(0, 0, here, last_col))?;
            // Printed (or saved as PDF) it reads across one page width, header on every page.
            ws.set_landscape().set_print_fit_to_pages(1, 0);
            self.xl(ws.set_repeat_rows(0, 0))?;
            if here > 0 {
                self.outcome_colours(ws, here, base)?;
            }
            for (c, h) in headers.iter().enumerate() {
                self.xl(ws.write_string_with_format(0, c as u16, clip(h), &f.header))?;
            }
            for r in 1..=here {
                let row = self.sql(rows.next())?.ok_or_else(|| {
                    report_error(self.path, "the scratch file lost rows while reading back")
                })?;
                let data: Vec<u8> = self.sql(row.get(0))?;
                let s: Stored = serde_json::from_slice(&data).map_err(anyhow::Error::from)?;
                self.result_row(ws, f, r, base, &s)?;
            }
        }
        Ok(())
    }

    fn outcome_colours(&self, ws: &mut Worksheet, last_row: u32, col: u16) -> Result<()> {
        for s in Status::ALL {
            let (fill, font, _) = colours(s);
            let cf = ConditionalFormatCell::new()
                .set_rule(ConditionalFormatCellRule::EqualTo(s.as_str()))
                .set_format(
                    Format::new()
                        .set_background_color(Color::RGB(fill))
                        .set_font_color(Color::RGB(font)),
                );
            self.xl(ws.add_conditional_format(1, col, last_row, col, &cf))?;
        }
        Ok(())
    }

    fn result_row(
        &self,
        ws: &mut Worksheet,
        f: &Formats,
        r: u32,
        base: u16,
        s: &Stored,
    ) -> Result<()> {
        // Every input cell is written as text: 0123 and +44… stay as typed. The cells an
        // invalid row's problems name are marked, empty ones too (a missing value).
        for (c, v) in s.cells.iter().enumerate() {
            let c = c as u16;
            let at_fault = s.problem_columns.contains(&c);
            let format = if at_fault { &f.problem } else { &f.text };
            if !v.is_empty() {
                self.xl(ws.write_string_with_format(r, c, clip(v), format))?;
            } else if at_fault {
                self.xl(ws.write_blank(r, c, format))?;
            }
        }
        // Top-aligned like the message beside them, which may take several lines.
        let top = &f.top;
        self.xl(ws.write_string_with_format(r, base, s.status.as_str(), top))?;
        self.xl(ws.write_string_with_format(r, base + 1, s.action.as_str(), top))?;
        if let Some(h) = s.http_status {
            self.xl(ws.write_number_with_format(r, base + 2, f64::from(h), top))?;
        }
        self.xl(ws.write_number_with_format(r, base + 3, f64::from(s.attempts), top))?;
        self.xl(ws.write_number_with_format(r, base + 4, f64::from(s.requests), top))?;
        self.xl(ws.write_number_with_format(r, base + 5, s.duration_ms as f64, top))?;
        if !s.message.is_empty() {
            if let Some(h) = wrapped_height([(s.message.as_str(), MESSAGE_WIDTH)]) {
                self.xl(ws.set_row_height(r, h))?;
            }
            self.xl(ws.write_string_with_format(r, base + 6, clip(&s.message), &f.message))?;
        }
        if let Some(id) = &s.remote_id {
            // Text, so a numeric id never turns into 1.23E+10.
            self.xl(ws.write_string_with_format(r, base + 7, clip(id), &f.text))?;
        }
        self.xl(ws.write_string_with_format(r, base + 8, &s.finished_at, top))?;
        // A leaver has no source row.
        if s.source_row > 0 {
            self.xl(ws.write_number_with_format(r, base + 9, s.source_row as f64, top))?;
        }
        Ok(())
    }

    fn summary(
        &self,
        wb: &mut Workbook,
        f: &Formats,
        sum: &RunSummary,
        total: u64,
        counts: &BTreeMap<Status, u64>,
    ) -> Result<()> {
        let ws = wb.add_worksheet();
        self.xl(ws.set_name("Summary"))?;
        ws.set_landscape().set_print_fit_to_pages(1, 1);
        self.xl(ws.set_column_width(0, 22))?;
        // Values overflow into the empty columns to their right (no wrap), so the counts column
        // stays narrow next to its labels.
        self.xl(ws.set_column_width(1, 12))?;
        self.xl(ws.write_string_with_format(0, 0, "enlist outcome", &f.title))?;
        // What to do about the rows that did not end well comes first: it is why the
        // workbook is opened.
        let mut top = 2;
        let (steps, command) = what_next(counts, &self.path.display().to_string(), sum);
        if !steps.is_empty() {
            self.xl(ws.write_string_with_format(top, 0, "What next", &f.label))?;
            // Each line across the columns beside it (the chart is below), wrapped there:
            // a line left to overflow is cut at the chart or the page edge.
            for step in &steps {
                top += 1;
                self.xl(ws.merge_range(top, 0, top, NEXT_LAST_COLUMN, step, &f.wrap))?;
                if let Some(h) = wrapped_height([(step.as_str(), NEXT_WIDTH)]) {
                    self.xl(ws.set_row_height(top, h))?;
                }
            }
            top += 1;
            self.xl(ws.write_string_with_format(top, 0, &command, &f.command))?;
            top += 2;
        }
        self.xl(ws.write_string_with_format(top, 0, "Outcome", &f.header))?;
        self.xl(ws.write_string_with_format(top, 1, "Rows", &f.header))?;
        let mut points = Vec::new();
        for (i, s) in Status::ALL.iter().enumerate() {
            let r = top + 1 + i as u32;
            self.xl(ws.write_string(r, 0, s.as_str()))?;
            self.xl(ws.write_number(r, 1, counts.get(s).copied().unwrap_or(0) as f64))?;
            let (_, _, bar) = colours(*s);
            points.push(ChartPoint::new().set_format(
                ChartFormat::new().set_solid_fill(ChartSolidFill::new().set_color(Color::RGB(bar))),
            ));
        }
        let last_count_row = top + Status::ALL.len() as u32;
        let total_row = last_count_row + 1;
        self.xl(ws.write_string_with_format(total_row, 0, "total", &f.label))?;
        self.xl(ws.write_number_with_format(total_row, 1, total as f64, &f.label))?;

        let version = if sum.version.is_empty() {
            env!("CARGO_PKG_VERSION").to_string()
        } else {
            sum.version.clone()
        };
        let mut facts: Vec<(&str, String)> = vec![
            ("Started", sum.started_at.clone()),
            ("Finished", sum.finished_at.clone()),
            ("Duration (s)", format!("{:.1}", sum.duration_secs)),
            ("Achieved rate (req/s)", format!("{:.2}", sum.achieved_rate)),
            ("Requests", sum.requests.to_string()),
            ("Retries", sum.retries.to_string()),
            ("429 responses", sum.throttled_429.to_string()),
            ("Pace", sum.pace()),
            (
                "Interrupted",
                if sum.interrupted {
                    "yes: rows not sent are not-attempted".into()
                } else {
                    "no".into()
                },
            ),
            ("Profile", sum.profile.clone()),
            ("Target", strip_userinfo(&sum.base_url)),
            ("Input file", sum.input_file.clone()),
            ("Input SHA-256", sum.input_sha256.clone()),
            ("enlist version", version),
            ("Command line", mask_command_line(&sum.command_line)),
        ];
        if let Some(o) = self.origin {
            let [path, sha] = super::feedback::ORIGIN_FACTS;
            facts.push((path, o.path.display().to_string()));
            facts.push((sha, o.sha256.clone()));
        }
        if sum.total() != 0 && sum.total() != total {
            facts.push((
                "Warning",
                format!(
                    "the run counted {} rows but this report holds {total}; the missing rows have no outcome",
                    sum.total()
                ),
            ));
        }
        let first_fact = total_row + 2;
        for (i, (k, v)) in facts.iter().enumerate() {
            let r = first_fact + i as u32;
            self.xl(ws.write_string_with_format(r, 0, *k, &f.label_top))?;
            // Across the columns up to the chart's right edge, wrapped: a long command
            // line would otherwise widen the page and shrink the whole print.
            self.xl(ws.merge_range(r, 1, r, NEXT_LAST_COLUMN, &clip(v), &f.wrap))?;
            if let Some(h) = wrapped_height([(v.as_str(), FACT_WIDTH)]) {
                self.xl(ws.set_row_height(r, h))?;
            }
        }

        let mut chart = Chart::new_column();
        chart.title().set_name("Rows per outcome");
        chart.legend().set_hidden();
        chart
            .add_series()
            .set_categories(("Summary", top + 1, 0, last_count_row, 0))
            .set_values(("Summary", top + 1, 1, last_count_row, 1))
            .set_points(&points)
            .set_data_label(ChartDataLabel::new().show_value());
        // Beside the counts and above the facts (whose text runs to the right).
        chart.set_width(520).set_height(210);
        self.xl(ws.insert_chart_with_offset(top, 3, &chart, 10, 0))?;
        Ok(())
    }

    fn errors(&self, wb: &mut Workbook, f: &Formats) -> Result<()> {
        let ws = self.xl(wb.add_worksheet_with_constant_memory())?;
        self.xl(ws.set_name("Errors"))?;
        ws.set_landscape().set_print_fit_to_pages(1, 0);
        self.xl(ws.set_repeat_rows(0, 0))?;
        for (c, w) in [14.0, 8.0, ERRORS_MESSAGE_WIDTH, ROW_LIST_WIDTH]
            .iter()
            .enumerate()
        {
            self.xl(ws.set_column_width(c as u16, *w))?;
        }
        self.xl(ws.set_freeze_panes(1, 0))?;
        for (c, h) in ["Outcome", "Rows", "Message", "Row numbers"]
            .iter()
            .enumerate()
        {
            self.xl(ws.write_string_with_format(0, c as u16, *h, &f.header))?;
        }
        // Messages that differ only in the values they quote or the rows they name are one
        // problem (see `message_shape`): one line, with every row listed.
        let mut groups = self.sql(self.conn.prepare(
            "SELECT status, shape, COUNT(*) AS n, MIN(seq) AS first,
                    COUNT(DISTINCT brief), MIN(brief)
             FROM outcomes WHERE status IN ('failed', 'invalid')
             GROUP BY status, shape ORDER BY n DESC, first",
        ))?;
        let mut members = self.sql(self.conn.prepare(
            "SELECT source_row FROM outcomes
             WHERE status IN ('failed', 'invalid') AND status = ?1 AND shape = ?2
             ORDER BY seq",
        ))?;
        let n_groups: i64 = self.sql(self.conn.query_row(
            "SELECT COUNT(*) FROM (SELECT 1 FROM outcomes WHERE status IN ('failed', 'invalid')
             GROUP BY status, shape)",
            [],
            |r| r.get(0),
        ))?;
        // More distinct messages than a sheet holds (header and a closing note aside): the
        // last line says so rather than stopping silently.
        let room = u64::from(self.max_rows - 2);
        let mut rows = self.sql(groups.query([]))?;
        let mut r = 0u32;
        while let Some(g) = self.sql(rows.next())? {
            if u64::from(r) == room {
                self.xl(ws.write_string(
                    r + 1,
                    2,
                    format!(
                        "… and {} more messages than one sheet holds; filter the Outcome column of Results",
                        n_groups.max(0) as u64 - room
                    ),
                ))?;
                break;
            }
            let status: String = self.sql(g.get(0))?;
            let shape: String = self.sql(g.get(1))?;
            let n: i64 = self.sql(g.get(2))?;
            let distinct: i64 = self.sql(g.get(4))?;
            let message: String = if distinct > 1 {
                shape.clone()
            } else {
                self.sql(g.get(5))?
            };
            let list = self.row_list(&mut members, &status, &shape, n.max(0) as u64)?;
            r += 1;
            let height = wrapped_height([
                (message.as_str(), ERRORS_MESSAGE_WIDTH),
                (list.as_str(), ROW_LIST_WIDTH),
            ]);
            if let Some(h) = height {
                self.xl(ws.set_row_height(r, h))?;
            }
            self.xl(ws.write_string_with_format(r, 0, &status, &f.wrap))?;
            self.xl(ws.write_number_with_format(r, 1, n as f64, &f.count))?;
            self.xl(ws.write_string_with_format(
                r,
                2,
                clip(if message.is_empty() {
                    "(no message)"
                } else {
                    &message
                }),
                &f.message,
            ))?;
            self.xl(ws.write_string_with_format(r, 3, &list, &f.wrap))?;
        }
        if r == 0 {
            self.xl(ws.write_string(1, 2, "No row failed or was invalid."))?;
        } else {
            self.xl(ws.autofilter(0, 0, r, 3))?;
        }
        Ok(())
    }

    /// "4, 9, 12" (source rows), cut to fit one cell with "… and N more".
    fn row_list(
        &self,
        st: &mut rusqlite::Statement<'_>,
        status: &str,
        shape: &str,
        n: u64,
    ) -> Result<String> {
        let budget = EXCEL_MAX_CELL_CHARS - 40;
        let mut text = String::new();
        let mut listed = 0u64;
        let mut rows = self.sql(st.query(params![status, shape]))?;
        while let Some(row) = self.sql(rows.next())? {
            let number: i64 = self.sql(row.get(0))?;
            let piece = if listed == 0 {
                number.to_string()
            } else {
                format!(", {number}")
            };
            if text.len() + piece.len() > budget {
                break;
            }
            text.push_str(&piece);
            listed += 1;
        }
        if listed < n {
            text.push_str(&format!(" … and {} more", n - listed));
        }
        Ok(text)
    }
}

impl std::fmt::Debug for XlsxSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XlsxSink")
            .field("path", &self.path)
            .field("max_rows", &self.max_rows)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_differing_in_values_or_rows_share_a_shape() {
        let dup = |v: &str, rows: &str| {
            message_shape(&format!(
                "User ID: {v:?} appears more than once in the sheet (also on row {rows}); keep one row per user"
            ))
        };
        let (brief_a, shape_a) = dup("ann@x", "5, 7");
        let (brief_b, shape_b) = dup("ann@x", "3");
        let (_, shape_c) = dup("bob@x", "9");
        assert_eq!(
            brief_a,
            "User ID: \"ann@x\" appears more than once in the sheet; keep one row per user"
        );
        assert_eq!(brief_a, brief_b, "the same user's rows share the brief");
        assert_eq!(
            shape_a,
            "User ID: \"…\" appears more than once in the sheet; keep one row per user"
        );
        assert_eq!(shape_b, shape_c);
        for (a, b) in [
            (
                "Password: is 5 characters long; it must be at least 8",
                "Password: is 7 characters long; it must be at least 8",
            ),
            (
                "409 Conflict: user 'ann' already exists",
                "409 Conflict: user 'bob' already exists",
            ),
        ] {
            assert_eq!(message_shape(a).1, message_shape(b).1, "{a} / {b}");
        }
        // Different statuses and minimums are different problems; an apostrophe is no quote.
        for (a, b) in [
            ("503 Service Unavailable", "500 Internal Server Error"),
            (
                "Password: is 5 characters long; it must be at least 8",
                "Password: is 5 characters long; it must be at least 12",
            ),
            ("the user's id is 'x'", "the user's name is 'x'"),
        ] {
            assert_ne!(message_shape(a).1, message_shape(b).1, "{a} / {b}");
        }
    }

    #[test]
    fn wrapped_rows_are_as_tall_as_their_longest_cell() {
        assert_eq!(wrapped_height([("short", 60.0)]), None);
        let long = "x".repeat(100);
        assert_eq!(
            wrapped_height([(long.as_str(), 60.0)]),
            Some(2.0 * LINE_HEIGHT)
        );
        assert_eq!(
            wrapped_height([("short", 60.0), (long.as_str(), 20.0)]),
            Some(5.0 * LINE_HEIGHT)
        );
        assert_eq!(wrapped_height([("a\nb\nc", 60.0)]), Some(3.0 * LINE_HEIGHT));
        let huge = "x".repeat(100_000);
        assert_eq!(
            wrapped_height([(huge.as_str(), 60.0)]),
            Some(MAX_ROW_HEIGHT)
        );
    }

    #[test]
    fn what_next_names_the_workbook_and_the_profile_as_typed() {
        let mut sum = RunSummary {
            profile: "acme".into(),
            command_line: "enlist run in.xlsx --profile ./profiles/acme.toml".into(),
            ..RunSummary::default()
        };
        let counts = BTreeMap::from([(Status::Failed, 2), (Status::Created, 5)]);
        let (steps, command) = what_next(&counts, "my sheet.outcome.xlsx", &sum);
        assert_eq!(steps.len(), 1);
        assert!(steps[0].starts_with("2 failed"));
        assert_eq!(
            command,
            "enlist retry 'my sheet.outcome.xlsx' -p ./profiles/acme.toml"
        );
        sum.command_line = "enlist run in.xlsx".into();
        let (_, command) = what_next(&counts, "in.outcome.xlsx", &sum);
        assert_eq!(command, "enlist retry in.outcome.xlsx -p acme");
        let (steps, _) = what_next(&BTreeMap::from([(Status::Created, 5)]), "x", &sum);
        assert!(steps.is_empty());
    }
}
