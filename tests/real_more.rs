//! Two more servers nobody on this project wrote, of API styles the other real tests do not
//! cover, started on 127.0.0.1 by `.ci/servers.sh`:
//! - Matrix Synapse's admin API: the user's Matrix ID in the path, one PUT that creates or
//!   modifies, a lookup that is a GET of the same path (404 when absent), a token from the
//!   Matrix client login;
//! - GNU Mailman 3's REST API: a create answered by 201 with only a `Location` header, the
//!   email address in the path for lookup and update, a duplicate refused with the same
//!   400 as a bad value, HTTP Basic auth.
//!
//! Each test provisions 120 users, edits 10 of them in the sheet, runs again (only those 10
//! are sent), runs a third time (nothing is sent), and checks the server's own state through
//! its own API after each step. Without the servers they say so and pass, as `real` does.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::real::{blocking_client, nonce, server};
use crate::workdir::{Run, Workdir};

const USERS: usize = 120;
/// The rows the second sheet edits.
const EDITED: usize = 10;

/// Runs `enlist run` on `users.csv` with `profile` against `base`, its report in `report`.
fn run(wd: &Workdir, profile: &str, base: &str, report: &str, env: &[(&str, &str)]) -> Run {
    run_with(wd, profile, base, report, env, &[])
}

