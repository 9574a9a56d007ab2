//! Credentials and the token a run logs in for.
//!
//! Secrets are read once (environment variables the profile names, or `--secret-file`),
//! held as [`SecretString`]s and only exposed at the moment a header or a login body is
//! built. Nothing here implements `Debug` in a way that shows them.
//!
//! Token login: one login before the workers start; the token is shared. A 401 makes the
//! worker that saw it ask for a new token *for the generation it used*: the first such
//! worker logs in again (under [`TokenAuth::renewing`]), every other worker that saw the
//! same expired token waits on that lock and then finds a newer generation and reuses it.
//! So any number of workers hitting 401 together cause exactly one re-login.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use super::client::{Http, Resp};
use super::limiter::Gate;
use super::Stats;
use crate::error::{Error, Result};
use crate::plan::render_request;
use crate::profile::template::{Scope, Var};
use crate::profile::{Auth, Profile, TokenLogin};
use crate::scrub::Scrubber;

/// Named secrets (environment variable name → value). `Debug` prints the names only.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Secrets {
    /// The secret variables `profile` needs.
    pub fn names(profile: &Profile) -> Vec<&str> {
        match &profile.auth {
            Auth::None => vec![],
            Auth::Basic {
                username_env,
                password_env,
            } => vec![username_env, password_env],
            Auth::Bearer { token_env } => vec![token_env],
            Auth::ApiKey { key_env, .. } => vec![key_env],
            Auth::TokenLogin(t) => vec![&t.username_env, &t.password_env],
        }
    }

    /// Reads what `profile` needs from `--secret-file` (lines `NAME=value`; `#` comments),
    /// else from the environment. Returns the names of those found in neither, so that the
    /// caller can name every missing variable in one message.
    pub fn read(profile: &Profile, file: Option<&Path>) -> Result<(Secrets, Vec<String>)> {
        let mut from_file = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::CannotStart(format!("cannot read --secret-file {}: {e}", path.display()))
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let line = line.strip_prefix("export ").unwrap_or(line);
                let Some((k, v)) = line.split_once('=') else {
                    return Err(Error::CannotStart(format!(
                        "--secret-file {} line {}: expected NAME=value",
                        path.display(),
                        i + 1
                    )));
                };
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                from_file.insert(k.trim().to_string(), SecretString::from(v.to_string()));
            }
        }
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for name in Secrets::names(profile) {
            let value = match from_file.remove(name) {
                Some(v) => v,
                None => match std::env::var(name) {
                    Ok(v) if !v.is_empty() => SecretString::from(v),
                    _ => {
                        missing.push(name.to_string());
                        continue;
                    }
                },
            };
            values.insert(name.to_string(), value);
        }
        Ok((Secrets { values }, missing))
    }

    /// Secrets given directly (tests, the in-process demo).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Secrets {
        Secrets {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
                .collect(),
        }
    }

    fn get(&self, name: &str) -> Result<&SecretString> {
        self.values.get(name).ok_or_else(|| {
            Error::CannotStart(format!(
                "the secret {name} is not set (environment or --secret-file)"
            ))
        })
    }
}

/// A header built from a secret, marked sensitive so hyper never logs it.
fn secret_header(name: &str, value: String) -> Result<(HeaderName, HeaderValue)> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::CannotStart(format!("auth header name {name:?} is not valid")))?;
    let mut v = HeaderValue::from_str(&value).map_err(|_| {
        Error::CannotStart(format!(
            "the credential for header {name} holds characters a header cannot carry"
        ))
    })?;
    v.set_sensitive(true);
    Ok((n, v))
}

/// The auth header for one request, and the token generation it came from.
pub struct Credential {
    pub header: Option<(HeaderName, HeaderValue)>,
    /// Token generation (0 for static credentials).
    pub generation: u64,
}

/// The secret values a run knows: its credentials, and every token a login obtained.
/// Server text passes this run's [`Scrubber`] before it is stored or printed.
#[derive(Default)]
pub struct Known {
    /// Replaced (never changed in place) when a login adds a token: a reader keeps the
    /// snapshot it took. Held only to clone or swap the `Arc`.
    scrubber: std::sync::RwLock<Arc<Scrubber>>,
}

