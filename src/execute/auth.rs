//! Credentials and the token a run logs in for.
//!
//! Secrets ([`crate::secrets`]) are held as [`SecretString`]s and only exposed at the
//! moment a header or a login body is built. Nothing here implements `Debug` in a way that
//! shows them.
//!
//! Token login: one login before the workers start; the token is shared. A 401 makes the
//! worker that saw it ask for a new token *for the generation it used*: the first such
//! worker logs in again (under [`TokenAuth::renewing`]), every other worker that saw the
//! same expired token waits on that lock and then finds a newer generation and reuses it.
//! So any number of workers hitting 401 together cause exactly one re-login.
//!
//! A login that fails says why in a [`LoginError`]: only a refusal (401, 403) points at the
//! credentials, since a wrong path, a failing server or a redirect would send a user
//! chasing a password that is fine.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use super::client::{excerpt, Resp, EXCERPT};
use super::Net;
use crate::error::{Error, Result};
use crate::plan::{render_request, Request};
use crate::profile::template::{Scope, Var};
use crate::profile::{Auth, Profile, TokenLogin};
use crate::scrub::Known;
use crate::secrets::Secrets;

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
        for v in secrets.values() {
            known.add(v.expose_secret());
        }
        let b64 = |raw: String| base64::engine::general_purpose::STANDARD.encode(raw);
        let header = match &profile.auth {
            Auth::None => None,
            Auth::Basic {
                username_env,
                password_env,
            } => {
                let user = secrets.get(username_env)?.expose_secret();
                let password = secrets.get(password_env)?.expose_secret();
                let basic = b64(format!("{user}:{password}"));
                Some(("Authorization", format!("Basic {basic}")))
            }
            Auth::Bearer { token_env } => Some((
                "Authorization",
                format!("Bearer {}", secrets.get(token_env)?.expose_secret()),
            )),
            Auth::ApiKey {
                header,
                key_env,
                prefix,
            } => Some((
                header.as_str(),
                format!("{prefix}{}", secrets.get(key_env)?.expose_secret()),
            )),
            Auth::TokenLogin(t) => {
                let how = How::Token(Box::new(TokenAuth {
                    spec: (**t).clone(),
                    username: secrets.get(&t.username_env)?.clone(),
                    password: secrets.get(&t.password_env)?.clone(),
                    state: RwLock::new(None),
                    renewing: Mutex::new(None),
                    known: known.clone(),
                }));
                return Ok(Authenticator { how, known });
            }
        };
        let header = header.map(|(n, v)| secret_header(n, v)).transpose()?;
        if let Some((_, v)) = &header {
            known.add_header(v);
        }
        Ok(Authenticator {
            how: How::Static(header),
            known,
        })
    }

    /// The secrets known to the run (for scrubbing server text).
    pub fn known(&self) -> Arc<Known> {
        self.known.clone()
    }

    /// Logs in when the profile uses a token (before any worker starts).
    pub(crate) async fn start(&self, net: &Net, attempts: u32) -> Result<()> {
        match &self.how {
            How::Static(_) => Ok(()),
            How::Token(t) => t.renew(net, None, false, attempts).await,
        }
    }

    /// The header for the next request; renews a token whose lifetime is nearly over.
    pub(crate) async fn credential(&self, net: &Net) -> Result<Credential> {
        match &self.how {
            How::Static(h) => Ok(Credential {
                header: h.clone(),
                generation: 0,
            }),
            How::Token(t) => {
                if let Some(g) = t.due_for_refresh().await {
                    // Boxed: a renewal (a whole login request) is rare, and inline its state
                    // would make every request's future, and every row's, larger to move.
                    Box::pin(t.renew(net, Some(g), true, 3)).await?;
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
    pub(crate) async fn on_unauthorized(&self, net: &Net, generation: u64) -> Result<bool> {
        match &self.how {
            How::Static(_) => Ok(false),
            How::Token(t) => {
                // Boxed for the same reason as the renewal in `credential`.
                Box::pin(t.renew(net, Some(generation), false, 3)).await?;
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
    /// Holds why the last login failed: workers that waited for that login fail with the
    /// same error instead of each trying the bad credentials again.
    renewing: Mutex<Option<LoginError>>,
    /// Every token obtained is added here, so that no server text shows it.
    known: Arc<Known>,
}

/// `{{auth.username}}` / `{{auth.password}}` for the login body.
struct AuthScope<'a>(&'a TokenAuth);

impl Scope for AuthScope<'_> {
    fn var(&self, name: &str) -> Var<'_> {
        let v = match name {
            "auth.username" => self.0.username.expose_secret(),
            "auth.password" => self.0.password.expose_secret(),
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

    /// Gets a new token unless the current generation is already newer than `seen`
    /// (`None`: the first login). `refresh`: try the profile's refresh request first
    /// (falling back to a login).
    async fn renew(
        &self,
        net: &Net,
        seen: Option<u64>,
        refresh: bool,
        attempts: u32,
    ) -> Result<()> {
        let mut failed = self.renewing.lock().await;
        if let Some(e) = &*failed {
            return Err(Error::Login(Box::new(e.clone())));
        }
        let old = self
            .state
            .read()
            .await
            .as_ref()
            .map(|t| (t.generation, t.header.clone()));
        if old.as_ref().is_some_and(|(g, _)| Some(*g) != seen) {
            return Ok(()); // someone else renewed while we waited
        }
        let old_header = old.map(|(_, h)| h);
        let mut token = None;
        if let Some(spec) = self.spec.refresh.as_ref().filter(|_| refresh) {
            let req = render_request(spec, &AuthScope(self));
            // A failed refresh is not fatal: a fresh login follows.
            if let Ok(resp) = exchange(net, &req, old_header.as_ref(), 1).await {
                if spec.is_success(resp.status) {
                    token = self.token_from(&resp);
                }
            }
        }
        let token = match token {
            Some(t) => t,
            None => self.login(net, attempts).await.map_err(|e| {
                *failed = Some(e.clone());
                Error::Login(Box::new(e))
            })?,
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
    async fn login(&self, net: &Net, attempts: u32) -> std::result::Result<String, LoginError> {
        let req = render_request(&self.spec.login, &AuthScope(self));
        let scrub = |m: &str| self.known.get().scrub(m);
        let failed = |status, kind, detail: &str| LoginError {
            url: net.http.url(&req),
            status,
            kind,
            detail: scrub(detail),
            credentials: format!("{} / {}", self.spec.username_env, self.spec.password_env),
        };
        let resp = match exchange(net, &req, None, attempts).await {
            Ok(resp) => resp,
            Err(m) => return Err(failed(None, LoginFailure::NoAnswer, &m)),
        };
        let status = Some(resp.status);
        if !self.spec.login.is_success(resp.status) {
            let kind = LoginFailure::of(resp.status);
            return Err(match &resp.redirect {
                Some(r) => failed(status, kind, &format!("{} {r}", resp.status)),
                None => failed(status, kind, &answer_words(&resp)),
            });
        }
        self.token_from(&resp).ok_or_else(|| {
            let kind = LoginFailure::NoToken {
                pointer: self.spec.token_pointer.clone(),
                instead: token_hint(&resp),
            };
            failed(status, kind, &answer_words(&resp))
        })
    }

    fn token_from(&self, resp: &Resp) -> Option<String> {
        match resp.json()?.pointer(&self.spec.token_pointer)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }
}

/// The shortest server-given wait a login honours as one (not an attempt).
const MIN_WAIT: Duration = Duration::from_millis(100);

/// Sends a login or refresh request through the gate, retrying transport failures and
/// retryable statuses (a login is safe to repeat).
async fn exchange(
    net: &Net,
    req: &Request,
    auth: Option<&(HeaderName, HeaderValue)>,
    attempts: u32,
) -> std::result::Result<Resp, String> {
    let mut tries = 0;
    let mut waited = Duration::ZERO;
    loop {
        net.gate.acquire().await;
        tries += 1;
        net.stats.request();
        let r = net.http.send(req, auth).await;
        let retry = match &r {
            Ok(resp) => matches!(resp.status, 408 | 429 | 502 | 503 | 504),
            Err(_) => true,
        };
        if r.as_ref().is_ok_and(|resp| resp.status == 429) {
            net.stats.throttle();
            net.gate.throttled();
        }
        // A 429 or 503 that says when to come back: the login waits as asked, and that is
        // no attempt, while all such waits together stay within --max-pause. A wait beyond
        // that ends the login now; one too short to be a wait is an attempt like any other.
        let asked = r
            .as_ref()
            .ok()
            .and_then(super::retry::come_back_in)
            .map(|a| a.wait)
            .filter(|w| *w >= MIN_WAIT);
        let honoured = asked.filter(|w| waited + *w <= net.max_pause);
        if honoured.is_some() {
            tries -= 1;
        }
        if !retry || tries >= attempts.max(1) || asked.is_some() && honoured.is_none() {
            return r.map_err(|e| e.message().to_string());
        }
        net.stats.retry();
        match honoured {
            Some(w) => {
                waited += w;
                net.gate.pause_for(w);
            }
            None => tokio::time::sleep(super::retry::backoff(tries)).await,
        }
    }
}

/// Why a login gave no token, with what the answer said and what to do about it.
#[derive(Debug, Clone)]
pub struct LoginError {
    /// The login URL (secrets travel in its body, never in the URL).
    pub url: String,
    /// The answer's status, when there was an answer.
    pub status: Option<u16>,
    pub kind: LoginFailure,
    /// The answer in words (status, reason, the server's own message), or why there was
    /// none; scrubbed of secrets.
    pub detail: String,
    /// The profile's credential variables, `USERNAME_ENV / PASSWORD_ENV`.
    credentials: String,
}

/// What a failed login means, by the class of its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    /// 401, 403: the target refused the credentials.
    Refused,
    /// 404, 405, 501: nothing takes logins at that path with that method.
    NotFound,
    /// 5xx, or 408 / 429 still after the retries: the server could not log anyone in now.
    ServerError,
    /// 3xx: the answer points elsewhere (`detail` names where).
    Redirect,
    /// Another 4xx: the target refused the login request itself (its body or format).
    Rejected,
    /// A success without a token at the profile's `token_pointer`; `instead`: what the
    /// answer held (its keys, and the pointer to set when one names a token).
    NoToken { pointer: String, instead: String },
    /// No answer at all (cannot connect, certificate refused, timeout).
    NoAnswer,
}

impl LoginFailure {
    /// The class of a login's answer that was no success.
    fn of(status: u16) -> LoginFailure {
        match status {
            401 | 403 => LoginFailure::Refused,
            404 | 405 | 501 => LoginFailure::NotFound,
            300..=399 => LoginFailure::Redirect,
            408 | 429 | 500..=599 => LoginFailure::ServerError,
            _ => LoginFailure::Rejected,
        }
    }
}

impl LoginError {
    /// What to do about it, when there is more to say than the answer itself.
    pub fn advice(&self) -> Option<String> {
        Some(match &self.kind {
            // Some gateways answer 401 for any path they do not know, login paths included.
            LoginFailure::Refused => format!(
                "check {} (or auth.login.path, if this is not the login endpoint)",
                self.credentials
            ),
            LoginFailure::NotFound => "nothing takes logins there: check the profile's \
                                       auth.login.path (and its method)"
                .into(),
            LoginFailure::ServerError => "the server failed: try again later".into(),
            LoginFailure::Rejected => "the target refused the login request itself: check \
                                       the body of the profile's auth.login"
                .into(),
            LoginFailure::NoToken { pointer, instead } => format!("no token at {pointer}{instead}"),
            // The redirect's and the transport's own words say what to do.
            LoginFailure::Redirect | LoginFailure::NoAnswer => return None,
        })
    }
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "login to {} failed: {}", self.url, self.detail)?;
        match self.advice() {
            Some(a) => write!(f, "; {a}"),
            None => Ok(()),
        }
    }
}

/// A login's answer in words: its status, and the server's message where the usual
/// fields hold one (the login has no error pointers of its own).
fn answer_words(resp: &Resp) -> String {
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
        Some(m) => format!("{} {}", resp.status, excerpt(&m, EXCERPT)),
        None => format!("{} {reason}", resp.status),
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
