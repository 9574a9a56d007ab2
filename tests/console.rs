//! The console of `enlist run`, as an operator sees it: the bar on a terminal (a real
//! pseudo-terminal, through util-linux `script`), progress lines without one, colour only on
//! a terminal, JSON-only stderr with `--log-format json`, a summary line on stdout on every
//! exit, and the problems of invalid rows. The real binary against the embedded sandbox.

use std::process::Command;

use serde_json::Value;

use enlist::sandbox::{self, RunningSandbox, SandboxConfig, SandboxKind};

use crate::workdir::{Run, Workdir};

/// A users-api sandbox; `fail_rate` 1.0 answers every create with a 503.
async fn target(fail_rate: f64) -> RunningSandbox {
    sandbox::start(SandboxConfig {
        kind: SandboxKind::UsersApi,
        fail_rate,
        ..SandboxConfig::default()
    })
    .await
    .expect("start sandbox")
}

/// `users.csv`: `valid` good rows, then `invalid` rows whose email is not one.
fn sheet(wd: &Workdir, valid: usize, invalid: usize) {
    let mut csv = String::from("email,password,name\n");
    for i in 0..valid {
        csv.push_str(&format!("user{i}@example.com,Secret123,User {i}\n"));
    }
    for i in 0..invalid {
        csv.push_str(&format!("not-an-email-{i},Secret123,Bad {i}\n"));
    }
    wd.write("users.csv", csv);
}

