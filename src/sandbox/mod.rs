//! The embedded sandbox: an HTTP server that emulates each target API closely enough that
//! admins can rehearse a run and tests have a real HTTP target.
//!
//! The sandbox exists because the real targets (Odin/BroadWorks, SuperOffice, a users API,
//! any SCIM 2.0 server) are production systems: nobody wants to try a spreadsheet of 4 000
//! users against them first. The emulation follows the API pages in `shared/seeds` field for
//! field, and adds fault knobs (rate limit, 503s, dropped connections, latency, token expiry)
//! so that the client's retry and resume logic can be exercised on demand.
//!
//! # URL layout
//!
//! | kind | base URL | auth |
//! |---|---|---|
//! | Odin | `/api/v2` | `POST /auth/token` then `Authorization: Bearer <token>` |
//! | SuperOffice | `/api/v1` | HTTP Basic |
//! | users-api | `/` | HTTP Basic |
//! | SCIM | `/scim/v2` | `Authorization: Bearer <static token>` |
//!
//! Every kind also serves `GET /_sandbox/state` (the stored users) and `GET /_sandbox/stats`
//! (request counters); these bypass authentication, faults and the rate limit, and are not
//! counted.
//!
//! # Faults
//!
//! Every request (outside `/_sandbox`) goes through [`front`]: it is counted, checked against
//! the rate limit (a fixed window; see [`stats`]), delayed by the configured latency (which
//! can change once, some seconds after the first request, to emulate a target that slows
//! down mid-run), then the seeded dice decide between a
//! 503, a connection reset before the handler runs, a reset after the handler has applied its
//! change (the dangerous case: the change happened but the client never hears of it), or
//! nothing. Then authentication, then the API handler.
//!
//! A reset needs the connection itself, which axum's `serve` hides, so [`start`] runs its own
//! accept loop: each connection is served by hyper with a [`faults::ConnKill`] in every
//! request's extensions; triggering it makes the connection task drop the connection future,
//! which closes the socket without writing a response.

// Handlers return an axum `Response` as the error of a check (the API's own error body);
// boxing it would only add noise, and these are not hot paths.
#![allow(clippy::result_large_err)]

mod faults;
mod odin;
mod scim;
mod stats;
mod superoffice;
mod usersapi;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use faults::{ConnKill, Fault};
use stats::Stats;

/// Which target API the sandbox emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SandboxKind {
    /// Cisco BroadWorks through the Odin API.
    Odin,
    /// SuperOffice CRM WebAPI.
    SuperOffice,
    /// The generic users API (`POST /users/user`).
    UsersApi,
    /// SCIM 2.0 (RFC 7643 / 7644).
    Scim,
}

impl SandboxKind {
    /// The name used on the command line and in profiles.
    pub fn name(self) -> &'static str {
        match self {
            SandboxKind::Odin => "odin",
            SandboxKind::SuperOffice => "superoffice",
            SandboxKind::UsersApi => "users-api",
            SandboxKind::Scim => "scim",
        }
    }

    /// The path prefix of the API, appended to `http://host:port` to make the base URL.
    pub fn base_path(self) -> &'static str {
        match self {
            SandboxKind::Odin => "/api/v2",
            SandboxKind::SuperOffice => "/api/v1",
            SandboxKind::UsersApi => "",
            SandboxKind::Scim => "/scim/v2",
        }
    }
}

impl fmt::Display for SandboxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SandboxKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "odin" => Ok(SandboxKind::Odin),
            "superoffice" => Ok(SandboxKind::SuperOffice),
            "users-api" => Ok(SandboxKind::UsersApi),
            "scim" => Ok(SandboxKind::Scim),
            other => {
                let names = ["odin", "superoffice", "users-api", "scim"];
                let guess = crate::profile::did_you_mean(other, &names);
                Err(format!(
                    "unknown sandbox profile {other:?}: {guess}expected odin, superoffice, \
                     users-api or scim"
                ))
            }
        }
    }
}

