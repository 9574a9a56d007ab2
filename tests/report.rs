//! The outcome reporters, tested as a library (a real run needs the executor): outcomes are
//! fed out of order, the workbook is opened with calamine and read back as a person or the
//! next `enlist run` would.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use calamine::{open_workbook, Data, Reader, Xlsx};
use enlist::cell::Cell;
use enlist::outcome::{Outcome, OutcomeSink, RunSummary, Status};
use enlist::plan::{Layout, PlanOptions, Planner, MASK};
use enlist::profile::{Action, Profile};
use enlist::report::csv::CsvSink;
use enlist::report::feedback::OnlyFilter;
use enlist::report::xlsx::XlsxSink;
use enlist::report::{default_report_path, mask_command_line, strip_userinfo, unique_report_path};
use enlist::source::RawRow;

use crate::book_xml::BookXml;
use crate::workdir::Workdir;

const HEADERS: [&str; 4] = ["Email", "Password", "Phone", "Employee ID"];
const SECRET: [bool; 4] = [false, true, false, false];

fn status_of(i: u64) -> Status {
    match i % 10 {
        0..=2 => Status::Created,
        3 => Status::Failed,
        4 => Status::Updated,
        5 => Status::Invalid,
        6 => Status::Exists,
        7 => Status::Failed,
        8 => Status::Skipped,
        _ => Status::NotAttempted,
    }
}

fn outcome(i: u64) -> Outcome {
    let status = status_of(i);
    let message = match status {
        // Two causes for failures, one for invalid rows: the Errors sheet groups them.
        Status::Failed if i % 20 == 3 => "quota exceeded".to_string(),
        Status::Failed => "timed out after 3 attempts".to_string(),
        Status::Invalid => "Email: is not an email address".to_string(),
        _ => String::new(),
    };
    Outcome {
        seq: i,
        row: i + 2,
        key: format!("u{i}@example.com"),
        status,
        action: Action::Upsert,
        http_status: match status {
            Status::Created => Some(201),
            Status::Failed => Some(503),
            _ => None,
        },
        attempts: if status == Status::Failed { 3 } else { 1 },
        requests: 3,
        duration_ms: 10 + i,
        message,
        remote_id: (status == Status::Created).then(|| format!("1234567890{i}")),
        finished_at: "2026-11-23T12:00:00.000Z".into(),
        // The password is *not* masked here: the sink must mask it on its own.
        cells: vec![
            format!("u{i}@example.com"),
            format!("Secret{i}!"),
            format!("+4479{i:04}"),
            format!("0{i:03}"),
        ],
        fingerprint: None,
        steps: None,
        problem_columns: if status == Status::Invalid {
            vec!["Email".into()]
        } else {
            Vec::new()
        },
    }
}

fn summary(n: u64) -> RunSummary {
    let mut counts = BTreeMap::new();
    for i in 0..n {
        *counts.entry(status_of(i)).or_insert(0) += 1;
    }
    RunSummary {
        counts,
        started_at: "2026-11-23T12:00:00Z".into(),
        finished_at: "2026-11-23T12:00:30Z".into(),
        duration_secs: 30.0,
        achieved_rate: 9.5,
        requests: 40,
        retries: 7,
        throttled_429: 2,
        settled_concurrency: 4,
        settled_rate: 10.0,
        profile: "users-api".into(),
        base_url: "https://admin:hunter2@api.example.com/v1".into(),
        input_file: "users.xlsx".into(),
        input_sha256: "ab".repeat(32),
        version: "0.1.0".into(),
        command_line: "enlist run users.xlsx --profile users-api --token abc123 PASSWORD=pw9"
            .into(),
        unchanged: 0,
        interrupted: true,
    }
}

/// An outcome workbook sink for [`HEADERS`].
fn xlsx_sink(path: &Path) -> XlsxSink {
    XlsxSink::create(
        path,
        HEADERS.iter().map(|s| s.to_string()).collect(),
        SECRET.to_vec(),
    )
    .expect("create sink")
}

