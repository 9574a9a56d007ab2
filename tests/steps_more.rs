//! The built-in follow-up steps of the two other sandbox profiles: users-api sets the account
//! status with its own call (`PUT /users/user/{id}/status`), SuperOffice sets a password with
//! the User agent's `POST /Agents/User/SetPassword`. Each is sent only for rows whose column
//! is filled (checked in the sandbox's state and its request counts), and a re-run sends
//! nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use enlist::sandbox::{start, RunningSandbox, SandboxConfig, SandboxKind};

use crate::steps::{cost, requests, run};
use crate::workdir::{outcomes, Workdir};

async fn sandbox(kind: SandboxKind) -> RunningSandbox {
    start(SandboxConfig {
        kind,
        seed: 15,
        ..Default::default()
    })
    .await
    .expect("sandbox")
}

/// users-api row `i`'s status cell: ENABLED for every third row, DISABLED for row 4, else empty.
fn status_of(i: usize) -> &'static str {
    match i {
        4 => "DISABLED",
        i if i.is_multiple_of(3) => "ENABLED",
        _ => "",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_api_sets_the_status_of_rows_that_name_one() {
    let sb = sandbox(SandboxKind::UsersApi).await;
    let wd = Workdir::new("steps_more_usersapi");
    let mut sheet = String::from("email,password,name,status\n");
    for i in 0..12 {
        sheet.push_str(&format!(
            "u{i}@example.com,Secret-{i}00,User {i},{}\n",
            status_of(i)
        ));
    }
    wd.write("users.csv", sheet);
    let (r, before, after) = run(&wd, &sb, "users-api", "first.jsonl").await;
    r.expect_code(0);
    assert!(r.stdout().contains("created=12"), "{}", r.stdout());
    assert_eq!(cost(&before, &after, "POST /users/user 200"), 12);
    let with_status = (0..12).filter(|i| !status_of(*i).is_empty()).count() as u64;
    assert_eq!(with_status, 5);
    assert_eq!(cost(&before, &after, "PUT /users/user/"), with_status);
    assert_eq!(requests(&before, &after), 12 + with_status);

    let statuses: BTreeMap<String, String> = sb
        .users()
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap_or("").to_string(),
                u["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 12);
    for i in 0..12 {
        let want = match status_of(i) {
            "" => "UNVERIFIED",
            s => s,
        };
        assert_eq!(statuses[&format!("u{i}@example.com")], want, "row {i}");
    }
    let outs = outcomes(&wd.path("first.jsonl"));
    let msg = outs["u0@example.com"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("set status"), "{msg}");
    let msg = outs["u1@example.com"]["message"].as_str().unwrap_or("");
    assert!(!msg.contains("set status"), "{msg}");

    // A re-run of the same sheet sends nothing.
    let (r, before, after) = run(&wd, &sb, "users-api", "second.jsonl").await;
    r.expect_code(0);
    assert_eq!(requests(&before, &after), 0, "{}", r.stdout());

    // A status filled in or changed later sends that one step to the known user, no create.
    let mut sheet = String::from("email,password,name,status\n");
    for i in 0..12 {
        let st = match i {
            0 => "DISABLED",
            1 => "ENABLED",
            _ => status_of(i),
        };
        sheet.push_str(&format!("u{i}@example.com,Secret-{i}00,User {i},{st}\n"));
    }
    wd.write("users.csv", sheet);
    let (r, before, after) = run(&wd, &sb, "users-api", "third.jsonl").await;
    r.expect_code(0);
    assert_eq!(requests(&before, &after), 2, "{}", r.stdout());
    assert_eq!(cost(&before, &after, "PUT /users/user/"), 2);
    let status = |email: &str| {
        sb.users()
            .into_iter()
            .find(|u| u["email"] == email)
            .map(|u| u["status"].clone())
    };
    assert_eq!(status("u0@example.com"), Some("DISABLED".into()));
    assert_eq!(status("u1@example.com"), Some("ENABLED".into()));
    sb.shutdown().await;
}

/// SuperOffice row `i`'s SetPassword cell: filled for every third row.
fn set_password_of(i: usize) -> String {
    if i.is_multiple_of(3) {
        format!("Spring-{i}-2025!")
    } else {
        String::new()
    }
}

fn superoffice_sheet(
    n: usize,
    first: impl Fn(usize) -> String,
    pw: impl Fn(usize) -> String,
) -> String {
    let mut s = String::from("Name,Firstname,Lastname,SetPassword\n");
    for i in 0..n {
        s.push_str(&format!("U{i},{},Last{i},{}\n", first(i), pw(i)));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superoffice_sets_the_password_of_rows_that_give_one() {
    let sb = sandbox(SandboxKind::SuperOffice).await;
    let wd = Workdir::new("steps_more_superoffice");
    let first = |i: usize| format!("First{i}");
    wd.write("users.csv", superoffice_sheet(10, first, set_password_of));
    let (r, before, after) = run(&wd, &sb, "superoffice", "first.jsonl").await;
    r.expect_code(0);
    assert!(r.stdout().contains("created=10"), "{}", r.stdout());
    assert_eq!(cost(&before, &after, "POST /api/v1/User 200"), 10);
    assert_eq!(
        cost(&before, &after, "POST /api/v1/Agents/User/SetPassword 200"),
        4
    );
    assert_eq!(sb.passwords_set(), 4);
    let ids: BTreeMap<String, i64> = sb
        .users()
        .iter()
        .map(|u| {
            (
                u["Name"].as_str().unwrap_or("").to_string(),
                u["AssociateId"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    for i in 0..10 {
        let pw = set_password_of(i);
        if !pw.is_empty() {
            assert!(sb.password_set_for(ids[&format!("U{i}")], &pw), "row {i}");
        }
    }
    // The password never reaches the report.
    let report = wd.read("first.jsonl");
    assert!(!report.contains("Spring-0-2025!"), "{report}");

    // A re-run of the same sheet sends nothing.
    let (r, before, after) = run(&wd, &sb, "superoffice", "second.jsonl").await;
    r.expect_code(0);
    assert_eq!(requests(&before, &after), 0, "{}", r.stdout());

    // Row 1 gets a new first name (an update, no step), row 2 a password and row 0 a new one
    // (each that one step, no update: the journal knows the step by a keyed hash).
    let first2 = |i: usize| {
        if i == 1 {
            "Changed".to_string()
        } else {
            format!("First{i}")
        }
    };
    let pw2 = |i: usize| {
        if i == 2 || i == 0 {
            format!("Autumn-{i}-2025!")
        } else {
            set_password_of(i)
        }
    };
    wd.write("users.csv", superoffice_sheet(10, first2, pw2));
    let (r, before, after) = run(&wd, &sb, "superoffice", "third.jsonl").await;
    r.expect_code(0);
    assert_eq!(
        cost(&before, &after, "PUT /api/v1/User/"),
        1,
        "{}",
        r.stdout()
    );
    let u1 = sb
        .users()
        .into_iter()
        .find(|u| u["Name"] == "U1")
        .expect("U1");
    assert_eq!(u1["Person"]["Firstname"], "Changed");
    assert_eq!(
        cost(&before, &after, "POST /api/v1/Agents/User/SetPassword 200"),
        2
    );
    assert_eq!(cost(&before, &after, "POST /api/v1/User "), 0);
    assert!(sb.password_set_for(ids["U2"], "Autumn-2-2025!"));
    assert!(sb.password_set_for(ids["U0"], "Autumn-0-2025!"));
    // The state holds no password.
    for entry in std::fs::read_dir(wd.path(".enlist-state")).expect("state dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for pw in ["Autumn-0-2025!", "Autumn-2-2025!", "Spring-3-2025!"] {
            assert!(!text.contains(pw), "the state holds a password");
        }
    }
    assert_eq!(sb.passwords_set(), 5);
    sb.shutdown().await;
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_step_endpoints_answer_404_for_an_unknown_user() {
    let c = client();
    let sb = sandbox(SandboxKind::UsersApi).await;
    let r = c
        .put(format!("{}/users/user/no-such-id/status", sb.base_url()))
        .basic_auth("admin", Some("sandbox"))
        .json(&json!({"status": "ENABLED"}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 404);
    sb.shutdown().await;

    let sb = sandbox(SandboxKind::SuperOffice).await;
    let r = c
        .post(format!("{}/Agents/User/SetPassword", sb.base_url()))
        .basic_auth("admin", Some("sandbox"))
        .json(&json!({"AssociateId": 4711, "Password": "Spring-2025!"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 404);
    assert_eq!(sb.passwords_set(), 0);
    sb.shutdown().await;
}
