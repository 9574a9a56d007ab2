//! Hostile servers: waits no one can honour, answers that echo secrets or never end,
//! certificates of their own, redirects. Each test starts a small server of its own on
//! 127.0.0.1 and runs the real binary against it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::workdir::{Run, Workdir};

/// What the server received: method, path and query, headers, body.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    /// A field of the JSON body, as text.
    fn field(&self, name: &str) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get(name).and_then(|f| f.as_str()).map(str::to_string))
            .unwrap_or_default()
    }
}

type Handler = Arc<dyn Fn(&Req) -> Response + Send + Sync>;

/// Serves `handler` on 127.0.0.1 (plain HTTP) on a thread of its own; returns the base URL.
pub(crate) fn serve(handler: impl Fn(&Req) -> Response + Send + Sync + 'static) -> String {
    let handler: Handler = Arc::new(handler);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(format!("http://{}", l.local_addr().expect("addr")))
                .expect("url");
            let _ = axum::serve(l, app(handler)).await;
        });
    });
    rx.recv().expect("server url")
}

fn app(handler: Handler) -> axum::Router {
    axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let handler = handler.clone();
            async move {
                handler(&Req {
                    method,
                    uri,
                    headers,
                    body,
                })
            }
        },
    )
}

pub(crate) fn json(status: u16, v: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(status).expect("status"),
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A create-only profile without auth (`AUTH` replaced by the caller's auth section).
const PROFILE: &str = r#"
name = "hostile"
base_url_env = "ENLIST_HOSTILE_URL"
key = "userId"
rate = 1000.0
concurrency = 4
AUTH
[responses]
error_message = ["/details"]

[requests.create]
method = "POST"
path = "/users"
body = { userId = "{{userId}}", name = "{{name}}", password = "{{password}}" }
conflict = [409]
remote_id = "/id"

[requests.update]
method = "PUT"
path = "/users/{{remote_id}}"
body = { userId = "{{userId}}", name = "{{name}}" }
not_found = [404]

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

[[columns]]
name = "password"
secret = true
required = false
"#;

const NO_AUTH: &str = "[auth]\ntype = \"none\"\n";

/// Runs `enlist run users.csv` against `url` (CSV report `out.csv`) with
/// `extra` arguments (and `--max-attempts 3` unless they say otherwise).
fn run(wd: &Workdir, url: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "run",
        "users.csv",
        "--profile",
        "./hostile.toml",
        "--base-url",
        url,
        "--progress",
        "never",
        "--fresh",
        "--report",
        "out.csv",
    ];
    if !extra.contains(&"--max-attempts") {
        args.extend(["--max-attempts", "3"]);
    }
    args.extend_from_slice(extra);
    wd.run(&args)
}

/// The CSV report's rows as (userId, Outcome, Message).
fn outcomes(wd: &Workdir, name: &str) -> Vec<(String, String, String)> {
    let mut r = csv::Reader::from_path(wd.path(name)).expect("report");
    let headers = r.headers().expect("headers").clone();
    let col = |n: &str| headers.iter().position(|h| h == n).expect(n);
    let (k, o, m) = (col("userId"), col("Outcome"), col("Message"));
    r.records()
        .map(|rec| {
            let rec = rec.expect("record");
            (rec[k].to_string(), rec[o].to_string(), rec[m].to_string())
        })
        .collect()
}

// ---- 1. server-given waits ----

/// 429s with waits no one can honour (huge, infinite, years away) and with nonsense
/// (negative, NaN, a date long past): no worker panics, every row gets exactly one
/// outcome; a wait beyond --max-row-time fails its row in the server's words, the others
/// are retried and created.
#[test]
fn hostile_waits_give_every_row_one_outcome() {
    let kinds: [(&str, &str, &str); 7] = [
        ("huge", "retry-after", "99999999999999999999"),
        ("inf", "retry-after", "inf"),
        ("reset", "x-ratelimit-reset", "1e300"),
        ("future", "retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ("neg", "retry-after", "-5"),
        ("nan", "retry-after", "NaN"),
        ("past", "retry-after", "Thu, 01 Jan 1970 00:00:00 GMT"),
    ];
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let url = {
        let seen = seen.clone();
        serve(move |r| {
            let user = r.field("userId");
            let n = {
                let mut s = seen.lock().unwrap();
                let n = s.entry(user.clone()).or_default();
                *n += 1;
                *n
            };
            let kind = user.split('-').next().unwrap_or("");
            let (_, header, value) = kinds.iter().find(|k| k.0 == kind).expect("kind");
            // The unusable waits never end; the nonsense ones once.
            let forever = matches!(kind, "huge" | "inf" | "reset" | "future");
            if forever || n == 1 {
                let mut resp = json(429, serde_json::json!({"details": "slow down"}));
                resp.headers_mut()
                    .insert(*header, value.parse().expect("header value"));
                resp
            } else {
                json(201, serde_json::json!({"id": user}))
            }
        })
    };
    let wd = Workdir::new("hostile_waits");
    wd.write("hostile.toml", PROFILE.replace("AUTH", NO_AUTH));
    let mut csv = String::from("userId,name,password\n");
    let mut users = Vec::new();
    for i in 0..42 {
        let user = format!("{}-{i}", kinds[i % kinds.len()].0);
        csv.push_str(&format!("{user},User {i},\n"));
        users.push(user);
    }
    wd.write("users.csv", csv);
    let r = run(&wd, &url, &["--mode", "create", "--max-row-time", "60"]);
    r.expect_code(1);
    assert!(!r.stderr().contains("panicked"), "{}", r.stderr());
    let got = outcomes(&wd, "out.csv");
    assert_eq!(got.len(), users.len(), "{got:#?}");
    let by_user: HashMap<_, _> = got.iter().map(|(u, o, m)| (u.clone(), (o, m))).collect();
    assert_eq!(by_user.len(), users.len(), "a row reported twice: {got:#?}");
    for user in &users {
        let (outcome, message) = by_user.get(user).expect(user);
        match user.split('-').next().unwrap_or("") {
            "huge" | "inf" | "reset" | "future" => {
                assert_eq!(outcome.as_str(), "failed", "{user}: {message}");
                assert!(
                    message.starts_with("the server asked to wait ")
                        && message.contains(" days (")
                        && message.contains("more than --max-row-time 60s"),
                    "{user}: {message}"
                );
            }
            _ => assert_eq!(outcome.as_str(), "created", "{user}: {message}"),
        }
    }
    // The unusable waits were not retried: one request each.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.get("huge-0"), Some(&1));
    assert_eq!(seen.get("neg-4"), Some(&2));
}

/// Writes the profile (with `auth`) and `users.csv` of `n` users `u0`, `u1`, ..., then runs
/// `enlist run` in create mode against `url` with `extra` (CSV report `out.csv`).
fn run_users(wd: &Workdir, url: &str, auth: &str, n: usize, extra: &[&str]) -> Run {
    wd.write("hostile.toml", PROFILE.replace("AUTH", auth));
    let mut csv = String::from("userId,name,password\n");
    for i in 0..n {
        csv.push_str(&format!("u{i},User {i},\n"));
    }
    wd.write("users.csv", csv);
    run(wd, url, &[&["--mode", "create"][..], extra].concat())
}

/// A target slower than the run's rate answers bare 429s (no wait named): they use up no
/// attempt, so even `--max-attempts 1` creates every user, each exactly once.
#[test]
fn bare_429s_slow_the_run_down_but_fail_no_row() {
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let url = {
        let seen = seen.clone();
        serve(move |r| {
            let user = r.field("userId");
            let mut s = seen.lock().unwrap();
            let n = s.entry(user.clone()).or_default();
            *n += 1;
            if *n <= 3 {
                json(429, serde_json::json!({"details": "slow down"}))
            } else {
                json(201, serde_json::json!({"id": user}))
            }
        })
    };
    let wd = Workdir::new("hostile_bare_429");
    let r = run_users(&wd, &url, NO_AUTH, 12, &["--max-attempts", "1"]);
    r.expect_code(0);
    let got = outcomes(&wd, "out.csv");
    assert_eq!(got.len(), 12, "{got:#?}");
    assert!(got.iter().all(|(_, o, _)| o == "created"), "{got:#?}");
    assert!(r.stdout().contains(" throttled=36 "), "{}", r.stdout());
    let seen = seen.lock().unwrap();
    assert!(seen.values().all(|n| *n == 4), "{seen:?}");
}

/// A target that answers nothing but 429 does not keep a nightly run going for hours:
/// once it has refused everything for --max-row-time the run stops (exit 4), the rows
/// it never sent are `not-attempted`, and none is reported created.
#[test]
fn a_target_that_only_answers_429_stops_the_run() {
    let count = Arc::new(Mutex::new(0u32));
    let url = {
        let count = count.clone();
        serve(move |_| {
            *count.lock().unwrap() += 1;
            json(429, serde_json::json!({"details": "quota exhausted"}))
        })
    };
    let wd = Workdir::new("hostile_only_429");
    let r = run_users(&wd, &url, NO_AUTH, 200, &["--max-row-time", "2"]);
    r.expect_code(4);
    let err = r.stderr();
    assert!(
        err.contains("the target has refused every request for ")
            && err.contains("--max-row-time 2s"),
        "{err}"
    );
    let got = outcomes(&wd, "out.csv");
    assert_eq!(got.len(), 200, "every row has its outcome");
    assert!(
        got.iter()
            .all(|(_, o, _)| o == "not-attempted" || o == "failed"),
        "{got:#?}"
    );
    let unsent = got.iter().filter(|(_, o, _)| o == "not-attempted").count();
    assert!(unsent > 150, "most rows were never sent: {unsent}");
    assert!(*count.lock().unwrap() < 200, "fewer requests than rows");
}

/// A target down for maintenance answers 503 with `Retry-After: 1`: the whole run waits
/// that second (nothing is sent inside it), the refusal uses up no attempt, and a token
/// login that meets the same answer waits too; every user is then created once.
#[test]
fn a_503_that_says_when_pauses_the_run_and_fails_no_row() {
    let log: Arc<Mutex<Vec<(std::time::Instant, String)>>> = Arc::default();
    let url = {
        let log = log.clone();
        serve(move |r| {
            let mut log = log.lock().unwrap();
            log.push((std::time::Instant::now(), r.uri.path().to_string()));
            // The first login and the first create meet the maintenance window.
            let first = log.iter().filter(|(_, p)| p == r.uri.path()).count() == 1;
            if first {
                let mut resp = json(503, serde_json::json!({"details": "maintenance"}));
                resp.headers_mut()
                    .insert("retry-after", "1".parse().expect("header value"));
                return resp;
            }
            match r.uri.path() {
                "/auth/token" => json(200, serde_json::json!({"token": TOKEN})),
                _ => json(201, serde_json::json!({"id": r.field("userId")})),
            }
        })
    };
    let wd = Workdir::new("hostile_503_wait");
    wd.write(
        "secrets.env",
        format!("ENLIST_HOSTILE_USER=admin\nENLIST_HOSTILE_PASSWORD={ADMIN_PASSWORD}\n"),
    );
    let extra = ["--max-attempts", "1", "--secret-file", "secrets.env"];
    let r = run_users(&wd, &url, TOKEN_LOGIN, 8, &extra);
    r.expect_code(0);
    let got = outcomes(&wd, "out.csv");
    assert!(
        got.iter().all(|(_, o, _)| o == "created") && got.len() == 8,
        "{got:#?}"
    );
    let log = log.lock().unwrap();
    assert_eq!(
        log.len(),
        2 + 9,
        "two logins, eight creates and one refused: {log:?}"
    );
    // After each 503, nothing for the second it asked for.
    for path in ["/auth/token", "/users"] {
        let refused = log.iter().position(|(_, p)| p == path).expect(path);
        let at = log[refused].0;
        let next = log[refused + 1].0;
        assert!(
            next.duration_since(at) >= std::time::Duration::from_millis(900),
            "{path}: the next request came {:?} after the 503",
            next.duration_since(at)
        );
    }
}

// ---- 2. secrets in echoes ----

const TOKEN_LOGIN: &str = r#"
[auth]
type = "token-login"
username_env = "ENLIST_HOSTILE_USER"
password_env = "ENLIST_HOSTILE_PASSWORD"
login = { method = "POST", path = "/auth/token", body = { username = "{{auth.username}}", password = "{{auth.password}}" } }
token_pointer = "/token"
"#;

const ADMIN_PASSWORD: &str = "Adm1n-Pa55word!";
const TOKEN: &str = "tok-9f8e7d6c5b4a";

/// Everything a request carried, as an echoing server repeats it.
fn echo(r: &Req) -> String {
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect();
    format!(
        "{} {} {} {}",
        String::from_utf8_lossy(&r.body),
        r.method,
        r.uri,
        headers.join("; ")
    )
}

/// Every text the run left behind: all files in the working directory but the inputs
/// (workbooks read cell by cell), and the run's stderr.
fn everything_written(wd: &Workdir, run: &Run) -> String {
    let mut all = run.stderr() + &run.stdout();
    let mut dirs = vec![wd.dir().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() {
                dirs.push(p);
            } else if name == "users.csv" || name == "secrets.env" {
                continue;
            } else if name.ends_with(".xlsx") {
                use calamine::Reader;
                let mut book = calamine::open_workbook_auto(&p).expect("workbook");
                for sheet in book.sheet_names() {
                    let range = book.worksheet_range(&sheet).expect("sheet");
                    for row in range.rows() {
                        for c in row {
                            all.push_str(&c.to_string());
                            all.push('\n');
                        }
                    }
                }
            } else {
                all.push_str(&String::from_utf8_lossy(&std::fs::read(&p).expect("file")));
            }
        }
    }
    all
}

/// A server that echoes requests in its error bodies (JSON, plain text, cut at the
/// excerpt's length, after a 401) never gets a password or a token into a report, the
/// journal or the log; a refused login does not print the admin password.
#[test]
fn hostile_echoes_never_leak_secrets() {
    let login_ok = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = {
        let login_ok = login_ok.clone();
        serve(move |r| {
            if r.uri.path() == "/auth/token" {
                return if login_ok.load(std::sync::atomic::Ordering::SeqCst) {
                    json(200, serde_json::json!({ "token": TOKEN }))
                } else {
                    json(
                        401,
                        serde_json::json!({ "details": format!("bad login: {}", echo(r)) }),
                    )
                };
            }
            let user = r.field("userId");
            match user.split('-').next().unwrap_or("") {
                "json" => json(400, serde_json::json!({ "details": echo(r) })),
                "text" => (StatusCode::INTERNAL_SERVER_ERROR, echo(r)).into_response(),
                // The password right where the excerpt is cut.
                "cut" => {
                    let pad = "x".repeat(194);
                    let pw = r.field("password");
                    (StatusCode::BAD_REQUEST, format!("{pad} {pw} and more")).into_response()
                }
                "auth" => {
                    let sent = r.headers.get("authorization").and_then(|v| v.to_str().ok());
                    let details = format!("you sent {}", sent.unwrap_or("nothing"));
                    json(401, serde_json::json!({ "details": details }))
                }
                _ => json(422, serde_json::json!({ "details": echo(r) })),
            }
        })
    };
    let wd = Workdir::new("hostile_echoes");
    wd.write("hostile.toml", PROFILE.replace("AUTH", TOKEN_LOGIN));
    wd.write(
        "secrets.env",
        format!("ENLIST_HOSTILE_USER=admin\nENLIST_HOSTILE_PASSWORD={ADMIN_PASSWORD}\n"),
    );
    let kinds = ["json", "text", "cut", "auth", "other"];
    let mut csv = String::from("userId,name,password\n");
    let mut passwords = vec![ADMIN_PASSWORD.to_string(), TOKEN.to_string()];
    for (i, kind) in kinds.iter().enumerate() {
        let pw = format!("UserPw-{i}-q7w8e9");
        csv.push_str(&format!("{kind}-{i},User {i},{pw}\n"));
        passwords.push(pw);
    }
    wd.write("users.csv", csv);
    let args = |report: &'static str| {
        let mut a = vec![
            "--secret-file",
            "secrets.env",
            "--report-format",
            "csv",
            "--report-format",
            "jsonl",
            "--max-attempts",
            "2",
        ];
        a.extend_from_slice(&["--report", report]);
        a
    };
    let run_logged = |args: &[&str]| {
        let mut cmd = wd.command(&[]);
        cmd.args([
            "run",
            "users.csv",
            "--profile",
            "./hostile.toml",
            "--base-url",
            &url,
            "--mode",
            "create",
            "--progress",
            "never",
            "--fresh",
        ])
        .args(args)
        .env("RUST_LOG", "debug");
        Run {
            output: cmd.output().expect("run enlist"),
        }
    };

    // A refused login: its echo (the admin password in the body) is not printed.
    let refused = run_logged(&args("refused.xlsx"));
    refused.expect_code(4);
    assert!(
        refused.stderr().contains("bad login"),
        "{}",
        refused.stderr()
    );
    assert!(
        refused.stderr().contains("********"),
        "{}",
        refused.stderr()
    );
    for pw in &passwords {
        assert!(
            !refused.stderr().contains(pw.as_str()),
            "{pw} in {}",
            refused.stderr()
        );
    }

    // (The refused run left empty reports: out of the way.)
    for e in std::fs::read_dir(wd.dir()).expect("dir").flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with("users.outcome.")
        {
            std::fs::remove_file(e.path()).expect("remove");
        }
    }
    // Logged in: every create fails with an echo.
    login_ok.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = run_logged(&args("out.xlsx"));
    r.expect_code(1);
    let got = outcomes(&wd, "users.outcome.csv");
    assert_eq!(got.len(), kinds.len(), "{got:#?}");
    for (user, outcome, message) in &got {
        assert_eq!(outcome, "failed", "{user}: {message}");
        assert!(message.contains("********"), "{user}: {message}");
    }
    let all = everything_written(&wd, &r);
    for pw in &passwords {
        assert!(!all.contains(pw.as_str()), "{pw} written somewhere:\n{all}");
    }
    // Not even the start of one, where an excerpt was cut.
    let cut = got.iter().find(|g| g.0 == "cut-2").expect("cut row");
    assert!(cut.2.ends_with("********…"), "{}", cut.2);
    assert!(!all.contains("UserP"), "{all}");
}

