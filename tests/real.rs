//! Provisioning into servers nobody on this project wrote: scim2-server and PocketBase, started
//! on 127.0.0.1 by `.ci/servers.sh` (which `.ci/run` calls). Each test checks the server's own
//! state afterwards, not just enlist's exit code.
//!
//! Without the servers (a plain `cargo test` on a fresh machine) these tests say so and pass;
//! `.ci/run` sets `ENLIST_REQUIRE_REAL_SERVERS=1`, under which a missing server is a failure.

use std::collections::HashMap;

use serde_json::Value;

use crate::workdir::Workdir;

/// The server's base URL from `var`, or `None` (skip) when the servers were not started.
pub(crate) fn server(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("ENLIST_REQUIRE_REAL_SERVERS").is_none(),
                "{var} is not set: start the servers with `eval \"$(.ci/servers.sh start)\"`"
            );
            eprintln!("skipped: {var} not set (eval \"$(.ci/servers.sh start)\" to run this test)");
            None
        }
    }
}

/// A prefix unique to this test run, so reruns against the same server do not collide.
pub(crate) fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("t{}x{}", t % 100_000_000, std::process::id() % 1000)
}

fn outcomes(wd: &Workdir, name: &str) -> Vec<Value> {
    wd.read(name)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("status").is_some())
        .collect()
}

