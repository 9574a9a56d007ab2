//! How fast a run goes by itself: `--concurrency auto` grows while the target keeps up,
//! a fixed `--concurrency N` stays N, `--rate auto` finds a limit the target does not
//! disclose, and a target that announces its budget in `RateLimit-*` headers never has
//! to answer 429.
//!
//! The real binary runs against the embedded sandbox, or (for the headers) against a small
//! target of this module's own. The assertions are on what the run reports, never on how
//! long it took.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use enlist::sandbox::{self, SandboxConfig, SandboxKind};

use crate::workdir::{run_bin, Workdir};

/// A SCIM sheet of `n` new users.
fn scim_sheet(wd: &Workdir, n: usize) {
    let mut csv = String::from("userName,givenName,familyName,email,password\n");
    for i in 0..n {
        csv.push_str(&format!(
            "user{i},Given{i},Family{i},user{i}@example.com,Passw0rd-{i}\n"
        ));
    }
    wd.write("users.csv", csv);
}

/// The outcome statuses and the summary of a JSON lines report.
fn report(wd: &Workdir, name: &str) -> (Vec<String>, Value) {
    let mut lines: Vec<Value> = wd
        .read(name)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let summary = lines.pop().expect("a summary line")["summary"].clone();
    let statuses = lines
        .iter()
        .map(|o| o["status"].as_str().unwrap_or("?").to_string())
        .collect();
    (statuses, summary)
}