impl Known {
    /// The scrubber as of now.
    pub fn get(&self) -> Arc<Scrubber> {
        self.scrubber
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn add(&self, secret: &str) {
        let mut s = self.scrubber.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**s).clone();
        next.add(secret);
        *s = Arc::new(next);
    }

    /// An auth header's value, and its credential alone (after `Basic `, `Bearer `...).
    fn add_header(&self, value: &HeaderValue) {
        if let Ok(v) = value.to_str() {
            self.add(v);
            if let Some((_, cred)) = v.split_once(' ') {
                self.add(cred.trim());
            }
        }
    }
}

/// How requests of this run authenticate, and the secrets that must never show.
pub struct Authenticator {
    how: How,
    known: Arc<Known>,
}

enum How {
    /// No auth header, or one fixed header (basic, bearer, API key).
    Static(Option<(HeaderName, HeaderValue)>),
    Token(Box<TokenAuth>),
}

impl Authenticator {
    pub fn new(profile: &Profile, secrets: &Secrets) -> Result<Authenticator> {
        use base64::Engine as _;
        let known = Arc::new(Known::default());
        for v in secrets.values.values() {
            known.add(v.expose_secret());
        }
        let how = match &profile.auth {
            Auth::None => How::Static(None),
            Auth::Basic {
                username_env,
                password_env,
            } => {
                let raw = format!(
                    "{}:{}",
                    secrets.get(username_env)?.expose_secret(),
                    secrets.get(password_env)?.expose_secret()
                );
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                How::Static(Some(secret_header(
                    "Authorization",
                    format!("Basic {b64}"),
                )?))
            }
            Auth::Bearer { token_env } => How::Static(Some(secret_header(
                "Authorization",
                format!("Bearer {}", secrets.get(token_env)?.expose_secret()),
            )?)),
            Auth::ApiKey {
                header,
                key_env,
                prefix,
            } => How::Static(Some(secret_header(
                header,
                format!("{prefix}{}", secrets.get(key_env)?.expose_secret()),
            )?)),
            Auth::TokenLogin(t) => How::Token(Box::new(TokenAuth {
                spec: (**t).clone(),
                username: secrets.get(&t.username_env)?.clone(),
                password: secrets.get(&t.password_env)?.clone(),
                state: RwLock::new(None),
                renewing: Mutex::new(()),
                failed: std::sync::Mutex::new(None),
                known: known.clone(),
            })),
        };
        if let How::Static(Some((_, v))) = &how {
            known.add_header(v);
        }
        Ok(Authenticator { how, known })
    }

    /// The secrets known to the run (for scrubbing server text).
    pub fn known(&self) -> Arc<Known> {
        self.known.clone()
    }

    /// Logs in when the profile uses a token (before any worker starts).
    pub async fn start(
        &self,
        http: &Http,
        gate: &Gate,
        stats: &Stats,
        attempts: u32,
    ) -> Result<()> {
        match &self.how {
            How::Static(_) => Ok(()),
            How::Token(t) => t.renew(http, gate, stats, None, attempts).await,
        }
    }

    /// The header for the next request; renews a token whose lifetime is nearly over.
    pub async fn credential(&self, http: &Http, gate: &Gate, stats: &Stats) -> Result<Credential> {
        match &self.how {
            How::Static(h) => Ok(Credential {
                header: h.clone(),
                generation: 0,
            }),
            How::Token(t) => {
                if let Some(g) = t.due_for_refresh().await {
                    // Boxed: a renewal (a whole login request) is rare, and inline its state
                    // would make every request's future, and every row's, larger to move.
                    Box::pin(t.renew(http, gate, stats, Some(g), 3)).await?;
                }
                let s = t.state.read().await;
                match &*s {
                    Some(tok) => Ok(Credential {
                        header: Some(tok.header.clone()),
                        generation: tok.generation,
                    }),
                    None => Err(Error::CannotStart("not logged in".into())),
                }
            }
        }
    }

    /// A request with generation `g` got 401: get a new token unless another worker
    /// already did. Returns false for static credentials (nothing to renew).
    pub async fn on_unauthorized(
        &self,
        http: &Http,
        gate: &Gate,
        stats: &Stats,
        generation: u64,
    ) -> Result<bool> {
        match &self.how {
            How::Static(_) => Ok(false),
            How::Token(t) => {
                // Boxed for the same reason as the renewal in `credential`.
                Box::pin(t.relogin(http, gate, stats, generation)).await?;
                Ok(true)
            }
        }
    }
}

