//! Hostile input files (issue 13): stray bytes, legacy encodings and line ends, bombs,
//! headers with line breaks, far-away row numbers and files that change while read. Each
//! test runs the real binary; what reaches a server is checked against the embedded
//! sandbox on 127.0.0.1.

use std::collections::BTreeMap;
use std::path::Path;

use enlist::sandbox::{self, RunningSandbox, SandboxConfig, SandboxKind};
use serde_json::Value;

use crate::workdir::{Run, Workdir};

async fn users_api() -> RunningSandbox {
    let cfg = SandboxConfig {
        kind: SandboxKind::UsersApi,
        ..SandboxConfig::default()
    };
    sandbox::start(cfg).await.expect("start sandbox")
}

/// `enlist run SHEET -p users-api` against `url`, off the async runtime (the sandbox lives
/// on it), with a JSON lines report `out.jsonl`.
async fn run(wd: &Workdir, url: &str, sheet: &str, extra: &[&str]) -> Run {
    let mut cmd = wd.command(&[
        "run",
        sheet,
        "--profile",
        "users-api",
        "--base-url",
        url,
        "--report",
        "out.jsonl",
        "--progress",
        "never",
        "--rate",
        "500",
    ]);
    cmd.args(extra)
        .env("ENLIST_USERS_API_USERNAME", "admin")
        .env("ENLIST_USERS_API_PASSWORD", "sandbox");
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("run enlist"))
        .await
        .expect("join");
    Run { output }
}

