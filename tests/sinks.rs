//! Every row accounted for, sinks that fail, safe reports: the real binary (and the
//! executor, for the journal's timing) against a small user API on 127.0.0.1:0 that counts
//! every create it receives.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use enlist::cell::Cell;
use enlist::collect;
use enlist::execute::{Concurrency, RunSettings, Secrets};
use enlist::journal::Journal;
use enlist::outcome::{Outcome, OutcomeSink, RunSummary};
use enlist::plan::{Layout, PlanOptions, PlannedRow, Planner};
use enlist::profile::{Action, Profile};
use enlist::source::RawRow;

use crate::workdir::{Run, Workdir};

const PROFILE: &str = r#"
name = "sinks"
base_url_env = "ENLIST_TEST_URL"
key = "userId"
rate = RATE
concurrency = 4
[auth]
type = "none"
[responses]
error_message = ["/details"]

[requests.create]
method = "POST"
path = "/users"
body = { userId = "{{userId}}", name = "{{name}}" }
conflict = [409]
remote_id = "/id"

[requests.update]
method = "PUT"
path = "/users/{{remote_id}}"
body = { userId = "{{userId}}", name = "{{name}}" }
not_found = [404]
remote_id = "/id"

[requests.lookup]
method = "GET"
path = "/users"
query = { userId = "{{userId}}" }
not_found = [404]
remote_id = "/id"

[[columns]]
name = "userId"

[[columns]]
name = "name"
"#;

fn profile_text(rate: f64) -> String {
    PROFILE.replace("RATE", &format!("{rate:.1}"))
}

/// The fake target: users by userId, and how many creates each userId received.
#[derive(Default)]
struct Srv {
    users: Mutex<HashMap<String, (String, String)>>,
    posts: Mutex<HashMap<String, u32>>,
    next_id: AtomicU32,
    /// A create of this userId waits until `release` is notified.
    hang_on: Mutex<Option<String>>,
    release: tokio::sync::Notify,
}

impl Srv {
    fn creates(&self) -> u32 {
        self.posts.lock().unwrap().values().sum()
    }
    fn most_creates_of_one_user(&self) -> u32 {
        self.posts
            .lock()
            .unwrap()
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

type S = State<Arc<Srv>>;

fn err(status: StatusCode, details: &str) -> Response {
    (status, Json(json!({ "details": details }))).into_response()
}

async fn create(State(s): S, Json(body): Json<Value>) -> Response {
    let user = body["userId"].as_str().unwrap_or("").to_string();
    let name = body["name"].as_str().unwrap_or("").to_string();
    let hang = s.hang_on.lock().unwrap().as_deref() == Some(user.as_str());
    if hang {
        s.release.notified().await;
    }
    *s.posts.lock().unwrap().entry(user.clone()).or_default() += 1;
    if name.starts_with("Refused") {
        return err(StatusCode::UNPROCESSABLE_ENTITY, "name not allowed");
    }
    let mut users = s.users.lock().unwrap();
    if users.contains_key(&user) {
        return err(StatusCode::CONFLICT, "user exists");
    }
    let id = format!("id{}", s.next_id.fetch_add(1, Ordering::SeqCst));
    users.insert(user.clone(), (id.clone(), name));
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "userId": user })),
    )
        .into_response()
}

async fn lookup(State(s): S, Query(q): Query<HashMap<String, String>>) -> Response {
    let user = q.get("userId").cloned().unwrap_or_default();
    match s.users.lock().unwrap().get(&user) {
        Some((id, _)) => Json(json!({ "id": id, "userId": user })).into_response(),
        None => err(StatusCode::NOT_FOUND, "no such user"),
    }
}

async fn update(State(s): S, UrlPath(id): UrlPath<String>, Json(body): Json<Value>) -> Response {
    let mut users = s.users.lock().unwrap();
    match users.values_mut().find(|(i, _)| *i == id) {
        Some(u) => {
            u.1 = body["name"].as_str().unwrap_or("").to_string();
            Json(json!({ "id": id })).into_response()
        }
        None => err(StatusCode::NOT_FOUND, "no such user"),
    }
}

