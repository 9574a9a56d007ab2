//! Rows an xlsx hides (a filter, or rows hidden by hand). calamine's cell reader does not
//! say, and a sheet handed over with a filter on still holds every row it hides: enlist
//! reads them like any other, so it names them rather than send them unseen.
//!
//! The worksheet's part is found the way Excel links it (`xl/workbook.xml` names the sheet
//! and its relationship id, `xl/_rels/workbook.xml.rels` the part), then its `<row>`
//! elements are streamed for `hidden="1"`; nothing else of the sheet is decoded.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

type Zip = zip::ZipArchive<BufReader<File>>;

/// The spreadsheet row numbers (1-based) of the rows sheet `sheet` of the xlsx at `path`
/// hides, as inclusive ranges in order. `Err`: why they could not be read (the caller
/// reads the rows anyway; this only adds a warning).
///
/// A hostile part is bounded as the reader bounds it: the scan stops once the sheet has
/// inflated beyond what [`super::bounds`] allows a streamed worksheet for `cap_mib`, or a
/// tag runs on for more than [`MAX_TAG`] bytes.
pub fn hidden_rows(path: &Path, sheet: &str, cap_mib: u64) -> Result<Vec<(u64, u64)>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut zip = Zip::new(BufReader::new(file)).map_err(|e| e.to_string())?;
    let id = sheet_attr(&mut zip, "xl/workbook.xml", "sheet", "name", sheet, "id")?;
    let target = sheet_attr(
        &mut zip,
        "xl/_rels/workbook.xml.rels",
        "Relationship",
        "Id",
        &id,
        "Target",
    )?;
    let part = match target.strip_prefix('/') {
        Some(absolute) => absolute.to_string(),
        None => format!("xl/{target}"),
    };
    let entry = zip.by_name(&part).map_err(|e| format!("{part}: {e}"))?;
    let limit = cap_mib
        .saturating_mul(super::bounds::SHEET_FACTOR)
        .saturating_mul(1 << 20);
    rows_hidden(entry, limit)
}

/// In part `name`, the attribute `want` of the first `element` whose attribute `key` is
/// `value` (attributes compared by local name: `r:id` is `id`).
fn sheet_attr(
    zip: &mut Zip,
    name: &str,
    element: &str,
    key: &str,
    value: &str,
    want: &str,
) -> Result<String, String> {
    let part = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
    let mut xml = Reader::from_reader(BufReader::new(part));
    let mut buf = Vec::new();
    loop {
        match xml.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e))
                if e.local_name().as_ref() == element
                    && attr(&e, key).as_deref() == Some(value) =>
            {
                return attr(&e, want).ok_or_else(|| format!("{name}: no {want} for {value:?}"));
            }
            Ok(Event::Eof) => return Err(format!("{name}: no {element} {value:?}")),
            Err(e) => return Err(format!("{name}: {e}")),
            _ => {}
        }
        buf.clear();
    }
}

/// The value of the attribute whose local name is `name`.
fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == name).then(|| {
            quick_xml::escape::unescape(&a.value)
                .map_or_else(|_| a.value.to_string(), |v| v.into_owned())
        })
    })
}

/// The hidden rows of a worksheet's XML. A `<row>` without `r` follows the one before.
///
/// Only the `<row ...>` tags are looked at: found with `memchr` and their attributes split
/// on whitespace (a row's attribute values hold none), so no cell is tokenized (quick-xml,
/// as for the small parts above, would tokenize every one).
/// The longest `<row ...>` tag looked at.
const MAX_TAG: usize = 1 << 20;

