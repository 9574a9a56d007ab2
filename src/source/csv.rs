//! CSV: encoding and delimiter detection on a prefix, then a streaming record reader.
//!
//! Memory does not grow with the number of rows: the file is read through one
//! `csv::Reader` (for UTF-16 and single-byte encodings through a streaming decoder to
//! UTF-8) into one reused `ByteRecord`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use encoding_rs::{CoderResult, Decoder, Encoding, UTF_8, WINDOWS_1252};

use super::{
    locate_header, row_texts, DataRows, HeaderProbe, RawRow, RowError, RowResult, RowSource, Sheet,
    SourceOptions, HEADER_SCAN_ROWS, MAX_COLUMNS,
};
use crate::cell::Cell;
use crate::error::{Error, Result};

/// Delimiters the reader detects, in order of preference on a tie.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

pub(super) fn open(
    path: &Path,
    read: &Path,
    mut file: File,
    prefix: Vec<u8>,
    at_eof: bool,
    opts: &SourceOptions,
    probe: &dyn HeaderProbe,
) -> Result<Sheet> {
    let (mut encoding, bom_len) = detect_encoding(&prefix, at_eof, opts.encoding);
    let mut guessed = opts.encoding.is_some() && opts.encoding_guessed;
    if opts.encoding.is_none() && bom_len == 0 {
        // No BOM and no word from the user: the whole file is the evidence.
        let cannot_read = |e: std::io::Error| {
            Error::input(
                path,
                format!("cannot read the file ({e}): check that it is a complete, readable file"),
            )
        };
        let evidence = if at_eof {
            Utf8Evidence::of(&mut &prefix[..])
        } else {
            file.seek(SeekFrom::Start(0)).map_err(cannot_read)?;
            Utf8Evidence::of(&mut file)
        }
        .map_err(cannot_read)?;
        if evidence.multibyte || !evidence.invalid {
            // Valid multi-byte sequences are UTF-8 (stray bad bytes are row errors);
            // all ASCII is UTF-8 too.
            encoding = UTF_8;
        } else {
            encoding = WINDOWS_1252;
            guessed = true;
        }
    }
    let text = encoding
        .decode_without_bom_handling(&prefix[bom_len..])
        .0
        .into_owned();
    let delimiter = match opts.delimiter {
        Some(d) => d,
        None => detect_delimiter(&text, at_eof, opts.header_row, probe),
    };
    drop(text);
    drop(prefix);

    file.seek(SeekFrom::Start(bom_len as u64)).map_err(|e| {
        Error::input(
            path,
            format!("cannot read the file ({e}): check that it is a complete, readable file"),
        )
    })?;
    let input: Box<dyn Read + Send> = if encoding == UTF_8 {
        Box::new(file)
    } else {
        Box::new(DecodingReader::new(
            file,
            encoding.new_decoder_without_bom_handling(),
        ))
    };
    let mut src = CsvRows {
        reader: csv_reader(input, delimiter, 1),
        record: ::csv::ByteRecord::new(),
        width: MAX_COLUMNS,
        done: false,
        last_line: 0,
        keep: None,
        delimiter,
        lines: None,
        headers: Vec::new(),
        guessed,
    };
    let located = locate_header(&mut src, opts.header_row, probe, "the file")
        .map_err(|e| Error::input(path, e.message))?;
    src.width = located.headers.len();
    src.headers = located.headers.clone();
    src.keep = opts
        .only_columns
        .as_ref()
        .map(|cols| (0..src.width).map(|i| cols.contains(&i)).collect());
    if encoding == UTF_8 && delimiter.is_ascii() && !matches!(delimiter, b'"' | b'\r' | b'\n') {
        // UTF-8 goes on from here line by line (see PlainLines); the file is opened again
        // at the byte after the rows read so far.
        let at = src.reader.position().byte();
        let line = src.reader.get_ref().line_of(at);
        src.lines = File::open(read)
            .and_then(|f| PlainLines::new(f, bom_len as u64 + at, line))
            .ok();
    }
    let width = located.headers.len();
    Ok(Sheet {
        path: path.to_path_buf(),
        sheet_name: None,
        delimiter: Some(delimiter),
        encoding: Some(encoding),
        encoding_guessed: guessed,
        header_row: located.header_row,
        headers: located.headers,
        rows: Box::new(DataRows::new(located.pending, src, width, opts)),
    })
}

/// Picks the encoding (and the length of a BOM to skip) from the first bytes:
/// a BOM wins; otherwise UTF-8 when the prefix is valid UTF-8, else Windows-1252.
/// An explicit encoding overrides detection; a BOM matching it is still skipped.
pub(crate) fn detect_encoding(
    prefix: &[u8],
    at_eof: bool,
    forced: Option<&'static Encoding>,
) -> (&'static Encoding, usize) {
    let bom = Encoding::for_bom(prefix);
    if let Some(enc) = forced {
        let skip = match bom {
            Some((b, len)) if b == enc => len,
            _ => 0,
        };
        return (enc, skip);
    }
    if let Some((enc, len)) = bom {
        return (enc, len);
    }
    match std::str::from_utf8(prefix) {
        Ok(_) => (UTF_8, 0),
        // Cut in the middle of a character at the end of the sniffed prefix: still UTF-8.
        Err(e) if e.error_len().is_none() && !at_eof => (UTF_8, 0),
        Err(_) => (WINDOWS_1252, 0),
    }
}

