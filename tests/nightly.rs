//! Unattended runs: the journal behind `enlist run` (delta sync, lock, resume after
//! `kill -9`, shards), checked with the real binary against the embedded SCIM sandbox, whose
//! stored users and request counters show what really reached the target.

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use enlist::sandbox::{start, RunningSandbox, SandboxConfig, SandboxKind};

use crate::workdir::{counted, user_names_once};
use crate::workdir::{Run, Workdir};

async fn scim(latency_ms: u64) -> Arc<RunningSandbox> {
    let sb = start(SandboxConfig {
        kind: SandboxKind::Scim,
        latency: Duration::from_millis(latency_ms),
        seed: 7,
        ..Default::default()
    })
    .await
    .expect("sandbox");
    Arc::new(sb)
}

/// A SCIM sheet of `n` users; rows in `edited` carry a changed given name.
fn sheet(n: usize, edited: &[usize]) -> String {
    let mut s = String::from("userName,givenName,familyName\n");
    for i in 0..n {
        let given = if edited.contains(&i) {
            format!("Edited{i}")
        } else {
            format!("Given{i}")
        };
        s.push_str(&format!("user{i}@example.com,{given},Family{i}\n"));
    }
    s
}

/// `enlist run users.csv --profile scim` against `url`, with `extra` flags.
pub(crate) fn command(wd: &Workdir, url: &str, extra: &[&str]) -> std::process::Command {
    let mut args = vec![
        "run",
        "users.csv",
        "--profile",
        "scim",
        "--base-url",
        url,
        "--progress",
        "never",
        "--rate",
        "5000",
    ];
    args.extend_from_slice(extra);
    let mut c = wd.command(&args);
    c.env("ENLIST_SCIM_TOKEN", "sandbox-token");
    c
}

fn run(wd: &Workdir, url: &str, extra: &[&str]) -> Run {
    let output = command(wd, url, extra).output().expect("run enlist");
    Run { output }
}

/// Runs the blocking `f` (the binary) off the runtime that serves the sandbox.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// The outcomes of a `--report` file and its closing summary object.
fn report(text: &str) -> (Vec<Value>, Value) {
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let summary = lines.pop().expect("a summary line");
    assert!(summary.get("summary").is_some(), "{summary}");
    (lines, summary["summary"].clone())
}