/// Feeds outcomes 0..n in a scrambled order (a stride coprime with n).
fn write_workbook(path: &Path, n: u64, max_rows: Option<u32>) {
    let mut sink = xlsx_sink(path);
    if let Some(m) = max_rows {
        sink = sink.with_max_rows(m);
    }
    let stride = (1..n)
        .rev()
        .find(|s| gcd(*s, n) == 1 && *s > 1)
        .unwrap_or(1);
    for k in 0..n {
        sink.record(&outcome((k * stride) % n)).expect("record");
    }
    sink.finish(&summary(n)).expect("finish");
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Float(f) => format!("{f}"),
        Data::Int(i) => format!("{i}"),
        Data::Empty => String::new(),
        other => format!("{other:?}"),
    }
}

fn sheet(wb: &mut Xlsx<std::io::BufReader<std::fs::File>>, name: &str) -> Vec<Vec<Data>> {
    let range = wb.worksheet_range(name).expect("sheet");
    range.rows().map(|r| r.to_vec()).collect()
}

#[test]
fn workbook_has_results_in_input_order_summary_and_grouped_errors() {
    let wd = Workdir::new("report_workbook");
    let path = wd.path("users.outcome.xlsx");
    write_workbook(&path, 30, None);
    // The scratch file is gone.
    let left: Vec<_> = std::fs::read_dir(wd.dir())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["users.outcome.xlsx".to_string()]);

    let mut wb: Xlsx<_> = open_workbook(&path).expect("open");
    assert_eq!(wb.sheet_names(), vec!["Results", "Summary", "Errors"]);

    let rows = sheet(&mut wb, "Results");
    let header: Vec<String> = rows[0].iter().map(text).collect();
    assert_eq!(
        header,
        vec![
            "Email",
            "Password",
            "Phone",
            "Employee ID",
            "Outcome",
            "Action",
            "HTTP status",
            "Attempts",
            "Requests",
            "Duration ms",
            "Message",
            "Remote ID",
            "Finished at",
            "Source row"
        ]
    );
    assert_eq!(rows.len(), 31);
    for (i, r) in rows[1..].iter().enumerate() {
        let i = i as u64;
        assert_eq!(text(&r[0]), format!("u{i}@example.com"), "input order");
        assert_eq!(r[1], Data::String(MASK.into()), "password masked");
        // Phone and id-like columns survive as text: + and leading zeros kept.
        assert_eq!(r[2], Data::String(format!("+4479{i:04}")));
        assert_eq!(r[3], Data::String(format!("0{i:03}")));
        assert_eq!(text(&r[4]), status_of(i).as_str());
        assert_eq!(text(&r[5]), "upsert");
        assert_eq!(
            r[7],
            Data::Float(if status_of(i) == Status::Failed {
                3.0
            } else {
                1.0
            })
        );
        if status_of(i) == Status::Created {
            assert_eq!(r[6], Data::Float(201.0));
            assert_eq!(
                r[11],
                Data::String(format!("1234567890{i}")),
                "remote id as text"
            );
        }
        assert_eq!(r[8], Data::Float(3.0), "requests");
        assert_eq!(r[13], Data::Float((i + 2) as f64), "source row");
    }
    // No secret anywhere in the workbook.
    for name in ["Results", "Summary", "Errors"] {
        for r in sheet(&mut wb, name) {
            for c in r {
                let t = text(&c);
                assert!(!t.contains("Secret"), "{name}: {t}");
                assert!(!t.contains("hunter2") && !t.contains("abc123") && !t.contains("pw9"));
            }
        }
    }

    let errors = sheet(&mut wb, "Errors");
    let lines: Vec<Vec<String>> = errors
        .iter()
        .map(|r| r.iter().map(text).collect())
        .collect();
    assert_eq!(lines[0], vec!["Outcome", "Rows", "Message", "Row numbers"]);
    // Failed: seq 3, 7, 13, 17, 23, 27 (quota on 3 and 23); invalid: 5, 15, 25. Rows = seq + 2.
    assert_eq!(
        lines[1..],
        vec![
            vec!["failed", "4", "timed out after 3 attempts", "9, 15, 19, 29"],
            vec![
                "invalid",
                "3",
                "Email: is not an email address",
                "7, 17, 27"
            ],
            vec!["failed", "2", "quota exceeded", "5, 25"],
        ]
    );

    let summary = sheet(&mut wb, "Summary");
    let facts: BTreeMap<String, String> = summary
        .iter()
        .filter(|r| r.len() >= 2)
        .map(|r| (text(&r[0]), text(&r[1])))
        .collect();
    assert_eq!(facts["created"], "9");
    assert_eq!(facts["failed"], "6");
    assert_eq!(facts["invalid"], "3");
    assert_eq!(facts["not-attempted"], "3");
    assert_eq!(facts["total"], "30");
    assert_eq!(facts["Target"], "https://api.example.com/v1");
    assert_eq!(facts["Retries"], "7");
    assert_eq!(facts["429 responses"], "2");
    assert_eq!(facts["Input SHA-256"], "ab".repeat(32));
    assert!(facts["Command line"].contains("--token ********"));
    assert!(facts["Command line"].contains("PASSWORD=********"));
}