/// What a whole file says about UTF-8: whether it holds valid multi-byte sequences, and
/// whether it holds bytes that are not UTF-8. Reading stops at the first multi-byte
/// sequence (that settles it: UTF-8), so only ASCII and legacy files are read to the end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utf8Evidence {
    pub multibyte: bool,
    pub invalid: bool,
}

impl Utf8Evidence {
    pub(crate) fn of(r: &mut impl Read) -> std::io::Result<Utf8Evidence> {
        let mut ev = Utf8Evidence::default();
        let mut buf = vec![0u8; 64 * 1024];
        // Bytes of a sequence cut by the end of the previous chunk, moved to the front.
        let mut carry = 0;
        loop {
            let n = match r.read(&mut buf[carry..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let end = carry + n;
            let at_end = n == 0;
            let mut at = 0;
            while at < end {
                match std::str::from_utf8(&buf[at..end]) {
                    Ok(text) => {
                        ev.multibyte |= !text.is_ascii();
                        at = end;
                    }
                    Err(e) => {
                        let good = &buf[at..at + e.valid_up_to()];
                        ev.multibyte |= !good.is_ascii();
                        at += e.valid_up_to();
                        match e.error_len() {
                            Some(bad) => {
                                ev.invalid = true;
                                at += bad;
                            }
                            None if at_end => {
                                ev.invalid = true;
                                at = end;
                            }
                            None => break,
                        }
                    }
                }
                if ev.multibyte {
                    return Ok(ev);
                }
            }
            if at_end {
                return Ok(ev);
            }
            buf.copy_within(at..end, 0);
            carry = end - at;
        }
    }
}

/// One logical CSV record in the sniffed text: the physical line where it starts and its text.
struct SniffRecord<'a> {
    line: u64,
    text: &'a str,
}

/// Splits `text` into logical records (newlines inside quotes do not end a record).
/// When the text is only a prefix of the file, the last (possibly cut) record is dropped.
fn sniff_records(text: &str, at_eof: bool) -> Vec<SniffRecord<'_>> {
    let mut records = Vec::new();
    let bytes = text.as_bytes();
    let mut in_quotes = false;
    let mut start = 0;
    let mut line: u64 = 1;
    let mut start_line: u64 = 1;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_quotes = !in_quotes,
            b'\n' | b'\r' if !in_quotes => {
                records.push(SniffRecord {
                    line: start_line,
                    text: &text[start..i],
                });
                if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                line += 1;
                start = i + 1;
                start_line = line;
            }
            b'\n' => line += 1,
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => line += 1,
            _ => {}
        }
        i += 1;
    }
    if at_eof && start < bytes.len() {
        records.push(SniffRecord {
            line: start_line,
            text: &text[start..],
        });
    }
    records.retain(|r| !r.text.trim().is_empty());
    records
}

/// Occurrences of `delimiter` outside double quotes.
fn count_outside_quotes(text: &str, delimiter: u8) -> usize {
    let mut in_quotes = false;
    let mut n = 0;
    for &b in text.as_bytes() {
        if b == b'"' {
            in_quotes = !in_quotes;
        } else if b == delimiter && !in_quotes {
            n += 1;
        }
    }
    n
}

/// Candidate delimiters for one line, most occurrences first (ties in preference order).
fn ranked(text: &str) -> Vec<(u8, usize)> {
    let mut counts: Vec<(u8, usize)> = DELIMITERS
        .iter()
        .map(|&d| (d, count_outside_quotes(text, d)))
        .filter(|&(_, n)| n > 0)
        .collect();
    counts.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    counts
}

/// The trimmed fields of one record split with `delimiter`, as the probe sees them.
fn split_fields(text: &str, delimiter: u8) -> Vec<String> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut record = ::csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => {
            let cells: Vec<Cell> = record.iter().map(Cell::text).collect();
            row_texts(&cells)
        }
        _ => Vec::new(),
    }
}

/// Detects the delimiter from the header line: the forced header row, else the first
/// line (of the first [`HEADER_SCAN_ROWS`]) that the probe accepts with some delimiter,
/// else the first line that contains any delimiter. On that line, the delimiter that
/// occurs most often outside quotes wins. Defaults to a comma.
pub(crate) fn detect_delimiter(
    text: &str,
    at_eof: bool,
    forced_row: Option<u64>,
    probe: &dyn HeaderProbe,
) -> u8 {
    let records = sniff_records(text, at_eof);
    let best = |text: &str| ranked(text).first().map(|&(d, _)| d);
    let pick = |text: &str| {
        let candidates = ranked(text);
        candidates
            .iter()
            .map(|&(d, _)| d)
            .find(|&d| probe.is_header(&split_fields(text, d)))
            .or_else(|| candidates.first().map(|&(d, _)| d))
    };
    if let Some(n) = forced_row {
        return records
            .iter()
            .find(|r| r.line == n)
            .and_then(|r| pick(r.text))
            .unwrap_or(b',');
    }
    for record in records.iter().take(HEADER_SCAN_ROWS) {
        let candidates = ranked(record.text);
        for &(d, _) in &candidates {
            if probe.is_header(&split_fields(record.text, d)) {
                return d;
            }
        }
        if candidates.is_empty() && probe.is_header(&split_fields(record.text, b',')) {
            // A one-column header: no delimiter to detect.
            return b',';
        }
    }
    records
        .iter()
        .take(HEADER_SCAN_ROWS)
        .find_map(|r| best(r.text))
        .unwrap_or(b',')
}