/// [`run`] with more arguments (`--mode create --full`).
fn run_with(
    wd: &Workdir,
    profile: &str,
    base: &str,
    report: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Run {
    let run = run_any(wd, profile, base, report, env, extra);
    run.expect_code(0);
    run
}

/// [`run_with`] whatever its exit code.
pub(crate) fn run_any(
    wd: &Workdir,
    profile: &str,
    base: &str,
    report: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "run",
        "users.csv",
        "--profile",
        profile,
        "--base-url",
        base,
        "--rate",
        "100",
        "--report-format",
        "jsonl",
        "--report",
        report,
        "--progress",
        "never",
    ];
    args.extend_from_slice(extra);
    let mut cmd = wd.command(&args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run {
        output: cmd.output().expect("run enlist"),
    }
}

/// The statuses of a report's rows, counted.
fn statuses(wd: &Workdir, report: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for v in wd
        .read(report)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("status").is_some())
    {
        *m.entry(v["status"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    m
}

/// The closing `enlist summary:` line a run printed.
fn summary(run: &Run) -> String {
    run.stdout()
        .lines()
        .rfind(|l| l.starts_with("enlist summary:"))
        .unwrap_or_default()
        .to_string()
}

/// Where a test provisions: the profile, the server's base URL and the credentials' variables.
struct Target<'a> {
    profile: &'a str,
    base: &'a str,
    env: &'a [(&'a str, &'a str)],
    /// Requests a run sends before its rows: a token login's one, counted in the summary
    /// even when no row needs sending.
    logins: usize,
}

/// The three runs every system gets: `sheet(edited)` writes the sheet, `state()` reads the
/// server's own view (key → display name) after each run. The first run creates every
/// user, the second sends only the edited rows, the third sends nothing.
fn three_runs(
    wd: &Workdir,
    t: &Target,
    sheet: &dyn Fn(bool) -> String,
    key: &dyn Fn(usize) -> String,
    state: &dyn Fn() -> HashMap<String, String>,
) {
    let (profile, base, env) = (t.profile, t.base, t.env);
    let name = display_name;
    wd.write("users.csv", sheet(false));
    let first = run(wd, profile, base, "first.jsonl", env);
    let by = statuses(wd, "first.jsonl");
    assert_eq!(
        by.get("created"),
        Some(&USERS),
        "{by:?}\n{}",
        first.stdout()
    );
    let on_server = state();
    assert_eq!(
        on_server.len(),
        USERS,
        "every user exactly once on the server"
    );
    for i in 0..USERS {
        assert_eq!(on_server.get(&key(i)), Some(&name(i, false)), "{}", key(i));
    }

    // Ten people get a new name: only their rows are sent, as updates.
    wd.write("users.csv", sheet(true));
    let second = run(wd, profile, base, "second.jsonl", env);
    let by = statuses(wd, "second.jsonl");
    assert_eq!(by.get("updated"), Some(&EDITED), "{by:?}");
    assert_eq!(by.get("unchanged"), Some(&(USERS - EDITED)), "{by:?}");
    assert!(
        summary(&second).contains("created=0 updated=10 "),
        "{}",
        second.stdout()
    );
    let on_server = state();
    assert_eq!(on_server.len(), USERS, "nobody created twice");
    for i in 0..USERS {
        assert_eq!(
            on_server.get(&key(i)),
            Some(&name(i, i < EDITED)),
            "{}",
            key(i)
        );
    }

    // The same sheet again: nothing to send.
    let third = run(wd, profile, base, "third.jsonl", env);
    let by = statuses(wd, "third.jsonl");
    assert_eq!(by.get("unchanged"), Some(&USERS), "{by:?}");
    let line = summary(&third);
    assert!(
        line.contains(&format!("unchanged={USERS} "))
            && line.contains(&format!(" requests={} ", t.logins)),
        "{line}"
    );
    assert_eq!(state().len(), USERS);
}

/// A user's display name in the sheets: the edited rows get a new one.
fn display_name(i: usize, edited: bool) -> String {
    if edited {
        format!("Renamed Person{i}")
    } else {
        format!("Person{i} Family{i}")
    }
}

// ---------------------------------------------------------------------------------------
// Matrix Synapse

/// An admin access token from the Matrix client login.
fn synapse_token(base: &str, user: &str, pass: &str) -> String {
    let v: Value = blocking_client()
        .post(format!("{base}/_matrix/client/v3/login"))
        .json(&serde_json::json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": pass,
        }))
        .send()
        .expect("login")
        .json()
        .expect("json");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Matrix ID → display name of every user whose ID contains `prefix`, from the admin API's
/// user list.
fn synapse_users(base: &str, token: &str, prefix: &str) -> HashMap<String, String> {
    let v: Value = blocking_client()
        .get(format!("{base}/_synapse/admin/v2/users"))
        .query(&[("name", prefix), ("limit", "1000")])
        .bearer_auth(token)
        .send()
        .expect("list users")
        .json()
        .expect("json");
    let users = v["users"].as_array().cloned().unwrap_or_default();
    let mut m = HashMap::new();
    for u in &users {
        let id = u["name"].as_str().unwrap_or("").to_string();
        if id.contains(prefix) {
            let name = u["displayname"].as_str().unwrap_or("").to_string();
            assert!(m.insert(id, name).is_none(), "a user listed twice");
        }
    }
    m
}

#[test]
fn synapse_admin_api_creates_updates_and_then_sends_nothing() {
    let Some(base) = server("ENLIST_TEST_SYNAPSE_URL") else {
        return;
    };
    let user = std::env::var("ENLIST_TEST_SYNAPSE_USERNAME").expect("ENLIST_TEST_SYNAPSE_USERNAME");
    let pass = std::env::var("ENLIST_TEST_SYNAPSE_PASSWORD").expect("ENLIST_TEST_SYNAPSE_PASSWORD");
    let wd = Workdir::new("real_synapse");
    let p = nonce();
    let key = |i: usize| format!("@{p}-u{i}:enlist.test");
    let sheet = |edited: bool| {
        let mut s = String::from("user_id,displayname,email,password\n");
        for i in 0..USERS {
            s.push_str(&format!(
                "{},{},{p}-u{i}@example.com,Initial-pw-{i}\n",
                key(i),
                display_name(i, edited && i < EDITED)
            ));
        }
        s
    };
    let token = synapse_token(&base, &user, &pass);
    let env = [
        ("ENLIST_SYNAPSE_USERNAME", user.as_str()),
        ("ENLIST_SYNAPSE_PASSWORD", pass.as_str()),
    ];
    let target = Target {
        profile: "synapse",
        base: &base,
        env: &env,
        logins: 1,
    };
    three_runs(&wd, &target, &sheet, &key, &|| {
        synapse_users(&base, &token, &p)
    });

    // The email address went in as a third-party ID, and the initial password works.
    let one: Value = blocking_client()
        .get(format!("{base}/_synapse/admin/v2/users/{}", key(7)))
        .bearer_auth(&token)
        .send()
        .expect("get user")
        .json()
        .expect("json");
    assert_eq!(
        one["threepids"][0]["address"],
        format!("{p}-u7@example.com"),
        "{one}"
    );
    assert_eq!(one["admin"], false, "{one}");
    let login = blocking_client()
        .post(format!("{base}/_matrix/client/v3/login"))
        .json(&serde_json::json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": key(7)},
            "password": "Initial-pw-7",
        }))
        .send()
        .expect("login");
    assert_eq!(login.status().as_u16(), 200, "the user's initial password");

    // Its create is a PUT that creates or replaces: create mode must never replace a user
    // that exists. The sheet's old names go out in create mode; the server keeps the new ones.
    wd.write("users.csv", sheet(false));
    run_with(
        &wd,
        "synapse",
        &base,
        "create-mode.jsonl",
        &env,
        &["--mode", "create", "--full"],
    );
    let by = statuses(&wd, "create-mode.jsonl");
    assert_eq!(by.get("exists"), Some(&USERS), "{by:?}");
    let on_server = synapse_users(&base, &token, &p);
    for i in 0..EDITED {
        assert_eq!(
            on_server.get(&key(i)),
            Some(&display_name(i, true)),
            "{}",
            key(i)
        );
    }
}