// ---- 3. answers bounded ----

/// Creates of `bigok-*` users the server received.
static BIG_CREATED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Answers of 5 MiB to a create and 17 MiB to a lookup end their rows with a clear
/// message; an answer that is not JSON (a proxy's sign-in page) fails its row with an
/// excerpt, on a create and on a lookup; nothing panics and every row gets one outcome.
#[test]
fn hostile_answers_are_bounded_and_checked() {
    let url = serve(|r| {
        let user = match r.method {
            Method::GET => r
                .uri
                .query()
                .and_then(|q| q.strip_prefix("userId="))
                .unwrap_or("")
                .to_string(),
            _ => r.field("userId"),
        };
        let html = "<html><body>Please sign in to the proxy</body></html>";
        match (r.method.clone(), user.split('-').next().unwrap_or("")) {
            (Method::GET, "biglookup") => {
                let big = format!("{{\"id\":\"{}\"}}", "x".repeat(17 << 20));
                (StatusCode::OK, big).into_response()
            }
            (Method::GET, "htmllookup") => (StatusCode::OK, html).into_response(),
            (Method::GET, _) => json(404, serde_json::json!({"details": "no such user"})),
            (_, "bigcreate") => {
                let big = format!("{{\"details\":\"{}\"}}", "y".repeat(5 << 20));
                (StatusCode::BAD_REQUEST, big).into_response()
            }
            (_, "htmlcreate") => (StatusCode::OK, html).into_response(),
            (_, "bigok") => {
                BIG_CREATED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let big = format!("{{\"id\":\"{}\"}}", "z".repeat(5 << 20));
                (StatusCode::CREATED, big).into_response()
            }
            _ => json(201, serde_json::json!({"id": user})),
        }
    });
    let wd = Workdir::new("hostile_answers");
    wd.write("hostile.toml", PROFILE.replace("AUTH", NO_AUTH));
    wd.write(
        "users.csv",
        "userId,name,password\nbigcreate-1,A,\nbiglookup-2,B,\nhtmlcreate-3,C,\nhtmllookup-4,D,\nfine-5,E,\nbigok-6,F,\n",
    );
    // Lookup first: the hostile lookup answers are met by each upsert's own lookup.
    let r = run(
        &wd,
        &url,
        &["--mode", "upsert", "--upsert-order", "lookup-first"],
    );
    r.expect_code(1);
    assert!(!r.stderr().contains("panicked"), "{}", r.stderr());
    let got = outcomes(&wd, "out.csv");
    assert_eq!(got.len(), 6, "{got:#?}");
    let find = |u: &str| got.iter().find(|g| g.0 == u).expect(u).clone();
    let (_, o, m) = find("bigcreate-1");
    assert_eq!(o, "failed", "{m}");
    assert!(m.contains("the answer (400) is larger than 1 MiB"), "{m}");
    let (_, o, m) = find("biglookup-2");
    assert_eq!(o, "failed", "{m}");
    assert!(
        m.starts_with("lookup: the answer (200) is larger than 16 MiB"),
        "{m}"
    );
    let (_, o, m) = find("htmlcreate-3");
    assert_eq!(o, "failed", "{m}");
    assert!(
        m.starts_with(
            "the target answered 200 (created), but the answer (200) is not JSON: <html><body>Please sign in"
        ),
        "{m}"
    );
    // A create answered 201 with more than enlist reads was applied: it is never sent
    // again (on a target without a uniqueness check, that would be a second user).
    let (_, o, m) = find("bigok-6");
    assert_eq!(o, "failed", "{m}");
    assert!(
        m.starts_with(
            "the target answered 201 (created), but the answer (201) is larger than 1 MiB"
        ),
        "{m}"
    );
    assert_eq!(BIG_CREATED.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (_, o, m) = find("htmllookup-4");
    assert_eq!(o, "failed", "{m}");
    assert!(
        m.starts_with("lookup: the answer (200) is not JSON: <html><body>Please sign in"),
        "{m}"
    );
    assert_eq!(find("fine-5").1, "created");
}

// ---- 4. a server certificate that is its own CA ----

/// A self-signed certificate for localhost and 127.0.0.1 that is also a CA (basic
/// constraints CA:TRUE), as `openssl req -x509` makes: its PEM, and its key (DER).
fn own_ca_cert() -> (String, rustls::pki_types::CertificateDer<'static>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("certificate");
    (cert.pem(), cert.der().clone(), key.serialize_der())
}

/// Serves `handler` over HTTPS with `cert` on 127.0.0.1; returns the base URL.
fn serve_tls(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: Vec<u8>,
    handler: impl Fn(&Req) -> Response + Send + Sync + 'static,
) -> String {
    let handler: Handler = Arc::new(handler);
    let key = rustls::pki_types::PrivateKeyDer::try_from(key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = l.local_addr().expect("addr").port();
            tx.send(format!("https://127.0.0.1:{port}")).expect("url");
            let app = app(handler);
            while let Ok((tcp, _)) = l.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that does not trust the certificate hangs up here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    rx.recv().expect("server url")
}

fn create_all(r: &Req) -> Response {
    json(201, serde_json::json!({ "id": r.field("userId") }))
}

/// A server whose certificate is its own CA works with that certificate in --ca-file;
/// another such certificate in --ca-file, or none, is refused with a message that says
/// what to do, and nothing is sent.
#[test]
fn hostile_own_ca_certificate_is_trusted_only_with_it_in_ca_file() {
    let (pem, der, key) = own_ca_cert();
    let (other_pem, _, _) = own_ca_cert();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = {
        let sent = sent.clone();
        serve_tls(der, key, move |r| {
            sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            create_all(r)
        })
    };
    let wd = Workdir::new("hostile_own_ca");
    wd.write("hostile.toml", PROFILE.replace("AUTH", NO_AUTH));
    wd.write("users.csv", "userId,name,password\na-1,A,\nb-2,B,\n");
    wd.write("own.pem", pem);
    wd.write("other.pem", other_pem);
    for extra in [&["--ca-file", "other.pem"][..], &[][..]] {
        let mut args = vec!["--mode", "create"];
        args.extend_from_slice(extra);
        let refused = run(&wd, &url, &args);
        assert_eq!(refused.code(), 1, "{}", refused.stderr());
        // A refused certificate is not tried again: another attempt cannot help.
        assert!(
            refused.stdout().contains("requests=2 retries=0"),
            "{}",
            refused.stdout()
        );
        let got = outcomes(&wd, "out.csv");
        assert_eq!(got.len(), 2, "{got:#?}");
        for (user, outcome, message) in &got {
            assert_eq!(outcome, "failed", "{user}");
            assert!(
                message
                    .contains("certificate not trusted: pass --ca-file with the CA that signed it"),
                "{message}"
            );
            assert!(!message.contains("credentials"), "{message}");
        }
        std::fs::remove_file(wd.path("out.csv")).expect("remove");
    }
    assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 0);
    let trusted = run(&wd, &url, &["--mode", "create", "--ca-file", "own.pem"]);
    trusted.expect_code(0);
    let got = outcomes(&wd, "out.csv");
    assert!(got.iter().all(|g| g.1 == "created"), "{got:#?}");
    assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 2);
}

