//! One request per row where one is enough: an upsert of new users creates first, a sheet of
//! existing users looks up first, and a user the journal knows is updated straight away.
//! Counted by the embedded SCIM sandbox (which needs no login, so every request it counts
//! is a row's).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use enlist::sandbox::{start, RunningSandbox, SandboxConfig, SandboxKind};

use crate::workdir::{counted, outcomes, user_names_once};
use crate::workdir::{Run, Workdir};

async fn scim() -> Arc<RunningSandbox> {
    let sb = start(SandboxConfig {
        kind: SandboxKind::Scim,
        latency: Duration::ZERO,
        seed: 11,
        ..Default::default()
    })
    .await
    .expect("sandbox");
    Arc::new(sb)
}

/// A SCIM sheet of users `range`, their given names marked with `edition`.
fn sheet(range: std::ops::Range<usize>, edition: &str) -> String {
    let mut s = String::from("userName,givenName,familyName\n");
    for i in range {
        s.push_str(&format!(
            "user{i}@example.com,Given{i}{edition},Family{i}\n"
        ));
    }
    s
}

/// `enlist run users.csv` against the sandbox with `extra` flags (profile scim unless
/// `extra` names another), off the runtime that serves the sandbox.
async fn run(wd: &Arc<Workdir>, url: &str, extra: &[&str]) -> Run {
    let mut args: Vec<String> = [
        "run",
        "users.csv",
        "--base-url",
        url,
        "--progress",
        "never",
        "--rate",
        "5000",
        "--concurrency",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra.contains(&"--profile") {
        args.extend(["--profile".to_string(), "scim".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let wd = wd.clone();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = wd.command(&args);
        c.env("ENLIST_SCIM_TOKEN", "sandbox-token");
        Run {
            output: c.output().expect("run enlist"),
        }
    })
    .await
    .expect("blocking task")
}

/// What one run cost, counted by the sandbox.
struct Cost {
    before: Value,
    after: Value,
}

impl Cost {
    fn of(&self, prefix: &str) -> u64 {
        counted(&self.after, prefix) - counted(&self.before, prefix)
    }
    fn requests(&self) -> u64 {
        self.after["requests"].as_u64().unwrap_or(0) - self.before["requests"].as_u64().unwrap_or(0)
    }
    fn per_row(&self, rows: usize) -> f64 {
        self.requests() as f64 / rows as f64
    }
}

async fn measured(sb: &RunningSandbox, wd: &Arc<Workdir>, extra: &[&str]) -> (Run, Cost) {
    let before = sb.stats();
    let r = run(wd, &sb.base_url(), extra).await;
    let after = sb.stats();
    (r, Cost { before, after })
}

const NEW: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_users_cost_one_request_each() {
    let sb = scim().await;
    let wd = Arc::new(Workdir::new("rpr_new"));
    wd.write("users.csv", sheet(0..NEW, ""));
    let (r, cost) = measured(&sb, &wd, &[]).await;
    r.expect_code(0);
    assert!(
        r.stdout().contains(&format!("created={NEW}")),
        "{}",
        r.stdout()
    );
    assert!(cost.per_row(NEW) <= 1.05, "{} requests", cost.requests());
    assert_eq!(cost.of("POST /scim/v2/Users 201"), NEW as u64);
    assert_eq!(user_names_once(&sb).len(), NEW);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_of_existing_users_looks_up_first() {
    let sb = scim().await;
    let wd = Arc::new(Workdir::new("rpr_existing"));
    wd.write("users.csv", sheet(0..200, ""));
    run(&wd, &sb.base_url(), &["--state", "first"])
        .await
        .expect_code(0);
    // Another state (as another machine would have): nothing is known, most users exist.
    wd.write("users.csv", sheet(0..210, "b"));
    let (r, cost) = measured(&sb, &wd, &["--state", "second"]).await;
    r.expect_code(0);
    assert!(
        r.stdout().contains("created=10 updated=200"),
        "{}",
        r.stdout()
    );
    let per_row = cost.per_row(210);
    assert!((1.9..=2.2).contains(&per_row), "{per_row} requests per row");
    // Only the first rows (those in flight before any answer) tried a create first.
    assert!(cost.of("POST /scim/v2/Users 409") <= 16, "{}", cost.after);
    assert_eq!(user_names_once(&sb).len(), 210);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_users_are_updated_without_a_lookup() {
    let sb = scim().await;
    let wd = Arc::new(Workdir::new("rpr_known"));
    wd.write("users.csv", sheet(0..100, ""));
    run(&wd, &sb.base_url(), &[]).await.expect_code(0);
    wd.write("users.csv", sheet(0..100, "b"));
    let (r, cost) = measured(&sb, &wd, &[]).await;
    r.expect_code(0);
    assert!(r.stdout().contains("updated=100"), "{}", r.stdout());
    assert!(cost.per_row(100) <= 1.05, "{} requests", cost.requests());
    assert_eq!(cost.of("PATCH /scim/v2/Users/{id} 200"), 100);
    assert_eq!(cost.of("GET "), 0);
    assert!(sb.users().iter().all(|u| u["name"]["givenName"]
        .as_str()
        .is_some_and(|g| g.ends_with('b'))));

    // --full still knows the users: one request a row.
    let (r, cost) = measured(&sb, &wd, &["--full"]).await;
    r.expect_code(0);
    assert_eq!(cost.requests(), 100);

    // The same state against another target (base URL) knows nobody there.
    let other = scim().await;
    let (r, cost) = measured(&other, &wd, &[]).await;
    r.expect_code(0);
    assert!(r.stdout().contains("created=100"), "{}", r.stdout());
    assert_eq!(cost.of("PATCH "), 0);
    assert_eq!(cost.requests(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deleted_between_runs_is_created_again() {
    let sb = scim().await;
    let wd = Arc::new(Workdir::new("rpr_deleted"));
    wd.write("users.csv", sheet(0..20, ""));
    run(&wd, &sb.base_url(), &[]).await.expect_code(0);
    let gone = sb
        .users()
        .into_iter()
        .find(|u| u["userName"] == "user7@example.com")
        .expect("user7");
    let id = gone["id"].as_str().expect("an id").to_string();
    let url = format!("{}/Users/{id}", sb.base_url());
    let deleted = tokio::task::spawn_blocking(move || {
        // reqwest is built without a crypto provider of its own (enlist brings ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::blocking::Client::new()
            .delete(url)
            .bearer_auth("sandbox-token")
            .send()
            .expect("delete")
            .status()
    })
    .await
    .expect("join");
    assert!(deleted.is_success(), "{deleted}");

    wd.write("users.csv", sheet(0..20, "b"));
    let (r, cost) = measured(&sb, &wd, &["--report", "out.jsonl"]).await;
    r.expect_code(0);
    let outs = outcomes(&wd.path("out.jsonl"));
    assert_eq!(outs["user7@example.com"]["status"], "created");
    assert_ne!(outs["user7@example.com"]["remote_id"], id.as_str());
    assert_eq!(outs["user3@example.com"]["status"], "updated");
    // 19 updates, and for user7: the update (404), the lookup, the create.
    assert_eq!(cost.requests(), 22);
    assert_eq!(cost.of("PATCH /scim/v2/Users/{id} 404"), 1);
    assert_eq!(user_names_once(&sb).len(), 20);

    // The journal now holds the new id: the next change is one request again.
    wd.write("users.csv", sheet(0..20, "c"));
    let (r, cost) = measured(&sb, &wd, &[]).await;
    r.expect_code(0);
    assert_eq!(cost.requests(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_first_can_be_forced() {
    let sb = scim().await;
    let wd = Arc::new(Workdir::new("rpr_lookup_first"));
    wd.write("users.csv", sheet(0..50, ""));
    let (r, cost) = measured(&sb, &wd, &["--upsert-order", "lookup-first"]).await;
    r.expect_code(0);
    assert!(r.stdout().contains("created=50"), "{}", r.stdout());
    assert_eq!(cost.of("GET /scim/v2/Users 200"), 50);
    assert_eq!(cost.of("POST /scim/v2/Users 201"), 50);
    assert_eq!(cost.requests(), 100);
}

/// The SCIM profile as shipped, without its create's conflict rule: a target that would
/// accept a second user with the same userName, as far as enlist can know.
fn profile_without_conflict_rule(wd: &Workdir) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/");
    let toml = std::fs::read_to_string(format!("{dir}scim.toml")).expect("scim.toml");
    assert!(toml.contains("conflict = [409]\n"));
    let toml = toml
        .replace("conflict = [409]\n", "")
        .replace("name = \"scim\"", "name = \"lenient\"");
    wd.write("lenient.toml", toml);
    wd.write(
        "scim.user.json",
        std::fs::read(format!("{dir}scim.user.json")).expect("scim.user.json"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_without_a_conflict_rule_never_creates_first() {
    let sb = scim().await;
    let wd = Arc::new(Workdir::new("rpr_no_conflict_rule"));
    profile_without_conflict_rule(&wd);
    wd.write("users.csv", sheet(0..20, ""));
    let refused = run(
        &wd,
        &sb.base_url(),
        &[
            "--profile",
            "lenient.toml",
            "--upsert-order",
            "create-first",
        ],
    )
    .await;
    refused.expect_code(2);
    assert!(
        refused.stderr().contains("no conflict rule"),
        "{}",
        refused.stderr()
    );
    assert_eq!(sb.stats()["requests"], 0, "nothing sent");

    let (r, cost) = measured(&sb, &wd, &["--profile", "lenient.toml"]).await;
    r.expect_code(0);
    assert_eq!(cost.of("GET /scim/v2/Users 200"), 20);
    // Half exist now, under another state: still looked up first, never created twice.
    wd.write("users.csv", sheet(10..30, "b"));
    let (r, cost) = measured(&sb, &wd, &["--profile", "lenient.toml", "--state", "other"]).await;
    r.expect_code(0);
    assert!(
        r.stdout().contains("created=10 updated=10"),
        "{}",
        r.stdout()
    );
    assert_eq!(cost.of("GET /scim/v2/Users 200"), 20);
    assert_eq!(cost.of("POST /scim/v2/Users 409"), 0);
    assert_eq!(user_names_once(&sb).len(), 30);
}

/// The built-in profiles that can upsert, against their sandboxes: every user of the sample
/// sheet exists already (created under another state), and creating first must still end
/// each row updated, never failed and never a second user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_first_is_safe_on_every_built_in_profile_that_upserts() {
    let kinds = [
        (
            SandboxKind::Odin,
            "ENLIST_ODIN_USERNAME",
            "ENLIST_ODIN_PASSWORD",
        ),
        (
            SandboxKind::SuperOffice,
            "ENLIST_SUPEROFFICE_USERNAME",
            "ENLIST_SUPEROFFICE_PASSWORD",
        ),
        (SandboxKind::Scim, "ENLIST_SCIM_TOKEN", ""),
    ];
    for (kind, user_env, password_env) in kinds {
        let sb = start(SandboxConfig {
            kind,
            ..Default::default()
        })
        .await
        .expect("sandbox");
        let wd = Arc::new(Workdir::new(&format!("rpr_safe_{}", kind.name())));
        let sample = std::fs::read(format!(
            "{}/samples/{}.csv",
            env!("CARGO_MANIFEST_DIR"),
            kind.name()
        ))
        .expect("sample");
        wd.write("users.csv", sample);
        let run_as = |state: &'static str, report: &'static str| {
            let (wd, url) = (wd.clone(), sb.base_url());
            let mut c = wd.command(&[
                "run",
                "users.csv",
                "--profile",
                kind.name(),
                "--base-url",
                &url,
                "--progress",
                "never",
                "--rate",
                "1000",
                "--mode",
                "upsert",
                "--state",
                state,
                "--report",
                report,
                "--upsert-order",
                "create-first",
            ]);
            if password_env.is_empty() {
                c.env(user_env, "sandbox-token");
            } else {
                c.env(user_env, "admin").env(password_env, "sandbox");
            }
            tokio::task::spawn_blocking(move || c.output().expect("run enlist"))
        };
        // The samples' deliberate mistakes make both runs exit 1.
        let first = run_as("first", "first.jsonl").await.expect("join");
        assert_eq!(first.status.code(), Some(1), "{kind:?}");
        let created: Vec<String> = outcomes(&wd.path("first.jsonl"))
            .into_iter()
            .filter(|(_, o)| o["status"] == "created")
            .map(|(k, _)| k)
            .collect();
        assert!(!created.is_empty(), "{kind:?}");
        let users = sb.users().len();
        let before = sb.stats();
        let again = run_as("again", "again.jsonl").await.expect("join");
        assert_eq!(again.status.code(), Some(1), "{kind:?}");
        let outs = outcomes(&wd.path("again.jsonl"));
        for k in &created {
            assert_eq!(outs[k]["status"], "updated", "{kind:?} {k}: {}", outs[k]);
        }
        assert_eq!(sb.users().len(), users, "{kind:?}: no second user");
        let conflicts = refused_posts(&sb.stats()) - refused_posts(&before);
        assert!(conflicts >= created.len() as u64, "{kind:?}: created first");
    }
}

/// POSTs the sandbox answered with neither 200 nor 201 (a create's conflict).
fn refused_posts(stats: &Value) -> u64 {
    stats["by_path_status"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    k.starts_with("POST ") && !k.ends_with(" 201") && !k.ends_with(" 200")
                })
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// A profile whose conflict rule misses the status the target really uses for a duplicate
/// (it says 409; the SuperOffice sandbox answers 400): creating first meets a refusal the
/// profile does not call a conflict, and the row looks the user up before failing, so an
/// existing user is still updated, as looking up first would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_refused_for_another_reason_looks_before_failing_the_row() {
    let sb = start(SandboxConfig {
        kind: SandboxKind::SuperOffice,
        ..Default::default()
    })
    .await
    .expect("sandbox");
    let wd = Arc::new(Workdir::new("rpr_misdeclared_conflict"));
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/");
    let toml = std::fs::read_to_string(format!("{dir}superoffice.toml")).expect("toml");
    let rule = "conflict = [400, 409]\nconflict_match = \"(?i)already in use|already exists\"\n";
    assert!(toml.contains(rule));
    wd.write(
        "so409.toml",
        toml.replace(rule, "conflict = [409]\n")
            .replace("name = \"superoffice\"", "name = \"so409\""),
    );
    wd.write(
        "superoffice.user.json",
        std::fs::read(format!("{dir}superoffice.user.json")).expect("body"),
    );
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/superoffice.csv");
    wd.write("users.csv", std::fs::read(sample).expect("sample"));
    let go = |state: &'static str, report: &'static str| {
        let (wd, url) = (wd.clone(), sb.base_url());
        let mut c = wd.command(&[
            "run",
            "users.csv",
            "--profile",
            "so409.toml",
            "--base-url",
            &url,
            "--progress",
            "never",
            "--mode",
            "upsert",
            "--state",
            state,
            "--report",
            report,
            "--upsert-order",
            "create-first",
        ]);
        c.env("ENLIST_SUPEROFFICE_USERNAME", "admin")
            .env("ENLIST_SUPEROFFICE_PASSWORD", "sandbox");
        tokio::task::spawn_blocking(move || Run {
            output: c.output().expect("run enlist"),
        })
    };
    // The sample's deliberate mistakes make both runs exit 1.
    go("first", "first.jsonl")
        .await
        .expect("join")
        .expect_code(1);
    let created: Vec<String> = outcomes(&wd.path("first.jsonl"))
        .into_iter()
        .filter(|(_, o)| o["status"] == "created")
        .map(|(k, _)| k)
        .collect();
    assert!(!created.is_empty());
    let users = sb.users().len();
    go("again", "again.jsonl")
        .await
        .expect("join")
        .expect_code(1);
    let outs = outcomes(&wd.path("again.jsonl"));
    for k in &created {
        assert_eq!(outs[k]["status"], "updated", "{k}: {}", outs[k]);
    }
    assert_eq!(sb.users().len(), users, "no second user");
}
