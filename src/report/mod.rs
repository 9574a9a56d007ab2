//! Report: writes outcomes where people and machines can read them.
//!
//! - [`xlsx::XlsxSink`]: the outcome workbook (Results in input order, Summary, Errors), the
//!   file an admin opens, filters, fixes and feeds back in.
//! - [`csv::CsvSink`]: the Results columns as CSV, in completion order, for machines.
//! - [`jsonl::JsonlSink`]: one JSON object per finished row.
//! - [`feedback`]: reading an outcome workbook back as input (`--only`, `retry`).

pub mod csv;
pub mod feedback;
pub mod jsonl;
pub mod xlsx;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::outcome::{Outcome, OutcomeSink};
use crate::plan::MASK;
use crate::profile::normalize_header;

/// The columns every report adds after the input's own columns, in this order.
pub const REPORT_COLUMNS: [&str; 10] = [
    "Outcome",
    "Action",
    "HTTP status",
    "Attempts",
    "Requests",
    "Duration ms",
    "Message",
    "Remote ID",
    "Finished at",
    "Source row",
];

/// Buffer of the reports written as rows finish (CSV, JSON lines): a write to the file per
/// 256 KiB, not per 8 KiB, when rows finish by the thousand.
pub(crate) const STREAM_BUFFER: usize = 256 * 1024;

/// A batch of fewer outcomes than this means rows are finishing slowly: the streamed
/// reports write it out at once, so that a script tailing the file sees every row soon
/// after it finished rather than when a buffer fills.
pub(crate) const FLUSH_BELOW: usize = 64;

/// `--report-format`: which kind of report a path gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Xlsx,
    Csv,
    Jsonl,
}

impl ReportFormat {
    pub fn parse(s: &str) -> Option<ReportFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "xlsx" | "excel" => Some(ReportFormat::Xlsx),
            "csv" => Some(ReportFormat::Csv),
            "jsonl" | "json" | "ndjson" => Some(ReportFormat::Jsonl),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Xlsx => "xlsx",
            ReportFormat::Csv => "csv",
            ReportFormat::Jsonl => "jsonl",
        }
    }

    /// The format a `--report PATH` asks for by its extension (xlsx when unknown).
    pub fn from_path(p: &Path) -> ReportFormat {
        p.extension()
            .and_then(|e| e.to_str())
            .and_then(ReportFormat::parse)
            .unwrap_or(ReportFormat::Xlsx)
    }
}

/// Opens the sink for `format` at `path`. `headers` are the input's headers (as the
/// [`crate::plan::Layout`] holds them) and `secret_columns` says, per header, whether the
/// column is a secret (`Layout::is_secret`).
pub fn open_sink(
    format: ReportFormat,
    path: &Path,
    headers: Vec<String>,
    secret_columns: Vec<bool>,
) -> Result<Box<dyn OutcomeSink>> {
    Ok(open_sink_fitted(format, path, headers, secret_columns, &[], None)?.0)
}

/// [`open_sink`] that knows which input columns the profile does not use (`unused`, from
/// [`unused_columns`]): a workbook too narrow for the sheet leaves out unused columns from
/// the right, with the warning returned, so that the report can always be written. A sheet
/// whose used columns alone do not fit is refused here, before any request. A workbook
/// records `origin` on its Summary sheet.
pub fn open_sink_fitted(
    format: ReportFormat,
    path: &Path,
    headers: Vec<String>,
    secret_columns: Vec<bool>,
    unused: &[bool],
    origin: Option<feedback::Origin>,
) -> Result<(Box<dyn OutcomeSink>, Option<String>)> {
    Ok(match format {
        ReportFormat::Xlsx => {
            let mut sink =
                xlsx::XlsxSink::create(path, headers, secret_columns)?.with_origin(origin);
            let warning = sink.fit_width(unused)?;
            (Box::new(sink), warning)
        }
        ReportFormat::Csv => (
            Box::new(csv::CsvSink::create(path, headers, secret_columns)?),
            None,
        ),
        ReportFormat::Jsonl => (
            Box::new(jsonl::JsonlSink::create(path)?.masking(secret_columns)),
            None,
        ),
    })
}

/// `<input stem>.outcome.xlsx` beside the input. Feeding an outcome workbook back
/// (`users.outcome.xlsx`, `users.outcome.20261123-142501.xlsx`) does not pile up
/// `.outcome.outcome`: the next report is `users.outcome.xlsx` again, made unique by
/// [`unique_report_path`].
pub fn default_report_path(input: &Path) -> PathBuf {
    default_report_path_for(input, ReportFormat::Xlsx)
}

