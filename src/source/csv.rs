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
    mut file: File,
    prefix: Vec<u8>,
    at_eof: bool,
    opts: &SourceOptions,
    probe: &dyn HeaderProbe,
) -> Result<Sheet> {
    let (encoding, bom_len) = detect_encoding(&prefix, at_eof, opts.encoding);
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
    let reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .buffer_capacity(64 * 1024)
        .from_reader(input);
    let mut src = CsvRows {
        reader,
        record: ::csv::ByteRecord::new(),
        width: MAX_COLUMNS,
        done: false,
        last_line: 0,
        encoding_name: encoding.name(),
    };
    let located = locate_header(&mut src, opts.header_row, probe, "the file")
        .map_err(|m| Error::input(path, m))?;
    src.width = located.headers.len();
    let width = located.headers.len();
    Ok(Sheet {
        path: path.to_path_buf(),
        sheet_name: None,
        header_row: located.header_row,
        headers: located.headers,
        rows: Box::new(DataRows::new(located.pending, src, width)),
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
    counts.sort_by(|a, b| b.1.cmp(&a.1));
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
    if let Some(n) = forced_row {
        return records
            .iter()
            .find(|r| r.line == n)
            .and_then(|r| best(r.text))
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
            // A one-column header: any delimiter works; look further for a hint.
            break;
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
    reader: ::csv::Reader<Box<dyn Read + Send>>,
    record: ::csv::ByteRecord,
    /// Cells kept per row (the header width once known).
    width: usize,
    done: bool,
    last_line: u64,
    encoding_name: &'static str,
}

impl RowSource for CsvRows {
    fn next_row(&mut self) -> Option<RowResult> {
        if self.done {
            return None;
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {
                let number = self
                    .record
                    .position()
                    .map(|p| p.line())
                    .unwrap_or(self.last_line + 1);
                self.last_line = number;
                let mut cells = Vec::with_capacity(self.record.len().min(self.width));
                for field in self.record.iter().take(self.width) {
                    match std::str::from_utf8(field) {
                        Ok(s) => cells.push(Cell::text(s)),
                        Err(_) => {
                            return Some(Err(RowError {
                                number,
                                message: format!(
                                    "row {number} is not valid {} text: save the file as \
                                     \"CSV UTF-8\", or tell enlist its encoding (for example \
                                     windows-1252)",
                                    self.encoding_name
                                ),
                            }))
                        }
                    }
                }
                Some(Ok(RawRow { number, cells }))
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