/// Everything that shapes one sandbox: which API, where, and which faults to inject.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub kind: SandboxKind,
    /// 0 = any free port; the sandbox always binds 127.0.0.1.
    pub port: u16,
    /// Max requests per second on average (all paths except `/_sandbox`), counted over
    /// fixed windows of `rate_window`; beyond → 429.
    pub rate_limit: Option<u32>,
    /// Length of a rate-limit window (whole seconds, at least one); a window admits
    /// `rate_limit × rate_window` requests.
    pub rate_window: Duration,
    /// Send `Retry-After` (whole seconds to the end of the window) on 429; false = 429 with
    /// no such header at all.
    pub retry_after: bool,
    /// Send `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (IETF
    /// httpapi-ratelimit-headers draft) with every answer when there is a rate limit.
    pub rate_limit_headers: bool,
    /// Probability of a 503 (with the API's error body shape), before applying anything.
    pub fail_rate: f64,
    /// Probability of dropping the TCP connection without a response; half of these happen
    /// before applying the change, half after applying it.
    pub reset_rate: f64,
    /// Added to every request.
    pub latency: Duration,
    /// From this long after the first API request on, `latency` is replaced by the second
    /// value.
    pub latency_after: Option<(Duration, Duration)>,
    /// Odin token lifetime; an expired token gets 401.
    pub token_ttl: Duration,
    /// Seed of all randomness (faults, ids, tokens), for repeatable runs.
    pub seed: u64,
    pub username: String,
    pub password: String,
    /// Static bearer token for SCIM.
    pub token: String,
    /// SCIM lookups search the way many user APIs do: `userName eq "lee"` returns every
    /// user whose userName, displayName or email contains "lee" (case ignored), in
    /// creation order, so a client that takes the first item gets the wrong user.
    pub lookup_substring: bool,
    /// users-api: `PUT /users/user/{id}` stores exactly the body (a replace-style PUT:
    /// fields left out, the password too, are cleared); false: it changes only the fields
    /// the body holds.
    pub put_replace: bool,
    /// users-api: a create answers `201` with a `Location` header and an empty body, as
    /// some APIs do, instead of the user.
    pub create_location: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            kind: SandboxKind::Odin,
            port: 0,
            rate_limit: None,
            rate_window: Duration::from_secs(1),
            retry_after: true,
            rate_limit_headers: false,
            fail_rate: 0.0,
            reset_rate: 0.0,
            latency: Duration::ZERO,
            latency_after: None,
            token_ttl: Duration::from_secs(24 * 3600),
            seed: 0,
            username: "admin".to_string(),
            password: "sandbox".to_string(),
            token: "sandbox-token".to_string(),
            lookup_substring: false,
            put_replace: false,
            create_location: false,
        }
    }
}

/// A sandbox serving in the background. Dropping it without [`RunningSandbox::shutdown`]
/// also stops the server (the accept loop sees its shutdown channel close).
pub struct RunningSandbox {
    pub addr: SocketAddr,
    app: Arc<App>,
    /// Tells the accept loop and every connection task to stop.
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningSandbox {
    /// The base URL a profile should use, e.g. `http://127.0.0.1:PORT/api/v2` for Odin.
    pub fn base_url(&self) -> String {
        self.app.base_url.clone()
    }

    /// The stored users, in creation order (never with passwords).
    pub fn users(&self) -> Vec<Value> {
        self.app.users()
    }

    /// SCIM: the groups with their members (`members[].value` are user ids).
    pub fn groups(&self) -> Vec<Value> {
        lock(&self.app.store).groups.clone()
    }

    /// Odin: the service packs assigned to each user id (`PUT /users/services`).
    pub fn service_packs(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        lock(&self.app.store).service_packs.clone()
    }

    /// Whether the user with this email holds this password (users-api, which keeps the
    /// passwords it was sent; no other kind does, and none ever shows one).
    pub fn password_matches(&self, email: &str, password: &str) -> bool {
        let store = lock(&self.app.store);
        store.records.iter().any(|r| {
            r.user.get("email").and_then(Value::as_str) == Some(email)
                && r.user
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| store.passwords.get(id))
                    .is_some_and(|p| p == password)
        })
    }

    /// SuperOffice: the password `POST /Agents/User/SetPassword` last set for this
    /// `AssociateId` is this one (the sandbox never shows a password).
    pub fn password_set_for(&self, associate_id: i64, password: &str) -> bool {
        lock(&self.app.store)
            .passwords
            .get(&associate_id.to_string())
            .is_some_and(|p| p == password)
    }

    /// SuperOffice: how many users were given a password with `POST /Agents/User/SetPassword`.
    pub fn passwords_set(&self) -> usize {
        lock(&self.app.store).passwords.len()
    }

    /// The same JSON as `GET /_sandbox/stats`.
    pub fn stats(&self) -> Value {
        lock(&self.app.stats).to_json()
    }