fn statuses(outcomes: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in outcomes {
        *m.entry(o["status"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    m
}

/// Data requests (creates and updates) the sandbox counted.
fn data_requests(stats: &Value) -> u64 {
    counted(stats, "POST /scim/v2/Users") + counted(stats, "PATCH /scim/v2/Users")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightly_sends_only_changed_rows() {
    let sb = scim(0).await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("nightly_delta"));
    wd.write("users.csv", sheet(500, &[]));
    let (w, u) = (wd.clone(), url.clone());
    let first = blocking(move || run(&w, &u, &["--concurrency", "8"])).await;
    first.expect_code(0);
    assert!(first.stdout().contains("created=500"), "{}", first.stdout());
    assert_eq!(user_names_once(&sb).len(), 500);

    // The HR export changes three people overnight.
    wd.write("users.csv", sheet(500, &[7, 250, 499]));
    let before = sb.stats();
    let (w, u) = (wd.clone(), url.clone());
    let second = blocking(move || {
        let r = run(&w, &u, &["--concurrency", "8", "--report", "out.jsonl"]);
        (r, w.read("out.jsonl"))
    })
    .await;
    let (second, text) = second;
    second.expect_code(0);
    let after = sb.stats();
    assert_eq!(data_requests(&after) - data_requests(&before), 3);
    assert_eq!(
        counted(&after, "PATCH /scim/v2/Users") - counted(&before, "PATCH /scim/v2/Users"),
        3
    );
    // The journal knows the three users: they are updated without a lookup.
    assert_eq!(
        counted(&after, "GET /scim/v2/Users") - counted(&before, "GET /scim/v2/Users"),
        0
    );
    let (outcomes, summary) = report(&text);
    assert_eq!(outcomes.len(), 500);
    let by = statuses(&outcomes);
    assert_eq!(by.get("unchanged"), Some(&497), "{by:?}");
    assert_eq!(by.get("updated"), Some(&3), "{by:?}");
    assert_eq!(summary["unchanged"], 497);
    let out = second.stdout();
    let line = out.lines().last().unwrap_or("");
    assert!(
        line.starts_with("enlist summary: rows=500 created=0 updated=3 exists=0 unchanged=497"),
        "{line}"
    );
    assert!(
        second.stderr().contains("497 rows unchanged"),
        "{}",
        second.stderr()
    );
    let unchanged = outcomes
        .iter()
        .find(|o| o["status"] == "unchanged")
        .expect("an unchanged row");
    assert!(
        unchanged["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("unchanged since ")),
        "{unchanged}"
    );
    assert!(unchanged["remote_id"].is_string(), "{unchanged}");

    // --full sends every row again (and records it).
    let before = sb.stats();
    let (w, u) = (wd.clone(), url.clone());
    let full = blocking(move || run(&w, &u, &["--concurrency", "8", "--full"])).await;
    full.expect_code(0);
    assert_eq!(data_requests(&sb.stats()) - data_requests(&before), 500);
    assert!(full.stdout().contains("updated=500"), "{}", full.stdout());

    // And the next run is quiet again.
    let (w, u) = (wd.clone(), url.clone());
    let quiet = blocking(move || run(&w, &u, &[])).await;
    quiet.expect_code(0);
    assert!(
        quiet.stdout().contains("unchanged=500"),
        "{}",
        quiet.stdout()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightly_second_run_on_a_state_is_refused() {
    // 20 rows, two at a time, 200 ms each: the first run lasts about 2 s.
    let sb = scim(200).await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("nightly_lock"));
    wd.write("users.csv", sheet(20, &[]));
    let (w, u) = (wd.clone(), url.clone());
    let first: Child = blocking(move || {
        command(&w, &u, &["--concurrency", "2", "--state", "state"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn enlist")
    })
    .await;
    // Wait (bounded) until the first run holds the lock and has started sending.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sb.stats()["requests"].as_u64().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the first run never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (w, u) = (wd.clone(), url.clone());
    let second = blocking(move || {
        let t = Instant::now();
        (run(&w, &u, &["--state", "state"]), t.elapsed())
    })
    .await;
    let (second, took) = second;
    second.expect_code(5);
    assert!(
        second
            .stderr()
            .contains("another enlist run is using the state"),
        "{}",
        second.stderr()
    );
    assert!(
        took < Duration::from_secs(1),
        "refused at once, took {took:?}"
    );
    // Nothing done, and stdout says so in the one summary line of a fatal exit.
    assert!(
        second
            .stdout()
            .starts_with("enlist summary: status=fatal exit=5 "),
        "{}",
        second.stdout()
    );

    let first = blocking(move || first.wait_with_output().expect("wait")).await;
    let first = Run { output: first };
    first.expect_code(0);
    assert!(first.stdout().contains("created=20"), "{}", first.stdout());
    assert_eq!(user_names_once(&sb).len(), 20);
}

/// Starts a run and SIGKILLs it after `after` (or as soon as `ready` says so, then `after`),
/// unless it ended first. Returns whether it was killed.
async fn kill_after(
    wd: &Arc<Workdir>,
    url: &str,
    extra: &'static [&'static str],
    ready: impl Fn() -> bool,
    after: Duration,
) -> bool {
    let (w, u) = (wd.clone(), url.to_string());
    let mut child = blocking(move || {
        command(&w, &u, extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn enlist")
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(after).await;
    let killed = matches!(child.try_wait(), Ok(None));
    if killed {
        child.kill().expect("SIGKILL");
    }
    blocking(move || child.wait().expect("reap")).await;
    killed
}

const CRASH_FLAGS: &[&str] = &["--mode", "create", "--concurrency", "8"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightly_survives_kill_9_at_random_moments() {
    const ROWS: usize = 1000;
    let sb = scim(3).await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("nightly_crash"));
    wd.write("users.csv", sheet(ROWS, &[]));
    let mut rng = SmallRng::seed_from_u64(0x6e19_4e55);
    let mut kills = 0;
    for _ in 0..5 {
        let after = Duration::from_millis(rng.random_range(150..600));
        let killed = kill_after(&wd, &url, CRASH_FLAGS, || true, after).await;
        kills += usize::from(killed);
        // Nothing is ever there twice, even between kills.
        let n = user_names_once(&sb).len();
        eprintln!("kill at {after:?}: killed={killed}, {n} users on the server");
    }
    assert!(
        kills >= 2,
        "only {kills} runs were killed: the sheet is too small"
    );

    let (w, u) = (wd.clone(), url.clone());
    let last = blocking(move || {
        let mut flags = CRASH_FLAGS.to_vec();
        flags.extend(["--report", "out.jsonl"]);
        let r = run(&w, &u, &flags);
        (r, w.read("out.jsonl"))
    })
    .await;
    let (last, text) = last;
    last.expect_code(0);
    let (outcomes, _) = report(&text);
    eprintln!("final run: {:?}", statuses(&outcomes));
    assert_eq!(outcomes.len(), ROWS, "the final outcome covers every row");
    let keys: HashSet<&str> = outcomes.iter().filter_map(|o| o["key"].as_str()).collect();
    assert_eq!(keys.len(), ROWS);
    let by = statuses(&outcomes);
    for s in by.keys() {
        assert!(
            ["created", "updated", "exists", "unchanged"].contains(&s.as_str()),
            "{by:?}"
        );
    }
    assert_eq!(user_names_once(&sb).len(), ROWS);
    // Every create the target refused as a duplicate would be a row the resume failed to
    // reconcile; there are none.
    assert_eq!(counted(&sb.stats(), "POST /scim/v2/Users 409"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightly_resume_looks_up_creates_the_dead_run_never_recorded() {
    // 300 ms per request, 8 at a time. The journal commits an outcome within 250 ms, so
    // the kill comes at a moment when the server holds users (10 or more) that the journal
    // has not committed yet, with requests in flight.
    const ROWS: usize = 40;
    let sb = scim(300).await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("nightly_inflight"));
    wd.write("users.csv", sheet(ROWS, &[]));
    let probe = sb.clone();
    let db = wd.path(".enlist-state/enlist.sqlite");
    // How many outcomes the journal has committed (read-only, as another process would).
    let journaled = move || {
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM applied", [], |r| r.get::<_, i64>(0)))
            .map_or(i64::MAX, |n| n)
    };
    let killed = kill_after(
        &wd,
        &url,
        CRASH_FLAGS,
        move || {
            let on_server = probe.users().len();
            on_server >= 10 && journaled() < on_server as i64
        },
        Duration::ZERO,
    )
    .await;
    assert!(killed, "the run ended before the kill");
    // Creates that reached the server just before the kill are still being applied (it
    // answers after 300 ms): count once the server has been still for a while.
    let mut on_server = user_names_once(&sb).len();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = user_names_once(&sb).len();
        if now == on_server {
            break;
        }
        on_server = now;
    }
    assert!((10..ROWS).contains(&on_server), "{on_server}");

    let before = sb.stats();
    let (w, u) = (wd.clone(), url.clone());
    let resumed = blocking(move || {
        let mut flags = CRASH_FLAGS.to_vec();
        flags.extend(["--report", "out.jsonl"]);
        let r = run(&w, &u, &flags);
        (r, w.read("out.jsonl"))
    })
    .await;
    let (resumed, text) = resumed;
    resumed.expect_code(0);
    assert!(
        resumed.stderr().contains("resuming"),
        "{}",
        resumed.stderr()
    );
    let (outcomes, _) = report(&text);
    assert_eq!(outcomes.len(), ROWS);
    let by = statuses(&outcomes);
    assert_eq!(by.get("created"), Some(&ROWS), "{by:?}");
    let msg = |m: &str| {
        outcomes
            .iter()
            .filter(|o| o["message"].as_str().is_some_and(|t| t.starts_with(m)))
            .count()
    };
    let confirmed = msg("confirmed by lookup: applied by the interrupted run");
    let recorded = msg("done in the interrupted run at");
    assert!(confirmed >= 1, "{by:?}");
    // Every user the dead run created is accounted for, by the journal or by a lookup.
    assert_eq!(confirmed + recorded, on_server, "{text}");
    let after = sb.stats();
    assert_eq!(counted(&after, "POST /scim/v2/Users 409"), 0);
    assert_eq!(
        counted(&after, "POST /scim/v2/Users") - counted(&before, "POST /scim/v2/Users"),
        (ROWS - on_server) as u64
    );
    assert_eq!(user_names_once(&sb).len(), ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightly_shards_split_the_sheet() {
    const ROWS: usize = 200;
    let sb = scim(0).await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("nightly_shards"));
    wd.write("users.csv", sheet(ROWS, &[]));
    let mut seen: Vec<HashSet<String>> = Vec::new();
    for i in 0..2 {
        let (w, u) = (wd.clone(), url.clone());
        let text = blocking(move || {
            let shard = format!("{i}/2");
            let state = format!("state-{i}");
            let out = format!("out-{i}.jsonl");
            let r = run(
                &w,
                &u,
                &["--shard", &shard, "--state", &state, "--report", &out],
            );
            r.expect_code(0);
            w.read(&out)
        })
        .await;
        let (outcomes, _) = report(&text);
        seen.push(
            outcomes
                .iter()
                .filter_map(|o| o["key"].as_str().map(str::to_string))
                .collect(),
        );
    }
    assert!(seen[0].is_disjoint(&seen[1]));
    assert!(!seen[0].is_empty() && !seen[1].is_empty());
    assert_eq!(seen[0].len() + seen[1].len(), ROWS);
    assert_eq!(user_names_once(&sb).len(), ROWS);
    // I must be below N.
    let (w, u) = (wd.clone(), url.clone());
    let bad = blocking(move || run(&w, &u, &["--shard", "2/2"])).await;
    bad.expect_code(2);
}