async fn server() -> (Arc<Srv>, String) {
    let s = Arc::new(Srv::default());
    let app = Router::new()
        .route("/users", get(lookup).post(create))
        .route("/users/{id}", put(update))
        .with_state(s.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (s, url)
}

/// `users.csv` and the profile in a fresh working directory.
fn setup(name: &str, csv: &str, rate: f64) -> Workdir {
    let wd = Workdir::new(name);
    wd.write("sinks.toml", profile_text(rate));
    wd.write("users.csv", csv);
    wd
}

fn run_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "users.csv",
        "--profile",
        "./sinks.toml",
        "--base-url",
        url,
        "--progress",
        "never",
    ];
    args.extend_from_slice(extra);
    args
}

/// Runs the binary off the runtime (the server runs on it).
async fn run_binary(wd: Arc<Workdir>, url: String, extra: Vec<&'static str>) -> Run {
    tokio::task::spawn_blocking(move || wd.run(&run_args(&url, &extra)))
        .await
        .unwrap()
}

fn jsonl(wd: &Workdir, name: &str) -> Vec<Value> {
    wd.read(name)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|v| v.get("seq").is_some())
        .collect()
}

// ---- 1. every input row gets exactly one outcome ----

/// A worker that panics on one row (the test-only fault hook) ends that row as failed with
/// "internal error"; every other row ends normally and the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_whose_worker_panics_fails_and_the_others_go_on() {
    let (srv, url) = server().await;
    let mut csv = String::from("userId,name\n");
    for i in 0..20 {
        csv.push_str(&format!("u{i}@x.io,User {i}\n"));
    }
    let wd = setup("sinks_panic", &csv, 500.0);
    let r = tokio::task::spawn_blocking(move || {
        let args = run_args(&url, &["--report", "out.jsonl", "--concurrency", "2"]);
        let r = wd
            .command(&args)
            .env("ENLIST_TEST_PANIC_ON_KEY", "u7@x.io")
            .output()
            .expect("run");
        (Run { output: r }, jsonl(&wd, "out.jsonl"))
    })
    .await
    .unwrap();
    let (r, out) = r;
    r.expect_code(1);
    assert_eq!(out.len(), 20, "every row has an outcome: {out:?}");
    for o in &out {
        if o["key"] == "u7@x.io" {
            assert_eq!(o["status"], "failed");
            let m = o["message"].as_str().unwrap();
            assert!(
                m.starts_with("internal error: ") && m.contains("please report"),
                "{m}"
            );
        } else {
            assert_eq!(o["status"], "created", "{o}");
        }
    }
    assert_eq!(srv.users.lock().unwrap().len(), 19);
    assert!(r.stdout().contains("created=19") && r.stdout().contains("failed=1"));
}

// ---- 2. a sink that cannot write stops the run ----

/// The state directory on a "full disk": the process may write no file beyond 192 KiB
/// (RLIMIT_FSIZE; writes past it fail with EFBIG, SIGXFSZ ignored). The run stops sending
/// once an outcome cannot be recorded, prints its summary, exits 7; the next run (with
/// room) sends only what the first did not record, and creates no user twice.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_write_stops_the_run_with_exit_7() {
    let (srv, url) = server().await;
    let n = 1500;
    let mut csv = String::from("userId,name\n");
    for i in 0..n {
        csv.push_str(&format!("user{i:05}@example.com,User number {i}\n"));
    }
    let wd = Arc::new(setup("sinks_full", &csv, 150.0));
    let first = {
        let (wd, url) = (wd.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let exe = env!("CARGO_BIN_EXE_enlist");
            let mut args = vec![exe];
            args.extend(run_args(&url, &["--report", "out.csv"]));
            // dash counts `ulimit -f` in 512-byte blocks: 384 blocks = 192 KiB.
            let mut sh = std::process::Command::new("sh");
            sh.current_dir(wd.dir())
                .arg("-c")
                .arg("trap '' XFSZ; ulimit -f 384; exec \"$@\"")
                .arg("sh")
                .args(&args)
                .env("NO_COLOR", "1");
            Run {
                output: sh.output().expect("run under sh"),
            }
        })
        .await
        .unwrap()
    };
    first.expect_code(7);
    let sent_first = srv.creates();
    assert!(
        sent_first > 0 && sent_first < n * 3 / 4,
        "the run stopped early: {sent_first} of {n} sent\n{}",
        first.stderr()
    );
    assert!(
        first.stdout().contains("enlist summary: rows="),
        "{}",
        first.stdout()
    );
    assert!(
        first.stderr().contains("could not be recorded"),
        "{}",
        first.stderr()
    );
    let summary_rows: u64 = first
        .stdout()
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rows=").and_then(|v| v.parse().ok()))
        .expect("rows= in the summary line");
    assert_eq!(summary_rows, u64::from(n), "every row is in the summary");

    // With room again: every user ends up created exactly once.
    let second = run_binary(
        wd.clone(),
        url.clone(),
        vec!["--report", "again.csv", "--rate", "2000"],
    )
    .await;
    second.expect_code(0);
    assert_eq!(srv.users.lock().unwrap().len(), n as usize);
    assert_eq!(
        srv.most_creates_of_one_user(),
        1,
        "no user was sent a create twice"
    );
    assert_eq!(srv.creates(), n, "creates over both runs");
}