    /// Stops accepting, drops every open connection and waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Binds 127.0.0.1:`cfg.port`, spawns the server and returns at once.
pub async fn start(cfg: SandboxConfig) -> std::io::Result<RunningSandbox> {
    for (name, p) in [("fail_rate", cfg.fail_rate), ("reset_rate", cfg.reset_rate)] {
        if !(0.0..=1.0).contains(&p) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name} must be between 0 and 1, got {p}"),
            ));
        }
    }
    let listener = TcpListener::bind(("127.0.0.1", cfg.port)).await?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}{}", cfg.kind.base_path());
    let app = Arc::new(App::new(cfg, base_url));
    let router = router(app.clone());
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(faults::accept_loop(listener, router, rx));
    Ok(RunningSandbox {
        addr,
        app,
        shutdown: tx,
        task,
    })
}

/// The shared state of one sandbox. Every mutex here is held only for a short, synchronous
/// critical section and never across an `.await`.
pub(crate) struct App {
    pub(crate) cfg: SandboxConfig,
    pub(crate) base_url: String,
    /// Guards the stored users (in creation order) and the id counter: a create checks for a
    /// duplicate and inserts under one lock, so concurrent duplicates cannot both succeed.
    pub(crate) store: Mutex<Store>,
    /// Guards the request counters, the in-flight count and the rate-limit window.
    pub(crate) stats: Mutex<Stats>,
    /// Guards the fault dice: one seeded stream, so a run with the same seed and the same
    /// request order meets the same faults.
    pub(crate) fault_rng: Mutex<SmallRng>,
    /// Guards the generator of ids, tokens and passwords; kept apart from `fault_rng` so that
    /// logging in or creating does not shift the fault sequence.
    pub(crate) id_rng: Mutex<SmallRng>,
    /// Guards Odin's live bearer tokens and the instant each one expires.
    pub(crate) tokens: Mutex<HashMap<String, Instant>>,
    /// When the first API request arrived: the clock of `latency_after`.
    pub(crate) first_request: OnceLock<Instant>,
}

/// The users a sandbox holds.
#[derive(Default)]
pub(crate) struct Store {
    pub(crate) records: Vec<Record>,
    /// Next SuperOffice `AssociateId`.
    pub(crate) next_id: i64,
    /// SCIM Groups (a few seeded ones, and those created), with their members.
    pub(crate) groups: Vec<Value>,
    /// Odin: the service packs assigned to each user id.
    pub(crate) service_packs: std::collections::BTreeMap<String, Vec<String>>,
    /// users-api: each user's password, by id; SuperOffice: the passwords set with
    /// `Agents/User/SetPassword`, by `AssociateId` (never shown).
    pub(crate) passwords: HashMap<String, String>,
}

/// One stored user: the entity as the API returns it, and when it last changed.
pub(crate) struct Record {
    pub(crate) user: Value,
    pub(crate) modified: SystemTime,
}

/// Locks a mutex, going on with the data if another thread panicked while holding it (the
/// sandbox's state stays usable; a panic is a bug we want to see in the other requests).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl App {
    fn new(cfg: SandboxConfig, base_url: String) -> App {
        let fault_rng = SmallRng::seed_from_u64(cfg.seed);
        let id_rng = SmallRng::seed_from_u64(cfg.seed ^ 0x5eed_1d5e_ed1d_5eed);
        let groups = match cfg.kind {
            SandboxKind::Scim => scim::seed_groups(&base_url),
            _ => Vec::new(),
        };
        App {
            base_url,
            store: Mutex::new(Store {
                records: Vec::new(),
                next_id: 1000,
                groups,
                service_packs: Default::default(),
                passwords: HashMap::new(),
            }),
            stats: Mutex::new(Stats::new(cfg.rate_limit, cfg.rate_window)),
            fault_rng: Mutex::new(fault_rng),
            id_rng: Mutex::new(id_rng),
            tokens: Mutex::new(HashMap::new()),
            first_request: OnceLock::new(),
            cfg,
        }
    }

    /// The delay of a request arriving now.
    fn latency(&self) -> Duration {
        let first = *self.first_request.get_or_init(Instant::now);
        match self.cfg.latency_after {
            Some((after, latency)) if first.elapsed() >= after => latency,
            _ => self.cfg.latency,
        }
    }

    fn users(&self) -> Vec<Value> {
        lock(&self.store)
            .records
            .iter()
            .map(|r| r.user.clone())
            .collect()
    }

    /// A random UUID (version 4 layout) from the seeded id generator.
    pub(crate) fn new_uuid(&self) -> String {
        let (a, b): (u64, u64) = {
            let mut rng = lock(&self.id_rng);
            (rng.random(), rng.random())
        };
        let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
        let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    /// A random string drawn from `alphabet`.
    pub(crate) fn random_string(&self, alphabet: &[u8], len: usize) -> String {
        let mut rng = lock(&self.id_rng);
        (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
            .collect()
    }
}

fn router(app: Arc<App>) -> Router {
    let api = match app.cfg.kind {
        SandboxKind::Odin => odin::routes(),
        SandboxKind::SuperOffice => superoffice::routes(),
        SandboxKind::UsersApi => usersapi::routes(),
        SandboxKind::Scim => scim::routes(),
    };
    api.route("/_sandbox/state", get(sandbox_state))
        .route("/_sandbox/stats", get(sandbox_stats))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), front))
        .with_state(app)
}