/// [`default_report_path`] with the extension of `format`.
pub fn default_report_path_for(input: &Path, format: ReportFormat) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "enlist".into());
    let base = strip_outcome_suffix(&stem);
    input.with_file_name(format!("{base}.outcome.{}", format.extension()))
}

/// `users.outcome` → `users`; `users.outcome.20261123-142501` → `users`.
fn strip_outcome_suffix(stem: &str) -> &str {
    if let Some(s) = stem.strip_suffix(".outcome") {
        return s;
    }
    if let Some((head, stamp)) = stem.rsplit_once('.') {
        let is_stamp = stamp.len() >= 15
            && stamp
                .split('-')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if is_stamp {
            if let Some(s) = head.strip_suffix(".outcome") {
                return s;
            }
        }
    }
    stem
}

/// `p` itself if nothing is there yet; otherwise `name.outcome.20261123-142501.xlsx` (local
/// time), with `-2`, `-3`… if even that exists. An earlier outcome is the record of what was
/// done to the target; overwriting it silently would lose that record.
pub fn unique_report_path(p: &Path) -> PathBuf {
    if !p.exists() {
        return p.to_path_buf();
    }
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = p
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut n = 1;
    loop {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let candidate = p.with_file_name(format!("{stem}.{stamp}{suffix}{ext}"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

/// A URL without its `user:password@` part (for the Summary sheet).
pub fn strip_userinfo(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            // Both only fail for URLs that cannot have credentials at all.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(_) => url.to_string(),
        // Not a URL we can parse (an unresolved `$ENV` name, say): cut `//…@` by hand.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}{}", &url[..s + 3], &url[at + 1..]),
            _ => url.to_string(),
        },
    }
}

/// Option names whose value is a secret on any command line.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api-key",
    "api_key",
    "credential",
];

fn is_secret_option(opt: &str) -> bool {
    let name = opt.trim_start_matches('-').to_ascii_lowercase();
    // `--secret-file` names a file, not a secret.
    !name.ends_with("file") && SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// The command line for the Summary sheet with secrets masked: values of options named like
/// a secret (`--token X`, `--password=X`, `API_KEY=X`) and credentials inside URLs. The
/// executor masks already; this is the second lock on the door, since the workbook is mailed
/// around.
pub fn mask_command_line(line: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut mask_next = false;
    for tok in line.split_whitespace() {
        if mask_next {
            out.push(MASK.to_string());
            mask_next = false;
            continue;
        }
        if let Some((k, _)) = tok.split_once('=') {
            if is_secret_option(k) {
                out.push(format!("{k}={MASK}"));
                continue;
            }
        }
        if tok.starts_with("--") && is_secret_option(tok) {
            out.push(tok.to_string());
            mask_next = true;
            continue;
        }
        out.push(if tok.contains("://") {
            strip_userinfo(tok)
        } else {
            tok.to_string()
        });
    }
    out.join(" ")
}

/// How the input's columns become the report's first columns.
///
/// When the input is itself an outcome workbook (it has an `Outcome` column), its old report
/// columns are dropped: the new ones replace them, so feeding a workbook back and back again
/// does not grow `Outcome`, `Outcome`, `Outcome`… Its `Source row` is kept as the row's source
/// row, so row numbers keep pointing at the sheet a person first handed over.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    /// Input column indices shown, in order.
    keep: Vec<usize>,
    headers: Vec<String>,
    secret: Vec<bool>,
    source_row_in: Option<usize>,
}

impl Columns {
    pub(crate) fn new(headers: Vec<String>, secret: Vec<bool>) -> Columns {
        let norm: Vec<String> = headers.iter().map(|h| normalize_header(h)).collect();
        let fed_back = norm.iter().any(|n| n == "outcome");
        let report: Vec<String> = REPORT_COLUMNS.iter().map(|h| normalize_header(h)).collect();
        let keep = (0..headers.len())
            .filter(|i| !(fed_back && report.contains(&norm[*i])))
            .collect();
        let source_row_in = if fed_back {
            norm.iter().position(|n| n == "sourcerow")
        } else {
            None
        };
        Columns {
            keep,
            headers,
            secret,
            source_row_in,
        }
    }

    /// The report's header row: kept input headers, then [`REPORT_COLUMNS`].
    pub(crate) fn header_row(&self) -> Vec<String> {
        self.keep
            .iter()
            .map(|i| self.headers[*i].clone())
            .chain(REPORT_COLUMNS.iter().map(|s| s.to_string()))
            .collect()
    }

    pub(crate) fn input_count(&self) -> usize {
        self.keep.len()
    }

    /// The shown position of the input column headed `header` (the first, if two share it).
    pub(crate) fn shown_index(&self, header: &str) -> Option<usize> {
        self.keep.iter().position(|i| self.headers[*i] == header)
    }

    /// Leaves out input columns the profile does not use (`unused[i]`), from the right,
    /// until at most `max` input columns are shown. Returns how many were left out and the
    /// header of the first (leftmost) of them; `None` when even the used columns are more
    /// than `max`.
    pub(crate) fn fit(&mut self, max: usize, unused: &[bool]) -> Option<(usize, String)> {
        let mut over = self.keep.len().saturating_sub(max);
        if over == 0 {
            return Some((0, String::new()));
        }
        let mut first = String::new();
        let mut dropped = 0;
        let mut i = self.keep.len();
        while over > 0 && i > 0 {
            i -= 1;
            let col = self.keep[i];
            if unused.get(col).copied().unwrap_or(false) {
                first = self.headers.get(col).cloned().unwrap_or_default();
                self.keep.remove(i);
                over -= 1;
                dropped += 1;
            }
        }
        (over == 0).then_some((dropped, first))
    }

    /// The row's shown cells (secret columns masked, whatever the planner did) and its
    /// source row number.
    pub(crate) fn cells(&self, o: &Outcome) -> (Vec<String>, u64) {
        let cells = self
            .keep
            .iter()
            .map(|i| match o.cells.get(*i) {
                None => String::new(),
                Some(c) if c.is_empty() => String::new(),
                Some(_) if self.secret.get(*i).copied().unwrap_or(false) => MASK.to_string(),
                Some(c) => c.clone(),
            })
            .collect();
        let source = self
            .source_row_in
            .and_then(|i| o.cells.get(i))
            .and_then(|c| {
                let t = c.trim();
                t.parse::<u64>()
                    .ok()
                    .or_else(|| t.parse::<f64>().ok().map(|f| f as u64))
            })
            .unwrap_or(o.row);
        (cells, source)
    }
}

/// Maps a writer's error to the crate's error, naming the report.
pub(crate) fn report_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::input(path, format!("cannot write the report: {e}"))
}

