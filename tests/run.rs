//! `enlist run`: the executor against small in-process servers on 127.0.0.1:0.
//!
//! Most tests drive the library entry point [`enlist::collect::run`] with rows planned from
//! hand-made cells (no sheet reader needed) and a server whose faults are scripted per test;
//! the server counts and timestamps what it receives, so each property is checked on the
//! server side. The `binary_*` tests run the real binary on a CSV file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use enlist::cell::Cell;
use enlist::collect;
use enlist::execute::{Concurrency, RunSettings, Secrets};
use enlist::outcome::{Outcome, OutcomeSink, RunSummary, Status};
use enlist::plan::{Layout, PlanOptions, PlannedRow, Planner};
use enlist::profile::{Action, Profile};
use enlist::source::RawRow;

use crate::workdir::Workdir;

const TOKEN_LOGIN: &str = r#"
[auth]
type = "token-login"
username_env = "ENLIST_TEST_USERNAME"
password_env = "ENLIST_TEST_PASSWORD"
login = { method = "POST", path = "/auth/token", body = { username = "{{auth.username}}", password = "{{auth.password}}" } }
token_pointer = "/token"
"#;

const PROFILE: &str = r#"
name = "test"
base_url_env = "ENLIST_TEST_URL"
key = "userId"
rate = 100.0
concurrency = 4
AUTH
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

fn profile_text(token_login: bool) -> String {
    PROFILE.replace(
        "AUTH",
        if token_login {
            TOKEN_LOGIN
        } else {
            "[auth]\ntype = \"none\"\n"
        },
    )
}

fn profile(token_login: bool) -> Arc<Profile> {
    let p = Profile::parse(&profile_text(token_login), "test", &|f: &str| {
        Err(format!("no file {f}"))
    })
    .expect("test profile");
    Arc::new(p)
}

/// Rows `(userId, name)` planned as the reader would deliver them.
fn rows(p: &Arc<Profile>, mode: Action, users: &[(&str, &str)]) -> Vec<PlannedRow> {
    let headers = vec!["userId".to_string(), "name".to_string()];
    let layout = Layout::new(p, &headers, Path::new("test.csv")).expect("layout");
    let mut planner = Planner::new(
        p.clone(),
        layout,
        PlanOptions {
            mode: Some(mode),
            fingerprint: true,
            without_cells: false,
            secret_key: None,
        },
        Default::default(),
    );
    users
        .iter()
        .enumerate()
        .map(|(i, (id, name))| {
            planner.plan(Ok(RawRow {
                number: i as u64 + 2,
                cells: vec![Cell::text(id), Cell::text(name)],
            }))
        })
        .collect()
}

fn many(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("user{i}@example.com"), format!("User {i}")))
        .collect()
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// What the fake target knows and what the test scripts.
#[derive(Default)]
struct Srv {
    /// userId → (remote id, name).
    users: Mutex<HashMap<String, (String, String)>>,
    next_id: AtomicU32,
    logins: AtomicU32,
    /// The token currently accepted (None: every user request gets 401).
    token: Mutex<Option<String>>,
    login_fails: AtomicBool,
    /// Arrival time and "METHOD path" of every user request.
    arrivals: Mutex<Vec<(Instant, String)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Sleep per user request.
    delay_ms: AtomicU32,
    /// The next N user requests get 503.
    fail_503: AtomicU32,
    /// The next N user requests get 429 with `Retry-After: 1`; their times are kept.
    throttle: AtomicU32,
    /// The next N user requests get a bare 429 (no header: PocketBase's limiter).
    throttle_bare: AtomicU32,
    throttled_at: Mutex<Vec<Instant>>,
    /// After this many more user requests the token is revoked (0 = never).
    revoke_after: AtomicU32,
    /// The next create is applied, then the connection is dropped without an answer.
    drop_create: AtomicBool,
    refreshes: AtomicU32,
    /// Logins after this many fail (0 = no limit).
    max_logins: AtomicU32,
    /// A refreshed token stays valid until it expires (as Odin's do).
    old_token: Mutex<Option<String>>,
    unauthorized: AtomicU32,
}

impl Srv {
    /// "METHOD path" of every user request, in order of arrival.
    fn arrived(&self) -> Vec<String> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.1.clone())
            .collect()
    }
}

type S = State<Arc<Srv>>;

fn err(status: StatusCode, details: &str) -> Response {
    (
        status,
        Json(json!({"details": details, "status": status.as_u16()})),
    )
        .into_response()
}