#[test]
fn results_overflow_onto_more_sheets_without_losing_a_row() {
    let wd = Workdir::new("report_overflow");
    let path = wd.path("big.outcome.xlsx");
    write_workbook(&path, 25, Some(11));
    let mut wb: Xlsx<_> = open_workbook(&path).expect("open");
    assert_eq!(
        wb.sheet_names(),
        vec!["Results", "Results (2)", "Results (3)", "Summary", "Errors"]
    );
    let mut seen = Vec::new();
    for (name, n) in [("Results", 10), ("Results (2)", 10), ("Results (3)", 5)] {
        let rows = sheet(&mut wb, name);
        assert_eq!(text(&rows[0][4]), "Outcome", "{name} has the header");
        assert_eq!(rows.len(), n + 1, "{name}");
        seen.extend(rows[1..].iter().map(|r| text(&r[0])));
    }
    let want: Vec<String> = (0..25).map(|i| format!("u{i}@example.com")).collect();
    assert_eq!(seen, want);
}

#[test]
fn empty_run_still_writes_a_workbook() {
    let wd = Workdir::new("report_empty");
    let path = wd.path("none.outcome.xlsx");
    let mut sink = XlsxSink::create(&path, vec!["Email".into()], vec![false]).expect("sink");
    sink.finish(&RunSummary::default()).expect("finish");
    let mut wb: Xlsx<_> = open_workbook(&path).expect("open");
    assert_eq!(sheet(&mut wb, "Results").len(), 1);
    let errors = sheet(&mut wb, "Errors");
    assert_eq!(text(&errors[1][2]), "No row failed or was invalid.");
}

#[test]
fn csv_report_has_the_results_columns_and_masks_secrets() {
    let wd = Workdir::new("report_csv");
    let path = wd.path("users.outcome.csv");
    let mut sink = CsvSink::create(
        &path,
        HEADERS.iter().map(|s| s.to_string()).collect(),
        SECRET.to_vec(),
    )
    .expect("sink");
    for i in [3, 0, 1] {
        sink.record(&outcome(i)).expect("record");
    }
    sink.finish(&summary(3)).expect("finish");
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Email,Password,Phone,Employee ID,Outcome,Action,HTTP status,Attempts,Requests,Duration ms,Message,Remote ID,Finished at,Source row"
    );
    // Completion order. A cell Excel would run as a formula (`+…`) gets a leading `'`.
    assert!(lines[1].starts_with(
        "u3@example.com,********,'+44790003,0003,failed,upsert,503,3,3,13,quota exceeded,,"
    ));
    assert!(lines[2].starts_with("u0@example.com,"));
    assert!(!text.contains("Secret"));
}