/// Spreadsheet row → (status, message) of a JSON lines report.
fn outcomes(path: &Path) -> BTreeMap<u64, (String, String)> {
    let text = std::fs::read_to_string(path).expect("read report");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("summary").is_none())
        .map(|o| {
            (
                o["row"].as_u64().expect("row"),
                (
                    o["status"].as_str().unwrap_or_default().to_string(),
                    o["message"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect()
}

/// email → name of the users the sandbox holds.
fn names(sb: &RunningSandbox) -> BTreeMap<String, String> {
    sb.users()
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap_or_default().to_string(),
                u["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A UTF-8 file with one stray Windows-1252 byte: the accented names of the other rows
/// reach the server as typed (never re-decoded as "JosÃ©"), and the row with the stray
/// byte is invalid, named with its column and the byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_byte_makes_one_row_invalid_not_the_file_mangled() {
    let wd = Workdir::new("bad_byte");
    let mut body = b"email,password,name\n".to_vec();
    body.extend_from_slice("a@x.io,Secret-11,José\n".as_bytes());
    body.extend_from_slice(b"b@x.io,Secret-12,Ren\xe9e\n");
    body.extend_from_slice("c@x.io,Secret-13,Zoë Müller\n".as_bytes());
    wd.write("u.csv", &body);
    let sb = users_api().await;
    let r = run(&wd, &sb.base_url(), "u.csv", &["--report-format", "jsonl"]).await;
    r.expect_code(1);
    let out = outcomes(&wd.path("out.jsonl"));
    assert_eq!(out[&2].0, "created", "{out:?}");
    assert_eq!(out[&4].0, "created", "{out:?}");
    assert_eq!(out[&3].0, "invalid", "{out:?}");
    assert!(
        out[&3]
            .1
            .contains("column \"name\": invalid UTF-8 byte 0xE9 at position 4"),
        "{}",
        out[&3].1
    );
    let users = names(&sb);
    assert_eq!(users.len(), 2, "{users:?}");
    assert_eq!(users["a@x.io"], "José");
    assert_eq!(users["c@x.io"], "Zoë Müller");
    sb.shutdown().await;
}

/// An old Mac export: CR line ends, Mac Roman bytes. Rows are numbered 2, 3, 4 (not all
/// "row 1"), the guessed encoding is announced, and a row whose guess gives control
/// characters is invalid and never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_mac_file_counts_rows_warns_and_sends_no_control_characters() {
    let wd = Workdir::new("mac_roman");
    // Mac Roman: 0x8D is "ç" (windows-1252 leaves it undefined: U+008D).
    wd.write(
        "mac.csv",
        b"email,password,name\rann@x.io,Secret-11,Ann\rfr@x.io,Secret-12,Fran\x8dois\rbob@x.io,Secret-13,Bob\r",
    );
    let sb = users_api().await;
    let r = run(&wd, &sb.base_url(), "mac.csv", &[]).await;
    r.expect_code(1);
    assert!(
        r.stderr()
            .contains("the file's encoding is a guess: it has no byte-order mark and is not UTF-8, so it was read as windows-1252"),
        "{}",
        r.stderr()
    );
    let out = outcomes(&wd.path("out.jsonl"));
    let rows: Vec<u64> = out.keys().copied().collect();
    assert_eq!(rows, vec![2, 3, 4], "{out:?}");
    assert_eq!(out[&2].0, "created");
    assert_eq!(out[&4].0, "created");
    assert_eq!(out[&3].0, "invalid");
    assert!(
        out[&3]
            .1
            .contains("the file's encoding could not be determined; save it as UTF-8"),
        "{}",
        out[&3].1
    );
    let users = names(&sb);
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(users.values().all(|n| !n.chars().any(char::is_control)));
    sb.shutdown().await;
}

/// CR-only, CRLF and LF files number their rows alike, as `check` reports them.
#[test]
fn row_numbers_are_right_for_every_line_end() {
    let wd = Workdir::new("line_ends");
    for (name, end) in [("lf.csv", "\n"), ("crlf.csv", "\r\n"), ("cr.csv", "\r")] {
        let text = [
            "email,password,name",
            "a@x.io,Secret-11,A",
            "",
            "bad,Secret-12,B",
        ]
        .join(end)
            + end;
        wd.write(name, text);
        let r = wd.run(&["check", name, "-p", "users-api"]);
        r.expect_code(1);
        assert!(
            r.stdout().contains("row 4") || r.stderr().contains("row 4"),
            "{name}: {}\n{}",
            r.stdout(),
            r.stderr()
        );
        assert!(!r.stdout().contains("row 1:"), "{name}: {}", r.stdout());
    }
}

/// A minimal xlsx (one sheet, shared strings) whose `xl/sharedStrings.xml` holds
/// `padding_mib` MiB of one repeated string after the real strings. Written streaming, so
/// the test's own memory stays small.
fn bomb_xlsx(path: &Path, padding_mib: usize) {
    xlsx_with(path, SHEET, padding_mib);
}

/// The sheet of [`bomb_xlsx`]: a header row and one user, from the shared strings.
const SHEET: &str = r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c></row><row r="2"><c r="A2" t="s"><v>3</v></c><c r="B2" t="s"><v>4</v></c><c r="C2" t="s"><v>5</v></c></row></sheetData></worksheet>"#;

/// A minimal xlsx with `sheet` as its one worksheet and the shared strings of [`SHEET`],
/// padded as [`bomb_xlsx`] says.
fn xlsx_with(path: &Path, sheet: &str, padding_mib: usize) {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    let file = std::fs::File::create(path).expect("create xlsx");
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(true);
    let parts: [(&str, &str); 4] = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Users" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#,
        ),
    ];
    for (name, text) in parts
        .into_iter()
        .chain([("xl/worksheets/sheet1.xml", sheet)])
    {
        zip.start_file(name, opts).expect("start part");
        zip.write_all(text.as_bytes()).expect("write part");
    }
    zip.start_file("xl/sharedStrings.xml", opts)
        .expect("start strings");
    zip.write_all(
        br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>email</t></si><si><t>password</t></si><si><t>name</t></si><si><t>ann@x.io</t></si><si><t>Secret-11</t></si><si><t>Ann</t></si>"#,
    )
    .expect("write strings");
    let chunk =
        "<si><t>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</t></si>".repeat(16 * 1024);
    let mut written = 0;
    while written < padding_mib * 1024 * 1024 {
        zip.write_all(chunk.as_bytes()).expect("write padding");
        written += chunk.len();
    }
    zip.write_all(b"</sst>").expect("end strings");
    zip.finish().expect("finish xlsx");
}

/// A 600 MiB shared-strings part in a small xlsx is refused from the zip's directory, with
/// the flag that lets a genuine one through, before calamine inflates anything (exit 3).
#[test]
fn a_workbook_that_expands_too_far_is_refused() {
    let wd = Workdir::new("xlsx_bomb");
    let path = wd.path("bomb.xlsx");
    bomb_xlsx(&path, 600);
    let size = std::fs::metadata(&path).expect("stat").len();
    assert!(size < 32 * 1024 * 1024, "the bomb is small: {size}");
    let r = wd.run(&["check", "bomb.xlsx", "-p", "users-api"]);
    r.expect_code(3);
    assert!(
        r.stderr().contains(
            "this workbook expands to more than 512 MiB; if it is genuine, pass --max-expanded-mib"
        ),
        "{}",
        r.stderr()
    );
    // A lower cap refuses a smaller one the same way; a higher cap lets a genuine one in.
    let small = wd.path("small.xlsx");
    bomb_xlsx(&small, 3);
    let r = wd.run(&[
        "check",
        "small.xlsx",
        "-p",
        "users-api",
        "--max-expanded-mib",
        "2",
    ]);
    r.expect_code(3);
    assert!(
        r.stderr().contains("expands to more than 2 MiB"),
        "{}",
        r.stderr()
    );
    let r = wd.run(&["check", "small.xlsx", "-p", "users-api"]);
    r.expect_code(0);
}

/// A workbook that declares small sizes but inflates beyond the cap is refused too: the
/// parts calamine holds whole are inflated through a bound first.
#[test]
fn a_workbook_that_lies_about_its_sizes_is_refused() {
    let wd = Workdir::new("xlsx_liar");
    let path = wd.path("liar.xlsx");
    bomb_xlsx(&path, 3);
    let mut bytes = std::fs::read(&path).expect("read");
    // Every header of xl/sharedStrings.xml declares 1,000 bytes.
    let name = b"xl/sharedStrings.xml";
    let mut patched = 0;
    for at in 0..bytes.len().saturating_sub(50) {
        // Local file header and central directory entry: size and name offsets.
        let (size_at, name_at) = match &bytes[at..at + 4] {
            [0x50, 0x4b, 0x03, 0x04] => (at + 22, at + 30),
            [0x50, 0x4b, 0x01, 0x02] => (at + 24, at + 46),
            _ => continue,
        };
        if bytes.get(name_at..name_at + name.len()) == Some(&name[..]) {
            bytes[size_at..size_at + 4].copy_from_slice(&1000u32.to_le_bytes());
            patched += 1;
        }
    }
    assert!(patched >= 1, "found the part's headers");
    std::fs::write(&path, &bytes).expect("write");
    let r = wd.run(&[
        "check",
        "liar.xlsx",
        "-p",
        "users-api",
        "--max-expanded-mib",
        "2",
    ]);
    r.expect_code(3);
    assert!(
        r.stderr().contains("expands to more than 2 MiB"),
        "{}",
        r.stderr()
    );
}

/// More data rows than --max-rows: the sheet is refused (exit 3), CSV and xlsx alike.
#[test]
fn a_sheet_with_more_rows_than_the_cap_is_refused() {
    let wd = Workdir::new("max_rows");
    let mut text = String::from("email,password,name\n");
    for i in 0..30 {
        text.push_str(&format!("u{i}@x.io,Secret-{i:03},U {i}\n"));
    }
    wd.write("many.csv", &text);
    let r = wd.run(&["check", "many.csv", "-p", "users-api", "--max-rows", "10"]);
    r.expect_code(3);
    assert!(
        r.stderr()
            .contains("the sheet has more than 10 data rows; enlist reads at most 10"),
        "{}",
        r.stderr()
    );
    wd.run(&["check", "many.csv", "-p", "users-api", "--max-rows", "30"])
        .expect_code(0);
    let r = wd.run(&["check", "many.csv", "-p", "users-api", "--max-rows", "0"]);
    r.expect_code(2);
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (row, line) in text.lines().enumerate() {
        let row = u32::try_from(row).expect("row");
        for (col, cell) in line.split(',').enumerate() {
            let col = u16::try_from(col).expect("column");
            sheet.write_string(row, col, cell).expect("cell");
        }
    }
    book.save(wd.path("many.xlsx")).expect("save");
    let r = wd.run(&["check", "many.xlsx", "-p", "users-api", "--max-rows", "10"]);
    r.expect_code(3);
    assert!(
        r.stderr().contains("the sheet has more than 10 data rows"),
        "{}",
        r.stderr()
    );
    wd.run(&["check", "many.xlsx", "-p", "users-api"])
        .expect_code(0);
}

/// Headers with a line break typed inside the cell (LF or CRLF, CSV or xlsx) match as if
/// the break were a space.
#[test]
fn headers_with_line_breaks_match_like_spaces() {
    let wd = Workdir::new("header_breaks");
    let headers = [
        "Service\nProvider ID",
        "Group\r\nID",
        "User\nID",
        "First\nName",
        "Last\r\nName",
        "Extension",
        "Password",
    ];
    let row = [
        "sp1",
        "g1",
        "ann@acme.example",
        "Ann",
        "Lee",
        "1234",
        "Secret-123!",
    ];
    let quoted: Vec<String> = headers.iter().map(|h| format!("\"{h}\"")).collect();
    wd.write(
        "breaks.csv",
        format!("{}\r\n{}\r\n", quoted.join(","), row.join(",")),
    );
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (i, (h, v)) in headers.iter().zip(row).enumerate() {
        let col = u16::try_from(i).expect("column");
        sheet.write_string(0, col, *h).expect("header");
        sheet.write_string(1, col, v).expect("cell");
    }
    book.save(wd.path("breaks.xlsx")).expect("save");
    for name in ["breaks.csv", "breaks.xlsx"] {
        let r = wd.run(&["check", name, "-p", "odin", "--format", "json"]);
        r.expect_code(0);
        let v: Value = serde_json::from_str(&r.stdout()).expect("json");
        assert_eq!(v["header_row"], 1, "{name}: {v:#}");
        assert_eq!(v["rows"], 1, "{name}: {v:#}");
    }
}

/// A cell at row 99,999,999,999 (beyond Excel's 1,048,576 rows) is not reported at a
/// wrapped-around row number such as 1,215,752,191: the row says what is wrong.
#[test]
fn far_away_row_numbers_are_not_wrapped() {
    let wd = Workdir::new("far_rows");
    for (name, r) in [("far.xlsx", "99999999999"), ("wrap.xlsx", "4294967297")] {
        let sheet = SHEET.replace(
            "</sheetData>",
            &format!(
                r#"<row r="{r}"><c r="A{r}" t="s"><v>3</v></c><c r="B{r}" t="s"><v>4</v></c><c r="C{r}" t="s"><v>5</v></c></row></sheetData>"#
            ),
        );
        xlsx_with(&wd.path(name), &sheet, 0);
        let r = wd.run(&["check", name, "-p", "users-api"]);
        let all = format!("{}{}", r.stdout(), r.stderr());
        assert!(
            !all.contains("1215752191") && !all.contains("1,215,752,191"),
            "{all}"
        );
        assert!(
            !all.contains("row 3:") || all.contains("Excel"),
            "{name}: {all}"
        );
        assert!(all.contains("1,048,576"), "{name}: {all}");
        assert_eq!(r.code(), 1, "{name}: {all}");
    }
}

/// Number cells that are not finite (`<v>NaN</v>`, `<v>1e999</v>`: calamine reads them
/// as NaN and infinity) come back from the decoded rows' spool exactly, as every other cell
/// does: the rows after them are not lost.
#[test]
fn numbers_that_are_not_finite_survive_the_second_pass() {
    let wd = Workdir::new("not_finite");
    let rows: String = [("3", "bob@x.io", "NaN"), ("4", "cid@x.io", "1e999")]
        .iter()
        .map(|(r, email, name)| {
            format!(
                r#"<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{email}</t></is></c><c r="B{r}" t="s"><v>4</v></c><c r="C{r}"><v>{name}</v></c></row>"#
            )
        })
        .collect();
    let sheet = SHEET.replace("</sheetData>", &format!("{rows}</sheetData>"));
    xlsx_with(&wd.path("odd.xlsx"), &sheet, 0);
    let r = wd.run(&[
        "check",
        "odd.xlsx",
        "-p",
        "users-api",
        "--show-requests",
        "3",
    ]);
    let all = format!("{}{}", r.stdout(), r.stderr());
    assert!(!all.contains("could not be read back"), "{all}");
    for name in ["\"NaN\"", "\"inf\""] {
        assert!(all.contains(name), "{name} missing: {all}");
    }
}

/// A formula that nothing ever calculated (a workbook a script wrote with openpyxl holds
/// `<f>` and no `<v>`) is not read as an empty cell: its row is invalid, and the message
/// says why and what to do. A formula with its value reads as that value.
#[test]
fn a_formula_never_calculated_is_not_an_empty_cell() {
    let wd = Workdir::new("uncalculated");
    let rows = concat!(
        r#"<row r="3"><c r="A3" t="str"><f>LOWER("CID@X.IO")</f></c><c r="B3" t="s"><v>4</v></c><c r="C3" t="s"><v>5</v></c></row>"#,
        r#"<row r="4"><c r="A4" t="str"><f>LOWER("DEE@X.IO")</f><v>dee@x.io</v></c><c r="B4" t="s"><v>4</v></c><c r="C4" t="s"><v>5</v></c></row>"#,
    );
    let sheet = SHEET.replace("</sheetData>", &format!("{rows}</sheetData>"));
    xlsx_with(&wd.path("script.xlsx"), &sheet, 0);
    let r = wd.run(&["check", "script.xlsx", "-p", "users-api"]);
    r.expect_code(1);
    let all = format!("{}{}", r.stdout(), r.stderr());
    assert!(
        all.contains("row 3, column email: the cell holds a formula that was never calculated")
            && all.contains("open the file in Excel or LibreOffice and save it"),
        "{all}"
    );
    assert!(!all.contains("row 4"), "{all}");
    assert!(all.contains("1 invalid"), "{all}");
}

/// Rows appended to the sheet between the duplicate-key pass and the planning pass (a
/// duplicate of row 2 and a new user) are not sent: the run reads one private copy, and
/// the hash in its report is the hash of what it read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_appended_while_a_run_reads_the_file_are_not_sent() {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    let wd = Workdir::new("changed_file");
    let original = "email,password,name\na@x.io,Secret-11,Ann\nb@x.io,Secret-12,Bob\n";
    let sheet = wd.write("u.csv", original);
    let marker = wd.path("paused");
    let sb = users_api().await;
    let mut cmd = wd.command(&[
        "run",
        "u.csv",
        "--profile",
        "users-api",
        "--base-url",
        &sb.base_url(),
        "--report",
        "out.jsonl",
        "--progress",
        "never",
    ]);
    cmd.env("ENLIST_USERS_API_USERNAME", "admin")
        .env("ENLIST_USERS_API_PASSWORD", "sandbox")
        .env("ENLIST_TEST_PAUSE_BETWEEN_PASSES", &marker);
    let child = tokio::task::spawn_blocking(move || cmd.output().expect("run enlist"));
    // Wait for the pause (a bound against a hang, not a measure of speed).
    let mut waited = 0;
    while !marker.exists() {
        assert!(waited < 6000, "enlist never paused between the passes");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 1;
    }
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&sheet)
            .expect("open sheet");
        f.write_all(b"a@x.io,Secret-13,Mallory\nc@x.io,Secret-14,Cy\n")
            .expect("append");
    }
    std::fs::remove_file(&marker).expect("resume");
    let r = Run {
        output: child.await.expect("join"),
    };
    r.expect_code(0);
    let out = outcomes(&wd.path("out.jsonl"));
    let rows: Vec<u64> = out.keys().copied().collect();
    assert_eq!(rows, vec![2, 3], "{out:?}");
    let users = names(&sb);
    assert_eq!(users.len(), 2, "{users:?}");
    assert_eq!(users["a@x.io"], "Ann");
    let summary = std::fs::read_to_string(wd.path("out.jsonl"))
        .expect("report")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .expect("summary line");
    let sha = Sha256::digest(original.as_bytes());
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(summary["input_sha256"], hex.as_str());
    sb.shutdown().await;
}