// ---- 3. the journal commits on time ----

#[derive(Clone, Default)]
struct Mem(Arc<Mutex<Vec<Outcome>>>);
impl OutcomeSink for Mem {
    fn record(&mut self, o: &Outcome) -> enlist::error::Result<()> {
        self.0.lock().unwrap().push(o.clone());
        Ok(())
    }
    fn finish(&mut self, _: &RunSummary) -> enlist::error::Result<()> {
        Ok(())
    }
}

fn planned(p: &Arc<Profile>, users: &[&str]) -> Vec<PlannedRow> {
    let headers = vec!["userId".to_string(), "name".to_string()];
    let layout = Layout::new(p, &headers, Path::new("test.csv")).expect("layout");
    let mut planner = Planner::new(
        p.clone(),
        layout,
        PlanOptions {
            mode: Some(Action::Create),
            fingerprint: true,
            without_cells: false,
            secret_key: None,
        },
        Default::default(),
    );
    users
        .iter()
        .enumerate()
        .map(|(i, id)| {
            planner.plan(Ok(RawRow {
                number: i as u64 + 2,
                cells: vec![Cell::text(id), Cell::text("Name")],
            }))
        })
        .collect()
}

fn applied_rows(db: &Path) -> i64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return -1;
    };
    conn.query_row("SELECT COUNT(*) FROM applied", [], |r| r.get(0))
        .unwrap_or(-1)
}

/// Rows 1-4 are done, row 5 hangs on the server: rows 1-4 are committed to the journal while
/// row 5 still hangs (not only when the next outcome arrives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_commits_a_finished_row_while_the_next_one_hangs() {
    let (srv, url) = server().await;
    *srv.hang_on.lock().unwrap() = Some("last@x.io".into());
    let p = Arc::new(
        Profile::parse(&profile_text(100.0), "sinks", &|f: &str| {
            Err(format!("no file {f}"))
        })
        .expect("profile"),
    );
    let wd = Workdir::new("sinks_tick");
    let state = wd.path("state");
    let journal = Journal::open(&state, "sinks test", "ab").expect("journal");
    let mut s =
        RunSettings::new(&p, &url, false, Secrets::from_pairs([("X", "y")])).expect("settings");
    s.concurrency = Concurrency::Fixed(1);
    s.timeout = Duration::from_secs(120);
    // Rows 1-4 finish back to back (within one commit interval), row 5 hangs.
    let rows = planned(
        &p,
        &["r1@x.io", "r2@x.io", "r3@x.io", "r4@x.io", "last@x.io"],
    );
    let mem = Mem::default();
    let sinks: Vec<Box<dyn OutcomeSink>> = vec![Box::new(journal), Box::new(mem.clone())];
    let run = tokio::spawn(collect::run(
        p,
        s,
        rows.into_iter(),
        sinks,
        std::future::pending(),
    ));

    // Wait until row 5 hangs on the server (rows 1-4 are done by then).
    let db = state.join("enlist.sqlite");
    let mut seen = -1;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let hanging = mem.0.lock().unwrap().len() == 4;
        seen = applied_rows(&db);
        if hanging && seen == 4 {
            break;
        }
    }
    let hanging = srv.users.lock().unwrap().len() == 4 && mem.0.lock().unwrap().len() == 4;
    srv.release.notify_one();
    let summary = run.await.unwrap().expect("run");
    assert!(hanging, "row 5 was still in flight");
    assert_eq!(seen, 4, "rows 1-4 were in the journal while row 5 hung");
    assert_eq!(summary.total(), 5);
}

