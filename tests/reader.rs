//! Sheets as people hand them over, read through the real binary (`enlist check`).
//! The reader's finer cases are unit-tested in `src/source/`.

use rust_xlsxwriter::{Format, Formula, Workbook};
use serde_json::Value;

use crate::workdir::Workdir;

fn check(wd: &Workdir, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json", "--show-requests", "50"]);
    let run = wd.run(&all);
    let v = serde_json::from_str(&run.stdout()).unwrap_or(Value::Null);
    (run.code(), v, run.stderr())
}

fn bodies(v: &Value) -> Vec<Value> {
    v["requests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["request"] == "create")
                .map(|r| r["body"].clone())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn semicolon_csv_with_bom_crlf_and_a_title_above_the_header() {
    let wd = Workdir::new("csv_excelish");
    let text = "\u{feff}Onboarding March;;\r\n\r\nE-mail;Password;Name\r\nann@acme.example;Secret99;\"Lee; Ann\"\r\nbob@acme.example;Secret98;\"Ray\r\nBob\"\r\ncy@acme.example;short;Cy\r\n";
    wd.write("s.csv", text);
    let (code, v, err) = check(&wd, &["s.csv", "-p", "users-api"]);
    assert_eq!(code, 1, "{v:#} {err}");
    assert_eq!(v["header_row"], 3);
    assert_eq!(v["rows"], 3);
    let b = bodies(&v);
    assert_eq!(b[0]["name"], "Lee; Ann");
    assert_eq!(b[1]["name"], "Ray\r\nBob");
    // Bob's record spans two lines, so Cy is on spreadsheet row 7.
    assert_eq!(v["problems"][0]["row"], 7, "{v:#}");
}

#[test]
fn windows_1252_and_utf16_files_are_decoded() {
    let wd = Workdir::new("encodings");
    let mut cp1252 = b"email,password,name\nann@acme.example,Secret99,M".to_vec();
    cp1252.push(0xFC); // ü
    cp1252.extend_from_slice(b"ller\n");
    wd.write("w.csv", &cp1252);
    let (code, v, err) = check(&wd, &["w.csv", "-p", "users-api"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(bodies(&v)[0]["name"], "Müller");

    let text = "email\tpassword\tname\nann@acme.example\tSecret99\tZoë\n";
    let mut utf16 = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    wd.write("u16.csv", &utf16);
    let (code, v, err) = check(&wd, &["u16.csv", "-p", "users-api"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(bodies(&v)[0]["name"], "Zoë");
}

#[test]
fn excel_artefacts_are_undone_once_in_the_reader() {
    let wd = Workdir::new("xlsx_artefacts");
    let path = wd.path("users.xlsx");
    let mut wb = Workbook::new();
    let notes = wb.add_worksheet();
    notes.set_name("Read me").expect("name");
    notes
        .write_string(0, 0, "Fill in the Users sheet")
        .expect("write");
    let ws = wb.add_worksheet();
    ws.set_name("Users").expect("name");
    let text = Format::new().set_num_format("@");
    ws.write_string(0, 0, "New starters, March").expect("write");
    let header = [
        "serviceProviderId",
        "groupId",
        "userId",
        "firstName",
        "lastName",
        "extension",
        "password",
        "phoneNumber",
        "Postal Code",
    ];
    for (c, h) in header.iter().enumerate() {
        ws.write_string(2, c as u16, *h).expect("write");
    }
    // Row 4: extension typed as a number (1234, not 1234.0), phone as text with a leading +.
    let row4: [&str; 9] = [
        "acme",
        "lon",
        "ann@acme.example",
        "Ann",
        "Lee",
        "",
        "Welcome-2024",
        "+442071234567",
        "",
    ];
    for (c, v) in row4.iter().enumerate() {
        if !v.is_empty() {
            ws.write_string_with_format(3, c as u16, *v, &text)
                .expect("write");
        }
    }
    ws.write_number(3, 5, 1234.0).expect("write");
    ws.write_string_with_format(3, 8, "02134", &text)
        .expect("write");
    // Row 5: a 17-digit phone stored as a number (Excel keeps it as ...568), and a formula error.
    let row5: [&str; 7] = [
        "acme",
        "lon",
        "bob@acme.example",
        "Bob",
        "Ray",
        "1001",
        "Welcome-2025",
    ];
    for (c, v) in row5.iter().enumerate() {
        ws.write_string(4, c as u16, *v).expect("write");
    }
    ws.write_number(4, 7, 12345678901234567.0).expect("write");
    ws.write_formula(4, 8, Formula::new("=NA()").set_result("#N/A"))
        .expect("write");
    wb.save(&path).expect("save");

    let (code, v, err) = check(&wd, &["users.xlsx", "-p", "odin"]);
    assert_eq!(code, 1, "{v:#} {err}");
    assert_eq!(
        v["sheet"], "Users",
        "the users on the second sheet are found"
    );
    assert_eq!(v["header_row"], 3);
    let b = bodies(&v);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["extension"], "1234", "never 1234.0");
    assert_eq!(
        b[0]["phoneNumber"], "+442071234567",
        "the leading + survives"
    );
    assert_eq!(
        b[0]["address"]["zipOrPostalCode"], "02134",
        "the leading 0 survives"
    );
    let problems: Vec<String> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {}",
                p["severity"], p["row"], p["column"], p["message"]
            )
        })
        .collect();
    let has = |s: &str| {
        assert!(
            problems.iter().any(|p| p.contains(s)),
            "{s:?} not in {problems:#?}"
        )
    };
    has("\"warning\" 4 \"extension\" \"1234 was stored as a number in the sheet");
    has("\"error\" 5 \"phoneNumber\" \"12345678901234568 is too large for Excel to keep every digit");
    has("\"error\" 5 \"Postal Code\" \"the cell holds the spreadsheet error #N/A");
}

#[test]
fn xls_and_ods_fixtures_and_unreadable_files() {
    let wd = Workdir::new("formats");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for f in ["users.xls", "users.ods"] {
        let src = fixtures.join(f);
        let dst = wd.path(f);
        std::fs::copy(&src, &dst).expect("copy fixture");
        // The fixtures carry an Email column and more; users-api needs password and name too,
        // so the sheet is refused for the missing columns, after it was read.
        let r = wd.run(&["check", f, "-p", "users-api"]);
        r.expect_code(3);
        assert!(
            r.stderr().contains("lacks required columns"),
            "{f}: {}",
            r.stderr()
        );
    }
    wd.write(
        "fake.xlsx",
        "email,password,name\nann@acme.example,Secret99,Ann\n",
    );
    let r = wd.run(&["check", "fake.xlsx", "-p", "users-api"]);
    r.expect_code(3);
    assert!(
        r.stderr().contains("fake.xlsx") && r.stderr().contains("CSV"),
        "{}",
        r.stderr()
    );
    wd.write("empty.csv", "");
    let r = wd.run(&["check", "empty.csv", "-p", "users-api"]);
    r.expect_code(3);
    assert!(r.stderr().contains("empty"), "{}", r.stderr());
    wd.write("header.csv", "email,password,name\n");
    let r = wd.run(&["check", "header.csv", "-p", "users-api"]);
    r.expect_code(3);
    assert!(r.stderr().contains("no data rows"), "{}", r.stderr());
    wd.write("broken.xlsx", b"PK\x03\x04garbage-that-is-not-a-zip");
    let r = wd.run(&["check", "broken.xlsx", "-p", "users-api"]);
    r.expect_code(3);
    assert!(!r.stderr().contains("panicked"), "{}", r.stderr());
}

/// A sheet handed over with rows hidden (a filter left on): every row is still read, and
/// check says which rows are hidden, as the spreadsheet numbers them, before anything is
/// sent; a hidden title row above the header is not named.
#[test]
fn hidden_rows_of_a_workbook_are_named() {
    let wd = Workdir::new("xlsx_hidden_rows");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Users").expect("name");
    ws.write_string(0, 0, "Starters").expect("write");
    ws.set_row_hidden(0).expect("hide");
    for (c, h) in ["email", "password", "name"].iter().enumerate() {
        ws.write_string(1, c as u16, *h).expect("write");
    }
    for i in 0..8u32 {
        let r = i + 2;
        ws.write_string(r, 0, format!("u{i}@example.com"))
            .expect("write");
        ws.write_string(r, 1, "Welcome-123").expect("write");
        ws.write_string(r, 2, format!("User {i}")).expect("write");
    }
    // Spreadsheet rows 4, 6 and 7 (0-based 3, 5, 6).
    for r in [3, 5, 6] {
        ws.set_row_hidden(r).expect("hide");
    }
    wb.save(wd.path("filtered.xlsx")).expect("save");
    let (code, v, err) = check(&wd, &["filtered.xlsx", "-p", "users-api"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(bodies(&v).len(), 8, "every row is read: {v}");
    let warned = v["sheet_warnings"].to_string();
    assert!(
        warned
            .contains("rows 4 and 6 to 7 are hidden in the workbook (a filter, or hidden by hand)"),
        "{warned}"
    );
    // People see it too, before anything is sent.
    let text = wd.run(&["check", "filtered.xlsx", "-p", "users-api"]);
    assert!(
        text.stdout()
            .contains("warning: rows 4 and 6 to 7 are hidden"),
        "{}",
        text.stdout()
    );
}
