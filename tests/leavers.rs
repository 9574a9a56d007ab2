//! Leavers: a nightly run that also offboards (`--leavers`), with its guards, checked with
//! the real binary against the embedded SCIM sandbox, whose users are read back each day
//! through its HTTP API.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use enlist::sandbox::{start, RunningSandbox, SandboxConfig, SandboxKind};

use crate::workdir::{counted, outcomes, Run, Workdir};

async fn scim() -> Arc<RunningSandbox> {
    sandbox(SandboxKind::Scim).await
}

async fn sandbox(kind: SandboxKind) -> Arc<RunningSandbox> {
    let sb = start(SandboxConfig {
        kind,
        seed: 17,
        ..Default::default()
    })
    .await
    .expect("sandbox");
    Arc::new(sb)
}

/// A SCIM sheet of users `user{i}@example.com` for each `i` in `ids`.
fn sheet(ids: impl IntoIterator<Item = usize>) -> String {
    let mut s = String::from("userName,givenName,familyName\n");
    for i in ids {
        s.push_str(&format!("user{i}@example.com,Given{i},Family{i}\n"));
    }
    s
}

/// `enlist run users.csv --profile scim` (as the nightly tests run it) with a state and a
/// JSON lines report `report`.
async fn run(
    wd: &Arc<Workdir>,
    url: &str,
    report: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let line = format!(
        "run users.csv --profile scim --progress never --rate 5000 --state state --report {report}"
    );
    let mut env = env.to_vec();
    env.push(("ENLIST_SCIM_TOKEN", "sandbox-token"));
    enlist(wd, &line, url, extra, &env).await
}

/// The sandbox's users through its HTTP API: userName → active.
async fn target(sb: &RunningSandbox) -> BTreeMap<String, bool> {
    let root = sb.base_url().replace("/scim/v2", "");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let users: Value = reqwest::get(format!("{root}/_sandbox/state"))
        .await
        .expect("sandbox state")
        .json()
        .await
        .expect("JSON");
    users
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| {
            let active = u["active"] != Value::Bool(false) && u["active"] != "false";
            (u["userName"].as_str().unwrap_or("").to_string(), active)
        })
        .collect()
}

fn name(i: usize) -> String {
    format!("user{i}@example.com")
}