/// The current token.
struct TokenState {
    header: (HeaderName, HeaderValue),
    /// Incremented by every login or refresh; a 401 names the generation it saw.
    generation: u64,
    obtained: Instant,
}

/// Token login shared by all workers.
pub struct TokenAuth {
    spec: TokenLogin,
    username: SecretString,
    password: SecretString,
    /// Guards the current token: read by every request, written only by the one task that
    /// holds `renewing`.
    state: RwLock<Option<TokenState>>,
    /// Held while logging in or refreshing, so exactly one renewal runs per generation.
    renewing: Mutex<()>,
    /// Why the last login failed (written under `renewing`): workers that waited for that
    /// login fail with the same message instead of each trying the bad credentials again.
    failed: std::sync::Mutex<Option<String>>,
    /// Every token obtained is added here, so that no server text shows it.
    known: Arc<Known>,
}

/// `{{auth.username}}` / `{{auth.password}}` for the login body.
struct AuthScope<'a> {
    username: &'a SecretString,
    password: &'a SecretString,
}

impl Scope for AuthScope<'_> {
    fn var(&self, name: &str) -> Var<'_> {
        let v = match name {
            "auth.username" => self.username.expose_secret(),
            "auth.password" => self.password.expose_secret(),
            _ => return Var::Empty,
        };
        Var::Value(Cow::Owned(Value::String(v.to_string())))
    }
}

impl TokenAuth {
    /// The generation to refresh when 90 % of the token's lifetime has passed.
    async fn due_for_refresh(&self) -> Option<u64> {
        let life = Duration::from_secs(self.spec.lifetime_secs?);
        let s = self.state.read().await;
        let tok = s.as_ref()?;
        (tok.obtained.elapsed() >= life.mul_f64(0.9)).then_some(tok.generation)
    }

    async fn relogin(&self, http: &Http, gate: &Gate, stats: &Stats, seen: u64) -> Result<()> {
        self.renew_as(http, gate, stats, Some(seen), false, 3).await
    }

    /// Refresh (when due) or first login.
    async fn renew(
        &self,
        http: &Http,
        gate: &Gate,
        stats: &Stats,
        seen: Option<u64>,
        attempts: u32,
    ) -> Result<()> {
        self.renew_as(http, gate, stats, seen, seen.is_some(), attempts)
            .await
    }