// ---- 5. redirects and TLS failures say what happened ----

/// A redirect to another host is named as one, on a create and on a login, and neither
/// says "check" the credentials; the untrusted certificate of a login says what to pass.
#[test]
fn hostile_redirects_and_tls_failures_say_what_happened() {
    let url = serve(|r| {
        let to = if r.uri.path() == "/auth/token" {
            "https://sso.example.net/login?session=abc"
        } else {
            "https://new.example.org/api/users"
        };
        (StatusCode::MOVED_PERMANENTLY, [("location", to)], "moved").into_response()
    });
    let wd = Workdir::new("hostile_redirects");
    wd.write("users.csv", "userId,name,password\na-1,A,\n");
    wd.write(
        "secrets.env",
        format!("ENLIST_HOSTILE_USER=admin\nENLIST_HOSTILE_PASSWORD={ADMIN_PASSWORD}\n"),
    );

    // An ordinary request.
    wd.write("hostile.toml", PROFILE.replace("AUTH", NO_AUTH));
    let r = run(&wd, &url, &["--mode", "create"]);
    r.expect_code(1);
    let got = outcomes(&wd, "out.csv");
    let message = &got[0].2;
    assert!(
        message.contains(
            "the server redirected to another host (new.example.org: https://new.example.org/api/users); \
             enlist does not follow redirects: use the final URL"
        ),
        "{message}"
    );
    std::fs::remove_file(wd.path("out.csv")).expect("remove");

    // A login.
    wd.write("hostile.toml", PROFILE.replace("AUTH", TOKEN_LOGIN));
    let login = |url: &str, extra: &[&str]| {
        let mut args = vec!["--mode", "create", "--secret-file", "secrets.env"];
        args.extend_from_slice(extra);
        let r = run(&wd, url, &args);
        let _ = std::fs::remove_file(wd.path("out.csv"));
        r
    };
    let r = login(&url, &[]);
    r.expect_code(4);
    assert!(
        r.stderr()
            .contains("the server redirected to another host (sso.example.net")
            && r.stderr().contains("enlist does not follow redirects"),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains("check"), "{}", r.stderr());
    assert!(!r.stderr().contains("session=abc"), "{}", r.stderr());

    // A login to a server whose certificate nobody here trusts.
    let (_, der, key) = own_ca_cert();
    let tls_url = serve_tls(der, key, create_all);
    let r = login(&tls_url, &[]);
    r.expect_code(4);
    assert!(
        r.stderr()
            .contains("certificate not trusted: pass --ca-file with the CA that signed it"),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains("check"), "{}", r.stderr());
}