/// Runs the SCIM sheet against a sandbox started with `cfg`; the report's statuses and
/// summary, and the run's stderr.
async fn scim_run(
    name: &str,
    rows: usize,
    cfg: SandboxConfig,
    flags: &[&str],
) -> (Vec<String>, Value, String) {
    let sb = sandbox::start(SandboxConfig {
        kind: SandboxKind::Scim,
        ..cfg
    })
    .await
    .expect("sandbox");
    let wd = Workdir::new(name);
    scim_sheet(&wd, rows);
    let base = sb.base_url();
    let mut args = vec![
        "run",
        "users.csv",
        "-p",
        "scim",
        "--base-url",
        &base,
        "--report",
        "out.jsonl",
    ];
    args.extend_from_slice(flags);
    let r = run_bin(&wd, &args, &[("ENLIST_SCIM_TOKEN", "sandbox-token")]).await;
    r.expect_code(0);
    assert_eq!(sb.users().len(), rows, "every row created");
    let (statuses, summary) = report(&wd, "out.jsonl");
    (statuses, summary, r.stderr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_concurrency_stays_what_was_asked() {
    let cfg = SandboxConfig {
        latency: Duration::from_millis(20),
        ..SandboxConfig::default()
    };
    let (statuses, summary, stderr) = scim_run(
        "adaptive-fixed",
        60,
        cfg,
        &["--rate", "500", "--concurrency", "3"],
    )
    .await;
    assert!(statuses.iter().all(|s| s == "created"), "{statuses:?}");
    assert_eq!(summary["settled_concurrency"], 3, "{summary}");
    assert!(stderr.contains("settled at 3 in flight"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_concurrency_grows_past_its_start_against_a_slow_target() {
    let cfg = SandboxConfig {
        latency: Duration::from_millis(50),
        ..SandboxConfig::default()
    };
    // The scim profile starts at 4 in flight; 500 requests/s at 50 ms need about 25.
    let (statuses, summary, _) = scim_run("adaptive-grows", 300, cfg, &["--rate", "500"]).await;
    assert_eq!(statuses.len(), 300);
    assert!(statuses.iter().all(|s| s == "created"), "{statuses:?}");
    let settled = summary["settled_concurrency"].as_u64().expect("a number");
    assert!(settled > 4, "settled at {settled}: {summary}");
    assert!(settled <= 64, "never above --max-concurrency: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_rate_finds_an_undisclosed_limit_and_every_row_is_created() {
    let cfg = SandboxConfig {
        rate_limit: Some(25),
        retry_after: false,
        ..SandboxConfig::default()
    };
    let (statuses, summary, stderr) = scim_run(
        "adaptive-auto-rate",
        200,
        cfg,
        &["--rate", "auto", "--max-attempts", "10"],
    )
    .await;
    assert!(statuses.iter().all(|s| s == "created"), "{statuses:?}");
    let throttled = summary["throttled_429"].as_u64().expect("a number");
    assert!(throttled > 0, "the probing met the limit: {summary}");
    let settled = summary["settled_rate"].as_f64().expect("a number");
    assert!(settled < 25.0 * 1.2, "settled below the limit: {summary}");
    assert!(stderr.contains("× 429"), "{stderr}");
}

/// A target that allows `BUDGET` requests per wall-clock second, says so in `RateLimit-*`
/// headers on every answer, and answers 429 past it.
#[derive(Default)]
struct Budgeted {
    window: Mutex<(u64, u64)>,
    created: AtomicU64,
    refused: AtomicU64,
}

const BUDGET: u64 = 15;

fn budget_headers(remaining: u64, now: Duration) -> HeaderMap {
    let mut h = HeaderMap::new();
    let reset = 1.0 - f64::from(now.subsec_millis()) / 1000.0;
    h.insert("RateLimit-Limit", HeaderValue::from(BUDGET));
    h.insert("RateLimit-Remaining", HeaderValue::from(remaining));
    h.insert(
        "RateLimit-Reset",
        HeaderValue::from_str(&format!("{}", reset.ceil() as u64)).unwrap(),
    );
    h
}

async fn budgeted_create(State(t): State<Arc<Budgeted>>, Json(body): Json<Value>) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let remaining = {
        let mut w = t.window.lock().unwrap();
        if w.0 != now.as_secs() {
            *w = (now.as_secs(), 0);
        }
        if w.1 >= BUDGET {
            None
        } else {
            w.1 += 1;
            Some(BUDGET - w.1)
        }
    };
    match remaining {
        None => {
            t.refused.fetch_add(1, Ordering::Relaxed);
            (StatusCode::TOO_MANY_REQUESTS, budget_headers(0, now)).into_response()
        }
        Some(left) => {
            let n = t.created.fetch_add(1, Ordering::Relaxed);
            let id = format!("u{n}");
            let body = json!({ "id": id, "userId": body["userId"] });
            (StatusCode::CREATED, budget_headers(left, now), Json(body)).into_response()
        }
    }
}

const BUDGET_PROFILE: &str = r#"
name = "budgeted"
base_url_env = "ENLIST_TEST_URL"
key = "userId"
rate = 1000.0
concurrency = 4

[auth]
type = "none"

[requests.create]
method = "POST"
path = "/users"
body = { userId = "{{userId}}" }
conflict = [409]
remote_id = "/id"

[[columns]]
name = "userId"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_announcing_its_budget_never_has_to_answer_429() {
    let target = Arc::new(Budgeted::default());
    let app = Router::new()
        .route("/users", post(budgeted_create))
        .route("/health", get(|| async { "ok" }))
        .with_state(target.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let wd = Workdir::new("adaptive-budget");
    wd.write("budgeted.toml", BUDGET_PROFILE);
    let mut csv = String::from("userId\n");
    for i in 0..45 {
        csv.push_str(&format!("user{i}@example.com\n"));
    }
    wd.write("users.csv", csv);
    let r = run_bin(
        &wd,
        &[
            "run",
            "users.csv",
            "--profile",
            "./budgeted.toml",
            "--base-url",
            &url,
            "--report",
            "out.jsonl",
            "--mode",
            "create",
            "--rate",
            "1000",
        ],
        &[],
    )
    .await;
    r.expect_code(0);
    let (statuses, summary) = report(&wd, "out.jsonl");
    assert_eq!(statuses.len(), 45);
    assert!(statuses.iter().all(|s| s == "created"), "{statuses:?}");
    assert_eq!(
        target.refused.load(Ordering::Relaxed),
        0,
        "no 429 at all: {summary}"
    );
    assert_eq!(summary["throttled_429"], 0);
}