async fn sandbox_state(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, Value::Array(app.users()))
}

async fn sandbox_stats(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, lock(&app.stats).to_json())
}

async fn not_found(State(app): State<Arc<App>>, method: Method, uri: axum::http::Uri) -> Response {
    api_error(
        app.cfg.kind,
        StatusCode::NOT_FOUND,
        &format!("No route for {method} {}", uri.path()),
    )
}

/// The front door of every API request: counting, rate limit, latency, faults, auth.
async fn front(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path == "/_sandbox" || path.starts_with("/_sandbox/") {
        return next.run(req).await;
    }
    let key = format!("{} {}", req.method(), stats::path_key(&path));
    let mut in_flight = stats::InFlight::begin(app.clone());
    let admission = lock(&app.stats).admit();
    let mut resp = answer(&app, &key, &path, req, next, admission, &mut in_flight).await;
    in_flight.done();
    rate_limit_headers(&app, admission, &mut resp);
    resp
}

/// Adds the RateLimit-* headers of `admission` to an answer, if the sandbox sends them.
fn rate_limit_headers(app: &App, admission: Option<stats::Admission>, resp: &mut Response) {
    let Some(a) = admission.filter(|_| app.cfg.rate_limit_headers) else {
        return;
    };
    let headers = resp.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", a.quota),
        ("ratelimit-remaining", a.remaining),
        ("ratelimit-reset", a.reset_secs),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

/// Everything [`front`] does once the request is counted and the limiter has decided:
/// latency, the 429, the fault dice, authentication, the handler.
async fn answer(
    app: &Arc<App>,
    key: &str,
    path: &str,
    req: Request,
    next: Next,
    admission: Option<stats::Admission>,
    in_flight: &mut stats::InFlight,
) -> Response {
    let latency = app.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(a) = admission.filter(|a| !a.admitted) {
        let mut resp = api_error(
            app.cfg.kind,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests: rate limit exceeded",
        );
        if app.cfg.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(a.reset_secs));
        }
        let mut stats = lock(&app.stats);
        stats.refused();
        stats.record(key, "429");
        return resp;
    }
    let kill = req.extensions().get::<ConnKill>().cloned();
    let fault = faults::roll(app);
    match fault {
        Fault::Fail => {
            let mut stats = lock(&app.stats);
            stats.failures += 1;
            stats.record(key, "503");
            return api_error(
                app.cfg.kind,
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable (sandbox fault)",
            );
        }
        Fault::ResetBefore => {
            {
                let mut stats = lock(&app.stats);
                stats.resets += 1;
                stats.record(key, "reset-before");
            }
            in_flight.done();
            return faults::drop_connection(app.cfg.kind, kill).await;
        }
        Fault::ResetAfter | Fault::None => {}
    }
    if let Err(resp) = check_auth(app, req.method(), path, req.headers()) {
        lock(&app.stats).record(key, "401");
        return resp;
    }
    let resp = next.run(req).await;
    if fault == Fault::ResetAfter {
        {
            let mut stats = lock(&app.stats);
            stats.resets += 1;
            stats.record(key, "reset-after");
        }
        in_flight.done();
        return faults::drop_connection(app.cfg.kind, kill).await;
    }
    lock(&app.stats).record(key, resp.status().as_str());
    resp
}