fn rows_hidden(mut part: impl Read, limit: u64) -> Result<Vec<(u64, u64)>, String> {
    let mut read = 0u64;
    let finder = memchr::memmem::Finder::new(b"row");
    let mut chunk = vec![0u8; 1 << 16];
    let mut buf: Vec<u8> = Vec::with_capacity(2 << 16);
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut row = 0u64;
    loop {
        let n = part.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(ranges);
        }
        read += n as u64;
        if read > limit {
            return Err(format!("the sheet expands beyond {limit} bytes"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        let keep = loop {
            let Some(i) = finder.find(&buf[at..]) else {
                break buf.len().saturating_sub(3).max(at);
            };
            let name = at + i;
            let Some(end) = memchr::memchr(b'>', &buf[name..]) else {
                break name.saturating_sub(1).max(at);
            };
            at = name + end + 1;
            let tag = &buf[name + 3..name + end];
            let opens = name > 0 && matches!(buf[name - 1], b'<' | b':');
            let ends = tag
                .first()
                .is_none_or(|b| b.is_ascii_whitespace() || *b == b'/');
            if !opens || !ends {
                continue;
            }
            let mut hidden = false;
            let mut r = None;
            for token in tag.split(|b| b.is_ascii_whitespace()) {
                let Some(eq) = token.iter().position(|b| *b == b'=') else {
                    continue;
                };
                let value = token[eq + 1..].trim_ascii_end();
                let value = value.strip_suffix(b"/").unwrap_or(value);
                let value = value.get(1..value.len().saturating_sub(1)).unwrap_or(b"");
                match &token[..eq] {
                    b"r" => r = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()),
                    b"hidden" => hidden = matches!(value, b"1" | b"true"),
                    _ => {}
                }
            }
            row = r.unwrap_or(row + 1);
            if hidden {
                match ranges.last_mut() {
                    Some(last) if last.1 + 1 == row => last.1 = row,
                    _ => ranges.push((row, row)),
                }
            }
        };
        buf.drain(..keep);
        if buf.len() > MAX_TAG {
            return Err(format!("a tag runs on for more than {MAX_TAG} bytes"));
        }
    }
}

/// `rows 4, 9 to 12 and 30` for people: the first ranges, then how many more rows.
pub fn describe(ranges: &[(u64, u64)]) -> String {
    const SHOWN: usize = 10;
    let mut parts: Vec<String> = ranges
        .iter()
        .take(SHOWN)
        .map(|&(a, b)| match a == b {
            true => a.to_string(),
            false => format!("{a} to {b}"),
        })
        .collect();
    let more: u64 = ranges.iter().skip(SHOWN).map(|(a, b)| b - a + 1).sum();
    if more > 0 {
        parts.push(format!("{more} more"));
    }
    let last = parts.pop().unwrap_or_default();
    let rows = ranges.iter().map(|(a, b)| b - a + 1).sum::<u64>();
    let noun = if rows == 1 { "row" } else { "rows" };
    match parts.is_empty() {
        true => format!("{noun} {last}"),
        false => format!("{noun} {} and {last}", parts.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_rows_are_read_as_ranges_and_described() {
        let xml = r#"<worksheet><sheetData><row r="1"/><row r="4" hidden="1"><c r="A4"/></row>
            <row r="9" hidden="true"/><row hidden="1"/><row r="11" hidden="1"/><row r="12"/>
            <row r="30" hidden="1"></row><x:row r="31" hidden="1"/><c><v>throw row</v></c>
            <rowBreaks count="1"/></sheetData></worksheet>"#;
        let ranges = rows_hidden(xml.as_bytes(), u64::MAX).unwrap();
        assert_eq!(ranges, vec![(4, 4), (9, 11), (30, 31)]);
        assert_eq!(describe(&ranges), "rows 4, 9 to 11 and 30 to 31");
        // The same, read a few bytes at a time: a tag split between reads is still seen.
        struct Drip<'a>(&'a [u8]);
        impl Read for Drip<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(5);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        assert_eq!(rows_hidden(Drip(xml.as_bytes()), u64::MAX).unwrap(), ranges);
        assert_eq!(describe(&[(7, 7)]), "row 7");
        let many: Vec<(u64, u64)> = (0..12).map(|i| (i * 3 + 2, i * 3 + 2)).collect();
        assert!(
            describe(&many).ends_with("and 2 more"),
            "{}",
            describe(&many)
        );
    }
}
