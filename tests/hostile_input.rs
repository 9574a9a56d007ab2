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