// ---- 6. a failed login says what failed ----

/// A login answered 401, 404, 500 or 302 each says what that answer means, in `enlist run`
/// and in `enlist profiles test`; only the 401 points at the credentials.
#[test]
fn hostile_login_failures_say_what_failed() {
    let url = serve(|r| match r.field("username").as_str() {
        "s401" => json(401, serde_json::json!({ "details": "bad credentials" })),
        "s404" => json(404, serde_json::json!({ "error": "no route" })),
        "s500" => json(500, serde_json::json!({ "error": "database down" })),
        _ => (
            StatusCode::FOUND,
            [("location", "https://sso.example.net/login?session=abc")],
            "moved",
        )
            .into_response(),
    });
    let wd = Workdir::new("hostile_login_failures");
    wd.write("hostile.toml", PROFILE.replace("AUTH", TOKEN_LOGIN));
    wd.write("users.csv", "userId,name,password\na-1,A,\n");
    let mut said = Vec::new();
    for (user, expected) in [
        (
            "s401",
            "401 bad credentials; check ENLIST_HOSTILE_USER / ENLIST_HOSTILE_PASSWORD",
        ),
        (
            "s404",
            "404 no route; nothing takes logins there: check the profile's auth.login.path",
        ),
        (
            "s500",
            "500 database down; the server failed: try again later",
        ),
        (
            "s302",
            "302 the server redirected to another host (sso.example.net",
        ),
    ] {
        wd.write(
            "secrets.env",
            format!("ENLIST_HOSTILE_USER={user}\nENLIST_HOSTILE_PASSWORD={ADMIN_PASSWORD}\n"),
        );
        let secrets = ["--secret-file", "secrets.env"];
        let ran = run(&wd, &url, &[&["--mode", "create"][..], &secrets].concat());
        ran.expect_code(4);
        let message = ran.stderr();
        assert!(message.contains(expected), "{user}: {message}");
        let tested = [
            "profiles",
            "test",
            "--profile",
            "./hostile.toml",
            "--base-url",
            &url,
        ];
        let test = wd.run(&[&tested[..], &secrets].concat());
        test.expect_code(1);
        let line = test.stdout();
        assert!(line.contains("✗ auth.login"), "{user}: {line}");
        // Credentials are named only when the target refused them.
        for text in [&message, &line] {
            let blames_credentials = text.contains("ENLIST_HOSTILE_USER")
                || text.contains("ENLIST_HOSTILE_PASSWORD")
                || text.contains("credential");
            assert_eq!(blames_credentials, user == "s401", "{user}: {text}");
            assert!(!text.contains(ADMIN_PASSWORD), "{user}: {text}");
        }
        let failed = line
            .lines()
            .find(|l| l.starts_with('✗'))
            .unwrap_or_default();
        said.push(failed.to_string());
    }
    assert!(said[1].contains("auth.login.path"), "{}", said[1]);
    assert!(said[2].contains("try again later"), "{}", said[2]);
    assert!(said[3].contains("base URL"), "{}", said[3]);
    let distinct: std::collections::HashSet<_> = said.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "each answer has its own message: {said:?}"
    );
}