/// The headers and secret flags a sink needs, from the input's [`crate::plan::Layout`].
/// Columns the profile marks secret are masked, and so are columns it does not use whose
/// header looks like a secret (`Initial Password`): see [`unused_secret_columns`].
pub fn sink_columns(layout: &crate::plan::Layout) -> (Vec<String>, Vec<bool>) {
    let headers = layout.headers().to_vec();
    let secret = (0..headers.len())
        .map(|i| layout.is_secret(i) || unused_secret_looking(layout, i))
        .collect();
    (headers, secret)
}

/// For each input column: the profile does not use it (an unknown or empty header). Such
/// columns may be left out of a report that cannot hold them all.
pub fn unused_columns(layout: &crate::plan::Layout) -> Vec<bool> {
    (0..layout.headers().len())
        .map(|i| {
            let h = layout.header(i);
            normalize_header(h).is_empty() || layout.unknown.iter().any(|u| u == h)
        })
        .collect()
}

/// Whether a header names something secret: password, passwd, pwd, secret, token, pin,
/// api key (in any case and spelling of the separators).
pub fn looks_secret(header: &str) -> bool {
    let lower = header.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let joined = words.concat();
    [
        "password", "passwd", "pwd", "secret", "token", "apikey", "passcode",
    ]
    .iter()
    .any(|w| joined.contains(w))
        || words
            .iter()
            .any(|w| matches!(*w, "pin" | "pins" | "pincode"))
}

fn unused_secret_looking(layout: &crate::plan::Layout, i: usize) -> bool {
    let h = layout.header(i);
    looks_secret(h) && layout.unknown.iter().any(|u| u == h)
}

/// One warning per column that looks secret and that the profile does not use: such a
/// column is masked in the reports, but it is better marked secret or removed.
pub fn secret_column_warnings(layout: &crate::plan::Layout, profile: &str) -> Vec<String> {
    (0..layout.headers().len())
        .filter(|i| unused_secret_looking(layout, *i))
        .map(|i| {
            format!(
                "column {:?} looks secret and is not used by profile {profile}: masked in the report; \
                 mark it secret or remove it",
                layout.header(i)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::looks_secret;

    #[test]
    fn headers_that_name_a_secret_are_recognised() {
        for h in [
            "Initial Password",
            "passwd",
            "User PWD",
            "client_secret",
            "API Key",
            "api-key",
            "Access Token",
            "PIN",
            "Voicemail pin",
            "PIN code",
        ] {
            assert!(looks_secret(h), "{h}");
        }
        for h in [
            "Email",
            "Shipping address",
            "Spine",
            "Pinyin name",
            "Keyboard",
            "Phone",
        ] {
            assert!(!looks_secret(h), "{h}");
        }
    }
}