#[test]
fn report_paths_never_overwrite_an_earlier_outcome() {
    let wd = Workdir::new("report_paths");
    let input = wd.path("users.csv");
    let p = default_report_path(&input);
    assert_eq!(p, wd.path("users.outcome.xlsx"));
    // Feeding an outcome back does not pile up ".outcome.outcome".
    assert_eq!(default_report_path(&p), p);
    assert_eq!(
        default_report_path(&wd.path("users.outcome.20261123-142501.xlsx")),
        p
    );
    assert_eq!(unique_report_path(&p), p, "free path kept");
    std::fs::write(&p, b"earlier").expect("write");
    let q = unique_report_path(&p);
    assert_ne!(q, p);
    let name = q.file_name().expect("name").to_string_lossy().into_owned();
    assert!(
        name.starts_with("users.outcome.2") && name.ends_with(".xlsx"),
        "{name}"
    );
    assert_eq!(
        name.len(),
        "users.outcome.20261123-142501.xlsx".len(),
        "{name}"
    );
    std::fs::write(&q, b"second").expect("write");
    let r = unique_report_path(&p);
    assert!(r != p && r != q && !r.exists(), "{}", r.display());
}

#[test]
fn secrets_are_masked_on_the_command_line_and_in_urls() {
    assert_eq!(
        mask_command_line(
            "enlist run a.csv --password s3 --token=t0k --secret-file f.env --rate 5"
        ),
        "enlist run a.csv --password ******** --token=******** --secret-file f.env --rate 5"
    );
    assert_eq!(
        mask_command_line("enlist run a.csv --base-url https://u:p@h.example/x"),
        "enlist run a.csv --base-url https://h.example/x"
    );
    assert_eq!(strip_userinfo("https://h.example/x"), "https://h.example/x");
    assert_eq!(strip_userinfo("$ENLIST_URL"), "$ENLIST_URL");
}