/// Rows from the CSV reader, one reused record buffer; every cell is text.
struct CsvRows {
    reader: ::csv::Reader<LineCounter<Box<dyn Read + Send>>>,
    record: ::csv::ByteRecord,
    /// Cells kept per row (the header width once known).
    width: usize,
    done: bool,
    last_line: u64,
    /// [`SourceOptions::only_columns`] by column, once the header is known.
    keep: Option<Vec<bool>>,
    delimiter: u8,
    /// Set while rows are read as plain lines rather than by `reader`.
    lines: Option<PlainLines>,
    /// The header texts once known, to name a column in a row error.
    headers: Vec<String>,
    /// The encoding is a guess (see [`SourceOptions::encoding_guessed`]).
    guessed: bool,
}

/// The CSV reader every pass uses: same settings, so every pass sees the same records.
fn csv_reader(
    input: Box<dyn Read + Send>,
    delimiter: u8,
    first_line: u64,
) -> ::csv::Reader<LineCounter<Box<dyn Read + Send>>> {
    ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .buffer_capacity(64 * 1024)
        .from_reader(LineCounter::starting_at(input, first_line))
}

impl RowSource for CsvRows {
    fn next_row(&mut self) -> Option<RowResult> {
        if self.done {
            return None;
        }
        if self.lines.is_some() {
            if let Some(r) = self.next_plain() {
                return Some(r);
            }
            if self.done {
                return None;
            }
            // Handed back to the parser: it reads on from the line that needed it.
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {
                let number = match self.record.position() {
                    Some(p) => self.reader.get_mut().line_at(p.byte()),
                    None => self.last_line + 1,
                };
                self.last_line = number;
                if self.keep.is_none() {
                    return Some(self.decode_all(number));
                }
                let keep = self.keep.as_deref().unwrap_or(&[]);
                let cells = kept_cells(self.record.iter(), keep, self.width, self.guessed);
                Some(
                    cells
                        .map(|cells| RawRow { number, cells })
                        .map_err(|()| self.bad_record(number)),
                )
            }
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                let number = e.position().map(|p| p.line()).unwrap_or(self.last_line + 1);
                Some(Err(RowError {
                    number,
                    message: format!(
                        "the file cannot be read from row {number} on ({e}): check that the \
                         file is complete and export it again"
                    ),
                }))
            }
        }
    }
}

impl CsvRows {
    /// Every cell of the record just read. The record is checked for UTF-8 once, whole,
    /// rather than field by field (cells are short: per-field checks cost more than the
    /// bytes).
    fn decode_all(&mut self, number: u64) -> RowResult {
        let record = std::mem::take(&mut self.record);
        match csv::StringRecord::from_byte_record(record) {
            Ok(text) if !(self.guessed && text.iter().any(has_suspect_control)) => {
                let cells = text.iter().take(self.width).map(Cell::text).collect();
                self.record = text.into_byte_record();
                Ok(RawRow { number, cells })
            }
            Ok(text) => {
                self.record = text.into_byte_record();
                Err(self.bad_record(number))
            }
            Err(e) => {
                self.record = e.into_byte_record();
                Err(self.bad_record(number))
            }
        }
    }

    fn bad_record(&self, number: u64) -> RowError {
        bad_row(
            number,
            self.record.iter(),
            self.width,
            &self.headers,
            self.guessed,
        )
    }
}

impl CsvRows {
    /// The next row read as a plain line; `None` at the end (`done` set) or when the
    /// line needs the CSV parser (then `reader` starts at that line).
    fn next_plain(&mut self) -> Option<RowResult> {
        let lines = self.lines.as_mut()?;
        loop {
            let (number, offset, range) = match lines.next() {
                Ok(Next::Line(number, offset, range)) => (number, offset, range),
                Ok(Next::Long(number, offset)) => return self.hand_over(number, offset),
                Ok(Next::End) => {
                    self.done = true;
                    self.lines = None;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    let number = lines.line;
                    self.lines = None;
                    return Some(Err(unreadable(number, &e)));
                }
            };
            let line = &lines.buf[range];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if memchr::memchr2(b'"', b'\r', line).is_some() {
                // Quotes (a field may hold the delimiter or a line break) or a bare CR:
                // the parser decides where this record ends.
                return self.hand_over(number, offset);
            }
            if line.is_empty() {
                continue; // as the parser: an empty line is no record
            }
            self.last_line = number;
            let cells = match self.keep.as_deref() {
                Some(keep) => {
                    let fields = field_ranges(line, self.delimiter).map(|r| &line[r]);
                    kept_cells(fields, keep, self.width, false)
                }
                // Every cell: the line is checked for UTF-8 once, then split at the
                // (ASCII, so character-boundary) delimiter, as the parser's record would be.
                None => std::str::from_utf8(line).map_err(|_| ()).map(|text| {
                    field_ranges(line, self.delimiter)
                        .take(self.width)
                        .map(|r| Cell::text(&text[r]))
                        .collect()
                }),
            };
            return Some(match cells {
                Ok(cells) => Ok(RawRow { number, cells }),
                Err(()) => Err(bad_row(
                    number,
                    field_ranges(line, self.delimiter).map(|r| &line[r]),
                    self.width,
                    &self.headers,
                    false,
                )),
            });
        }
    }
}