/// Checks the credentials each API expects; the error is the API's own 401.
fn check_auth(app: &App, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Response> {
    let kind = app.cfg.kind;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
    let value = value.trim();
    let unauthorized = |message: &str, challenge: &'static str| {
        let mut resp = api_error(kind, StatusCode::UNAUTHORIZED, message);
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        Err(resp)
    };
    match kind {
        SandboxKind::Odin => {
            if method == Method::POST && path == "/api/v2/auth/token" {
                return Ok(());
            }
            if !scheme.eq_ignore_ascii_case("bearer") || value.is_empty() {
                return unauthorized("Missing bearer token", "Bearer");
            }
            let tokens = lock(&app.tokens);
            match tokens.get(value) {
                Some(expires) if *expires > Instant::now() => Ok(()),
                Some(_) => unauthorized("Token expired", "Bearer"),
                None => unauthorized("Invalid token", "Bearer"),
            }
        }
        SandboxKind::SuperOffice | SandboxKind::UsersApi => {
            let challenge = if kind == SandboxKind::SuperOffice {
                "Basic realm=\"SuperOffice\""
            } else {
                "Basic realm=\"users-api\""
            };
            if !scheme.eq_ignore_ascii_case("basic") {
                return unauthorized("Authentication required", challenge);
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let ok = decoded
                .as_deref()
                .and_then(|d| d.split_once(':'))
                .is_some_and(|(u, p)| u == app.cfg.username && p == app.cfg.password);
            if ok {
                Ok(())
            } else {
                unauthorized("Invalid username or password", challenge)
            }
        }
        SandboxKind::Scim => {
            if scheme.eq_ignore_ascii_case("bearer") && value == app.cfg.token {
                Ok(())
            } else {
                unauthorized("Invalid or missing bearer token", "Bearer")
            }
        }
    }
}

/// A JSON response with `application/json`.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// An error in the shape the given API uses:
///
/// - Odin: `{"details": ..., "status": 401, "error": "Unauthorized"}`
/// - SuperOffice: `{"Error": true, "ErrorType": ..., "ErrorMessage": ..., "ErrorSource": ...}`
/// - users-api: `{"econtext": {"error": {"message": ...}}}` (the page shows no error; this is
///   the sandbox's choice, mirroring the `econtext.result` envelope of success)
/// - SCIM: the RFC 7644 error message (`status` as a string).
pub(crate) fn api_error(kind: SandboxKind, status: StatusCode, message: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    match kind {
        SandboxKind::Odin => json_response(
            status,
            json!({"details": message, "status": status.as_u16(), "error": reason}),
        ),
        SandboxKind::SuperOffice => json_response(
            status,
            json!({
                "Error": true,
                "ErrorType": reason.replace(' ', ""),
                "ErrorMessage": message,
                "ErrorSource": "SuperOffice.CRM.Sandbox",
            }),
        ),
        SandboxKind::UsersApi => {
            json_response(status, json!({"econtext": {"error": {"message": message}}}))
        }
        SandboxKind::Scim => scim::error(status, None, message),
    }
}

/// Parses a request body that must be a JSON object.
pub(crate) fn parse_object(body: &Bytes) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("The request body must be a JSON object".to_string()),
        Err(e) => Err(format!("Malformed JSON in request body: {e}")),
    }
}

/// The JSON types a field may be required to have.
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    Str,
    Int,
    Bool,
    Obj,
    Arr,
    /// An array of strings.
    StrArr,
    /// An object or null.
    ObjOrNull,
    /// An array or null.
    ArrOrNull,
}

impl Ty {
    fn matches(self, v: &Value) -> bool {
        match self {
            Ty::Str => v.is_string(),
            Ty::Int => v.is_i64() || v.is_u64(),
            Ty::Bool => v.is_boolean(),
            Ty::Obj => v.is_object(),
            Ty::Arr => v.is_array(),
            Ty::StrArr => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Ty::ObjOrNull => v.is_object() || v.is_null(),
            Ty::ArrOrNull => v.is_array() || v.is_null(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Int => "an integer",
            Ty::Bool => "a boolean",
            Ty::Obj => "an object",
            Ty::Arr => "an array",
            Ty::StrArr => "an array of strings",
            Ty::ObjOrNull => "an object or null",
            Ty::ArrOrNull => "an array or null",
        }
    }
}

/// Checks the type of every listed field that is present (and, with `required`, that the
/// required ones are). Returns the first problem as a message.
pub(crate) fn check_fields(
    body: &Map<String, Value>,
    required: &[&str],
    types: &[(&str, Ty)],
) -> Result<(), String> {
    for name in required {
        if !body.contains_key(*name) {
            return Err(format!("Missing required field: {name}"));
        }
    }
    for (name, ty) in types {
        if let Some(v) = body.get(*name) {
            if !ty.matches(v) {
                return Err(format!("Field {name} must be {}", ty.describe()));
            }
        }
    }
    Ok(())
}

/// Now as RFC 3339 with milliseconds, UTC.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