// ---------------------------------------------------------------------------------------
// GNU Mailman 3

/// Email address → display name of every user with an address starting with `prefix`: the
/// addresses (which name their user) joined with the users (which carry the name).
fn mailman_users(base: &str, user: &str, pass: &str, prefix: &str) -> HashMap<String, String> {
    let client = blocking_client();
    let all = |what: &str| -> Vec<Value> {
        let v: Value = client
            .get(format!("{base}/{what}"))
            .query(&[("count", "100000"), ("page", "1")])
            .basic_auth(user, Some(pass))
            .send()
            .expect("list")
            .json()
            .expect("json");
        v["entries"].as_array().cloned().unwrap_or_default()
    };
    let names: HashMap<String, String> = all("users")
        .iter()
        .map(|u| {
            (
                u["self_link"].as_str().unwrap_or("").to_string(),
                u["display_name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut m = HashMap::new();
    for a in all("addresses") {
        let email = a["email"].as_str().unwrap_or("");
        if !email.starts_with(prefix) {
            continue;
        }
        let owner = a["user"].as_str().expect("every address has its user");
        let name = names
            .get(owner)
            .cloned()
            .expect("the address's user exists");
        assert!(
            m.insert(email.to_string(), name).is_none(),
            "an address listed twice"
        );
    }
    m
}

#[test]
fn mailman_rest_api_creates_updates_and_then_sends_nothing() {
    let Some(base) = server("ENLIST_TEST_MAILMAN_URL") else {
        return;
    };
    let user = std::env::var("ENLIST_TEST_MAILMAN_USERNAME").expect("ENLIST_TEST_MAILMAN_USERNAME");
    let pass = std::env::var("ENLIST_TEST_MAILMAN_PASSWORD").expect("ENLIST_TEST_MAILMAN_PASSWORD");
    let wd = Workdir::new("real_mailman");
    let p = nonce();
    let key = |i: usize| format!("{p}-m{i}@example.com");
    let sheet = |edited: bool| {
        let mut s = String::from("email,display_name\n");
        for i in 0..USERS {
            s.push_str(&format!(
                "{},{}\n",
                key(i),
                display_name(i, edited && i < EDITED)
            ));
        }
        s
    };
    let env = [
        ("ENLIST_MAILMAN_USERNAME", user.as_str()),
        ("ENLIST_MAILMAN_PASSWORD", pass.as_str()),
    ];
    let target = Target {
        profile: "mailman",
        base: &base,
        env: &env,
        logins: 0,
    };
    three_runs(&wd, &target, &sheet, &key, &|| {
        mailman_users(&base, &user, &pass, &p)
    });

    // The create answers 201 with only a Location header: the id comes from there, and it
    // is the user the server keeps under that address.
    let first = crate::workdir::outcomes(&wd.path("first.jsonl"));
    let client = blocking_client();
    for i in 0..3 {
        let id = first[&key(i)]["remote_id"]
            .as_str()
            .expect("an id from Location");
        let by_id: Value = client
            .get(format!("{base}/users/{id}"))
            .basic_auth(&user, Some(&pass))
            .send()
            .expect("get by id")
            .json()
            .expect("json");
        let by_email: Value = client
            .get(format!("{base}/users/{}", key(i)))
            .basic_auth(&user, Some(&pass))
            .send()
            .expect("get by email")
            .json()
            .expect("json");
        assert_eq!(by_id["user_id"], by_email["user_id"], "{id}");
    }

    // Create-only over users that exist: the shared 400 is read as "exists" (its text says
    // so and a lookup confirms it), never as a failure or a second user.
    run_with(
        &wd,
        "mailman",
        &base,
        "fourth.jsonl",
        &env,
        &["--mode", "create", "--full"],
    );
    let by = statuses(&wd, "fourth.jsonl");
    assert_eq!(by.get("exists"), Some(&USERS), "{by:?}");
    assert_eq!(mailman_users(&base, &user, &pass, &p).len(), USERS);
}