impl CsvRows {
    /// The parser reads on from line `number`, at file offset `offset`.
    fn hand_over(&mut self, number: u64, offset: u64) -> Option<RowResult> {
        let lines = self.lines.take()?;
        match lines.into_file(offset) {
            Ok(file) => {
                self.reader = csv_reader(Box::new(file), self.delimiter, number);
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(unreadable(number, &e)))
            }
        }
    }
}

fn unreadable(number: u64, e: &std::io::Error) -> RowError {
    RowError {
        number,
        message: format!(
            "the file cannot be read from row {number} on ({e}): check that the file is \
             complete and export it again"
        ),
    }
}

/// Whether decoded text holds a control character that a wrong guess of a legacy
/// encoding produces (C0 other than tab, CR and LF; DEL; C1, which is also what
/// windows-1252 gives for its undefined bytes 0x81, 0x8D, 0x8F, 0x90 and 0x9D).
fn is_suspect_control(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\r' | '\n')) || ('\u{7f}'..='\u{9f}').contains(&c)
}

fn has_suspect_control(text: &str) -> bool {
    text.chars().any(is_suspect_control)
}

/// What is wrong with one field's bytes, if anything: bytes that are not UTF-8, or (when
/// the encoding is a guess) a control character the guess produced.
fn field_problem(field: &[u8], guessed: bool) -> Option<String> {
    match std::str::from_utf8(field) {
        Err(e) => {
            let good = &field[..e.valid_up_to()];
            let position = String::from_utf8_lossy(good).chars().count() + 1;
            let byte = field.get(e.valid_up_to()).copied().unwrap_or(0);
            Some(format!(
                "invalid UTF-8 byte 0x{byte:02X} at position {position}"
            ))
        }
        Ok(text) if guessed => text.chars().find(|&c| is_suspect_control(c)).map(|c| {
            format!(
                "reading the file as windows-1252 gives the control character U+{:04X} here",
                u32::from(c)
            )
        }),
        Ok(_) => None,
    }
}

/// The row error for a record whose cells cannot be used as read: every column with bytes
/// that are not UTF-8 (or, when the encoding is a guess, with control characters), named.
fn bad_row<'a>(
    number: u64,
    fields: impl Iterator<Item = &'a [u8]>,
    width: usize,
    headers: &[String],
    guessed: bool,
) -> RowError {
    let mut problems: Vec<String> = fields
        .take(width)
        .enumerate()
        .filter_map(|(i, field)| {
            let problem = field_problem(field, guessed)?;
            let column = match headers.get(i) {
                Some(h) if !h.is_empty() => format!("column {h:?}"),
                _ => format!("column {}", i + 1),
            };
            Some(format!("{column}: {problem}"))
        })
        .collect();
    if problems.is_empty() {
        problems.push("the row's text cannot be read".into());
    }
    let advice = if guessed {
        "the file's encoding could not be determined; save it as UTF-8 (in Excel: \
         \"CSV UTF-8\"), or give its encoding with --encoding"
    } else {
        "save the file as UTF-8 (in Excel: \"CSV UTF-8\"), or fix these cells"
    };
    RowError {
        number,
        message: format!("{}; {advice}", problems.join("; ")),
    }
}

/// The cells of a row read for [`SourceOptions::only_columns`]: each kept cell decoded at
/// its index; of the others only the first filled one, as UNREAD at its index (enough to
/// tell a blank row from one with a blank key). `Err` when a kept cell is not UTF-8 (or,
/// with a `guessed` encoding, holds a control character).
fn kept_cells<'a>(
    fields: impl Iterator<Item = &'a [u8]>,
    keep: &[bool],
    width: usize,
    guessed: bool,
) -> std::result::Result<Vec<Cell>, ()> {
    let mut cells = Vec::new();
    let mut unread = false;
    for (i, field) in fields.take(width).enumerate() {
        if keep.get(i).copied().unwrap_or(false) {
            cells.resize(i, Cell::Empty);
            let text = std::str::from_utf8(field).map_err(|_| ())?;
            if guessed && has_suspect_control(text) {
                return Err(());
            }
            cells.push(Cell::text(text));
        } else if !unread && field.iter().any(|b| !b.is_ascii_whitespace()) {
            unread = true;
            cells.resize(i, Cell::Empty);
            cells.push(super::UNREAD);
        }
    }
    Ok(cells)
}

/// Where the fields of a plain line (see [`PlainLines`]) are: between delimiters, found
/// with memchr.
fn field_ranges(line: &[u8], delimiter: u8) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    memchr::memchr_iter(delimiter, line)
        .chain([line.len()])
        .map(move |end| {
            let field = start..end;
            start = end + 1;
            field
        })
}

/// What [`PlainLines::next`] found.
enum Next {
    /// Number, file offset, place in the buffer.
    Line(u64, u64, std::ops::Range<usize>),
    /// A line longer than the buffer, at this number and offset.
    Long(u64, u64),
    End,
}

