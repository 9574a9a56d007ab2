//! The retry loop for users whose create needs a secret: the outcome workbook masks the
//! secrets, and `enlist retry` takes them again from the original input (unchanged, same
//! source row and key) or from `--secrets-from`. Real binary, embedded sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use calamine::{open_workbook_auto, Data, Reader};
use enlist::sandbox::{start, RunningSandbox, SandboxConfig, SandboxKind};

use crate::workdir::{counted, run_bin, Run, Workdir};

const ODIN: [(&str, &str); 2] = [
    ("ENLIST_ODIN_USERNAME", "admin"),
    ("ENLIST_ODIN_PASSWORD", "sandbox"),
];

async fn sandbox(kind: SandboxKind) -> RunningSandbox {
    start(SandboxConfig {
        kind,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox")
}

const USERS_API: [(&str, &str); 2] = [
    ("ENLIST_USERS_API_USERNAME", "admin"),
    ("ENLIST_USERS_API_PASSWORD", "sandbox"),
];

/// A users-api sheet of four users, each with its own password (users-api's sandbox keeps
/// the passwords it was sent, so a test can tell whose a user got).
fn staff_sheet() -> String {
    let mut csv = String::from("Email,Password,Full Name\n");
    for i in 0..4 {
        csv.push_str(&format!("u{i}@example.com,Pass-{i}-word,User {i}\n"));
    }
    csv
}

/// An odin sheet of `n` users, each with its own Web Password (the secret column).
fn odin_sheet(n: usize) -> String {
    let mut csv = String::from(
        "Service Provider,Group,User ID,First Name,Last Name,Extension,Web Password\n",
    );
    for i in 0..n {
        csv.push_str(&format!(
            "acme-sp,acme-london,user{i}@acme.example,First{i},Last{i},{},Secret-{i}!pw\n",
            3000 + i
        ));
    }
    csv
}

/// The Results sheet as text, and each row's cells by header.
fn results(path: &std::path::Path) -> Vec<BTreeMap<String, String>> {
    let mut wb = open_workbook_auto(path).expect("open workbook");
    let range = wb.worksheet_range("Results").expect("Results");
    let mut rows = range.rows().map(|r| {
        r.iter()
            .map(|c| match c {
                Data::Empty => String::new(),
                Data::Float(f) if f.fract() == 0.0 => format!("{f:.0}"),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
    });
    let header = rows.next().expect("header");
    rows.map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}

fn outcomes_of(rows: &[BTreeMap<String, String>]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r["Outcome"].clone()).or_insert(0) += 1;
    }
    m
}

/// Every user is on the target once, with the key `user{i}@acme.example`, i < n.
fn assert_created_once(sb: &RunningSandbox, n: usize) {
    let users = sb.users();
    let mut ids: Vec<String> = users
        .iter()
        .map(|u| u["userId"].as_str().unwrap_or("").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), users.len(), "a user was created twice");
    assert_eq!(users.len(), n, "{ids:?}");
    assert_eq!(counted(&sb.stats(), "POST /api/v2/users 409"), 0);
}

/// `enlist retry WORKBOOK -p PROFILE --base-url URL --report REPORT EXTRA…`.
async fn retry(
    wd: &Workdir,
    (profile, url): (&str, &str),
    workbook: &str,
    report: &str,
    extra: &[&str],
    creds: &[(&str, &str)],
) -> Run {
    let mut args = vec![
        "retry",
        workbook,
        "-p",
        profile,
        "--base-url",
        url,
        "--rate",
        "200",
        "--report",
        report,
    ];
    args.extend(extra);
    run_bin(wd, &args, creds).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_ctrl_c_creates_every_odin_user_once() {
    let sb = sandbox(SandboxKind::Odin).await;
    let wd = Workdir::new("retry-ctrl-c");
    let n = 24;
    wd.write("starters.csv", odin_sheet(n));
    let url = sb.base_url();
    let mut cmd = wd.command(&[
        "run",
        "starters.csv",
        "-p",
        "odin",
        "--base-url",
        &url,
        "--rate",
        "8",
        "--concurrency",
        "1",
        "--progress",
        "never",
    ]);
    for (k, v) in ODIN {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Ctrl-C once a few users are there (at 8 requests/s the run lasts three seconds).
    for _ in 0..400 {
        if sb.users().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let first = Run { output: out };
    first.expect_code(6);
    let book = wd.path("starters.outcome.xlsx");
    let rows = results(&book);
    let counts = outcomes_of(&rows);
    let done = counts.get("created").copied().unwrap_or(0);
    assert!(
        done >= 4 && counts.get("not-attempted").copied().unwrap_or(0) > 0,
        "{counts:?}"
    );
    assert!(rows.iter().all(|r| r["Web Password"] == "********"));
    assert_eq!(sb.users().len(), done);

    let target = ("odin", url.as_str());
    let r = retry(
        &wd,
        target,
        "starters.outcome.xlsx",
        "retried.xlsx",
        &[],
        &ODIN,
    )
    .await;
    r.expect_code(0);
    let rows = results(&wd.path("retried.xlsx"));
    let counts = outcomes_of(&rows);
    assert_eq!(counts.get("invalid"), None, "{counts:?}");
    assert_eq!(counts.get("created"), Some(&(n - done)), "{counts:?}");
    assert_created_once(&sb, n);
    // Source rows still point at the sheet first handed over.
    let row5 = rows.iter().find(|r| r["User ID"] == "user5@acme.example");
    assert_eq!(row5.map(|r| r["Source row"].as_str()), Some("7"));
    // Nothing written holds a secret.
    for f in ["starters.outcome.xlsx", "retried.xlsx"] {
        let text: String = results(&wd.path(f))
            .iter()
            .flat_map(|r| r.values().cloned())
            .collect();
        assert!(!text.contains("!pw"), "a secret in {f}");
    }
    assert!(!r.stderr().contains("!pw") && !first.stderr().contains("!pw"));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_report_fed_back_creates_the_users_with_their_secrets() {
    let sb = sandbox(SandboxKind::Odin).await;
    let wd = Workdir::new("retry-check-report");
    let n = 6;
    let mut csv = odin_sheet(n);
    // One invalid row (no extension): checked, fixed in the workbook by hand, not sent here.
    csv.push_str("acme-sp,acme-london,bad@acme.example,Bad,Row,,Secret-x!pw\n");
    wd.write("starters.csv", csv);
    let r = wd.run(&[
        "check",
        "starters.csv",
        "-p",
        "odin",
        "--report",
        "checked.xlsx",
    ]);
    r.expect_code(1);
    // Checked again as it stands, the workbook's rows have their secrets back: only the
    // bad row is invalid.
    let r = wd.run(&["check", "checked.xlsx", "-p", "odin"]);
    r.expect_code(1);
    assert!(
        r.stdout().contains("7 rows read: 6 valid"),
        "{}",
        r.stdout()
    );
    assert!(!r.stdout().contains("mask"), "{}", r.stdout());

    let url = sb.base_url();
    let r = retry(&wd, ("odin", &url), "checked.xlsx", "run.xlsx", &[], &ODIN).await;
    r.expect_code(1);
    let rows = results(&wd.path("run.xlsx"));
    assert_eq!(
        outcomes_of(&rows),
        BTreeMap::from([("created".to_string(), n), ("invalid".to_string(), 1)])
    );
    let bad = rows
        .iter()
        .find(|r| r["User ID"] == "bad@acme.example")
        .expect("bad row");
    assert!(bad["Message"].contains("Extension"), "{bad:?}");
    assert!(!bad["Message"].contains("mask"), "{bad:?}");
    assert_created_once(&sb, n);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_input_names_the_rows_and_secrets_from_fills_them() {
    // users-api keeps the passwords it was sent: each user must get its own row's.
    let sb = sandbox(SandboxKind::UsersApi).await;
    let wd = Workdir::new("retry-changed-input");
    let mut csv = staff_sheet();
    wd.write("staff.csv", &csv);
    wd.run(&[
        "check",
        "staff.csv",
        "-p",
        "users-api",
        "--report",
        "checked.xlsx",
    ])
    .expect_code(0);
    // Someone edits the sheet after the check: its secrets can no longer be trusted to
    // be the rows' of the report.
    csv.push_str("late@example.com,Pass-late-word,Late\n");
    wd.write("staff.csv", &csv);

    let url = sb.base_url();
    let target = ("users-api", url.as_str());
    let r = retry(&wd, target, "checked.xlsx", "first.xlsx", &[], &USERS_API).await;
    r.expect_code(1);
    let err = r.stderr();
    assert!(err.contains("4 rows still lack a secret"), "{err}");
    assert_eq!(
        err.matches("row 2, column Password").count(),
        1,
        "named once: {err}"
    );
    assert!(
        err.contains("row 2, column Password: holds the mask from an outcome report and no secret was found for it: the original input staff.csv changed since the run (SHA-256 differs); give --secrets-from FILE"),
        "{err}"
    );
    let rows = results(&wd.path("first.xlsx"));
    assert!(rows.iter().all(|r| r["Outcome"] == "invalid"), "{rows:?}");
    assert!(
        rows[0]["Message"].contains("SHA-256 differs"),
        "{:?}",
        rows[0]
    );
    assert!(sb.users().is_empty(), "nothing was sent");

    // A sheet with the keys and passwords, in another order and case, fills them in.
    wd.write(
        "secrets.csv",
        "password,email\nPass-2-word,U2@example.com\nPass-0-word,u0@example.com\n\
         Pass-3-word,u3@example.com\nPass-1-word,u1@example.com\nPass-9-word,other@example.com\n",
    );
    let from = ["--secrets-from", "secrets.csv"];
    let r = retry(
        &wd,
        target,
        "checked.xlsx",
        "second.xlsx",
        &from,
        &USERS_API,
    )
    .await;
    r.expect_code(0);
    assert!(!r.stderr().contains("lack a secret"), "{}", r.stderr());
    assert_eq!(sb.users().len(), 4);
    for i in 0..4 {
        assert!(
            sb.password_matches(&format!("u{i}@example.com"), &format!("Pass-{i}-word")),
            "u{i} got another row's password"
        );
    }
    let text: String = results(&wd.path("second.xlsx"))
        .iter()
        .flat_map(|r| r.values().cloned())
        .collect();
    assert!(!text.contains("-word"), "a secret in the report");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_matched_by_source_row_and_key_never_by_position() {
    let sb = sandbox(SandboxKind::UsersApi).await;
    let wd = Workdir::new("retry-matching");
    let original = wd.write("staff.csv", staff_sheet());
    let sha = enlist::source::file_sha256(&original).expect("hash");
    // An outcome workbook as a person left it: rows sorted differently, and one key
    // typed over (its source row now holds another user).
    let rows = [
        ["Email", "Password", "Full Name", "Outcome", "Source row"],
        ["u1@example.com", "********", "User 1", "not-attempted", "3"],
        ["changed@example.com", "********", "User 0", "failed", "2"],
        ["u3@example.com", "********", "User 3", "failed", "5"],
    ];
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet().set_name("Results").expect("name");
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, *v).expect("cell");
        }
    }
    let summary = book.add_worksheet().set_name("Summary").expect("name");
    let facts = [
        ["Outcome", "Rows"],
        ["Original input", &original.display().to_string()],
        ["Original input SHA-256", &sha],
    ];
    for (r, fact) in facts.iter().enumerate() {
        for (c, v) in fact.iter().enumerate() {
            summary
                .write_string(r as u32 + 2, c as u16, *v)
                .expect("cell");
        }
    }
    book.save(wd.path("edited.xlsx")).expect("save");

    let url = sb.base_url();
    let target = ("users-api", url.as_str());
    let r = retry(&wd, target, "edited.xlsx", "out.xlsx", &[], &USERS_API).await;
    r.expect_code(1);
    assert!(
        r.stderr().contains(
            "row 3, column Password: holds the mask from an outcome report and no secret was \
             found for it: row 2 of staff.csv is \"u0@example.com\", not \"changed@example.com\""
        ),
        "{}",
        r.stderr()
    );
    assert_eq!(sb.users().len(), 2, "the edited row is not sent");
    assert!(sb.password_matches("u1@example.com", "Pass-1-word"));
    assert!(sb.password_matches("u3@example.com", "Pass-3-word"));
    let out = results(&wd.path("out.xlsx"));
    let changed = out
        .iter()
        .find(|r| r["Email"] == "changed@example.com")
        .expect("row");
    assert_eq!(changed["Outcome"], "invalid");
    assert!(
        changed["Message"].contains("not \"changed@example.com\""),
        "{changed:?}"
    );
    sb.shutdown().await;
}