    /// Gets a new token unless the current generation is already newer than `seen`.
    /// `refresh`: try the profile's refresh request first (falling back to a login).
    async fn renew_as(
        &self,
        http: &Http,
        gate: &Gate,
        stats: &Stats,
        seen: Option<u64>,
        refresh: bool,
        attempts: u32,
    ) -> Result<()> {
        let _one = self.renewing.lock().await;
        if let Some(why) = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(Error::CannotStart(why));
        }
        let (current, old_header) = {
            let s = self.state.read().await;
            (
                s.as_ref().map(|t| t.generation),
                s.as_ref().map(|t| t.header.clone()),
            )
        };
        if current.is_some() && current != seen {
            return Ok(()); // someone else renewed while we waited
        }
        let mut token = None;
        if refresh {
            if let Some(spec) = &self.spec.refresh {
                let req = render_request(
                    spec,
                    &AuthScope {
                        username: &self.username,
                        password: &self.password,
                    },
                );
                // A failed refresh is not fatal: a fresh login follows.
                if let Ok(resp) = self
                    .exchange(http, gate, stats, &req, old_header.as_ref(), 1)
                    .await
                {
                    if spec.is_success(resp.status) {
                        token = self.token_from(&resp);
                    }
                }
            }
        }
        let token = match token {
            Some(t) => t,
            None => match self.login(http, gate, stats, attempts).await {
                Ok(t) => t,
                Err(e) => {
                    *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    return Err(e);
                }
            },
        };
        self.known.add(&token);
        let header = secret_header(&self.spec.header, format!("{}{token}", self.spec.prefix))?;
        let mut s = self.state.write().await;
        let generation = s.as_ref().map_or(1, |t| t.generation + 1);
        *s = Some(TokenState {
            header,
            generation,
            obtained: Instant::now(),
        });
        tracing::info!(generation, "logged in");
        Ok(())
    }

    /// Sends the login request; the token, or why there is none.
    async fn login(
        &self,
        http: &Http,
        gate: &Gate,
        stats: &Stats,
        attempts: u32,
    ) -> Result<String> {
        let req = render_request(
            &self.spec.login,
            &AuthScope {
                username: &self.username,
                password: &self.password,
            },
        );
        let url = http.url(&req);
        let hint = format!(
            "check {} / {}",
            self.spec.username_env, self.spec.password_env
        );
        let scrub = |m: String| Error::CannotStart(self.known.get().scrub(&m));
        let resp = self
            .exchange(http, gate, stats, &req, None, attempts)
            .await
            .map_err(|m| scrub(format!("login to {url} failed: {m}")))?;
        if !self.spec.login.is_success(resp.status) {
            // The login profile has no error pointers of its own: the body's
            // `details`/`error`/`message` fields are the usual places.
            if let Some(r) = &resp.redirect {
                return Err(scrub(format!("login to {url} failed: {} {r}", resp.status)));
            }
            let msg = login_failure(&resp);
            return Err(scrub(format!("login to {url} failed: {msg}; {hint}")));
        }
        self.token_from(&resp).ok_or_else(|| {
            Error::CannotStart(format!(
                "login to {url} answered {} without a token at {}{}",
                resp.status,
                self.spec.token_pointer,
                token_hint(&resp)
            ))
        })
    }

    fn token_from(&self, resp: &Resp) -> Option<String> {
        match resp.json()?.pointer(&self.spec.token_pointer)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }

    /// Sends a login or refresh request through the gate, retrying transport failures and
    /// retryable statuses (a login is safe to repeat).
    async fn exchange(
        &self,
        http: &Http,
        gate: &Gate,
        stats: &Stats,
        req: &crate::plan::Request,
        auth: Option<&(HeaderName, HeaderValue)>,
        attempts: u32,
    ) -> std::result::Result<Resp, String> {
        let mut tries = 0;
        loop {
            gate.acquire().await;
            tries += 1;
            stats.request();
            let r = http.send(req, auth).await;
            let retry = match &r {
                Ok(resp) => matches!(resp.status, 408 | 429 | 502 | 503 | 504),
                Err(_) => true,
            };
            if let Ok(resp) = &r {
                if resp.status == 429 {
                    stats.throttle();
                    gate.throttled();
                }
            }
            if !retry || tries >= attempts.max(1) {
                return r.map_err(|e| e.message().to_string());
            }
            stats.retry();
            tokio::time::sleep(super::retry::backoff(tries)).await;
        }
    }
}

/// What a login answer without a token at `token_pointer` holds instead: its top-level
/// keys (names only, never values), and the pointer to set when one names a token.
fn token_hint(resp: &Resp) -> String {
    let Some(Value::Object(answer)) = resp.json() else {
        return "; check the profile's token_pointer (the answer is not a JSON object)".into();
    };
    let keys: Vec<&str> = answer.keys().map(String::as_str).take(12).collect();
    let likely = answer.iter().find(|(k, v)| {
        v.is_string()
            && ["token", "jwt"]
                .iter()
                .any(|t| k.to_lowercase().contains(t))
    });
    match likely {
        Some((k, _)) => format!(
            " (keys: {}): set token_pointer = \"/{}\"",
            keys.join(", "),
            k.replace('~', "~0").replace('/', "~1")
        ),
        None => format!(
            " (keys: {}); check the profile's token_pointer",
            keys.join(", ")
        ),
    }
}

fn login_failure(resp: &Resp) -> String {
    let reason = reqwest::StatusCode::from_u16(resp.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let msg = resp.json().and_then(|v| {
        ["/details", "/error", "/message", "/detail", "/ErrorMessage"]
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_str).map(str::to_string))
    });
    match msg {
        Some(m) => format!(
            "{} {}",
            resp.status,
            super::client::excerpt(&m, super::client::EXCERPT)
        ),
        None => format!("{} {reason}", resp.status),
    }
}