/// The checks every user request goes through; `Err` is the answer to send instead.
async fn enter<'a>(s: &'a Srv, headers: &HeaderMap, what: String) -> Result<Guard<'a>, Response> {
    s.arrivals.lock().unwrap().push((Instant::now(), what));
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let guard = Guard(s);
    let d = s.delay_ms.load(Ordering::SeqCst);
    if d > 0 {
        tokio::time::sleep(Duration::from_millis(d.into())).await;
    }
    if s.revoke_after
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n > 0).then(|| n - 1)
        })
        == Ok(1)
    {
        *s.token.lock().unwrap() = None;
    }
    let expected = s.token.lock().unwrap().clone();
    if s.logins.load(Ordering::SeqCst) > 0 || expected.is_some() {
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let old = s.old_token.lock().unwrap().clone();
        let ok = |t: Option<String>| t.map(|t| format!("Bearer {t}")).as_deref() == Some(sent);
        if !ok(expected) && !ok(old) {
            s.unauthorized.fetch_add(1, Ordering::SeqCst);
            return Err(err(StatusCode::UNAUTHORIZED, "token expired"));
        }
    }
    if s.throttle_bare
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(err(StatusCode::TOO_MANY_REQUESTS, "slow down"));
    }
    if s.fail_503
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(err(StatusCode::SERVICE_UNAVAILABLE, "busy"));
    }
    if s.throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        s.throttled_at.lock().unwrap().push(Instant::now());
        let mut r = err(StatusCode::TOO_MANY_REQUESTS, "slow down");
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return Err(r);
    }
    Ok(guard)
}