fn count_by_status(o: &[Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for v in o {
        *m.entry(v["status"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    m
}

pub(crate) fn scim_users(base: &str, token: &str, prefix: &str) -> Vec<Value> {
    let client = blocking_client();
    let url = format!("{base}/Users");
    let v: Value = client
        .get(url)
        .query(&[
            ("filter", format!("userName sw \"{prefix}\"")),
            ("count", "1000".into()),
        ])
        .bearer_auth(token)
        .send()
        .expect("list users")
        .json()
        .expect("json");
    v["Resources"].as_array().cloned().unwrap_or_default()
}

#[test]
fn scim2_server_create_then_update_from_an_edited_sheet() {
    let Some(base) = server("ENLIST_TEST_SCIM_URL") else {
        return;
    };
    let token = std::env::var("ENLIST_TEST_SCIM_TOKEN").unwrap_or_else(|_| "s3cret".into());
    let wd = Workdir::new("real_scim");
    let p = nonce();
    let sheet = |title_for: &dyn Fn(usize) -> String| {
        let mut s = String::from("userName,givenName,familyName,email,title\n");
        for i in 0..60 {
            s.push_str(&format!(
                "{p}-u{i},Given{i},Family{i},{p}-u{i}@example.com,{}\n",
                title_for(i)
            ));
        }
        s
    };
    wd.write("users.csv", sheet(&|_| "Engineer".to_string()));
    let run = wd
        .command(&[
            "run",
            "users.csv",
            "--profile",
            "scim",
            "--base-url",
            &base,
            "--concurrency",
            "4",
            "--rate",
            "200",
            "--report-format",
            "jsonl",
            "--report",
            "first.jsonl",
            "--fresh",
        ])
        .env("ENLIST_SCIM_TOKEN", &token)
        .output()
        .expect("run");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let first = outcomes(&wd, "first.jsonl");
    assert_eq!(
        count_by_status(&first).get("created"),
        Some(&60),
        "{:?}",
        count_by_status(&first)
    );
    let users = scim_users(&base, &token, &p);
    assert_eq!(users.len(), 60, "every user exactly once on the server");
    assert!(users.iter().all(|u| u["title"] == "Engineer"));

    // Edit ten rows and run again: the server is updated, nobody is created twice.
    wd.write(
        "users.csv",
        sheet(&|i| {
            if i < 10 {
                "Manager".into()
            } else {
                "Engineer".into()
            }
        }),
    );
    let run = wd
        .command(&[
            "run",
            "users.csv",
            "--profile",
            "scim",
            "--base-url",
            &base,
            "--concurrency",
            "4",
            "--rate",
            "200",
            "--report-format",
            "jsonl",
            "--report",
            "second.jsonl",
            "--full",
        ])
        .env("ENLIST_SCIM_TOKEN", &token)
        .output()
        .expect("run");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let second = count_by_status(&outcomes(&wd, "second.jsonl"));
    assert_eq!(second.get("updated"), Some(&60), "{second:?}");
    let users = scim_users(&base, &token, &p);
    assert_eq!(users.len(), 60);
    let managers = users.iter().filter(|u| u["title"] == "Manager").count();
    assert_eq!(managers, 10);

    // Create-only against users that exist: `exists`, never a second user.
    let run = wd
        .command(&[
            "run",
            "users.csv",
            "--profile",
            "scim",
            "--base-url",
            &base,
            "--mode",
            "create",
            "--report-format",
            "jsonl",
            "--report",
            "third.jsonl",
            "--full",
        ])
        .env("ENLIST_SCIM_TOKEN", &token)
        .output()
        .expect("run");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let third = count_by_status(&outcomes(&wd, "third.jsonl"));
    assert_eq!(third.get("exists"), Some(&60), "{third:?}");
    assert_eq!(scim_users(&base, &token, &p).len(), 60);
}

pub(crate) fn pocketbase_people(base: &str, user: &str, pass: &str, prefix: &str) -> Vec<Value> {
    let client = blocking_client();
    let login: Value = client
        .post(format!(
            "{base}/collections/provisioners/auth-with-password"
        ))
        .json(&serde_json::json!({"identity": user, "password": pass}))
        .send()
        .expect("login")
        .json()
        .expect("json");
    let token = login["token"].as_str().expect("token").to_string();
    let mut all = Vec::new();
    for page in 1..=20 {
        let v: Value = client
            .get(format!("{base}/collections/people/records"))
            .query(&[
                ("filter", format!("userName ~ '{prefix}%'")),
                ("perPage", "200".into()),
                ("page", page.to_string()),
            ])
            .header("Authorization", &token)
            .send()
            .expect("list")
            .json()
            .expect("json");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        all.extend(items);
    }
    all
}

#[test]
fn pocketbase_with_its_rate_limiter_on_gets_every_user_exactly_once() {
    let Some(base) = server("ENLIST_TEST_PB_URL") else {
        return;
    };
    let user = std::env::var("ENLIST_TEST_PB_USERNAME").expect("ENLIST_TEST_PB_USERNAME");
    let pass = std::env::var("ENLIST_TEST_PB_PASSWORD").expect("ENLIST_TEST_PB_PASSWORD");
    let wd = Workdir::new("real_pb");
    let p = nonce();
    let mut s = String::from("userName,email,givenName,familyName\n");
    for i in 0..220 {
        s.push_str(&format!(
            "{p}-p{i},{p}-p{i}@example.com,Given{i},Family{i}\n"
        ));
    }
    wd.write("people.csv", &s);
    // Send faster than the server's create limit (20 per second) so it answers with real 429s:
    // twice the limit. A 429 uses up no attempt, so no row fails for it (other tests may
    // create people on the same server at the same time, all from 127.0.0.1).
    let run = wd
        .command(&[
            "run",
            "people.csv",
            "--profile",
            "pocketbase",
            "--base-url",
            &base,
            "--rate",
            "40",
            "--concurrency",
            "8",
            "--report-format",
            "jsonl",
            "--report",
            "pb.jsonl",
            "--fresh",
        ])
        .env("ENLIST_POCKETBASE_USERNAME", &user)
        .env("ENLIST_POCKETBASE_PASSWORD", &pass)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let o = outcomes(&wd, "pb.jsonl");
    let counts = count_by_status(&o);
    assert_eq!(counts.get("created"), Some(&220), "{counts:?}");
    assert!(
        !stdout.contains("throttled=0 "),
        "the server should have throttled us: {stdout}"
    );
    let people = pocketbase_people(&base, &user, &pass, &p);
    assert_eq!(people.len(), 220, "every user present exactly once");
    let mut names: Vec<&str> = people
        .iter()
        .filter_map(|v| v["userName"].as_str())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 220);
}

/// reqwest is built without a crypto provider of its own (enlist brings ring).
pub(crate) fn blocking_client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::new()
}