/// `enlist run users.csv` against `sb`, with the sandbox's credentials.
fn run_args(sb: &RunningSandbox, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["run", "users.csv", "--profile", "users-api", "--fresh"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--base-url".to_string(), sb.base_url()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs `cmd` off the async runtime (the sandbox lives on it and must keep serving).
async fn output(mut cmd: Command) -> Run {
    cmd.env("ENLIST_USERS_API_USERNAME", "admin")
        .env("ENLIST_USERS_API_PASSWORD", "sandbox");
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join");
    Run { output }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// What a terminal showed: stdout and stderr together.
async fn on_terminal(wd: &Workdir, args: &[String]) -> Run {
    output(wd.command_on_terminal(&strs(args))).await
}

async fn piped(wd: &Workdir, args: &[String]) -> Run {
    output(wd.command(&strs(args))).await
}

/// A users-api sandbox (`fail_rate` as in [`target`]) and a working directory with
/// `users.csv` (as [`sheet`] writes it).
async fn prepared(
    name: &str,
    fail_rate: f64,
    valid: usize,
    invalid: usize,
) -> (RunningSandbox, Workdir) {
    let sb = target(fail_rate).await;
    let wd = Workdir::new(name);
    sheet(&wd, valid, invalid);
    (sb, wd)
}

/// The pieces of the bar: rows done of the total, rows/s, ETA, failures, live limits.
fn assert_bar(shown: &str, rows: usize) {
    let done = format!("/{rows} rows");
    for piece in [done.as_str(), "rows/s", "ETA", "0 failed", "in flight"] {
        assert!(shown.contains(piece), "no {piece:?} in:\n{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_shows_the_bar_by_default() {
    let (sb, wd) = prepared("console_bar", 0.0, 40, 0).await;
    // 20 requests/s: two seconds of bar.
    let args = run_args(&sb, &["--rate", "20"]);
    let shown = on_terminal(&wd, &args).await;
    shown.expect_code(0);
    assert_bar(&shown.stdout(), 40);
    assert_eq!(sb.users().len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_progress_comes_as_lines_or_as_a_bar_when_asked() {
    let (sb, wd) = prepared("console_lines", 0.0, 30, 0).await;
    let args = run_args(&sb, &["--rate", "20", "--progress-interval", "0.3"]);
    let r = piped(&wd, &args).await;
    r.expect_code(0);
    let lines = r
        .stderr()
        .lines()
        .filter(|l| l.starts_with("progress: ") && l.contains(" of 30 rows"))
        .count();
    assert!(lines >= 2, "progress lines:\n{}", r.stderr());
    assert!(!r.stderr().contains("ETA"), "no bar off a terminal");

    // `--progress always`: the bar all the same (the users exist by now: they are `exists`).
    let mut always = args.clone();
    always.extend(["--progress".to_string(), "always".to_string()]);
    let r = piped(&wd, &always).await;
    r.expect_code(0);
    assert_bar(&r.stderr(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colour_only_on_a_terminal_and_never_with_no_color() {
    // Every create answered 503 and not retried: a WARN log line per row.
    let (sb, wd) = prepared("console_colour", 1.0, 3, 0).await;
    let args = run_args(&sb, &["--max-attempts", "1", "--progress", "never"]);

    // (on a terminal, NO_COLOR, coloured)
    let cases = [
        (false, None, false),
        (true, None, true),
        (true, Some("1"), false),
    ];
    for (terminal, no_color, coloured) in cases {
        let mut cmd = match terminal {
            true => wd.command_on_terminal(&strs(&args)),
            false => wd.command(&strs(&args)),
        };
        match no_color {
            Some(v) => cmd.env("NO_COLOR", v),
            None => cmd.env_remove("NO_COLOR"),
        };
        let r = output(cmd).await;
        r.expect_code(1);
        // On a terminal stderr arrives with stdout.
        let shown = if terminal { r.stdout() } else { r.stderr() };
        assert!(shown.contains("WARN"), "{shown}");
        assert_eq!(
            shown.contains('\x1b'),
            coloured,
            "terminal {terminal}, NO_COLOR {no_color:?}:\n{shown:?}"
        );
    }
}

/// Every line parses as a JSON object; returns their messages.
fn json_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{text}"));
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_make_every_stderr_line_json() {
    let (sb, wd) = prepared("console_json", 1.0, 4, 2).await;
    let args = run_args(
        &sb,
        &[
            "--log-format",
            "json",
            "--max-attempts",
            "1",
            "--rate",
            "5",
            "--progress-interval",
            "0.2",
        ],
    );
    let r = piped(&wd, &args).await;
    r.expect_code(1);
    let messages = json_lines(&r.stderr());
    for wanted in [
        "progress: ",
        "failed: ",
        "row 6, column email",
        " rows in ",
        "outcome report: ",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(wanted)),
            "no {wanted:?} among {messages:#?}"
        );
    }

    // On a terminal too: no bar (it is not JSON), progress as JSON lines. The terminal shows
    // stdout as well: its summary line is the one line that is not JSON.
    let tty = on_terminal(&wd, &args).await;
    tty.expect_code(1);
    let screen = tty.stdout();
    let (summary, stderr): (Vec<&str>, Vec<&str>) = screen
        .lines()
        .partition(|l| l.starts_with("enlist summary:"));
    assert_eq!(summary.len(), 1, "{screen}");
    assert!(json_lines(&stderr.join("\n"))
        .iter()
        .any(|m| m.starts_with("progress: ")));
}

/// Runs that stop before they send anything, without a base URL (exit 4 with the built-in
/// profile) or with a profile that is not there (exit 3): stdout still ends in a summary
/// line, and with `--log-format json` stderr is JSON all the same.
#[test]
fn every_exit_prints_a_summary_line() {
    let wd = Workdir::new("console_fatal_summary");
    sheet(&wd, 1, 0);
    // No base URL (4), a profile that is not there (3), a flag clap refuses (2).
    for (profile, extra, code) in [
        ("users-api", None, 4),
        ("./missing.toml", None, 3),
        ("users-api", Some("--no-such-flag"), 2),
    ] {
        for format in ["text", "json"] {
            let mut args = vec![
                "run",
                "users.csv",
                "--profile",
                profile,
                "--log-format",
                format,
            ];
            args.extend(extra);
            let r = wd.run(&args);
            r.expect_code(code);
            let line = r.stdout().lines().last().unwrap_or_default().to_string();
            let start = format!("enlist summary: status=fatal exit={code} seconds=");
            assert!(line.starts_with(&start), "{line:?}");
            // The error, as stderr says it, quoted as a JSON string.
            let error = line.split_once(" error=").expect("error=").1;
            let error: String = serde_json::from_str(error).expect("a JSON string");
            let said = match format {
                "json" => json_lines(&r.stderr()).join("\n"),
                _ => r.stderr(),
            };
            assert!(said.contains(&error), "{error:?} vs {said}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_names_its_invalid_rows() {
    // Rows 2-3 valid, rows 4-28 invalid: 20 are shown, 5 counted.
    let (sb, wd) = prepared("console_invalid", 0.0, 2, 25).await;
    let r = piped(
        &wd,
        &run_args(&sb, &["--report", "out.xlsx", "--progress", "never"]),
    )
    .await;
    r.expect_code(1);
    let err = r.stderr();
    for row in 4..=23 {
        assert!(
            err.contains(&format!("row {row}, column email: ")),
            "row {row}:\n{err}"
        );
    }
    assert!(!err.contains("row 24, column email"), "{err}");
    let more = "and 5 more rows with problems; see the outcome workbook out.xlsx";
    assert!(err.contains(more), "{err}");
    assert!(r.stdout().trim_end().ends_with(" exit=1"), "{}", r.stdout());
    assert_eq!(sb.users().len(), 2);
}
