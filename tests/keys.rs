//! Keys that look the same: one account per person, whatever invisible characters, Unicode
//! forms or look-alike letters the sheet carries. Run against the embedded SCIM sandbox, with
//! what the sandbox stored checked after each run.

use serde_json::Value;

use enlist::sandbox::{self, SandboxConfig, SandboxKind};

use crate::workdir::{Run, Workdir};

const HEADER: &str = "User Name,First Name,Last Name,Work Email,Initial Password";

fn row(user: &str, first: &str) -> String {
    format!("{user},{first},Lee,ann@example.com,Hire-1002-Day1\n")
}

async fn run(wd: &Workdir, url: &str, sheet: &str, report: &str, extra: &[&str]) -> Run {
    let mut cmd = wd.command(&[
        "run",
        sheet,
        "--profile",
        "scim",
        "--base-url",
        url,
        "--report",
        report,
        "--progress",
        "never",
        "--rate",
        "200",
    ]);
    cmd.args(extra).env("ENLIST_SCIM_TOKEN", "sandbox-token");
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("run enlist"))
        .await
        .expect("join");
    Run { output }
}

/// Row number → (status, message) from a JSON lines report.
fn by_row(wd: &Workdir, report: &str) -> std::collections::BTreeMap<u64, (String, String)> {
    wd.read(report)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .filter(|v| v.get("summary").is_none())
        .map(|o| {
            (
                o["row"].as_u64().expect("row"),
                (
                    o["status"].as_str().unwrap_or("").to_string(),
                    o["message"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_look_alike_never_make_a_second_account() {
    let sb = sandbox::start(SandboxConfig {
        kind: SandboxKind::Scim,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let url = sb.base_url();
    let wd = Workdir::new("keys_alike");
    let sheet = [
        HEADER.to_string() + "\n",
        row("smith", "Ann"),              // 2: clean
        row("smi\u{200B}th", "Ann"),      // 3: its twin with a zero-width space
        row("\u{FEFF}lee", "Bo"),         // 4: a BOM inside the cell
        row("jos\u{E9}", "Jo"),           // 5: composed é
        row("jose\u{301}", "Jo"),         // 6: the same name, decomposed
        row("p\u{430}ul", "Paul"),        // 7: a Cyrillic а among Latin letters
        row("eve", "Eve\u{202E}gnp.exe"), // 8: a display override in a name
        row("zo\u{EB}", "Zoe"),           // 9: composed ë, alone
    ]
    .concat();
    wd.write("sheet.csv", sheet);
    let r = run(&wd, &url, "sheet.csv", "out.jsonl", &[]).await;
    r.expect_code(1);
    let rows = by_row(&wd, "out.jsonl");
    let status = |n: u64| rows[&n].0.as_str();
    let message = |n: u64| rows[&n].1.as_str();
    assert_eq!(status(2), "created");
    assert_eq!(status(3), "invalid");
    assert!(
        message(3).contains("U+200B ZERO WIDTH SPACE after \"smi\""),
        "{}",
        message(3)
    );
    assert_eq!(status(4), "invalid");
    assert!(message(4).contains("U+FEFF"), "{}", message(4));
    for n in [5, 6] {
        assert_eq!(status(n), "invalid", "row {n}");
        assert!(
            message(n).contains("appears more than once in the sheet"),
            "row {n}: {}",
            message(n)
        );
    }
    // A look-alike mix is sent, with a warning a person can act on.
    assert_eq!(status(7), "created");
    assert!(
        r.stderr().contains("mixes Latin and Cyrillic letters"),
        "{}",
        r.stderr()
    );
    assert_eq!(status(8), "invalid");
    assert!(
        message(8).contains("U+202E RIGHT-TO-LEFT OVERRIDE"),
        "{}",
        message(8)
    );
    assert_eq!(status(9), "created");

    let names = |users: Vec<Value>| -> Vec<String> {
        let mut n: Vec<String> = users
            .iter()
            .map(|u| u["userName"].as_str().unwrap_or("").to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(sb.users()),
        vec!["p\u{430}ul", "smith", "zo\u{EB}"],
        "the target holds the clean keys only"
    );

    // The decomposed spelling of a user created before is that user, not a new one.
    wd.write(
        "again.csv",
        [HEADER.to_string() + "\n", row("zoe\u{308}", "Zoë")].concat(),
    );
    let r = run(&wd, &url, "again.csv", "again.jsonl", &["--mode", "upsert"]).await;
    r.expect_code(0);
    assert_eq!(by_row(&wd, "again.jsonl")[&2].0, "updated");
    assert_eq!(names(sb.users()).len(), 3, "no second account for zoë");
}
