//! Never the wrong user: list lookups pick the exact match or nobody, a conflict is `exists`
//! only when it is one, a 500 on a create is reconciled, and a resumed run says what it did.
//!
//! The real binary runs against the embedded sandbox (substring-search mode) or against a
//! small target of this module's own that searches by substring, answers 400 for both
//! "taken" and "invalid", and can fail a create with a 500 after applying it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use enlist::profile::Profile;
use enlist::sandbox::{self, SandboxConfig, SandboxKind};

use crate::workdir::{outcomes, run_bin, status, Run, Workdir};

fn message(outs: &BTreeMap<String, Value>, key: &str) -> String {
    outs.get(key)
        .and_then(|o| o["message"].as_str())
        .unwrap_or("")
        .to_string()
}

// ---------------------------------------------------------------------------------------
// 1. List lookups: the exact match, or nobody.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substring_search_never_updates_the_wrong_user() {
    let sb = sandbox::start(SandboxConfig {
        kind: SandboxKind::Scim,
        lookup_substring: true,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let base = sb.base_url();
    let wd = Workdir::new("lookup-substring");
    let env = [("ENLIST_SCIM_TOKEN", "sandbox-token")];
    let run = |sheet: &'static str, report: &'static str| {
        let args = [
            "run",
            sheet,
            "-p",
            "scim",
            "--base-url",
            &base,
            "--report",
            report,
            "--rate",
            "500",
            "--mode",
            "upsert",
        ]
        .map(String::from);
        let wd = &wd;
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            run_bin(wd, &a, &env).await
        }
    };
    // The users already on the target: each one's login holds the logins of the next run.
    wd.write(
        "first.csv",
        "userName,givenName,familyName,email,password\n\
         jklee,Jan,Klee-First,jk@example.com,Passw0rd-1\n\
         smithers,Sam,Smithers-First,sm@example.com,Passw0rd-2\n\
         alee,Al,Lee-First,al@example.com,Passw0rd-3\n",
    );
    run("first.csv", "first.jsonl").await.expect_code(0);
    assert_eq!(sb.users().len(), 3);

    // Every login of this sheet is a substring of one already there (and of each other).
    wd.write(
        "second.csv",
        "userName,givenName,familyName,email,password\n\
         klee,Kim,Klee,klee@example.com,Passw0rd-4\n\
         lee,Li,Lee,lee@example.com,Passw0rd-5\n\
         smith,Sue,Smith,smith@example.com,Passw0rd-6\n\
         JKLee,Jan,Klee-Second,jk@example.com,Passw0rd-1\n",
    );
    let r = run("second.csv", "second.jsonl").await;
    r.expect_code(0);
    let outs = outcomes(&wd.path("second.jsonl"));
    for key in ["klee", "lee", "smith"] {
        assert_eq!(status(&outs, key), "created", "{key}: {:?}", outs.get(key));
    }
    // The exact match, case aside, is the user the row names.
    assert_eq!(status(&outs, "JKLee"), "updated");

    // On the target: every login once, each with its own row's name; nobody overwritten.
    let users = sb.users();
    let by_name: HashMap<String, String> = users
        .iter()
        .map(|u| {
            (
                u["userName"].as_str().unwrap_or("").to_lowercase(),
                u["name"]["familyName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(users.len(), 6, "{users:#?}");
    let want = [
        ("jklee", "Klee-Second"),
        ("smithers", "Smithers-First"),
        ("alee", "Lee-First"),
        ("klee", "Klee"),
        ("lee", "Lee"),
        ("smith", "Smith"),
    ];
    for (login, family) in want {
        assert_eq!(
            by_name.get(login).map(String::as_str),
            Some(family),
            "{login}"
        );
    }
    sb.shutdown().await;
}

#[test]
fn a_list_lookup_without_a_match_rule_is_refused() {
    let text = lk_profile("", "").replace("match = \"/userName\"\n", "");
    let err = Profile::parse(&text, "lk", &|f: &str| Err(format!("no file {f}")))
        .expect_err("a list lookup without match must not load");
    let msg = err.to_string();
    assert!(
        msg.contains("no match") && msg.contains("match = \"/userName\""),
        "{msg}"
    );
    // Every built-in profile with a list lookup says which field must equal the key.
    for name in enlist::profile::builtin_names() {
        let p = Profile::load(name).expect("built-in profile loads");
        if let Some(l) = &p.requests.lookup {
            assert!(l.list.is_none() || l.match_field.is_some(), "{name}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// A small target of our own.

/// What the target holds and what it was asked.
#[derive(Default)]
struct Target {
    /// Stored users: `{id, userName, name, email}`, in creation order.
    users: Mutex<Vec<Value>>,
    /// "METHOD userName-or-id" of every request, in order.
    log: Mutex<Vec<String>>,
    /// What the next creates do, in order (then: normal).
    creates: Mutex<Vec<CreateFault>>,
    /// The next N lookups answer 500.
    lookup_500: Mutex<u32>,
    /// The next N lookups (after any 500s) find nobody: an index that lags behind.
    lookup_miss: Mutex<u32>,
    /// Creates are applied, then never answered (the client can only be killed).
    hang_creates: Mutex<bool>,
    next_id: Mutex<u32>,
}

#[derive(Clone, Copy, Debug)]
enum CreateFault {
    /// Apply the create, then answer 500.
    ApplyThen500,
    /// Answer 500 without applying anything.
    Plain500,
}

impl Target {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn users(&self) -> Vec<Value> {
        self.users.lock().unwrap().clone()
    }
    fn count(&self, what: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(what)).count()
    }
}

type T = State<Arc<Target>>;

fn msg(status: StatusCode, m: &str) -> Response {
    (status, Json(json!({"message": m, "code": status.as_u16()}))).into_response()
}

/// `GET /users?userName=x`: every user whose userName or email contains x (a search box).
async fn search(State(t): T, Query(q): Query<HashMap<String, String>>) -> Response {
    let needle = q.get("userName").cloned().unwrap_or_default();
    t.log.lock().unwrap().push(format!("GET {needle}"));
    {
        let mut fail = t.lookup_500.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return msg(
                StatusCode::INTERNAL_SERVER_ERROR,
                "search index unavailable",
            );
        }
    }
    {
        let mut miss = t.lookup_miss.lock().unwrap();
        if *miss > 0 {
            *miss -= 1;
            return Json(json!({"items": [], "total": 0})).into_response();
        }
    }
    let n = needle.to_lowercase();
    let items: Vec<Value> = t
        .users()
        .into_iter()
        .filter(|u| u["hidden"] != json!(true))
        .filter(|u| {
            ["userName", "email"]
                .iter()
                .any(|f| u[f].as_str().is_some_and(|v| v.to_lowercase().contains(&n)))
        })
        .collect();
    Json(json!({"items": items, "total": items.len()})).into_response()
}

/// `GET /first?userName=x`: the first user the search finds, as one object (404: none).
async fn first(t: T, q: Query<HashMap<String, String>>) -> Response {
    let resp = search(t, q).await;
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match v["items"].get(0) {
        Some(u) => Json(u.clone()).into_response(),
        None => msg(StatusCode::NOT_FOUND, "no such user"),
    }
}

/// `POST /users`: 400 for a taken userName and for an invalid email alike (as PocketBase).
async fn create(State(t): T, Json(b): Json<Value>) -> Response {
    let name = b["userName"].as_str().unwrap_or("").to_string();
    t.log.lock().unwrap().push(format!("POST {name}"));
    let fault = {
        let mut c = t.creates.lock().unwrap();
        (!c.is_empty()).then(|| c.remove(0))
    };
    if let Some(CreateFault::Plain500) = fault {
        return msg(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    if !b["email"].as_str().unwrap_or("").contains('@') {
        return msg(StatusCode::BAD_REQUEST, "email: invalid email address");
    }
    let user = {
        let mut users = t.users.lock().unwrap();
        if users.iter().any(|u| {
            u["userName"]
                .as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(&name))
        }) {
            return msg(
                StatusCode::BAD_REQUEST,
                "userName: the value is already taken",
            );
        }
        let id = {
            let mut n = t.next_id.lock().unwrap();
            *n += 1;
            format!("id{n}")
        };
        let mut user = b.clone();
        user["id"] = json!(id);
        users.push(user.clone());
        user
    };
    if let Some(CreateFault::ApplyThen500) = fault {
        return msg(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    let hang = *t.hang_creates.lock().unwrap();
    if hang {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
    Json(user).into_response()
}

/// `PUT /users/{id}`.
async fn update(State(t): T, UrlPath(id): UrlPath<String>, Json(b): Json<Value>) -> Response {
    t.log.lock().unwrap().push(format!("PUT {id}"));
    let mut users = t.users.lock().unwrap();
    match users.iter_mut().find(|u| u["id"] == json!(id)) {
        Some(u) => {
            for (k, v) in b.as_object().into_iter().flatten() {
                u[k] = v.clone();
            }
            Json(u.clone()).into_response()
        }
        None => msg(StatusCode::NOT_FOUND, "no such user"),
    }
}

/// Serves `t` on 127.0.0.1; returns the base URL.
async fn serve(t: Arc<Target>) -> String {
    let app = Router::new()
        .route("/users", get(search).post(create))
        .route("/users/{id}", put(update))
        .route("/first", get(first))
        .with_state(t);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A profile for [`Target`]; `create_extra` goes into `[requests.create]`, `top` at the top.
fn lk_profile(top: &str, create_extra: &str) -> String {
    format!(
        r#"
name = "lk"
base_url_env = "ENLIST_LK_URL"
key = "userName"
rate = 1000.0
concurrency = 4
{top}
[auth]
type = "none"

[responses]
error_message = ["/message"]

[requests.create]
method = "POST"
path = "/users"
body = {{ userName = "{{{{userName}}}}", name = "{{{{name}}}}", email = "{{{{email}}}}" }}
remote_id = "/id"
{create_extra}

[requests.update]
method = "PUT"
path = "/users/{{{{remote_id}}}}"
body = {{ userName = "{{{{userName}}}}", name = "{{{{name}}}}", email = "{{{{email}}}}" }}
not_found = [404]
remote_id = "/id"

[requests.lookup]
method = "GET"
path = "/users"
query = {{ userName = "{{{{userName}}}}" }}
list = "/items"
match = "/userName"
remote_id = "/id"

[[columns]]
name = "userName"

[[columns]]
name = "name"

[[columns]]
name = "email"
"#
    )
}

/// Writes the profile and the sheet, runs `enlist run` on them; returns the outcomes.
async fn run_lk(
    wd: &Workdir,
    base: &str,
    profile: &str,
    csv: &str,
    extra: &[&str],
) -> (Run, BTreeMap<String, Value>) {
    wd.write("lk.toml", profile);
    wd.write("people.csv", csv);
    let mut args = vec![
        "run",
        "people.csv",
        "-p",
        "lk.toml",
        "--base-url",
        base,
        "--report",
        "out.jsonl",
    ];
    args.extend_from_slice(extra);
    let r = run_bin(wd, &args, &[]).await;
    let outs = if wd.path("out.jsonl").exists() {
        outcomes(&wd.path("out.jsonl"))
    } else {
        BTreeMap::new()
    };
    (r, outs)
}

fn seed(t: &Target, users: &[(&str, &str)]) {
    let mut u = t.users.lock().unwrap();
    for (i, (login, name)) in users.iter().enumerate() {
        u.push(
            json!({"id": format!("seed{i}"), "userName": login, "name": name,
                      "email": format!("{login}@example.com")}),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_exact_matches_fail_the_row_and_touch_nobody() {
    let t = Arc::new(Target::default());
    // Two accounts whose logins differ only in case: the key "lee" names both.
    seed(&t, &[("jklee", "JK"), ("Lee", "Upper"), ("lee", "Lower")]);
    let base = serve(t.clone()).await;
    let wd = Workdir::new("lookup-ambiguous");
    let (r, outs) = run_lk(
        &wd,
        &base,
        &lk_profile("", "conflict = [400]"),
        "userName,name,email\nlee,New Lee,lee@example.com\nklee,Kim,klee@example.com\n",
        &["--mode", "upsert"],
    )
    .await;
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert_eq!(status(&outs, "lee"), "failed");
    assert!(
        message(&outs, "lee").contains("2 users match lee on the target; refusing to guess"),
        "{}",
        message(&outs, "lee")
    );
    // "klee" is found nowhere exactly ("jklee" is not klee): created, not jklee overwritten.
    assert_eq!(status(&outs, "klee"), "created");
    assert_eq!(t.count("PUT"), 0, "{:?}", t.log());
    let names: Vec<String> = t.users().iter().map(|u| u["name"].to_string()).collect();
    assert!(names.contains(&"\"Upper\"".into()) && names.contains(&"\"Lower\"".into()));
    assert!(names.contains(&"\"JK\"".into()), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_sensitive_match_takes_only_the_exact_spelling() {
    let t = Arc::new(Target::default());
    seed(&t, &[("Lee", "Upper"), ("kim", "Kim")]);
    let base = serve(t.clone()).await;
    let wd = Workdir::new("lookup-sensitive");
    let profile = lk_profile("", "conflict = [409]").replace(
        "match = \"/userName\"",
        "match = \"/userName\"\nmatch_case = \"sensitive\"",
    );
    let (r, outs) = run_lk(
        &wd,
        &base,
        &profile,
        "userName,name,email\nkim,Kim Two,kim@example.com\nlee,Lower,lee2@example.com\n",
        &["--mode", "update"],
    )
    .await;
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert_eq!(status(&outs, "kim"), "updated");
    assert_eq!(status(&outs, "lee"), "failed");
    assert!(message(&outs, "lee").contains("not found"), "{outs:?}");
    assert_eq!(t.count("PUT"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_answer_lookup_with_match_checks_the_user_it_returns() {
    let t = Arc::new(Target::default());
    seed(&t, &[("jklee", "JK")]);
    let base = serve(t.clone()).await;
    let wd = Workdir::new("lookup-single");
    let profile = lk_profile("", "conflict = [409]")
        .replace("path = \"/users\"\nquery", "path = \"/first\"\nquery")
        .replace("list = \"/items\"\n", "not_found = [404]\n");
    assert!(profile.contains("/first") && !profile.contains("list ="));
    let (r, outs) = run_lk(
        &wd,
        &base,
        &profile,
        "userName,name,email\nklee,Kim,klee@example.com\n",
        &["--mode", "upsert"],
    )
    .await;
    r.expect_code(0);
    // The server's one answer is jklee: not klee, so klee is created beside it.
    assert_eq!(status(&outs, "klee"), "created", "{outs:?}");
    assert_eq!(t.count("PUT"), 0, "{:?}", t.log());
    assert_eq!(t.users()[0]["name"], json!("JK"));
}

// ---------------------------------------------------------------------------------------
// 2. `exists` only when it is true.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_exists_only_when_it_says_taken_and_a_lookup_finds_the_user() {
    let t = Arc::new(Target::default());
    seed(&t, &[("ann", "Ann"), ("ghost", "Ghost")]);
    // A user the search does not list (say, deactivated): its "taken" is not confirmed.
    t.users.lock().unwrap()[1]["hidden"] = json!(true);
    let base = serve(t.clone()).await;
    let wd = Workdir::new("lookup-conflict");
    let (r, outs) = run_lk(
        &wd,
        &base,
        &lk_profile(
            "",
            "conflict = [400]\nconflict_match = \"already taken|not unique\"",
        ),
        "userName,name,email\n\
         ann,Ann,ann@example.com\n\
         bob,Bob,not-an-email\n\
         ghost,Ghost,ghost@example.com\n\
         cy,Cy,cy@example.com\n",
        &["--mode", "create"],
    )
    .await;
    assert_eq!(r.code(), 1, "{}", r.stderr());
    // Taken, and the lookup finds her: exists, with her remote id.
    assert_eq!(status(&outs, "ann"), "exists", "{outs:?}");
    assert_eq!(outs["ann"]["remote_id"], json!("seed0"));
    // The same status for an invalid email is a failure in the server's words.
    assert_eq!(status(&outs, "bob"), "failed");
    assert!(
        message(&outs, "bob").contains("email: invalid email address"),
        "{outs:?}"
    );
    // Taken, but no lookup finds the user: not "exists".
    assert_eq!(status(&outs, "ghost"), "failed");
    let m = message(&outs, "ghost");
    assert!(
        m.contains("already taken") && m.contains("no user ghost is found"),
        "{m}"
    );
    assert_eq!(status(&outs, "cy"), "created");
    assert_eq!(t.users().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_whose_conflict_no_lookup_confirms_fails() {
    let t = Arc::new(Target::default());
    // Hidden from the search: the upsert's lookup says "not found", the create meets
    // "taken", and the lookup after it still finds nobody to update.
    seed(&t, &[("dee", "Old Dee")]);
    t.users.lock().unwrap()[0]["hidden"] = json!(true);
    let base = serve(t.clone()).await;
    let wd = Workdir::new("lookup-conflict-upsert");
    let (r, outs) = run_lk(
        &wd,
        &base,
        &lk_profile("", "conflict = [400]\nconflict_match = \"already taken\""),
        "userName,name,email\ndee,New Dee,dee@example.com\n",
        &["--mode", "upsert"],
    )
    .await;
    assert_eq!(r.code(), 1);
    assert_eq!(status(&outs, "dee"), "failed", "{outs:?}");
    assert!(message(&outs, "dee").contains("already taken"), "{outs:?}");
    assert_eq!(t.count("PUT"), 0);
    assert_eq!(t.users()[0]["name"], json!("Old Dee"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_whose_conflict_a_lookup_confirms_updates_that_user() {
    let t = Arc::new(Target::default());
    seed(&t, &[("eli", "Old Eli")]);
    // The upsert's own lookup misses eli (a lagging index); the create meets "taken"; the
    // lookup after it finds eli, who is updated (not reported as "exists").
    *t.lookup_miss.lock().unwrap() = 1;
    let base = serve(t.clone()).await;
    let wd = Workdir::new("lookup-conflict-update");
    let (r, outs) = run_lk(
        &wd,
        &base,
        &lk_profile("", "conflict = [400]\nconflict_match = \"already taken\""),
        "userName,name,email\neli,New Eli,eli@example.com\n",
        // The lookup that misses is the upsert's own, sent first.
        &["--mode", "upsert", "--upsert-order", "lookup-first"],
    )
    .await;
    r.expect_code(0);
    assert_eq!(status(&outs, "eli"), "updated", "{outs:?}");
    assert_eq!(t.users().len(), 1);
    assert_eq!(t.users()[0]["name"], json!("New Eli"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_answered_500_is_retried() {
    let t = Arc::new(Target::default());
    seed(&t, &[("fox", "Old Fox")]);
    *t.lookup_500.lock().unwrap() = 1;
    let base = serve(t.clone()).await;
    let wd = Workdir::new("lookup-500-retried");
    let (r, outs) = run_lk(
        &wd,
        &base,
        &lk_profile("", "conflict = [409]"),
        "userName,name,email\nfox,New Fox,fox@example.com\n",
        &["--mode", "update"],
    )
    .await;
    r.expect_code(0);
    assert_eq!(status(&outs, "fox"), "updated", "{outs:?}");
    assert_eq!(t.count("GET fox"), 2, "{:?}", t.log());
}

#[test]
fn pocketbase_reads_only_a_uniqueness_400_as_a_conflict() {
    let p = Profile::load("pocketbase").expect("pocketbase loads");
    let create = p.requests.create.as_ref().expect("create");
    let taken = br#"{"code":400,"message":"Failed to create record.","data":{"userName":{"code":"validation_not_unique","message":"Value must be unique."}}}"#;
    let invalid = br#"{"code":400,"message":"Failed to create record.","data":{"email":{"code":"validation_is_email","message":"Must be a valid email address."}}}"#;
    assert!(p.is_conflict(create, 400, taken));
    assert!(!p.is_conflict(create, 400, invalid));
}

// ---------------------------------------------------------------------------------------
// 3. A 500 is retried, and a create's 500 is reconciled by lookup first.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_500_was_applied_is_confirmed_by_lookup_not_sent_twice() {
    let t = Arc::new(Target::default());
    t.creates
        .lock()
        .unwrap()
        .extend([CreateFault::ApplyThen500, CreateFault::Plain500]);
    let base = serve(t.clone()).await;
    let wd = Workdir::new("lookup-500");
    // One row at a time, so the first create (applied, then 500) is eve's and the second
    // (500, nothing applied) is fay's.
    let (r, outs) = run_lk(
        &wd,
        &base,
        &lk_profile("", "conflict = [409]"),
        "userName,name,email\neve,Eve,eve@example.com\nfay,Fay,fay@example.com\n",
        &["--mode", "create", "--concurrency", "1"],
    )
    .await;
    r.expect_code(0);
    assert_eq!(status(&outs, "eve"), "created", "{outs:?}");
    assert!(
        message(&outs, "eve").contains("confirmed by lookup"),
        "{outs:?}"
    );
    assert_eq!(status(&outs, "fay"), "created", "{outs:?}");
    // Exactly one account each: eve's create was not sent again.
    let users = t.users();
    assert_eq!(users.len(), 2, "{users:#?}");
    assert_eq!(t.count("POST eve"), 1, "{:?}", t.log());
    assert_eq!(t.count("POST fay"), 2, "{:?}", t.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_create_whose_lookup_fails_says_it_may_have_been_applied() {
    let t = Arc::new(Target::default());
    t.creates.lock().unwrap().push(CreateFault::ApplyThen500);
    *t.lookup_500.lock().unwrap() = 100;
    let base = serve(t.clone()).await;
    let wd = Workdir::new("lookup-500-unconfirmed");
    let (r, outs) = run_lk(
        &wd,
        &base,
        &lk_profile("", "conflict = [409]"),
        "userName,name,email\ngus,Gus,gus@example.com\n",
        &["--mode", "create", "--max-attempts", "2"],
    )
    .await;
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert_eq!(status(&outs, "gus"), "failed");
    let m = message(&outs, "gus");
    assert!(
        m.contains("the create may have been applied")
            && m.contains("the lookup to confirm it failed")
            && m.contains("search index unavailable"),
        "{m}"
    );
    assert_eq!(t.count("POST gus"), 1, "{:?}", t.log());
    assert_eq!(t.users().len(), 1);
}

// ---------------------------------------------------------------------------------------
// 4. A resumed run reports what it did.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_reports_creates_of_the_killed_run_as_created_without_an_update() {
    let t = Arc::new(Target::default());
    *t.hang_creates.lock().unwrap() = true;
    let base = serve(t.clone()).await;
    let wd = Workdir::new("lookup-resume");
    wd.write("lk.toml", lk_profile("", "conflict = [409]"));
    let sheet = |ivy: &str| {
        format!("userName,name,email\nhal,Hal,hal@example.com\nivy,{ivy},ivy@example.com\n")
    };
    wd.write("people.csv", sheet("Ivy"));
    let args = [
        "run",
        "people.csv",
        "-p",
        "lk.toml",
        "--base-url",
        &base,
        "--report",
        "out.jsonl",
        "--state",
        "state",
        "--mode",
        "upsert",
    ];
    let mut child = wd
        .command(&args)
        .args(["--progress", "never"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn enlist");
    // Both creates reach the target and are applied; their answers never come.
    for _ in 0..3000 {
        if t.users().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(t.users().len(), 2, "{:?}", t.log());
    child.kill().expect("kill -9");
    let _ = child.wait();

    // The resumed run: hal's row is what was sent; ivy's name changed since.
    *t.hang_creates.lock().unwrap() = false;
    wd.write("people.csv", sheet("Ivy Changed"));
    // (A report of its own: the killed run left an empty out.jsonl behind.)
    let mut again = args.to_vec();
    again[7] = "again.jsonl";
    let r = run_bin(&wd, &again, &[]).await;
    r.expect_code(0);
    let outs = outcomes(&wd.path("again.jsonl"));
    assert_eq!(status(&outs, "hal"), "created", "{outs:?}");
    assert!(
        message(&outs, "hal").contains("confirmed by lookup after a restart"),
        "{outs:?}"
    );
    let hal_id = t
        .users()
        .iter()
        .find(|u| u["userName"] == json!("hal"))
        .map(|u| u["id"].clone());
    assert_eq!(Some(outs["hal"]["remote_id"].clone()), hal_id);
    // Only ivy, whose content differs from what the killed run sent, is updated.
    assert_eq!(status(&outs, "ivy"), "updated", "{outs:?}");
    let log = t.log();
    assert_eq!(t.count("PUT"), 1, "{log:?}");
    assert_eq!(t.count("POST hal"), 1, "{log:?}");
    assert_eq!(t.users().len(), 2);
}