// ---- 4. the outcome can always be written ----

/// A sheet of 16,400 columns (the profile uses two): the workbook leaves out unused
/// columns from the right, says so before any request, and is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_wider_than_a_workbook_still_gets_its_report() {
    let (srv, url) = server().await;
    let width = 16_400;
    let mut header = vec!["userId".to_string(), "name".to_string()];
    header.extend((2..width).map(|i| format!("extra{i}")));
    let mut csv = header.join(",");
    csv.push('\n');
    for u in ["a@x.io", "b@x.io"] {
        let mut row = vec![u.to_string(), "Name".to_string()];
        row.extend((2..width).map(|i| format!("v{i}")));
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let wd = Arc::new(setup("sinks_wide", &csv, 100.0));
    let r = run_binary(wd.clone(), url, vec!["--report", "out.xlsx"]).await;
    r.expect_code(0);
    assert!(
        r.stderr().contains("left out") && r.stderr().contains("\"extra16374\""),
        "{}",
        r.stderr()
    );
    assert_eq!(srv.users.lock().unwrap().len(), 2);
    use calamine::{open_workbook_auto, Data, Reader};
    let mut book = open_workbook_auto(wd.path("out.xlsx")).expect("workbook");
    let sheet = book.worksheet_range("Results").expect("Results");
    let head: Vec<String> = sheet
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(Data::to_string)
        .collect();
    assert_eq!(head.len(), 16_384);
    assert_eq!(head[0], "userId");
    assert_eq!(head[16_373], "extra16373");
    assert_eq!(head[16_374], "Outcome");
}

/// A workbook that cannot be written at the end (here a directory stands where its
/// temporary file goes) keeps every outcome as JSON lines and says where.
#[test]
fn a_workbook_that_cannot_be_written_keeps_the_outcomes_as_json_lines() {
    use enlist::report::xlsx::XlsxSink;
    let wd = Workdir::new("sinks_rescue");
    let path = wd.path("out.xlsx");
    let mut sink = XlsxSink::create(&path, vec!["userId".into(), "pw".into()], vec![false, true])
        .expect("sink");
    for i in 0..3u64 {
        sink.record(&Outcome {
            seq: i,
            row: i + 2,
            key: format!("u{i}"),
            status: enlist::outcome::Status::Created,
            action: Action::Create,
            http_status: Some(201),
            attempts: 1,
            requests: 1,
            duration_ms: 5,
            message: "created".into(),
            remote_id: Some(format!("id{i}")),
            finished_at: "2026-12-02T00:00:00Z".into(),
            cells: vec![format!("u{i}"), "secret-pw".into()],
            fingerprint: None,
            steps: None,
            problem_columns: Vec::new(),
        })
        .expect("record");
    }
    std::fs::create_dir_all(wd.path("out.xlsx.partial")).expect("blocker");
    let e = sink
        .finish(&RunSummary::default())
        .expect_err("cannot write");
    let rescue = wd.path("out.xlsx.rescue.jsonl");
    assert!(
        e.to_string()
            .contains(&format!("kept as JSON lines in {}", rescue.display())),
        "{e}"
    );
    let text = wd.read("out.xlsx.rescue.jsonl");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["seq"], 2);
    assert_eq!(lines[2]["remote_id"], "id2");
    assert!(!text.contains("secret-pw"), "{text}");
}

// ---- 5. secret-looking columns the profile does not use ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_secret_looking_column_is_masked_in_every_report() {
    let (_srv, url) = server().await;
    let wd = Arc::new(setup(
        "sinks_secret",
        "userId,name,Initial Password,Phone\na@x.io,A,Hunter2-initial,+4930111\n",
        100.0,
    ));
    let r = run_binary(
        wd.clone(),
        url,
        vec![
            "--report",
            "out.xlsx",
            "--report-format",
            "csv",
            "--report-format",
            "jsonl",
        ],
    )
    .await;
    r.expect_code(0);
    assert!(
        r.stderr().contains(
            "column \"Initial Password\" looks secret and is not used by profile sinks: masked in the report"
        ),
        "{}",
        r.stderr()
    );
    let csv = wd.read("users.outcome.csv");
    let jsonl = wd.read("users.outcome.jsonl");
    for text in [&csv, &jsonl] {
        assert!(!text.contains("Hunter2"), "{text}");
        assert!(text.contains("********"), "{text}");
    }
    use calamine::{open_workbook_auto, Data, Reader};
    let mut book = open_workbook_auto(wd.path("out.xlsx")).expect("workbook");
    let sheet = book.worksheet_range("Results").expect("Results");
    let cells: Vec<String> = sheet.rows().flatten().map(Data::to_string).collect();
    assert!(cells.iter().any(|c| c == "********"), "{cells:?}");
    assert!(!cells.iter().any(|c| c.contains("Hunter2")), "{cells:?}");
}