struct Guard<'a>(&'a Srv);
impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn login(State(s): S, Json(b): Json<Value>) -> Response {
    let n = s.logins.fetch_add(1, Ordering::SeqCst) + 1;
    let max = s.max_logins.load(Ordering::SeqCst);
    if (max > 0 && n > max)
        || s.login_fails.load(Ordering::SeqCst)
        || b["username"] != "admin"
        || b["password"] != "S3cr3t-value"
    {
        return err(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    let t = format!("tok{n}");
    *s.token.lock().unwrap() = Some(t.clone());
    Json(json!({ "token": t })).into_response()
}

/// `PUT /auth/token`: a fresh token for a valid one (Odin's refresh).
async fn refresh(State(s): S, h: HeaderMap) -> Response {
    let sent = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut tok = s.token.lock().unwrap();
    if tok.as_ref().map(|t| format!("Bearer {t}")) != Some(sent) {
        return err(StatusCode::UNAUTHORIZED, "token expired");
    }
    let n = s.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    let t = format!("ref{n}");
    *s.old_token.lock().unwrap() = tok.replace(t.clone());
    Json(json!({ "token": t })).into_response()
}

async fn lookup(State(s): S, h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let uid = q.get("userId").cloned().unwrap_or_default();
    let _g = match enter(&s, &h, format!("GET {uid}")).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    match s.users.lock().unwrap().get(&uid) {
        Some((id, name)) => Json(json!({"id": id, "userId": uid, "name": name})).into_response(),
        None => err(StatusCode::NOT_FOUND, "no such user"),
    }
}

async fn create(State(s): S, h: HeaderMap, Json(b): Json<Value>) -> Response {
    let uid = b["userId"].as_str().unwrap_or("").to_string();
    let _g = match enter(&s, &h, format!("POST {uid}")).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    if b["name"] == "bad" {
        return err(StatusCode::BAD_REQUEST, "name is not allowed here");
    }
    let id = {
        let mut users = s.users.lock().unwrap();
        if users.contains_key(&uid) {
            return err(StatusCode::CONFLICT, "user exists");
        }
        let id = format!("r{}", s.next_id.fetch_add(1, Ordering::SeqCst));
        let name = b["name"].as_str().unwrap_or("").to_string();
        users.insert(uid.clone(), (id.clone(), name));
        id
    };
    if s.drop_create.swap(false, Ordering::SeqCst) {
        // Applied, but the client never hears back: the connection task dies.
        panic!("test server drops the connection after applying the create");
    }
    (StatusCode::CREATED, Json(json!({"id": id, "userId": uid}))).into_response()
}

async fn update(
    State(s): S,
    h: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Json(b): Json<Value>,
) -> Response {
    let _g = match enter(&s, &h, format!("PUT {id}")).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut users = s.users.lock().unwrap();
    match users.values_mut().find(|(rid, _)| *rid == id) {
        Some(u) => {
            u.1 = b["name"].as_str().unwrap_or("").to_string();
            Json(json!({"id": id})).into_response()
        }
        None => err(StatusCode::NOT_FOUND, "no such user"),
    }
}

/// `PUT /users` naming the user in the body (as Odin does): no remote id needed.
async fn update_by_user_id(State(s): S, h: HeaderMap, Json(b): Json<Value>) -> Response {
    let uid = b["userId"].as_str().unwrap_or("").to_string();
    let _g = match enter(&s, &h, format!("PUT {uid}")).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut users = s.users.lock().unwrap();
    match users.get_mut(&uid) {
        Some(u) => {
            u.1 = b["name"].as_str().unwrap_or("").to_string();
            Json(json!({"id": u.0})).into_response()
        }
        None => err(StatusCode::NOT_FOUND, "no such user"),
    }
}

fn app(s: &Arc<Srv>) -> Router {
    Router::new()
        .route("/auth/token", post(login).put(refresh))
        .route("/users", get(lookup).post(create).put(update_by_user_id))
        .route("/users/{id}", put(update))
        .with_state(s.clone())
}

/// The fake target over HTTPS with a certificate for localhost and 127.0.0.1 that no
/// public CA signed; returns its state, base URL and the certificate (PEM).
async fn tls_server() -> (Arc<Srv>, String, String) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let pem = key.cert.pem();
    let der =
        rustls::pki_types::PrivateKeyDer::try_from(key.key_pair.serialize_der()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(vec![key.cert.der().clone()], der)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let s = Arc::new(Srv::default());
    let app = app(&s);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}", l.local_addr().unwrap().port());
    tokio::spawn(async move {
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
    (s, url, pem)
}

/// Starts the fake target; returns its state and base URL.
async fn server() -> (Arc<Srv>, String) {
    let s = Arc::new(Srv::default());
    let app = app(&s);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (s, url)
}

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

fn settings(p: &Profile, url: &str) -> RunSettings {
    let secrets = Secrets::from_pairs([
        ("ENLIST_TEST_USERNAME", "admin"),
        ("ENLIST_TEST_PASSWORD", "S3cr3t-value"),
    ]);
    let mut s = RunSettings::new(p, url, false, secrets).unwrap();
    s.rate = 500.0;
    s.concurrency = Concurrency::Fixed(4);
    s.timeout = Duration::from_secs(3);
    s
}

/// Runs rows to the end (or until `stop` resolves); returns the result and the outcomes.
async fn go(
    p: &Arc<Profile>,
    s: RunSettings,
    rows: Vec<PlannedRow>,
    stop: impl std::future::Future<Output = ()> + Send,
) -> (enlist::error::Result<RunSummary>, Vec<Outcome>) {
    let mem = Mem::default();
    let r = collect::run(
        p.clone(),
        s,
        rows.into_iter(),
        vec![Box::new(mem.clone())],
        stop,
    )
    .await;
    let mut out = mem.0.lock().unwrap().clone();
    out.sort_by_key(|o| o.seq);
    (r, out)
}

fn never() -> futures::future::Pending<()> {
    futures::future::pending()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_retries_then_succeeds() {
    let (srv, url) = server().await;
    let p = profile(false);
    srv.fail_503.store(2, Ordering::SeqCst);
    let rows = rows(&p, Action::Create, &[("a@x.io", "A")]);
    let (r, out) = go(&p, settings(&p, &url), rows, never()).await;
    let sum = r.unwrap();
    assert_eq!(out[0].status, Status::Created, "{:?}", out[0]);
    assert_eq!(out[0].attempts, 3);
    assert_eq!(out[0].requests, 3);
    assert_eq!(out[0].http_status, Some(201));
    assert_eq!(out[0].remote_id.as_deref(), Some("r0"));
    assert!(out[0].fingerprint.is_some());
    assert_eq!(sum.retries, 2);
    assert_eq!(sum.requests, 3);
    assert!(sum.all_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_count_the_rows_own_request_and_requests_count_them_all() {
    let (srv, url) = server().await;
    let p = profile(false);
    // A create answered 503 once: sent twice.
    srv.fail_503.store(1, Ordering::SeqCst);
    let created = rows(&p, Action::Create, &[("a@x.io", "A")]);
    let (r, out) = go(&p, settings(&p, &url), created, never()).await;
    r.unwrap();
    assert_eq!(out[0].status, Status::Created, "{:?}", out[0]);
    assert_eq!((out[0].attempts, out[0].requests), (2, 2));
    // An upsert whose lookup is answered 503 once: the lookup's retry is a request, not an
    // attempt of the create.
    srv.fail_503.store(1, Ordering::SeqCst);
    let rows = rows(&p, Action::Upsert, &[("b@x.io", "B")]);
    let mut s = settings(&p, &url);
    s.upsert_order = enlist::execute::order::UpsertOrder::LookupFirst;
    let (r, out) = go(&p, s, rows, never()).await;
    r.unwrap();
    assert_eq!(out[0].status, Status::Created, "{:?}", out[0]);
    assert_eq!((out[0].attempts, out[0].requests), (1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_honours_retry_after_for_every_worker() {
    let (srv, url) = server().await;
    let p = profile(false);
    srv.throttle.store(1, Ordering::SeqCst);
    let users = many(12);
    let rows = rows(&p, Action::Create, &refs(&users));
    let mut s = settings(&p, &url);
    s.rate = 40.0;
    let (r, out) = go(&p, s, rows, never()).await;
    let sum = r.unwrap();
    assert!(out.iter().all(|o| o.status == Status::Created), "{out:?}");
    assert_eq!(sum.throttled_429, 1);
    let t429 = srv.throttled_at.lock().unwrap()[0];
    // Requests already past the gate when the 429 arrived may land just after it; after
    // that nothing may arrive before the one second the server asked for.
    let early: Vec<Duration> = srv
        .arrivals
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t > t429)
        .map(|(t, _)| *t - t429)
        .filter(|d| *d > Duration::from_millis(60) && *d < Duration::from_millis(995))
        .collect();
    assert!(
        early.is_empty(),
        "requests inside the Retry-After pause: {early:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_backs_off_on_a_bare_429() {
    let (srv, url) = server().await;
    let p = profile(false);
    srv.throttle_bare.store(3, Ordering::SeqCst);
    let users = many(6);
    let rows = rows(&p, Action::Create, &refs(&users));
    let (r, out) = go(&p, settings(&p, &url), rows, never()).await;
    let sum = r.unwrap();
    assert!(out.iter().all(|o| o.status == Status::Created), "{out:?}");
    assert_eq!(sum.throttled_429, 3);
    assert_eq!(sum.retries, 3);
    assert_eq!(srv.users.lock().unwrap().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_relogs_in_once_when_the_token_is_revoked() {
    let (srv, url) = server().await;
    let p = profile(true);
    srv.revoke_after.store(10, Ordering::SeqCst);
    srv.delay_ms.store(5, Ordering::SeqCst);
    let users = many(40);
    let rows = rows(&p, Action::Create, &refs(&users));
    let mut s = settings(&p, &url);
    s.concurrency = Concurrency::Fixed(4);
    let (r, out) = go(&p, s, rows, never()).await;
    r.unwrap();
    assert!(out.iter().all(|o| o.status == Status::Created), "{out:?}");
    assert_eq!(
        srv.logins.load(Ordering::SeqCst),
        2,
        "one login + one re-login"
    );
    assert_eq!(srv.users.lock().unwrap().len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_before_any_row_when_login_fails() {
    let (srv, url) = server().await;
    let p = profile(true);
    srv.login_fails.store(true, Ordering::SeqCst);
    let rows = rows(&p, Action::Create, &[("a@x.io", "A")]);
    let (r, out) = go(&p, settings(&p, &url), rows, never()).await;
    let e = r.unwrap_err();
    assert_eq!(e.exit_code(), enlist::error::exit::CANNOT_START);
    let m = e.to_string();
    assert!(m.contains("login to http://127.0.0.1"), "{m}");
    assert!(
        m.contains("/auth/token failed: 401 Invalid credentials"),
        "{m}"
    );
    assert!(
        m.contains("ENLIST_TEST_USERNAME / ENLIST_TEST_PASSWORD"),
        "{m}"
    );
    assert!(!m.contains("S3cr3t-value"), "{m}");
    assert_eq!(
        srv.logins.load(Ordering::SeqCst),
        1,
        "bad credentials are not retried"
    );
    assert!(srv.arrivals.lock().unwrap().is_empty());
    assert!(out.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_confirms_an_ambiguous_create_by_lookup() {
    let (srv, url) = server().await;
    let p = profile(false);
    srv.drop_create.store(true, Ordering::SeqCst);
    let rows = rows(&p, Action::Create, &[("a@x.io", "A")]);
    let (r, out) = go(&p, settings(&p, &url), rows, never()).await;
    r.unwrap();
    assert_eq!(out[0].status, Status::Created, "{:?}", out[0]);
    assert!(
        out[0].message.contains("confirmed by lookup"),
        "{:?}",
        out[0]
    );
    assert_eq!(out[0].remote_id.as_deref(), Some("r0"));
    assert_eq!(srv.users.lock().unwrap().len(), 1);
    let what = srv.arrived();
    assert_eq!(what, ["POST a@x.io", "GET a@x.io"]);
}

/// Upserts `old@x.io` (already on the server) and `new@x.io`, one at a time.
async fn upsert_old_and_new(srv: &Srv, p: &Arc<Profile>, url: &str) -> Vec<Outcome> {
    srv.users
        .lock()
        .unwrap()
        .insert("old@x.io".into(), ("r-old".into(), "Old".into()));
    let rows = rows(
        p,
        Action::Upsert,
        &[("old@x.io", "Renamed"), ("new@x.io", "New")],
    );
    let mut s = settings(p, url);
    s.concurrency = Concurrency::Fixed(1);
    // The order these tests spell out (auto would create first on a fresh run).
    s.upsert_order = enlist::execute::order::UpsertOrder::LookupFirst;
    let (r, out) = go(p, s, rows, never()).await;
    r.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_upserts_both_ways() {
    let (srv, url) = server().await;
    let p = profile(false);
    srv.next_id.store(1, Ordering::SeqCst);
    let out = upsert_old_and_new(&srv, &p, &url).await;
    assert_eq!(out[0].status, Status::Updated, "{:?}", out[0]);
    assert_eq!(out[0].remote_id.as_deref(), Some("r-old"));
    // Attempts count the row's own request (the update, sent once); the lookup is one
    // of its requests.
    assert_eq!((out[0].attempts, out[0].requests), (1, 2));
    assert_eq!(out[1].status, Status::Created, "{:?}", out[1]);
    assert_eq!((out[1].attempts, out[1].requests), (1, 2));
    let what = srv.arrived();
    assert_eq!(
        what,
        ["GET old@x.io", "PUT r-old", "GET new@x.io", "POST new@x.io"]
    );
    assert_eq!(srv.users.lock().unwrap()["old@x.io"].1, "Renamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_update_of_a_missing_user_fails_without_creating() {
    let (srv, url) = server().await;
    let p = profile(false);
    let rows = rows(&p, Action::Update, &[("ghost@x.io", "G")]);
    let (r, out) = go(&p, settings(&p, &url), rows, never()).await;
    let sum = r.unwrap();
    assert_eq!(out[0].status, Status::Failed);
    assert_eq!(out[0].message, "not found: no user with key ghost@x.io");
    assert!(srv.users.lock().unwrap().is_empty());
    assert!(!sum.all_ok());
    assert_eq!(enlist::cmd::run::exit_code(&sum), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_create_conflict_is_exists_and_server_errors_are_quoted() {
    let (srv, url) = server().await;
    let p = profile(false);
    srv.users
        .lock()
        .unwrap()
        .insert("dup@x.io".into(), ("r-dup".into(), "D".into()));
    let rows = rows(&p, Action::Create, &[("dup@x.io", "D"), ("b@x.io", "bad")]);
    let (r, out) = go(&p, settings(&p, &url), rows, never()).await;
    r.unwrap();
    assert_eq!(out[0].status, Status::Exists, "{:?}", out[0]);
    assert_eq!(out[1].status, Status::Failed);
    assert_eq!(out[1].http_status, Some(400));
    assert_eq!(out[1].attempts, 1, "a 400 is not retried");
    assert!(
        out[1].message.contains("name is not allowed here"),
        "{:?}",
        out[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_never_exceeds_the_concurrency() {
    let (srv, url) = server().await;
    let p = profile(false);
    srv.delay_ms.store(60, Ordering::SeqCst);
    let users = many(15);
    let rows = rows(&p, Action::Create, &refs(&users));
    let mut s = settings(&p, &url);
    s.concurrency = Concurrency::Fixed(3);
    s.rate = 1000.0;
    let (r, out) = go(&p, s, rows, never()).await;
    r.unwrap();
    assert_eq!(out.len(), 15);
    assert_eq!(srv.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_never_exceeds_the_rate_in_any_second() {
    let (srv, url) = server().await;
    let p = profile(false);
    let users = many(60);
    let rows = rows(&p, Action::Create, &refs(&users));
    let mut s = settings(&p, &url);
    s.rate = 20.0;
    s.concurrency = Concurrency::Fixed(8);
    let (r, _) = go(&p, s, rows, never()).await;
    let sum = r.unwrap();
    let times: Vec<Instant> = srv.arrivals.lock().unwrap().iter().map(|a| a.0).collect();
    assert_eq!(times.len(), 60);
    let worst = times
        .iter()
        .map(|t0| {
            times
                .iter()
                .filter(|t| **t >= *t0 && **t < *t0 + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "rate 20: busiest second {worst}, achieved {:.1} req/s over {:.2}s",
        sum.achieved_rate, sum.duration_secs
    );
    assert!(worst <= 20, "{worst} requests in one second at --rate 20");
    assert!(sum.achieved_rate > 15.0, "rate {}", sum.achieved_rate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_interrupted_marks_unsent_rows_not_attempted() {
    let (srv, url) = server().await;
    let p = profile(false);
    srv.delay_ms.store(150, Ordering::SeqCst);
    let mut users = many(30);
    users.push(("".into(), "no key: invalid".into()));
    let rows = rows(&p, Action::Create, &refs(&users));
    let mut s = settings(&p, &url);
    s.concurrency = Concurrency::Fixed(2);
    let stop = tokio::time::sleep(Duration::from_millis(400));
    let (r, out) = go(&p, s, rows, stop).await;
    let sum = r.unwrap();
    assert!(sum.interrupted);
    assert_eq!(enlist::cmd::run::exit_code(&sum), 6);
    let seqs: Vec<u64> = out.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, (0..31).collect::<Vec<u64>>(), "one outcome per row");
    let created = out.iter().filter(|o| o.status == Status::Created).count();
    let unsent = out
        .iter()
        .filter(|o| o.status == Status::NotAttempted)
        .count();
    assert!((2..=8).contains(&created), "{created} created");
    assert_eq!(created + unsent, 30, "{out:?}");
    assert_eq!(out[30].status, Status::Invalid);
    assert_eq!(srv.users.lock().unwrap().len(), created);
    assert!(out
        .iter()
        .filter(|o| o.status == Status::NotAttempted)
        .all(|o| o.attempts == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refreshes_the_token_before_its_lifetime_ends() {
    let (srv, url) = server().await;
    let text = profile_text(true).replace(
        "token_pointer = \"/token\"",
        "token_pointer = \"/token\"\nlifetime_secs = 1\nrefresh = { method = \"PUT\", path = \"/auth/token\" }",
    );
    let p = Arc::new(Profile::parse(&text, "test", &|f: &str| Err(f.to_string())).unwrap());
    let users = many(30);
    let rows = rows(&p, Action::Create, &refs(&users));
    let mut s = settings(&p, &url);
    s.rate = 20.0;
    let (r, out) = go(&p, s, rows, never()).await;
    r.unwrap();
    assert!(out.iter().all(|o| o.status == Status::Created), "{out:?}");
    assert_eq!(srv.logins.load(Ordering::SeqCst), 1);
    assert!(srv.refreshes.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        srv.unauthorized.load(Ordering::SeqCst),
        0,
        "refreshed before expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_when_the_re_login_is_refused() {
    let (srv, url) = server().await;
    let p = profile(true);
    srv.max_logins.store(1, Ordering::SeqCst);
    srv.revoke_after.store(5, Ordering::SeqCst);
    let users = many(20);
    let rows = rows(&p, Action::Create, &refs(&users));
    let mut s = settings(&p, &url);
    s.concurrency = Concurrency::Fixed(2);
    let (r, out) = go(&p, s, rows, never()).await;
    let e = r.unwrap_err();
    assert_eq!(e.exit_code(), enlist::error::exit::CANNOT_START, "{e}");
    assert!(e.to_string().contains("401 Invalid credentials"), "{e}");
    assert_eq!(
        srv.logins.load(Ordering::SeqCst),
        2,
        "one re-login, not one per worker"
    );
    let seqs: Vec<u64> = out.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, (0..20).collect::<Vec<u64>>(), "one outcome per row");
    let created = out.iter().filter(|o| o.status == Status::Created).count();
    assert_eq!(created, srv.users.lock().unwrap().len());
    assert!(out
        .iter()
        .all(|o| matches!(o.status, Status::Created | Status::NotAttempted)));
    assert!(created < 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_lookup_reads_a_conflict_after_an_ambiguous_create_as_created() {
    let (srv, url) = server().await;
    let text = profile_text(false);
    let cut = text.find("[requests.lookup]").unwrap();
    let end = text[cut..].find("[[columns]]").unwrap();
    let text = format!("{}{}", &text[..cut], &text[cut + end..]);
    let p = Arc::new(Profile::parse(&text, "test", &|f: &str| Err(f.to_string())).unwrap());
    srv.drop_create.store(true, Ordering::SeqCst);
    let rows = rows(&p, Action::Create, &[("a@x.io", "A")]);
    let (r, out) = go(&p, settings(&p, &url), rows, never()).await;
    r.unwrap();
    assert_eq!(out[0].status, Status::Created, "{:?}", out[0]);
    assert!(
        out[0].message.contains("first attempt was applied"),
        "{:?}",
        out[0]
    );
    assert_eq!(out[0].attempts, 2);
    assert_eq!(out[0].requests, 2);
    assert_eq!(srv.users.lock().unwrap().len(), 1);
}

/// An upsert with no lookup: create, and on a conflict update the user by its key (the
/// profile's update names the user in the body, as Odin's does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_upsert_without_lookup_updates_on_conflict() {
    let (srv, url) = server().await;
    let text = profile_text(false);
    let cut = text.find("[requests.lookup]").unwrap();
    let end = text[cut..].find("[[columns]]").unwrap();
    let text = format!("{}{}", &text[..cut], &text[cut + end..])
        .replace("path = \"/users/{{remote_id}}\"", "path = \"/users\"");
    let p = Arc::new(Profile::parse(&text, "test", &|f: &str| Err(f.to_string())).unwrap());
    let out = upsert_old_and_new(&srv, &p, &url).await;
    assert_eq!(out[0].status, Status::Updated, "{:?}", out[0]);
    assert_eq!(out[1].status, Status::Created, "{:?}", out[1]);
    let what = srv.arrived();
    assert_eq!(what, ["POST old@x.io", "PUT old@x.io", "POST new@x.io"]);
    let users = srv.users.lock().unwrap();
    assert_eq!(users["old@x.io"].1, "Renamed");
    assert_eq!(users.len(), 2, "no second user");
}

/// Not a benchmark (debug build, shared machine): a smoke figure for the report, and a
/// check that nothing serialises the workers when the rate is not the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_unthrottled_smoke_figure() {
    let (srv, url) = server().await;
    let p = profile(false);
    let users = many(500);
    let rows = rows(&p, Action::Create, &refs(&users));
    let mut s = settings(&p, &url);
    s.rate = 100_000.0;
    s.burst = 100;
    s.concurrency = Concurrency::Fixed(8);
    let (r, out) = go(&p, s, rows, never()).await;
    let sum = r.unwrap();
    eprintln!(
        "unthrottled, concurrency 8, debug build: {} rows in {:.2}s = {:.0} req/s",
        out.len(),
        sum.duration_secs,
        sum.achieved_rate
    );
    assert_eq!(srv.users.lock().unwrap().len(), 500);
    assert!(sum.achieved_rate > 100.0);
}

#[test]
fn run_secrets_never_show_in_debug() {
    let p = profile(true);
    let s = settings(&p, "http://127.0.0.1:9");
    let d = format!("{s:?}");
    assert!(d.contains("ENLIST_TEST_PASSWORD"));
    assert!(!d.contains("\"secret\"") && !d.contains("admin"), "{d}");
}

// ---- the real binary (these need the CSV reader) ----

fn binary_setup(wd: &Workdir, csv: &str) {
    wd.write("test.toml", profile_text(true));
    wd.write("users.csv", csv);
    wd.write(
        "secrets.env",
        "ENLIST_TEST_USERNAME=admin\nENLIST_TEST_PASSWORD=S3cr3t-value\n",
    );
}

/// TLS is verified: a target whose certificate no known CA signed is refused (before any
/// row), and `--ca-file` with its CA makes the same run succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_binary_trusts_a_private_ca_only_with_ca_file() {
    let (srv, url, pem) = tls_server().await;
    let wd = Workdir::new("run_ca_file");
    binary_setup(&wd, "userId,name\na@x.io,A\nb@x.io,B\n");
    wd.write("ca.pem", pem);
    let wd = Arc::new(wd);
    let run = |extra: &'static [&'static str]| {
        let (wd, url) = (wd.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "run",
                "users.csv",
                "--profile",
                "./test.toml",
                "--secret-file",
                "secrets.env",
                "--base-url",
                &url,
                "--progress",
                "never",
                "--fresh",
            ];
            args.extend_from_slice(extra);
            wd.run(&args)
        })
    };
    let refused = run(&[]).await.unwrap();
    refused.expect_code(4);
    assert!(
        refused.stderr().contains("certificate") && refused.stderr().contains("--ca-file"),
        "{}",
        refused.stderr()
    );
    assert!(srv.users.lock().unwrap().is_empty());

    let trusted = run(&["--ca-file", "ca.pem"]).await.unwrap();
    trusted.expect_code(0);
    assert_eq!(srv.users.lock().unwrap().len(), 2);
}

#[test]
fn run_binary_refuses_without_a_base_url() {
    let wd = Workdir::new("run_no_base");
    binary_setup(&wd, "userId,name\na@x.io,A\n");
    let r = wd.run(&[
        "run",
        "users.csv",
        "--profile",
        "./test.toml",
        "--secret-file",
        "secrets.env",
    ]);
    r.expect_code(4);
    assert!(r.stderr().contains("ENLIST_TEST_URL"), "{}", r.stderr());
}

#[test]
fn run_binary_refuses_plain_http_to_another_host() {
    let wd = Workdir::new("run_http");
    binary_setup(&wd, "userId,name\na@x.io,A\n");
    let r = wd.run(&[
        "run",
        "users.csv",
        "--profile",
        "./test.toml",
        "--secret-file",
        "secrets.env",
        "--base-url",
        "http://example.com/api",
    ]);
    r.expect_code(2);
    assert!(
        r.stderr().contains("--allow-insecure-http"),
        "{}",
        r.stderr()
    );
}

/// Needs the CSV reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_binary_creates_users_from_csv() {
    let (srv, url) = server().await;
    let wd = Workdir::new("run_csv");
    binary_setup(&wd, "userId,name\na@x.io,A\nb@x.io,B\n,no key\n");
    let r = tokio::task::spawn_blocking(move || {
        let r = wd.run(&[
            "run",
            "users.csv",
            "--profile",
            "./test.toml",
            "--secret-file",
            "secrets.env",
            "--base-url",
            &url,
            "--report",
            "out.jsonl",
            "--progress",
            "never",
        ]);
        (r, wd.read("out.jsonl"))
    })
    .await
    .unwrap();
    let (r, report) = r;
    r.expect_code(1);
    assert!(
        r.stdout().contains("enlist summary: rows=3 created=2"),
        "{}",
        r.stdout()
    );
    assert_eq!(report.lines().count(), 4, "{report}");
    assert!(report.contains("\"status\":\"invalid\""));
    assert!(!report.contains("S3cr3t-value"));
    assert_eq!(srv.users.lock().unwrap().len(), 2);
}

/// Without a terminal, progress comes as lines that say how far the run is and how long
/// is left (cron logs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_give_the_total_and_the_time_left() {
    let (srv, url) = server().await;
    let wd = Workdir::new("run_progress");
    let mut csv = String::from("userId,name\n");
    for i in 0..8 {
        csv.push_str(&format!("u{i}@x.io,User {i}\n"));
    }
    binary_setup(&wd, &csv);
    let r = tokio::task::spawn_blocking(move || {
        wd.run(&[
            "run",
            "users.csv",
            "--profile",
            "./test.toml",
            "--secret-file",
            "secrets.env",
            "--base-url",
            &url,
            "--rate",
            "10",
            "--progress",
            "auto",
            "--progress-interval",
            "0.2",
        ])
    })
    .await
    .unwrap();
    r.expect_code(0);
    let stderr = r.stderr();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(!lines.is_empty(), "{stderr}");
    assert!(lines.iter().all(|l| l.contains(" of 8 rows")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("s left")), "{lines:?}");
    assert_eq!(srv.users.lock().unwrap().len(), 8);
}

/// Needs the CSV reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_binary_exits_4_when_login_fails() {
    let (srv, url) = server().await;
    srv.login_fails.store(true, Ordering::SeqCst);
    let wd = Workdir::new("run_login");
    binary_setup(&wd, "userId,name\na@x.io,A\n");
    let wd = Arc::new(wd);
    let run = || {
        let (wd, url) = (wd.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            wd.run(&[
                "run",
                "users.csv",
                "--profile",
                "./test.toml",
                "--secret-file",
                "secrets.env",
                "--base-url",
                &url,
                // Creates: only a resume would look the user up first.
                "--mode",
                "create",
            ])
        })
    };
    let r = run().await.unwrap();
    r.expect_code(4);
    assert!(
        r.stderr().contains("401 Invalid credentials"),
        "{}",
        r.stderr()
    );
    assert!(srv.arrivals.lock().unwrap().is_empty());

    // Fixed credentials: the run that never started is not resumed (no lookup first).
    srv.login_fails.store(false, Ordering::SeqCst);
    let r = run().await.unwrap();
    r.expect_code(0);
    assert!(!r.stderr().contains("resuming"), "{}", r.stderr());
    let what = srv.arrived();
    assert_eq!(what, ["POST a@x.io"]);
}