/// The headers of an outcome workbook of the users-api profile, and a row of it.
fn fed_back(profile: &Profile) -> (Layout, Vec<String>) {
    let headers: Vec<String> = [
        "email",
        "password",
        "name",
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let layout = Layout::new(profile, &headers, Path::new("users.outcome.xlsx")).expect("layout");
    (layout, headers)
}

fn raw(number: u64, password: &str, outcome: &str) -> RawRow {
    RawRow {
        number,
        cells: vec![
            Cell::text(&format!("u{number}@example.com")),
            Cell::text(password),
            Cell::text("Jane Doe"),
            Cell::text(outcome),
            Cell::text("create"),
            Cell::text("503"),
            Cell::text("3"),
            Cell::text("120"),
            Cell::text("timed out"),
            Cell::Empty,
            Cell::text("2026-11-23T12:00:00.000Z"),
            Cell::text(&(number + 10).to_string()),
        ],
    }
}

#[test]
fn a_masked_secret_fed_back_makes_the_row_invalid() {
    let profile = Profile::load("users-api").expect("profile");
    let (layout, _) = fed_back(&profile);
    assert!(
        layout.unknown.is_empty(),
        "report columns are not unknown: {:?}",
        layout.unknown
    );
    let mut planner = Planner::new(
        Arc::new(profile),
        layout,
        PlanOptions::default(),
        Default::default(),
    );
    let masked = planner.plan(Ok(raw(2, MASK, "failed")));
    assert!(masked.is_invalid());
    assert!(masked.job.is_none(), "the mask is never sent");
    let msg = masked.error_message();
    assert!(
        msg.contains("the password column holds the mask from an outcome report; supply the password again (type it in the cell, or give --secrets-from FILE"),
        "{msg}"
    );
    let fresh = planner.plan(Ok(raw(3, "N3w-passw0rd!", "failed")));
    assert!(!fresh.is_invalid(), "{}", fresh.error_message());
    assert!(fresh.job.is_some());
}

#[test]
fn only_filter_keeps_the_rows_asked_for() {
    let profile = Profile::load("users-api").expect("profile");
    let (layout, _) = fed_back(&profile);
    let only = OnlyFilter::parse("failed, not-attempted").expect("parse");
    assert_eq!(only, OnlyFilter(vec![Status::Failed, Status::NotAttempted]));
    assert!(only.check_layout(&layout, Path::new("x.xlsx")).is_ok());
    assert!(only.keep(&layout, &raw(2, MASK, "failed")));
    assert!(only.keep(&layout, &raw(2, MASK, "Not-Attempted")));
    assert!(!only.keep(&layout, &raw(2, MASK, "created")));
    assert!(!only.keep(&layout, &raw(2, MASK, "invalid")));
    // A row added by hand (no outcome yet) was never attempted.
    assert!(only.keep(&layout, &raw(2, MASK, "")));
    assert!(OnlyFilter::retry().keep(&layout, &raw(2, MASK, "invalid")));
    assert!(OnlyFilter::parse("failed,oops").is_err());
    assert!(OnlyFilter::parse(" , ").is_err());

    let plain = Layout::new(
        &profile,
        &["email".to_string(), "password".into(), "name".into()],
        Path::new("users.csv"),
    )
    .expect("layout");
    assert!(only.check_layout(&plain, Path::new("users.csv")).is_err());
}

/// The red of an invalid outcome, on the cells an invalid row's problems name.
const INVALID_FILL: &str = "FFC7CE";

/// The parts of a workbook of 30 outcomes, written in a workdir called `name`.
fn book_of_30(name: &str) -> BookXml {
    let wd = Workdir::new(name);
    let path = wd.path("users.outcome.xlsx");
    write_workbook(&path, 30, None);
    BookXml::open(&path)
}

#[test]
fn invalid_rows_show_which_cells_are_wrong() {
    let book = book_of_30("report_marks");
    for i in 0..30u64 {
        let row = i + 2;
        let email = book.cell_fill("Results", &format!("A{row}"));
        if status_of(i) == Status::Invalid {
            assert_eq!(
                email.as_deref(),
                Some(INVALID_FILL),
                "row {row}: Email marked"
            );
        } else {
            assert_eq!(email, None, "row {row}: {:?} not marked", status_of(i));
        }
        // Only the cell the problem names: the phone of the same row is left alone.
        assert_eq!(book.cell_fill("Results", &format!("C{row}")), None);
    }
}

#[test]
fn results_and_errors_print_legibly() {
    let book = book_of_30("report_print");
    for sheet in ["Results", "Errors"] {
        assert!(book.header_frozen(sheet), "{sheet}: header row frozen");
        assert!(
            book.prints_across_one_page(sheet),
            "{sheet}: landscape, one page wide"
        );
        assert_eq!(
            book.print_titles(sheet),
            Some(format!("{sheet}!$1:$1")),
            "{sheet}: header on every printed page"
        );
    }
    // A message wraps in its cell (row 5 failed: column K is Message).
    let message = book.cell_style("Results", "K5").expect("styled message");
    assert!(message.contains(r#"wrapText="1""#), "{message}");
}

/// Column A of the Summary sheet, as text, top to bottom.
fn summary_lines(path: &Path) -> Vec<String> {
    let mut wb: Xlsx<_> = open_workbook(path).expect("open");
    sheet(&mut wb, "Summary")
        .iter()
        .map(|r| r.first().map(text).unwrap_or_default())
        .collect()
}

#[test]
fn summary_says_what_to_do_next() {
    let wd = Workdir::new("report_next");
    let path = wd.path("users.outcome.xlsx");
    write_workbook(&path, 30, None);
    let lines = summary_lines(&path);
    let at = lines
        .iter()
        .position(|l| l == "What next")
        .expect("a What next block");
    let block = &lines[at + 1..at + 5];
    assert!(
        block[0].starts_with("6 failed: the Errors sheet says why"),
        "{block:?}"
    );
    assert!(
        block[1].starts_with("3 invalid, nothing sent: fix the red cells on the Results sheet"),
        "{block:?}"
    );
    assert_eq!(block[2], "3 not sent yet:");
    // The profile as the command line gave it, and this very workbook.
    assert_eq!(
        block[3],
        format!("enlist retry {} -p users-api", path.display())
    );
    // The counts table follows, still readable as label and count.
    assert!(lines[at + 5..].iter().any(|l| l == "created"));

    // A run where every row ended well has nothing to say.
    let good = wd.path("good.outcome.xlsx");
    let mut sink = xlsx_sink(&good);
    let mut s = summary(0);
    for i in [0u64, 1, 2, 4, 6, 8] {
        sink.record(&outcome(i)).expect("record");
        *s.counts.entry(status_of(i)).or_insert(0) += 1;
    }
    sink.finish(&s).expect("finish");
    let lines = summary_lines(&good);
    assert!(!lines.iter().any(|l| l == "What next"), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("enlist retry")),
        "{lines:?}"
    );
}

#[test]
fn a_check_report_marks_the_wrong_cells_and_groups_alike_problems() {
    let wd = Workdir::new("report_check_marks");
    wd.write(
        "s.csv",
        "email,password,name\n\
         ann@x.example,Secret12,Ann\n\
         dup@x.example,Secret12,Dup One\n\
         bob@x.example,Secret12,\n\
         dup@x.example,Secret12,Dup Two\n\
         not-an-email,Secret12,Cy\n\
         dup@x.example,Secret12,Dup Three\n\
         two@x.example,Secret12,Two A\n\
         two@x.example,Secret12,Two B\n",
    );
    wd.run(&[
        "check",
        "s.csv",
        "-p",
        "users-api",
        "--report",
        "s.check.xlsx",
    ])
    .expect_code(1);
    let path = wd.path("s.check.xlsx");
    let book = BookXml::open(&path);
    // Row 4 lacks its name: the empty cell is marked; row 6's email is not one.
    assert_eq!(
        book.cell_fill("Results", "C4").as_deref(),
        Some(INVALID_FILL)
    );
    assert_eq!(book.cell_fill("Results", "A4"), None);
    assert_eq!(
        book.cell_fill("Results", "A6").as_deref(),
        Some(INVALID_FILL)
    );
    for dup in [3, 5, 7, 8, 9] {
        assert_eq!(
            book.cell_fill("Results", &format!("A{dup}")).as_deref(),
            Some(INVALID_FILL),
            "duplicate on row {dup}"
        );
    }
    assert_eq!(book.cell_fill("Results", "A2"), None);
    // A message of two lines gets a row two lines tall (row 3: a duplicate); a short one
    // keeps the default height.
    assert!(book.row_height("Results", 3).is_some_and(|h| h >= 30.0));
    assert_eq!(book.row_height("Results", 2), None);

    // Five duplicates of two different users, each naming its own value and other rows:
    // one problem, one line.
    let mut wb: Xlsx<_> = open_workbook(&path).expect("open");
    let errors: Vec<Vec<String>> = sheet(&mut wb, "Errors")
        .iter()
        .map(|r| r.iter().map(text).collect())
        .collect();
    assert_eq!(
        errors[1],
        [
            "invalid",
            "5",
            "email: \"…\" appears more than once in the sheet; keep one row per user",
            "3, 5, 7, 8, 9"
        ]
    );
    assert_eq!(errors.len(), 4, "{errors:?}");
    // A group of one keeps its message whole.
    assert!(
        errors[2..]
            .iter()
            .any(|e| e[2].starts_with("email: \"not-an-email\"") && e[3] == "6"),
        "{errors:?}"
    );
    let lines = summary_lines(&path);
    assert!(
        lines.iter().any(|l| l.starts_with("7 invalid")),
        "{lines:?}"
    );
    assert!(lines.contains(&"enlist retry s.check.xlsx -p users-api".to_string()));
}
