//! The outcome workbook a run writes, read back with calamine as a person's Excel would, and
//! fed back in with `enlist retry`.

use calamine::{open_workbook_auto, Data, Reader};
use enlist::sandbox::{start, SandboxConfig, SandboxKind};

use crate::workdir::{Run, Workdir};

fn sheet_rows(path: &std::path::Path, sheet: &str) -> Vec<Vec<String>> {
    let mut wb = open_workbook_auto(path).expect("open workbook");
    let range = wb.worksheet_range(sheet).expect("sheet");
    range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::Empty => String::new(),
                    Data::Float(f) if f.fract() == 0.0 => format!("{f:.0}"),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

fn col(rows: &[Vec<String>], name: &str) -> usize {
    rows[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]))
}

async fn run_blocking(wd: Workdir, args: Vec<String>, token: &str) -> (Workdir, Run) {
    let token = token.to_string();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = wd
            .command(&a)
            .env("ENLIST_SCIM_TOKEN", token)
            .output()
            .expect("run");
        (wd, Run { output: out })
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_writes_a_workbook_that_retry_takes_back() {
    // A target that refuses everything with 503: every valid row fails after its retries.
    let down = start(SandboxConfig {
        kind: SandboxKind::Scim,
        fail_rate: 1.0,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let wd = Workdir::new("feedback");
    let mut csv = String::from("userName,givenName,familyName,phoneNumber,password\n");
    for i in 0..8 {
        csv.push_str(&format!(
            "user{i},Given{i},Family{i},+4420700000{i:02},Secret-pw-{i}\n"
        ));
    }
    csv.push_str("bad user,Given,Family,,Secret-pw-x\n");
    wd.write("people.csv", csv);
    let base = down.base_url();
    let args: Vec<String> = [
        "run",
        "people.csv",
        "-p",
        "scim",
        "--base-url",
        &base,
        "--max-attempts",
        "2",
        "--rate",
        "500",
        "--progress",
        "never",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (wd, r) = run_blocking(wd, args, "sandbox-token").await;
    r.expect_code(1);
    assert!(r.stderr().contains("people.outcome.xlsx"), "{}", r.stderr());
    let book = wd.path("people.outcome.xlsx");
    let rows = sheet_rows(&book, "Results");
    assert_eq!(rows.len(), 10, "header + one row per input row");
    let (outcome, src, pw, phone, attempts, requests) = (
        col(&rows, "Outcome"),
        col(&rows, "Source row"),
        col(&rows, "password"),
        col(&rows, "phoneNumber"),
        col(&rows, "Attempts"),
        col(&rows, "Requests"),
    );
    for (i, r) in rows[1..9].iter().enumerate() {
        assert_eq!(r[0], format!("user{i}"), "input order");
        assert_eq!(r[outcome], "failed");
        assert_eq!(r[src], (i + 2).to_string());
        assert_eq!(r[pw], "********", "secrets are masked in the workbook");
        assert_eq!(r[attempts], "2", "the create, sent twice");
        assert_eq!(r[requests], "2", "and nothing else");
        assert!(r[phone].starts_with("+44"), "{:?}", r[phone]);
    }
    assert_eq!(rows[9][outcome], "invalid");
    let all: String = rows.iter().flatten().cloned().collect();
    assert!(
        !all.contains("Secret-pw"),
        "a password leaked into the workbook"
    );
    let errors = sheet_rows(&book, "Errors");
    assert!(
        errors.iter().any(|r| r.iter().any(|c| c == "8")),
        "eight failures grouped on one line: {errors:?}"
    );
    down.shutdown().await;

    // The target is back. `retry` takes the failed rows; their passwords were masked and
    // the sheet they came from has been moved away, so enlist refuses to send the mask and
    // says what to do.
    std::fs::rename(wd.path("people.csv"), wd.path("people.moved.csv")).expect("move");
    let up = start(SandboxConfig {
        kind: SandboxKind::Scim,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let base = up.base_url();
    let args: Vec<String> = [
        "retry",
        "people.outcome.xlsx",
        "-p",
        "scim",
        "--base-url",
        &base,
        "--rate",
        "500",
        "--progress",
        "never",
        "--report",
        "retry1.jsonl",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (wd, r) = run_blocking(wd, args, "sandbox-token").await;
    r.expect_code(1);
    let report = wd.read("retry1.jsonl");
    assert!(
        report.contains("holds the mask from an outcome report"),
        "{report}"
    );
    assert!(
        report.contains("people.csv is not there any more; give --secrets-from FILE"),
        "{report}"
    );
    assert!(up.users().is_empty(), "no request carried the mask");

    // Without the password column (fill in or drop it), the retry creates exactly the failed rows.
    let mut csv = String::from("userName,givenName,familyName,phoneNumber,Outcome\n");
    for i in 0..8 {
        let outcome = if i < 3 { "failed" } else { "created" };
        csv.push_str(&format!(
            "user{i},Given{i},Family{i},+4420700000{i:02},{outcome}\n"
        ));
    }
    wd.write("edited.csv", csv);
    let args: Vec<String> = [
        "run",
        "edited.csv",
        "-p",
        "scim",
        "--base-url",
        &base,
        "--only",
        "failed,not-attempted",
        "--rate",
        "500",
        "--progress",
        "never",
        "--report",
        "retry2.jsonl",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (wd, r) = run_blocking(wd, args, "sandbox-token").await;
    r.expect_code(0);
    assert!(r.stdout().contains("rows=3 created=3"), "{}", r.stdout());
    let mut names: Vec<String> = up
        .users()
        .iter()
        .filter_map(|u| u["userName"].as_str().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, vec!["user0", "user1", "user2"]);
    // An earlier report is never overwritten.
    let args: Vec<String> = [
        "run",
        "edited.csv",
        "-p",
        "scim",
        "--base-url",
        &base,
        "--only",
        "failed",
        "--progress",
        "never",
        "--report",
        "retry2.jsonl",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (wd, r) = run_blocking(wd, args, "sandbox-token").await;
    r.expect_code(0);
    let reports = std::fs::read_dir(wd.dir())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("retry2"))
        .count();
    assert_eq!(reports, 2, "the second report got a new name");
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_report_marks_what_is_still_to_do() {
    let wd = Workdir::new("check_report");
    wd.write(
        "s.csv",
        "userName,givenName,familyName,action\nann,Ann,Lee,\nbad name,Bob,Ray,\ncy,Cy,Dee,skip\ndi,Di,Eve,\n",
    );
    let r = wd.run(&["check", "s.csv", "-p", "scim", "--report", "s.check.xlsx"]);
    r.expect_code(1);
    assert!(
        r.stdout().contains("check report: s.check.xlsx"),
        "{}",
        r.stdout()
    );
    let rows = sheet_rows(&wd.path("s.check.xlsx"), "Results");
    let outcome = col(&rows, "Outcome");
    let got: Vec<&str> = rows[1..].iter().map(|r| r[outcome].as_str()).collect();
    assert_eq!(
        got,
        ["not-attempted", "invalid", "skipped", "not-attempted"]
    );

    // Sending it later takes exactly the rows still to do; the invalid one stays invalid.
    let sb = start(SandboxConfig {
        kind: SandboxKind::Scim,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let base = sb.base_url();
    let args: Vec<String> = [
        "retry",
        "s.check.xlsx",
        "-p",
        "scim",
        "--base-url",
        &base,
        "--progress",
        "never",
        "--report",
        "sent.jsonl",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (_wd, r) = run_blocking(wd, args, "sandbox-token").await;
    r.expect_code(1);
    assert!(r.stdout().contains("rows=3 created=2"), "{}", r.stdout());
    assert!(r.stdout().contains("invalid=1"), "{}", r.stdout());
    let mut names: Vec<String> = sb
        .users()
        .iter()
        .filter_map(|u| u["userName"].as_str().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, ["ann", "di"]);
    sb.shutdown().await;
}

#[test]
fn credentials_in_the_base_url_are_refused_without_echoing_them() {
    let wd = Workdir::new("url_credentials");
    wd.write("s.csv", "userName,givenName,familyName\nann,Ann,Lee\n");
    let r = wd
        .command(&[
            "run",
            "s.csv",
            "-p",
            "scim",
            "--base-url",
            "http://ops:Hunter2-pw@127.0.0.1:9/scim/v2",
            "--progress",
            "never",
        ])
        .env("ENLIST_SCIM_TOKEN", "t")
        .output()
        .expect("run");
    let r = Run { output: r };
    r.expect_code(2);
    assert!(
        r.stderr().contains("must not carry credentials"),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains("Hunter2-pw") && !r.stdout().contains("Hunter2-pw"));
}