/// The data rows of a UTF-8 CSV file as lines. A line without a double quote and without a
/// carriage return inside is exactly one record, and its fields are the text between
/// delimiters: no parser is needed to find them (the parser costs more than all the rest of
/// reading a row, and the duplicate-key pass, which reads every row before anything can be
/// planned, is mostly reading). The first line that is not that simple goes back to the
/// CSV parser, with the rest of the file.
struct PlainLines {
    file: File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[start]`.
    offset: u64,
    /// Line number of `buf[start]`.
    line: u64,
}

impl PlainLines {
    fn new(mut file: File, offset: u64, line: u64) -> std::io::Result<PlainLines> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(PlainLines {
            file,
            buf: vec![0; 256 * 1024],
            start: 0,
            end: 0,
            eof: false,
            offset,
            line,
        })
    }

    /// The next line: its number, the file offset it starts at, and where it is in
    /// `buf` (without its `\n`). A line that does not fit the buffer comes back as
    /// `Long`, unread: the parser takes it (the buffer never grows).
    fn next(&mut self) -> std::io::Result<Next> {
        loop {
            let found = memchr::memchr(b'\n', &self.buf[self.start..self.end]);
            if found.is_some() || (self.eof && self.start < self.end) {
                let len = found.unwrap_or(self.end - self.start);
                let line = Next::Line(self.line, self.offset, self.start..self.start + len);
                let used = (len + usize::from(found.is_some())).min(self.end - self.start);
                self.start += used;
                self.offset += used as u64;
                self.line += 1;
                return Ok(line);
            }
            if self.eof {
                return Ok(Next::End);
            }
            if self.start == 0 && self.end == self.buf.len() {
                return Ok(Next::Long(self.line, self.offset));
            }
            // Keep the unfinished line at the front and read more.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The file, positioned at `offset`, for the parser to go on with.
    fn into_file(mut self, offset: u64) -> std::io::Result<File> {
        self.file.seek(SeekFrom::Start(offset))?;
        Ok(self.file)
    }
}

/// Counts the lines of the stream the CSV reader consumes, so that a record's byte
/// offset maps to the physical line it starts on. (The csv crate's own line numbers do
/// not count blank lines, and a record's start offset may point at the previous record's
/// line terminator.) Holds only the terminators the reader has buffered ahead.
pub(crate) struct LineCounter<R> {
    inner: R,
    offset: u64,
    /// Offsets of `\r` and `\n` bytes not yet passed, with whether the byte ends a line:
    /// a `\n` does, and so does a `\r` that no `\n` follows (old Mac files end lines with
    /// it alone).
    terminators: std::collections::VecDeque<(u64, bool)>,
    line: u64,
    /// The last byte read (to tell a CRLF cut between two reads).
    last: u8,
}

impl<R: Read> LineCounter<R> {
    /// Counts from `line`, the number of the line the stream starts in.
    fn starting_at(inner: R, line: u64) -> Self {
        LineCounter {
            inner,
            offset: 0,
            terminators: std::collections::VecDeque::new(),
            line,
            last: 0,
        }
    }

    /// The line the byte at `offset` is on (a `\n` ends its line), without passing
    /// anything; `offset` must not be before the last offset given to [`Self::line_at`].
    fn line_of(&self, offset: u64) -> u64 {
        let newlines = self
            .terminators
            .iter()
            .take_while(|(at, _)| *at < offset)
            .filter(|(_, newline)| *newline)
            .count();
        self.line + newlines as u64
    }

    /// The 1-based line of the first byte at or after `offset` that is not a line
    /// terminator; offsets must not decrease between calls.
    fn line_at(&mut self, mut offset: u64) -> u64 {
        while let Some(&(at, newline)) = self.terminators.front() {
            if at > offset {
                break;
            }
            if at == offset {
                offset += 1;
            }
            self.terminators.pop_front();
            if newline {
                self.line += 1;
            }
        }
        self.line
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let base = self.offset;
        if n > 0 && buf[0] == b'\n' {
            // A CR at the end of the previous read was half of a CRLF.
            if let Some(cr) = self.terminators.back_mut() {
                if cr.0 + 1 == base && self.last == b'\r' {
                    cr.1 = false;
                }
            }
        }
        self.terminators
            .extend(memchr::memchr2_iter(b'\n', b'\r', &buf[..n]).map(|i| {
                let ends = buf[i] == b'\n' || buf.get(i + 1).is_none_or(|&b| b != b'\n');
                (base + i as u64, ends)
            }));
        if n > 0 {
            self.last = buf[n - 1];
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Decodes a byte stream to UTF-8 as it is read, in fixed-size chunks.
pub(crate) struct DecodingReader<R> {
    inner: R,
    decoder: Decoder,
    in_buf: Vec<u8>,
    in_pos: usize,
    in_len: usize,
    out_buf: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    eof: bool,
    finished: bool,
}

impl<R: Read> DecodingReader<R> {
    pub(crate) fn new(inner: R, decoder: Decoder) -> Self {
        DecodingReader {
            inner,
            decoder,
            in_buf: vec![0; 32 * 1024],
            in_pos: 0,
            in_len: 0,
            out_buf: vec![0; 64 * 1024],
            out_pos: 0,
            out_len: 0,
            eof: false,
            finished: false,
        }
    }
}

impl<R: Read> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.out_pos < self.out_len {
                let n = buf.len().min(self.out_len - self.out_pos);
                buf[..n].copy_from_slice(&self.out_buf[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            if self.finished || buf.is_empty() {
                return Ok(0);
            }
            if self.in_pos == self.in_len && !self.eof {
                let n = loop {
                    match self.inner.read(&mut self.in_buf) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                self.in_pos = 0;
                self.in_len = n;
                self.eof = n == 0;
            }
            let (result, read, written, _) = self.decoder.decode_to_utf8(
                &self.in_buf[self.in_pos..self.in_len],
                &mut self.out_buf,
                self.eof,
            );
            self.in_pos += read;
            self.out_pos = 0;
            self.out_len = written;
            if self.eof && result == CoderResult::InputEmpty {
                self.finished = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use encoding_rs::{UTF_16BE, UTF_16LE};

    fn opts() -> SourceOptions {
        SourceOptions::default()
    }

    #[test]
    fn detects_each_delimiter() {
        let dir = tempfile::tempdir().unwrap();
        for d in [",", ";", "\t", "|"] {
            let body = format!("Email{d}Name{d}Phone\na@x.org{d}Ann, Lee{d}+44 1\n");
            // The comma inside "Ann, Lee" must not win for other delimiters: quote it only for ','.
            let body = if d == "," {
                body.replace("Ann, Lee", "\"Ann, Lee\"")
            } else {
                body
            };
            let p = write(&dir, "d.csv", body.as_bytes());
            let (sheet, rows) = open_ok(&p, &opts());
            assert_eq!(
                sheet.headers,
                vec!["Email", "Name", "Phone"],
                "delimiter {d:?}"
            );
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].number, 2);
            assert_eq!(
                rows[0].cells,
                vec![t("a@x.org"), t("Ann, Lee"), t("+44 1")],
                "delimiter {d:?}"
            );
        }
    }

    #[test]
    fn delimiter_counts_only_outside_quotes_and_override_wins() {
        let text = "\"a;b;c;d\",email,name\n";
        assert_eq!(detect_delimiter(text, true, None, &probe), b',');
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "o.csv", b"email,name;x\na,b;c\n");
        let o = SourceOptions {
            delimiter: Some(b';'),
            ..opts()
        };
        let (sheet, rows) = open_ok(&p, &o);
        assert_eq!(sheet.headers, vec!["email,name", "x"]);
        assert_eq!(rows[0].cells, vec![t("a,b"), t("c")]);
    }

    #[test]
    fn title_line_with_other_delimiter_does_not_fool_detection() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "t.csv", b"Users, March 2024\nemail;name\na@x;Ann\n");
        let (sheet, rows) = open_ok(&p, &opts());
        assert_eq!(sheet.header_row, 2);
        assert_eq!(sheet.headers, vec!["email", "name"]);
        assert_eq!(rows[0].number, 3);
        assert_eq!(rows[0].cells, vec![t("a@x"), t("Ann")]);
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "b.csv", "\u{FEFF}email,name\na@x,Zoë\n".as_bytes());
        let (sheet, rows) = open_ok(&p, &opts());
        assert_eq!(sheet.headers, vec!["email", "name"]);
        assert_eq!(rows[0].cells[1], t("Zoë"));
    }

    fn utf16(text: &str, le: bool) -> Vec<u8> {
        let mut out = if le {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for u in text.encode_utf16() {
            out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        out
    }

    #[test]
    fn utf16_with_bom_both_byte_orders() {
        let dir = tempfile::tempdir().unwrap();
        // Enough rows to cross the decoder's buffer boundaries several times.
        let mut text = String::from("email\tname\r\n");
        for i in 0..5000 {
            text.push_str(&format!("user{i}@x.org\tMüller {i}\r\n"));
        }
        for le in [true, false] {
            let p = write(&dir, "u.csv", &utf16(&text, le));
            let (sheet, rows) = open_ok(&p, &opts());
            assert_eq!(sheet.headers, vec!["email", "name"]);
            assert_eq!(rows.len(), 5000);
            assert_eq!(rows[0].cells, vec![t("user0@x.org"), t("Müller 0")]);
            assert_eq!(rows[4999].number, 5001);
            assert_eq!(rows[4999].cells[1], t("Müller 4999"));
        }
    }

    #[test]
    fn windows_1252_when_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "w.csv", b"email;name\r\nm@x;M\xfcller\r\n");
        let (_, rows) = open_ok(&p, &opts());
        assert_eq!(rows[0].cells, vec![t("m@x"), t("Müller")]);
        assert_eq!(detect_encoding(b"M\xfcller", true, None).0, WINDOWS_1252);
        // A character cut by the end of the sniffed prefix is still UTF-8.
        assert_eq!(detect_encoding(b"M\xc3", false, None).0, UTF_8);
        assert_eq!(detect_encoding(&[0xFF, 0xFE], true, None), (UTF_16LE, 2));
        assert_eq!(detect_encoding(&[0xFE, 0xFF], true, None), (UTF_16BE, 2));
        // An explicit encoding overrides detection.
        let o = SourceOptions {
            encoding: Some(WINDOWS_1252),
            ..opts()
        };
        let p = write(&dir, "x.csv", "email,name\na,Ã¼\n".as_bytes());
        let (_, rows) = open_ok(&p, &o);
        assert_eq!(rows[0].cells[1], t("ÃƒÂ¼"));
    }

    #[test]
    fn quoted_fields_with_newlines_commas_quotes_keep_row_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let body = "email,name,note\r\n\
                    a@x,\"Lee, Ann\",\"line 1\r\nline 2 \"\"quoted\"\"\"\r\n\
                    b@x,Bob,plain\r\n\
                    c@x,\"C\nD\nE\",x\n\
                    d@x,Dee,\n";
        let p = write(&dir, "q.csv", body.as_bytes());
        let (_, rows) = open_ok(&p, &opts());
        let numbers: Vec<u64> = rows.iter().map(|r| r.number).collect();
        assert_eq!(numbers, vec![2, 4, 5, 8]);
        assert_eq!(
            rows[0].cells,
            vec![t("a@x"), t("Lee, Ann"), t("line 1\r\nline 2 \"quoted\"")]
        );
        assert_eq!(rows[1].cells, vec![t("b@x"), t("Bob"), t("plain")]);
        assert_eq!(rows[3].cells, vec![t("d@x"), t("Dee")]);
    }

    #[test]
    fn crlf_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "c.csv", b"email,name\r\nx@y,Zed\r\n\r\nq@y,Q\r\n");
        let (_, rows) = open_ok(&p, &opts());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cells, vec![t("x@y"), t("Zed")]);
        assert_eq!(rows[1].number, 4);
    }

    #[test]
    fn title_and_blank_rows_above_header() {
        let dir = tempfile::tempdir().unwrap();
        let body = "Onboarding sheet,,\nFill in one user per row,,\n,,\n\nEmail,Name,\n a@x ,Ann,\n,,\nb@x,\"\",\n";
        let p = write(&dir, "t.csv", body.as_bytes());
        let (sheet, rows) = open_ok(&p, &opts());
        assert_eq!(sheet.header_row, 5);
        assert_eq!(sheet.headers, vec!["Email", "Name"]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].number, rows[1].number), (6, 8));
        assert_eq!(rows[0].cells, vec![t("a@x"), t("Ann")]);
        assert_eq!(rows[1].cells, vec![t("b@x")]);
    }

    #[test]
    fn no_header_match_uses_first_non_empty_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "n.csv", b"\nmail,name\na,b\n");
        let (sheet, rows) = open_ok(&p, &opts());
        assert_eq!(sheet.header_row, 2);
        assert_eq!(sheet.headers, vec!["mail", "name"]);
        assert_eq!(rows[0].number, 3);
    }

    #[test]
    fn header_row_override() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "h.csv", b"email,name\nfoo,bar\nx,y\n");
        let o = SourceOptions {
            header_row: Some(2),
            ..opts()
        };
        let (sheet, rows) = open_ok(&p, &o);
        assert_eq!(sheet.header_row, 2);
        assert_eq!(sheet.headers, vec!["foo", "bar"]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].number, 3);
        let o = SourceOptions {
            header_row: Some(9),
            ..opts()
        };
        let e = open_err(&p, &o);
        assert!(e.contains("before row 9"), "{e}");
    }

    #[test]
    fn trailing_empty_header_columns_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "w.csv",
            b"email,name,,\na,b,c,d\n,,only-extra,\nz,,\n",
        );
        let (sheet, rows) = open_ok(&p, &opts());
        assert_eq!(sheet.headers, vec!["email", "name"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cells, vec![t("a"), t("b")]);
        assert_eq!(rows[1].cells, vec![t("z")]);
        assert_eq!(rows[1].number, 4);
    }

    #[test]
    fn invalid_utf8_after_the_sniffed_prefix_is_a_row_error() {
        let dir = tempfile::tempdir().unwrap();
        // A UTF-8 file (valid multi-byte text in it) with a stray byte far past the prefix.
        let mut body = "email,name\nz@x,Zoë\n".as_bytes().to_vec();
        while body.len() < super::super::SNIFF_LEN + 10 {
            body.extend_from_slice(b"a@x,Ann\n");
        }
        body.extend_from_slice(b"m@x,M\xfcller\n");
        let p = write(&dir, "late.csv", &body);
        let sheet = super::super::open(&p, &opts(), &probe).unwrap();
        assert_eq!(
            (sheet.encoding, sheet.encoding_guessed),
            (Some(UTF_8), false)
        );
        let results: Vec<RowResult> = sheet.rows.collect();
        assert_eq!(results[0].as_ref().unwrap().cells[1], t("Zoë"));
        let last = results.last().unwrap();
        let err = last.as_ref().unwrap_err();
        assert_eq!(
            err.message,
            "column \"name\": invalid UTF-8 byte 0xFC at position 2; save the file as UTF-8 \
             (in Excel: \"CSV UTF-8\"), or fix these cells"
        );
        assert_eq!(err.number as usize, results.len() + 1);
    }

    #[test]
    fn a_legacy_byte_past_the_prefix_of_an_ascii_file_is_a_guess_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = b"email,name\n".to_vec();
        while body.len() < super::super::SNIFF_LEN + 10 {
            body.extend_from_slice(b"a@x,Ann\n");
        }
        body.extend_from_slice(b"m@x,M\xfcller\n");
        let p = write(&dir, "late.csv", &body);
        let (sheet, rows) = open_ok(&p, &opts());
        assert_eq!(
            (sheet.encoding, sheet.encoding_guessed),
            (Some(WINDOWS_1252), true)
        );
        assert_eq!(rows.last().unwrap().cells[1], t("Müller"));
    }

    #[test]
    fn utf8_evidence_reads_across_chunks() {
        let mut body = vec![b'a'; 64 * 1024 - 1];
        body.extend_from_slice("é".as_bytes()); // cut by the first chunk's end
        let ev = Utf8Evidence::of(&mut &body[..]).unwrap();
        assert_eq!(
            ev,
            Utf8Evidence {
                multibyte: true,
                invalid: false
            }
        );
        let ev = Utf8Evidence::of(&mut &b"abc\xe9"[..]).unwrap();
        assert_eq!(
            ev,
            Utf8Evidence {
                multibyte: false,
                invalid: true
            }
        );
        let ev = Utf8Evidence::of(&mut &b"abc"[..]).unwrap();
        assert_eq!(ev, Utf8Evidence::default());
    }

    #[test]
    fn sheet_reports_detection_and_a_forced_reopen_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "r.csv",
            b"Users, March\n\nemail;name\na@x;Ann\nb@x;Bo\n",
        );
        let (sheet, rows) = open_ok(&p, &opts());
        assert_eq!(sheet.delimiter, Some(b';'));
        assert_eq!(sheet.encoding, Some(UTF_8));
        assert_eq!(sheet.header_row, 3);
        let o = SourceOptions {
            header_row: Some(sheet.header_row),
            ..opts()
        };
        let never = |_: &[String]| false;
        let again = super::super::open(&p, &o, &never).unwrap();
        assert_eq!(again.headers, sheet.headers);
        let rows2: Vec<RawRow> = again.rows.map(|r| r.unwrap()).collect();
        assert_eq!(rows2, rows);
    }
}

#[cfg(test)]
mod key_pass_tests {
    use super::super::test_util::*;
    use super::*;

    /// (row number, key) of every row a pass reading only column 0 sees, or the error's
    /// row number with no key.
    fn key_pass(path: &Path, header_row: u64) -> Vec<(u64, Option<String>)> {
        let opts = SourceOptions {
            header_row: Some(header_row),
            only_columns: Some(vec![0]),
            ..SourceOptions::default()
        };
        let never = |_: &[String]| false;
        super::super::open(path, &opts, &never)
            .expect("open")
            .rows
            .map(|r| match r {
                Ok(row) => (row.number, row.cells.first().map(Cell::to_text)),
                Err(e) => (e.number, None),
            })
            .collect()
    }

    /// Every row with every cell, as `opts` reads them.
    fn all_cells(path: &Path, opts: &SourceOptions) -> Vec<(u64, Vec<String>)> {
        let (_, rows) = open_ok(path, opts);
        rows.into_iter()
            .map(|r| (r.number, r.cells.iter().map(Cell::to_text).collect()))
            .collect()
    }

    /// The same rows, read by the CSV parser alone: the test files are ASCII, so read as
    /// windows-1252 they give the same text, through the decoder, never as plain lines.
    fn parser_only() -> SourceOptions {
        SourceOptions {
            encoding: Some(encoding_rs::WINDOWS_1252),
            ..SourceOptions::default()
        }
    }

    fn full_pass(path: &Path) -> Vec<(u64, Option<String>)> {
        all_cells(path, &parser_only())
            .into_iter()
            .map(|(n, cells)| (n, cells.first().cloned()))
            .collect()
    }

    #[test]
    fn plain_lines_read_as_the_parser_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let long = "y".repeat(300 * 1024); // longer than the line buffer
        let cases: Vec<(&str, String)> = vec![
            ("lf", "email,name\na@x.io,A\nb@x.io,B\n\nc@x.io,C".into()),
            (
                "crlf",
                "email,name\r\na@x.io,A\r\n\r\n  ,only name\r\nb@x.io,B\r\n".into(),
            ),
            (
                "quotes later",
                "email,name\na@x.io,A\n\"b@x.io\",\"two\nlines\"\nc@x.io,C\nd@x.io,\"D, d\"\n"
                    .into(),
            ),
            (
                "bare cr",
                "email,name\na@x.io,A\rb@x.io,B\nc@x.io,C\n".into(),
            ),
            (
                "bom",
                "\u{feff}email,name\na@x.io,A\n,,\n   \nb@x.io,B\n".into(),
            ),
            (
                "title rows",
                "Users to create\n\nemail,name\na@x.io,A\nb@x.io,B\n".into(),
            ),
            (
                "long line",
                format!("email,name\na@x.io,{long}\nb@x.io,B\n"),
            ),
            (
                "first data row quoted",
                "email,name\n\"a@x.io\",A\nb@x.io,B\n".into(),
            ),
            (
                "ragged",
                "email,name,phone\na@x.io\nb@x.io,B,+44 1,extra\n c@x.io , C \n,,\n".into(),
            ),
        ];
        for (what, body) in cases {
            let p = write(&dir, "k.csv", body.as_bytes());
            let header_row = if what == "title rows" { 3 } else { 1 };
            assert_eq!(key_pass(&p, header_row), full_pass(&p), "{what}");
            // Every cell, as the planning pass reads them.
            let plain = all_cells(&p, &SourceOptions::default());
            assert_eq!(plain, all_cells(&p, &parser_only()), "{what}: all cells");
        }
    }
}