// ---- 6. CSV reports are safe to open in Excel ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_report_cells_that_excel_would_run_are_defused() {
    let (_srv, url) = server().await;
    let wd = Arc::new(setup(
        "sinks_formula",
        "userId,name,Phone\na@x.io,\"=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",+4930111\nb@x.io,'=quoted,1\n",
        100.0,
    ));
    let r = run_binary(
        wd.clone(),
        url,
        vec!["--report", "out.csv", "--report-format", "jsonl"],
    )
    .await;
    r.expect_code(0);
    let text = wd.read("out.csv");
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    // Rows are written as they finish: find them by key.
    let recs: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("csv")).collect();
    let rec = recs.iter().find(|r| &r[0] == "a@x.io").expect("row a");
    assert_eq!(&rec[1], "'=HYPERLINK(\"http://evil\",\"x\")");
    assert_eq!(&rec[2], "'+4930111");
    let rec = recs.iter().find(|r| &r[0] == "b@x.io").expect("row b");
    assert_eq!(&rec[1], "''=quoted");
    // The JSON lines keep the values as they were.
    let out = jsonl(&wd, "users.outcome.jsonl");
    let a = out.iter().find(|o| o["key"] == "a@x.io").expect("a");
    assert_eq!(a["cells"][1], "=HYPERLINK(\"http://evil\",\"x\")");
    assert_eq!(a["cells"][2], "+4930111");
    // Fed back as input, the CSV report gives the values as they were, not the escapes.
    let r = wd.run(&[
        "check",
        "out.csv",
        "--profile",
        "./sinks.toml",
        "--show-requests",
        "2",
    ]);
    let shown = r.stdout();
    // A value that itself began with a quote comes back with it.
    assert!(
        shown.contains(r#""name":"'=quoted"#) || shown.contains(r#""name": "'=quoted"#),
        "{shown}"
    );
    assert!(
        shown.contains(r#""name":"=HYPERLINK"#) || shown.contains(r#""name": "=HYPERLINK"#),
        "{shown}\n{}",
        r.stderr()
    );
    assert!(!shown.contains("'=HYPERLINK"), "{shown}");
}

// ---- 7. console findings are capped ----

#[test]
fn check_prints_the_first_50_problem_rows_then_counts_the_rest() {
    let mut csv = String::from("userId,name\n");
    for i in 0..500 {
        csv.push_str(&format!(",Nobody {i}\n"));
    }
    let wd = setup("sinks_cap", &csv, 100.0);
    let r = wd.run(&["check", "users.csv", "--profile", "./sinks.toml"]);
    r.expect_code(1);
    let out = r.stdout();
    let rows_shown = out.lines().filter(|l| l.starts_with("row ")).count();
    assert_eq!(rows_shown, 50, "{out}");
    assert!(
        out.contains("and 450 more rows with problems; see --report"),
        "{out}"
    );
    assert!(out.contains("500 invalid"), "{out}");
}

/// A run where 120 rows fail logs the first 50 failures one by one, then one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_logs_the_first_50_failures_then_one_line() {
    let (_srv, url) = server().await;
    let mut csv = String::from("userId,name\n");
    for i in 0..120 {
        csv.push_str(&format!("u{i}@x.io,Refused {i}\n"));
    }
    let wd = Arc::new(setup("sinks_failcap", &csv, 1000.0));
    let r = run_binary(
        wd,
        url,
        vec!["--report", "out.jsonl", "--max-attempts", "1"],
    )
    .await;
    r.expect_code(1);
    let err = r.stderr();
    let logged = err.lines().filter(|l| l.contains("failed: ")).count();
    assert_eq!(logged, 50, "{err}");
    assert!(err.contains("more rows failed"), "{err}");
    assert!(r.stdout().contains("failed=120"), "{}", r.stdout());
}