fn by_status(outs: &BTreeMap<String, Value>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in outs.values() {
        *m.entry(o["status"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nightly_sync_disables_holds_re_enables_and_deletes() {
    let sb = scim().await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("leavers_nightly"));
    let leavers = ["--leavers", "disable"];

    // Day 1: 200 joiners.
    wd.write("users.csv", sheet(0..200));
    run(&wd, &url, "day1.jsonl", &leavers, &[])
        .await
        .expect_code(0);
    let users = target(&sb).await;
    assert_eq!(users.len(), 200);
    assert!(users.values().all(|a| *a));

    // Day 2: ten people left.
    wd.write("users.csv", sheet(0..190));
    let day2 = run(
        &wd,
        &url,
        "day2.jsonl",
        &["--leavers", "disable", "--report-format", "csv"],
        &[],
    )
    .await;
    day2.expect_code(0);
    let outs = outcomes(&wd.path("day2.jsonl"));
    let counts = by_status(&outs);
    assert_eq!(counts.get("disabled"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("unchanged"), Some(&190), "{counts:?}");
    let leaver = &outs[&name(195)];
    assert_eq!(leaver["row"], 0, "a leaver has no source row: {leaver}");
    assert!(day2.stdout().contains("disabled=10"), "{}", day2.stdout());
    // In the CSV report a leaver shows its key in the key column and no source row.
    let csv = wd.read("users.outcome.csv");
    let line = csv
        .lines()
        .find(|l| l.starts_with("user195@example.com,"))
        .expect("the leaver's line");
    assert!(
        line.starts_with("user195@example.com,,,disabled,disable,"),
        "{line}"
    );
    assert!(line.ends_with(','), "no source row: {line}");
    let users = target(&sb).await;
    assert_eq!(users.len(), 200, "disabled, not deleted");
    for i in 0..200 {
        assert_eq!(users[&name(i)], i < 190, "{}", name(i));
    }

    // Day 3: a truncated export (half the sheet) must not disable half the company.
    wd.write("users.csv", sheet(0..100));
    let day3 = run(&wd, &url, "day3.jsonl", &leavers, &[]).await;
    day3.expect_code(1);
    assert!(
        day3.stderr()
            .contains("over the cap: 90 users left the sheet"),
        "{}",
        day3.stderr()
    );
    let counts = by_status(&outcomes(&wd.path("day3.jsonl")));
    assert_eq!(counts.get("held"), Some(&90), "{counts:?}");
    assert_eq!(counts.get("disabled"), None, "{counts:?}");
    let users = target(&sb).await;
    assert_eq!(users.values().filter(|a| **a).count(), 190);

    // Day 4: one leaver is back.
    let mut back: Vec<usize> = (0..190).collect();
    back.push(195);
    wd.write("users.csv", sheet(back.clone()));
    let day4 = run(&wd, &url, "day4.jsonl", &leavers, &[]).await;
    day4.expect_code(0);
    let outs = outcomes(&wd.path("day4.jsonl"));
    assert_eq!(
        outs[&name(195)]["status"],
        "re-enabled",
        "{:?}",
        outs[&name(195)]
    );
    assert_eq!(by_status(&outs).get("disabled"), None);
    let users = target(&sb).await;
    assert!(users[&name(195)]);
    assert_eq!(users.values().filter(|a| **a).count(), 191);

    // A day later nothing is deleted yet: the others were disabled only just now.
    let deletes = |sb: &RunningSandbox| counted(&sb.stats(), "DELETE /scim/v2/Users");
    let early = run(&wd, &url, "day5.jsonl", &["--leavers", "delete"], &[]).await;
    early.expect_code(0);
    assert_eq!(deletes(&sb), 0);

    // After --delete-after days, the nine still gone are deleted.
    let later = (chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339();
    let day36 = run(
        &wd,
        &url,
        "day36.jsonl",
        &["--leavers", "delete", "--delete-after", "30"],
        &[("ENLIST_TEST_NOW", &later)],
    )
    .await;
    day36.expect_code(0);
    let counts = by_status(&outcomes(&wd.path("day36.jsonl")));
    assert_eq!(counts.get("deleted"), Some(&9), "{counts:?}");
    let users = target(&sb).await;
    assert_eq!(users.len(), 191);
    assert!(users.values().all(|a| *a));
    assert!(users.contains_key(&name(195)) && !users.contains_key(&name(196)));

    // And the deleted are nobody's leavers any more.
    let quiet = run(
        &wd,
        &url,
        "day37.jsonl",
        &["--leavers", "delete"],
        &[("ENLIST_TEST_NOW", &later)],
    )
    .await;
    quiet.expect_code(0);
    assert_eq!(
        by_status(&outcomes(&wd.path("day37.jsonl"))).get("unchanged"),
        Some(&191)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_holds_every_leaver_until_it_is_raised() {
    let sb = scim().await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("leavers_cap"));
    wd.write("users.csv", sheet(0..40));
    run(&wd, &url, "d1.jsonl", &[], &[]).await.expect_code(0);

    // Three leavers of 40: the default cap (5 %) allows 2.
    wd.write("users.csv", sheet(0..37));
    let held = run(&wd, &url, "d2.jsonl", &["--leavers", "disable"], &[]).await;
    held.expect_code(1);
    assert!(
        held.stderr().contains("--max-leavers 5% allows 2"),
        "{}",
        held.stderr()
    );
    assert!(target(&sb).await.values().all(|a| *a), "nothing disabled");
    let outs = outcomes(&wd.path("d2.jsonl"));
    assert_eq!(outs[&name(38)]["status"], "held");
    assert!(outs[&name(38)]["message"]
        .as_str()
        .unwrap_or("")
        .starts_with("over the cap"));

    // They really left: the operator raises the cap for this run.
    let raised = run(
        &wd,
        &url,
        "d3.jsonl",
        &["--leavers", "disable", "--max-leavers", "3"],
        &[],
    )
    .await;
    raised.expect_code(0);
    let users = target(&sb).await;
    assert_eq!(users.values().filter(|a| !**a).count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_users_are_never_touched() {
    let sb = scim().await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("leavers_protect"));
    wd.write("users.csv", sheet(0..40));
    run(&wd, &url, "d1.jsonl", &[], &[]).await.expect_code(0);

    // user1, user10 and user2 leave; the protect list names user1* (a pattern).
    wd.write("protect.txt", "# service accounts\nUSER1*@example.com\n");
    wd.write(
        "users.csv",
        sheet((0..40).filter(|i| ![1, 2, 10].contains(i))),
    );
    let r = run(
        &wd,
        &url,
        "d2.jsonl",
        &["--leavers", "disable", "--protect", "protect.txt"],
        &[],
    )
    .await;
    r.expect_code(0);
    let outs = outcomes(&wd.path("d2.jsonl"));
    assert_eq!(outs[&name(1)]["status"], "protected");
    assert_eq!(outs[&name(10)]["status"], "protected");
    assert_eq!(outs[&name(2)]["status"], "disabled");
    let users = target(&sb).await;
    assert!(users[&name(1)] && users[&name(10)]);
    assert!(!users[&name(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_with_many_invalid_rows_never_triggers_leavers() {
    let sb = scim().await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("leavers_invalid"));
    wd.write("users.csv", sheet(0..100));
    run(&wd, &url, "d1.jsonl", &[], &[]).await.expect_code(0);

    // One person left, and the export lost the given names of three others (3 % invalid).
    let mut text = sheet(0..99);
    for i in [5, 6, 7] {
        text = text.replace(&format!(",Given{i},"), ",,");
    }
    wd.write("users.csv", &text);
    let r = run(
        &wd,
        &url,
        "d2.jsonl",
        &["--leavers", "disable", "--max-leavers", "10"],
        &[],
    )
    .await;
    r.expect_code(1);
    assert!(
        r.stderr().contains("the sheet has 3 invalid rows of 99"),
        "{}",
        r.stderr()
    );
    let outs = outcomes(&wd.path("d2.jsonl"));
    assert_eq!(outs[&name(99)]["status"], "held");
    // The people on the invalid rows are in the sheet: never leavers.
    assert_eq!(outs[&name(5)]["status"], "invalid");
    assert!(target(&sb).await.values().all(|a| *a));

    // With the sheet fixed, the leaver is disabled.
    wd.write("users.csv", sheet(0..99));
    run(&wd, &url, "d3.jsonl", &["--leavers", "disable"], &[])
        .await
        .expect_code(0);
    assert!(!target(&sb).await[&name(99)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_lists_the_leavers_against_the_cap_and_sends_nothing() {
    let sb = scim().await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("leavers_check"));
    wd.write("users.csv", sheet(0..40));
    run(&wd, &url, "d1.jsonl", &[], &[]).await.expect_code(0);
    wd.write("users.csv", sheet(0..38));
    let before = sb.stats()["requests"].as_u64().unwrap_or(0);
    let w = wd.clone();
    let u = url.clone();
    let check = tokio::task::spawn_blocking(move || {
        w.run(&[
            "check",
            "users.csv",
            "--profile",
            "scim",
            "--base-url",
            &u,
            "--state",
            "state",
            "--leavers",
            "disable",
        ])
    })
    .await
    .expect("join");
    check.expect_code(0);
    let out = check.stdout();
    assert!(
        out.contains("leavers: 2 of 40 managed users left the sheet; 2 would be disabled or deleted (the cap allows 2)"),
        "{out}"
    );
    assert!(
        out.contains("user39@example.com: would be disabled"),
        "{out}"
    );
    assert_eq!(sb.stats()["requests"].as_u64().unwrap_or(0), before);
    assert!(target(&sb).await.values().all(|a| *a));
}

// ---- the same, shorter, against servers nobody on this project wrote (see tests/real.rs) ----

/// `enlist run users.csv` with `profile` against a real server, state in `state`.
fn run_real(
    wd: &Workdir,
    profile: &str,
    base: &str,
    report: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let mut args = vec!["--state", "state", "--concurrency", "4"];
    args.extend_from_slice(extra);
    crate::real_more::run_any(wd, profile, base, report, env, &args)
}

/// The leavers sequence on a real server: `users(prefix)` reads its users back as
/// (name, active). Forty users; two leave and are disabled; a sheet cut to half is held;
/// one comes back and is enabled; after --delete-after the other is deleted.
fn real_sequence(
    wd: &Workdir,
    profile: &str,
    base: &str,
    env: &[(&str, &str)],
    users: &dyn Fn(&str) -> BTreeMap<String, bool>,
) {
    let p = crate::real::nonce();
    let name = |i: usize| format!("{p}-u{i}");
    let write = |ids: &[usize]| {
        let mut s = String::from("userName,givenName,familyName\n");
        for i in ids {
            s.push_str(&format!("{},Given{i},Family{i}\n", name(*i)));
        }
        wd.write("users.csv", s);
    };
    let all: Vec<usize> = (0..40).collect();
    let leavers = ["--leavers", "disable"];
    write(&all);
    run_real(wd, profile, base, "d1.jsonl", &leavers, env).expect_code(0);
    assert_eq!(users(&p).len(), 40);

    write(&all[..38]);
    run_real(wd, profile, base, "d2.jsonl", &leavers, env).expect_code(0);
    let now = users(&p);
    assert_eq!(now.len(), 40);
    assert!(
        !now[&name(38)] && !now[&name(39)] && now[&name(37)],
        "{now:?}"
    );

    write(&all[..20]);
    let held = run_real(wd, profile, base, "d3.jsonl", &leavers, env);
    held.expect_code(1);
    assert!(held.stderr().contains("over the cap"), "{}", held.stderr());
    assert_eq!(users(&p).values().filter(|a| **a).count(), 38);

    let mut back = all[..38].to_vec();
    back.push(39);
    write(&back);
    run_real(wd, profile, base, "d4.jsonl", &leavers, env).expect_code(0);
    assert_eq!(
        outcomes(&wd.path("d4.jsonl"))[&name(39)]["status"],
        "re-enabled"
    );
    assert!(users(&p)[&name(39)]);

    // The target's own list, read in pages of 7 (the profile's list request with a smaller
    // page): without user 0 in the sheet, `check --leavers-scope target` finds it among
    // every user the server lists, past the first pages, and sends nothing else.
    let shown = wd.run(&["profiles", "show", profile, "--out", "prof"]);
    shown.expect_code(0);
    let toml = wd.path(&format!("prof/{profile}.toml"));
    let text = std::fs::read_to_string(&toml).expect("profile written");
    std::fs::write(&toml, text.replace("limit = 100,", "limit = 7,")).expect("rewrite");
    write(&back[1..]);
    let toml = toml.to_string_lossy().into_owned();
    let mut check = wd.command(&[
        "check",
        "users.csv",
        "--profile",
        &toml,
        "--base-url",
        base,
        "--state",
        "state",
        "--leavers",
        "disable",
        "--leavers-scope",
        "target",
        "--max-leavers",
        "100%",
    ]);
    for (k, v) in env {
        check.env(k, v);
    }
    let out = check.output().expect("run enlist");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("{}: would be disabled", name(0))),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!said.contains(&format!("{}: would", name(1))), "{said}");
    assert!(users(&p)[&name(0)], "check changed nothing");
    write(&back);

    let later = (chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339();
    let mut env = env.to_vec();
    env.push(("ENLIST_TEST_NOW", &later));
    run_real(
        wd,
        profile,
        base,
        "d5.jsonl",
        &["--leavers", "delete"],
        &env,
    )
    .expect_code(0);
    assert_eq!(
        outcomes(&wd.path("d5.jsonl"))[&name(38)]["status"],
        "deleted"
    );
    let now = users(&p);
    assert_eq!(now.len(), 39);
    assert!(
        !now.contains_key(&name(38)) && now.values().all(|a| *a),
        "{now:?}"
    );
}

#[test]
fn scim2_server_disables_re_enables_and_deletes_leavers() {
    let Some(base) = crate::real::server("ENLIST_TEST_SCIM_URL") else {
        return;
    };
    let token = std::env::var("ENLIST_TEST_SCIM_TOKEN").unwrap_or_else(|_| "s3cret".into());
    let wd = Workdir::new("leavers_real_scim");
    let users = |prefix: &str| {
        crate::real::scim_users(&base, &token, prefix)
            .iter()
            .map(|u| {
                let name = u["userName"].as_str().unwrap_or("").to_string();
                (name, u["active"] != Value::Bool(false))
            })
            .collect()
    };
    real_sequence(&wd, "scim", &base, &[("ENLIST_SCIM_TOKEN", &token)], &users);
}

#[test]
fn pocketbase_disables_re_enables_and_deletes_leavers() {
    let Some(base) = crate::real::server("ENLIST_TEST_PB_URL") else {
        return;
    };
    let user = std::env::var("ENLIST_TEST_PB_USERNAME").expect("ENLIST_TEST_PB_USERNAME");
    let pass = std::env::var("ENLIST_TEST_PB_PASSWORD").expect("ENLIST_TEST_PB_PASSWORD");
    let wd = Workdir::new("leavers_real_pb");
    let users = |prefix: &str| {
        crate::real::pocketbase_people(&base, &user, &pass, prefix)
            .iter()
            .map(|u| {
                let name = u["userName"].as_str().unwrap_or("").to_string();
                (name, u["active"] == Value::Bool(true))
            })
            .collect()
    };
    let env = [
        ("ENLIST_POCKETBASE_USERNAME", user.as_str()),
        ("ENLIST_POCKETBASE_PASSWORD", pass.as_str()),
    ];
    real_sequence(&wd, "pocketbase", &base, &env, &users);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_may_ask_to_disable_or_enable_its_user() {
    let sb = Arc::new(
        start(SandboxConfig {
            kind: SandboxKind::UsersApi,
            seed: 17,
            ..Default::default()
        })
        .await
        .expect("sandbox"),
    );
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("leavers_row_action"));
    let env = [
        ("ENLIST_USERS_API_USERNAME", "admin"),
        ("ENLIST_USERS_API_PASSWORD", "sandbox"),
    ];
    let send = |sheet: &'static str| {
        let (wd, url) = (wd.clone(), url.clone());
        async move {
            wd.write("users.csv", sheet);
            let w = wd.clone();
            tokio::task::spawn_blocking(move || {
                let mut c = w.command(&[
                    "run",
                    "users.csv",
                    "--profile",
                    "users-api",
                    "--base-url",
                    &url,
                    "--progress",
                    "never",
                    "--state",
                    "state",
                ]);
                c.envs(env);
                Run {
                    output: c.output().expect("run enlist"),
                }
            })
            .await
            .expect("join")
        }
    };
    let status = |sb: &RunningSandbox, email: &str| {
        sb.users()
            .iter()
            .find(|u| u["email"] == email)
            .map(|u| u["status"].as_str().unwrap_or("").to_string())
    };
    send("email,password,name\nann@example.com,Welcome1,Ann\nbob@example.com,Welcome1,Bob\n")
        .await
        .expect_code(0);
    // Only the key is needed to disable: the other cells may be empty.
    let r = send("email,password,name,action\nann@example.com,,,disable\nbob@example.com,,,skip\n")
        .await;
    r.expect_code(0);
    assert!(r.stdout().contains("disabled=1"), "{}", r.stdout());
    assert_eq!(status(&sb, "ann@example.com").as_deref(), Some("DISABLED"));
    assert_ne!(status(&sb, "bob@example.com").as_deref(), Some("DISABLED"));
    let r = send("email,password,name,action\nann@example.com,,,enable\n").await;
    r.expect_code(0);
    assert!(r.stdout().contains("re-enabled=1"), "{}", r.stdout());
    assert_eq!(status(&sb, "ann@example.com").as_deref(), Some("ENABLED"));
    // A sheet of the key and the action alone is enough to offboard: its lifecycle rows are
    // sent, a row that would create is invalid and names the missing columns.
    let r = send("email,action\nbob@example.com,disable\ncid@example.com,create\n").await;
    r.expect_code(1);
    assert!(r.stdout().contains("disabled=1 "), "{}", r.stdout());
    assert!(r.stdout().contains("invalid=1 "), "{}", r.stdout());
    let err = r.stderr();
    assert!(
        err.contains("the sheet lacks password, name, which profile users-api requires")
            && err.contains(
                "row 3, column password: the sheet has no such column, and a row that creates \
                 needs it"
            ),
        "{err}"
    );
    assert_eq!(status(&sb, "bob@example.com").as_deref(), Some("DISABLED"));
    assert_eq!(status(&sb, "cid@example.com"), None, "nothing created");
}

/// The leaver flags mean nothing without `--leavers`: given alone they are refused rather
/// than silently ignored (a nightly job that forgot `--leavers` must not look as if it ran it).
#[test]
fn leaver_flags_without_leavers_are_refused() {
    let wd = Workdir::new("leavers_flags_alone");
    wd.write("users.csv", sheet(0..2));
    for flag in [
        &["--leavers-scope", "target"][..],
        &["--max-leavers", "3"],
        &["--delete-after", "7"],
    ] {
        let mut args = vec!["run", "users.csv", "-p", "scim"];
        args.extend_from_slice(flag);
        let r = wd.run(&args);
        r.expect_code(2);
        assert!(r.stderr().contains("--leavers <ACTION>"), "{}", r.stderr());
    }
}

#[test]
fn a_leaver_request_may_name_only_the_key_and_the_remote_id() {
    let wd = Workdir::new("leavers_profile");
    let base = r#"
name = "t"
base_url_env = "U"
key = "userName"
[auth]
type = "none"
[requests.create]
method = "POST"
path = "/users"
body = { userName = "{{userName}}" }
remote_id = "/id"
[requests.disable]
method = "PATCH"
path = "/users/{{remote_id}}"
body = { active = false, who = "{{userName}}" }
[requests.enable]
method = "PATCH"
path = "/users/{{remote_id}}"
body = { active = true }
[[columns]]
name = "userName"
[[columns]]
name = "givenName"
"#;
    let check = |text: &str| {
        wd.write("t.toml", text);
        wd.write("users.csv", "userName,givenName\nann,Ann\n");
        wd.run(&["check", "users.csv", "--profile", "t.toml"])
    };
    check(base).expect_code(0);
    let r = check(&base.replace("who = \"{{userName}}\"", "who = \"{{givenName}}\""));
    r.expect_code(3);
    assert!(
        r.stderr()
            .contains("requests.disable.body uses {{givenName}}, which a leaver does not have"),
        "{}",
        r.stderr()
    );
    let r = check(&base.replace(
        "[requests.enable]\nmethod = \"PATCH\"\npath = \"/users/{{remote_id}}\"\nbody = { active = true }\n",
        "",
    ));
    r.expect_code(3);
    assert!(
        r.stderr()
            .contains("[requests.disable] needs [requests.enable]"),
        "{}",
        r.stderr()
    );
}

// ---- --leavers-scope target: every user the target lists ([requests.list]) ----

/// `enlist` with the words of `line`, `--base-url url`, then `extra`, and `env`; off the
/// runtime that serves the sandbox.
async fn enlist(
    wd: &Arc<Workdir>,
    line: &str,
    url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let args: Vec<String> = line
        .split_whitespace()
        .chain(["--base-url", url])
        .chain(extra.iter().copied())
        .map(str::to_string)
        .collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let wd = wd.clone();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = wd.command(&args);
        c.envs(env);
        Run {
            output: c.output().expect("run enlist"),
        }
    })
    .await
    .expect("join")
}

/// Creates a SCIM user directly on the sandbox, as another tool would.
async fn scim_user_outside(sb: &RunningSandbox, user_name: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let body = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
    });
    let r = reqwest::Client::new()
        .post(format!("{}/Users", sb.base_url()))
        .bearer_auth("sandbox-token")
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST /Users");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_scope_disables_users_made_outside_enlist_over_offset_pages() {
    let sb = scim().await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("leavers_scope_offset"));
    // Pages of 7: the 25 users span four pages, the five outsiders the last two.
    let profile = include_str!("../templates/scim.toml").replace("limit = 100,", "limit = 7,");
    wd.write("scim7.toml", profile);
    wd.write(
        "scim.user.json",
        include_str!("../templates/scim.user.json"),
    );
    wd.write("users.csv", sheet(0..20));
    let env = [("ENLIST_SCIM_TOKEN", "sandbox-token")];
    let run = "run users.csv --profile scim7.toml --progress never --state state";
    enlist(&wd, run, &url, &["--report", "d1.jsonl"], &env)
        .await
        .expect_code(0);
    for i in 100..105 {
        scim_user_outside(&sb, &name(i)).await;
    }
    let scope = "--leavers disable --leavers-scope target";
    let run = format!("{run} {scope}");

    // check: the listed users are the managed ones, the cap counts against them.
    let check =
        format!("check users.csv --profile scim7.toml --state state {scope} --max-leavers 20%");
    let c = enlist(&wd, &check, &url, &[], &env).await;
    c.expect_code(0);
    assert!(
        c.stdout().contains(
            "leavers: 5 of 25 managed users left the sheet; 5 would be disabled or deleted (the cap allows 5)"
        ),
        "{}",
        c.stdout()
    );
    assert!(c
        .stdout()
        .contains("user104@example.com: would be disabled"));

    // 10 % of the 25 listed users allows 2: all five are held.
    enlist(
        &wd,
        &run,
        &url,
        &["--max-leavers", "10%", "--report", "d2.jsonl"],
        &env,
    )
    .await
    .expect_code(1);
    assert_eq!(
        by_status(&outcomes(&wd.path("d2.jsonl"))).get("held"),
        Some(&5)
    );
    assert!(target(&sb).await.values().all(|a| *a));

    // 20 % allows 5 (of the 20 this state manages it would allow 4).
    let lists = |sb: &RunningSandbox| counted(&sb.stats(), "GET /scim/v2/Users");
    let before = lists(&sb);
    enlist(
        &wd,
        &run,
        &url,
        &["--max-leavers", "20%", "--report", "d3.jsonl"],
        &env,
    )
    .await
    .expect_code(0);
    assert_eq!(lists(&sb) - before, 4, "four pages of at most 7 users");
    let outs = outcomes(&wd.path("d3.jsonl"));
    assert_eq!(by_status(&outs).get("disabled"), Some(&5), "{outs:?}");
    let inactive: Vec<String> = target(&sb)
        .await
        .into_iter()
        .filter(|(_, a)| !a)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(inactive, (100..105).map(name).collect::<Vec<_>>());

    // The next night the five are still listed, but this state disabled them: they are not
    // disabled again (nor counted against the cap), so a strict cap passes.
    enlist(
        &wd,
        &run,
        &url,
        &["--max-leavers", "1", "--report", "d4.jsonl"],
        &env,
    )
    .await
    .expect_code(0);
    let outs = outcomes(&wd.path("d4.jsonl"));
    assert_eq!(by_status(&outs).get("disabled"), None, "{outs:?}");
    assert_eq!(by_status(&outs).get("held"), None, "{outs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_scope_reads_users_api_pages_by_cursor() {
    let sb = sandbox(SandboxKind::UsersApi).await;
    let url = sb.base_url();
    let wd = Arc::new(Workdir::new("leavers_scope_cursor"));
    let profile =
        include_str!("../templates/users-api.toml").replace("limit = \"100\"", "limit = \"7\"");
    wd.write("ua7.toml", profile);
    wd.write(
        "users-api.create.json",
        include_str!("../templates/users-api.create.json"),
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    for i in 0..10 {
        let body = serde_json::json!({"email": name(i), "password": "Secret-123x", "name": "N"});
        let r = http
            .post(format!("{url}/users/user"))
            .basic_auth("admin", Some("sandbox"))
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert!(r.status().is_success(), "{}", r.status());
    }
    let mut csv = String::from("email,password,name\n");
    for i in 0..3 {
        csv.push_str(&format!("{},Secret-123x,N\n", name(i)));
    }
    wd.write("users.csv", csv);
    let line = "run users.csv --profile ua7.toml --progress never --state state --report \
                r.jsonl --leavers disable --leavers-scope target --max-leavers 7";
    let env = [
        ("ENLIST_USERS_API_USERNAME", "admin"),
        ("ENLIST_USERS_API_PASSWORD", "sandbox"),
    ];
    let run = enlist(&wd, line, &url, &[], &env).await;
    run.expect_code(0);
    let users: Value = http
        .get(format!("{url}/users/user"))
        .basic_auth("admin", Some("sandbox"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let disabled: Vec<&str> = users["econtext"]["result"]["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| u["status"] == "DISABLED")
        .filter_map(|u| u["email"].as_str())
        .collect();
    let expected: Vec<String> = (3..10).map(name).collect();
    assert_eq!(disabled, expected, "{}", run.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_scope_follows_next_links_and_stops_on_a_repeated_one() {
    use crate::hostile_server::{json, serve};
    let pages = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = pages.clone();
    // The absolute link needs the server's own address, known once it listens.
    let own = Arc::new(std::sync::OnceLock::<String>::new());
    let address = own.clone();
    let base = serve(move |req| {
        let q = req.uri.query().unwrap_or("").to_string();
        seen.lock().expect("lock").push(q.clone());
        if !q.contains("group=staff") {
            return json(400, serde_json::json!({"error": "the filter is missing"}));
        }
        let people = |r: std::ops::Range<usize>| -> Vec<Value> {
            r.map(|i| serde_json::json!({"login": format!("p{i}"), "id": format!("id{i}")}))
                .collect()
        };
        // Page 1 links relatively, page 2 absolutely, page 3 to itself (a server bug).
        let (data, next) = if q.contains("page=3") {
            (people(10..12), "/people?group=staff&page=3".to_string())
        } else if q.contains("page=2") {
            let at = address.get().map_or("", String::as_str);
            (people(5..10), format!("{at}/people?group=staff&page=3"))
        } else {
            (people(0..5), "people?group=staff&page=2".to_string())
        };
        json(
            200,
            serde_json::json!({"data": data, "links": {"next": next}}),
        )
    });
    own.set(base.clone()).expect("set once");
    let wd = Arc::new(Workdir::new("leavers_scope_next_link"));
    wd.write(
        "t.toml",
        r#"name = "linked"
base_url_env = "LINKED_URL"
key = "login"
[auth]
type = "none"
[requests.create]
method = "POST"
path = "/people"
body = { login = "{{login}}" }
[requests.list]
path = "/people"
query = { group = "staff" }
items = "/data"
key = "/login"
remote_id = "/id"
paging = { kind = "next-link", pointer = "/links/next" }
[[columns]]
name = "login"
required = true
"#,
    );
    let csv: String = (0..10).map(|i| format!("p{i}\n")).collect();
    wd.write("users.csv", format!("login\n{csv}"));
    let line = "check users.csv --profile t.toml --state state --leavers report \
                --leavers-scope target --max-leavers 2";
    let c = enlist(&wd, line, &base, &[], &[]).await;
    c.expect_code(0);
    let out = c.stdout();
    assert!(
        out.contains("leavers: 2 of 12 managed users left the sheet"),
        "{out}\n{}",
        c.stderr()
    );
    assert!(
        out.contains("p11: skipped: left the sheet: would be disabled"),
        "{out}"
    );
    let asked = pages.lock().expect("lock").clone();
    assert_eq!(
        asked,
        ["group=staff", "group=staff&page=2", "group=staff&page=3"],
        "page 3 links to itself: the list ends there"
    );
}