/// A zip holding `parts` (name, content), as Office and OpenDocument files are.
fn zip_of(parts: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in parts {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("zip part");
        zip.write_all(text.as_bytes()).expect("zip write");
    }
    zip.finish().expect("zip finish").into_inner()
}

/// The start of an OLE compound file (the container of .xls, .doc and .ppt) whose
/// directory names a stream `name`, as Word 97-2003 writes "WordDocument".
fn cfb_with_stream(name: &str) -> Vec<u8> {
    let mut bytes = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    bytes.resize(1024, 0);
    bytes.extend(name.encode_utf16().flat_map(u16::to_le_bytes));
    bytes.resize(2048, 0);
    bytes
}

/// Files renamed to a spreadsheet's extension that are something else: each is refused
/// (exit 3, as any unreadable input) naming the file, what it really is and what to do.
#[test]
fn a_file_that_is_no_spreadsheet_is_named_for_what_it_is() {
    let wd = Workdir::new("not_a_sheet");
    let types = ("[Content_Types].xml", "<Types/>");
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "letter.xlsx",
            zip_of(&[types, ("word/document.xml", "<w:document/>")]),
            "is a Word document named .xlsx, not a workbook",
            "save it as .xlsx or CSV",
        ),
        (
            "slides.xlsx",
            zip_of(&[types, ("ppt/presentation.xml", "<p/>")]),
            "is a PowerPoint file named .xlsx",
            "save it as .xlsx or CSV",
        ),
        (
            "bundle.xlsx",
            zip_of(&[("export/users.xlsx", "x"), ("readme.txt", "hi")]),
            "is a zip archive named .xlsx, not a workbook",
            "unpack it and give the spreadsheet inside (export/users.xlsx)",
        ),
        (
            "notes.ods",
            zip_of(&[
                ("mimetype", "application/vnd.oasis.opendocument.text"),
                ("content.xml", "<office:document-content/>"),
            ]),
            "is an OpenDocument text (Writer) document named .ods",
            "save it as .xlsx or CSV",
        ),
        (
            "memo.xls",
            cfb_with_stream("WordDocument"),
            "is a Word 97-2003 document named .xls, not a workbook",
            "save it as .xlsx or CSV",
        ),
        (
            "scan.xlsx",
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< >>\nendobj\n".to_vec(),
            "is a PDF document named .xlsx, not a spreadsheet",
            "export it as .xlsx or CSV",
        ),
        (
            "report.xls",
            "\u{feff}<html xmlns:o=\"urn:schemas-microsoft-com:office:office\">\n<table><tr>\
             <td>email</td></tr><tr><td>a@x.io</td></tr></table></html>\n"
                .into(),
            "is a web page (HTML) named .xls, not a spreadsheet: web applications often \
             export \"Excel\" files this way",
            "save it as .xlsx",
        ),
        (
            "old.xls",
            "<?xml version=\"1.0\"?>\n<?mso-application progid=\"Excel.Sheet\"?>\n<Workbook \
             xmlns=\"urn:schemas-microsoft-com:office:spreadsheet\"></Workbook>\n"
                .into(),
            "is an Excel 2003 XML spreadsheet named .xls",
            "save it as .xlsx",
        ),
        (
            "users.xlsx",
            "email,password,name\na@x.io,Secret-11,Ann\n".into(),
            "is not an Excel workbook (it looks like CSV text)",
            "rename it to .csv",
        ),
    ];
    for (name, bytes, what, todo) in cases {
        wd.write(name, bytes);
        let r = wd.run(&["check", name, "-p", "users-api"]);
        r.expect_code(3);
        let err = r.stderr();
        assert!(err.contains(&format!("{name}: {what}")), "{name}: {err}");
        assert!(err.contains(todo), "{name}: {err}");
    }
    // An OpenDocument spreadsheet is still read as one.
    let ods = zip_of(&[
        ("mimetype", "application/vnd.oasis.opendocument.spreadsheet"),
        ("content.xml", "<office:document-content/>"),
    ]);
    wd.write("real.ods", ods);
    let r = wd.run(&["check", "real.ods", "-p", "users-api"]);
    assert!(!r.stderr().contains("not a workbook"), "{}", r.stderr());
}
