//! The one HTTP client of a run, and what "sending a request" can end in.
//!
//! Transport failures are split by what they mean for the target's state: a request that
//! certainly never left ([`SendError::NotSent`], for example connection refused) can be sent
//! again whatever it does; one that may have been applied ([`SendError::Uncertain`]: a
//! timeout, a connection dropped after the request was written, a body cut short) must not
//! be replayed blindly when it creates something.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use super::RunSettings;
use crate::error::{Error, Result};
use crate::plan::Request;

/// A response, read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    /// For a redirect (3xx with a Location), what happened in words.
    pub redirect: Option<String>,
    /// The answer was larger than enlist reads ([`MAX_ANSWER`], [`MAX_PAGE`]): why, in
    /// words. The body is then empty, but the status stands: a create answered 201 with
    /// too much was applied, and is never sent again.
    pub oversized: Option<String>,
}

impl Resp {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The value at JSON pointer `pointer` in the body; `None` when the body is not JSON
    /// or holds nothing there.
    pub fn json_at(&self, pointer: &str) -> Option<serde_json::Value> {
        self.json()?.pointer(pointer).cloned()
    }
}

/// Why a request got no usable response.
#[derive(Debug, Clone)]
pub enum SendError {
    /// The request certainly did not reach the server (connection refused, DNS, TLS).
    NotSent(String),
    /// The server may have received and applied it.
    Uncertain(String),
    /// Never sent, and sending again cannot help (the server's certificate is refused).
    Refused(String),
}

impl SendError {
    pub fn message(&self) -> &str {
        match self {
            SendError::NotSent(m) | SendError::Uncertain(m) | SendError::Refused(m) => m,
        }
    }
}

/// Most bytes of an answer read (a create's, an update's, a login's).
pub const MAX_ANSWER: usize = 1 << 20;
/// Most bytes of the answer to a GET (a lookup, which may be a page of users).
pub const MAX_PAGE: usize = 16 << 20;

/// When the answer is not JSON at all, why, with a short excerpt (for a row's message).
/// An empty answer is not counted: many targets answer a create with no body.
pub fn not_json(resp: &Resp) -> Option<String> {
    if let Some(m) = &resp.oversized {
        return Some(m.clone());
    }
    if resp.body.iter().all(u8::is_ascii_whitespace)
        || serde_json::from_slice::<serde::de::IgnoredAny>(&resp.body).is_ok()
    {
        return None;
    }
    Some(format!(
        "the answer ({}) is not JSON: {}",
        resp.status,
        excerpt(&String::from_utf8_lossy(&resp.body), EXCERPT)
    ))
}

/// The run's HTTP client and base URL.
pub struct Http {
    client: reqwest::Client,
    /// The base URL without a trailing slash; request paths start with `/`.
    base: String,
    content_type: HeaderValue,
}

impl Http {
    /// The client for `settings` (its base URL, timeouts and `--ca-file`), keeping up to
    /// `pool` idle connections.
    pub fn new(settings: &RunSettings, content_type: &str, pool: usize) -> Result<Http> {
        let b = reqwest::Client::builder()
            // Our own rustls settings on ring, with or without `--ca-file`: reqwest 0.13's
            // own would need aws-lc (a C build) and the platform's certificate store.
            .tls_backend_preconfigured(crate::tls::config(settings.ca_pem.as_deref())?)
            .pool_max_idle_per_host(pool)
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("enlist/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            // No retries inside reqwest (by default it resends a request an HTTP/2 server
            // refused): every request on the wire goes through the run's gate and is
            // counted in the row's attempts, and enlist alone decides what is sent again.
            // (The default also copied every request's headers in case it had to resend.)
            .retry(reqwest::retry::never().max_retries_per_request(0));
        let client = b
            .build()
            .map_err(|e| Error::CannotStart(format!("cannot set up the HTTP client: {e}")))?;
        // The profile refused a content type that is no header value when it loaded.
        let content_type = HeaderValue::from_str(content_type).map_err(|_| {
            Error::CannotStart(format!("content type {content_type:?} is not valid"))
        })?;
        Ok(Http {
            client,
            base: settings.base_url.as_str().trim_end_matches('/').to_string(),
            content_type,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL a request goes to (query added by the caller; a profile path may carry
    /// its own).
    fn request_url(&self, path: &str) -> std::result::Result<url::Url, SendError> {
        url::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| SendError::NotSent(format!("the request URL is not valid: {e}")))
    }

    /// The full URL of a request, for messages (no secrets: they travel in headers).
    pub fn url(&self, req: &Request) -> String {
        req.display_url(&self.base)
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &self,
        req: &Request,
        auth: Option<&(HeaderName, HeaderValue)>,
    ) -> std::result::Result<Resp, SendError> {
        let url = self.request_url(&req.path)?;
        let host = url.host_str().map(str::to_string);
        let mut rb = self.client.request(req.method.clone(), url.clone());
        if !req.query.is_empty() {
            rb = rb.query(&req.query);
        }
        if let Some(body) = &req.body {
            rb = rb
                .header(CONTENT_TYPE, self.content_type.clone())
                .body(body.clone());
        }
        for (k, v) in &req.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some((name, value)) = auth {
            rb = rb.header(name.clone(), value.clone());
        }
        let mut resp = rb.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        let limit = if req.method == reqwest::Method::GET {
            MAX_PAGE
        } else {
            MAX_ANSWER
        };
        let redirect = redirected(status, &headers, &url, host.as_deref());
        let too_large = |headers: HeaderMap, redirect: Option<String>| {
            Ok(Resp {
                status,
                headers,
                body: bytes::Bytes::new(),
                redirect,
                oversized: Some(format!(
                    "the answer ({status}) is larger than {} MiB; enlist reads at most that much of an answer",
                    limit >> 20
                )),
            })
        };
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return too_large(headers, redirect);
        }
        let cut_short = |e: reqwest::Error| {
            SendError::Uncertain(format!(
                "the response ({status}) was cut short: {}",
                describe(&e)
            ))
        };
        // Read piece by piece, so that an answer that never ends cannot fill the memory.
        let mut body = bytes::BytesMut::new();
        while let Some(piece) = resp.chunk().await.map_err(cut_short)? {
            if body.len() + piece.len() > limit {
                return too_large(headers, redirect);
            }
            body.extend_from_slice(&piece);
        }
        let body = body.freeze();
        Ok(Resp {
            status,
            headers,
            body,
            redirect,
            oversized: None,
        })
    }
}

/// A redirect in words: where to, and that enlist does not follow it.
fn redirected(
    status: u16,
    headers: &HeaderMap,
    url: &url::Url,
    host: Option<&str>,
) -> Option<String> {
    if !(300..400).contains(&status) {
        return None;
    }
    let location = headers.get(reqwest::header::LOCATION)?.to_str().ok()?;
    let to = url.join(location).ok()?;
    let mut shown = to.clone();
    shown.set_query(None); // a query may carry anything; the host and path say enough
    let whither = match to.host_str() {
        Some(h) if Some(h) != host => format!("to another host ({h}: {shown})"),
        _ => format!("to {shown}"),
    };
    Some(format!(
        "the server redirected {whither}; enlist does not follow redirects: use the final URL \
         as the base URL"
    ))
}

/// Sorts a reqwest error into "never sent" and "may have been applied".
fn classify(e: reqwest::Error) -> SendError {
    let text = describe(&e);
    if e.is_connect() && (text.contains("not valid for name") || text.contains("NotValidForName")) {
        SendError::Refused(format!(
            "the server's certificate is not valid for this host name: use the name it was \
             issued for in the base URL ({text})"
        ))
    } else if e.is_connect() && (text.contains("expired") || text.contains("Expired")) {
        SendError::Refused(format!(
            "the server's certificate has expired: ask its owners to renew it ({text})"
        ))
    } else if e.is_connect() && text.contains("certificate") {
        SendError::Refused(format!(
            "certificate not trusted: pass --ca-file with the CA that signed it (or, for a \
             server whose certificate is its own CA, that certificate) ({text})"
        ))
    } else if e.is_connect() {
        SendError::NotSent(format!("cannot connect: {text}"))
    } else if e.is_builder() {
        SendError::NotSent(format!("cannot build the request: {text}"))
    } else if e.is_timeout() {
        SendError::Uncertain(format!("no answer in time: {text}"))
    } else {
        SendError::Uncertain(format!("the connection failed: {text}"))
    }
}

/// The error and its causes, without the URL (the row already names the user).
fn describe(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    for cause in std::iter::successors(std::error::Error::source(e), |c| c.source()) {
        let s = cause.to_string();
        if !parts.contains(&s) {
            parts.push(s);
        }
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

/// The server's message for a failed response: the profile's error pointers, else the
/// status text and a short excerpt of the body (never the request, which may hold secrets).
/// Server text is untrusted: the caller scrubs it of secrets before storing or printing it
/// (a cut-short excerpt ends in [`crate::scrub::CUT`], so that a secret cut in two is
/// masked too).
pub fn failure_message(profile: &crate::profile::Profile, resp: &Resp) -> String {
    let reason = reqwest::StatusCode::from_u16(resp.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    if let Some(r) = resp.redirect.as_ref().or(resp.oversized.as_ref()) {
        return format!("{} {reason}: {r}", resp.status);
    }
    if let Some(m) = profile.error_message(&resp.body) {
        return format!("{} {reason}: {}", resp.status, excerpt(&m, EXCERPT));
    }
    let text = excerpt(&String::from_utf8_lossy(&resp.body), EXCERPT);
    if text.is_empty() {
        format!("{} {reason}", resp.status)
    } else {
        format!("{} {reason}: {text}", resp.status)
    }
}

/// Characters of server text a message keeps.
pub const EXCERPT: usize = 200;

/// `text` with its whitespace collapsed, cut after `max` characters (the cut marked with
/// [`crate::scrub::CUT`]).
pub fn excerpt(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, word) in text.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() > max * 4 {
            break; // enough to cut from, whatever the characters' sizes
        }
    }
    match out.char_indices().nth(max) {
        Some((at, _)) => {
            out.truncate(at);
            out.push(crate::scrub::CUT);
            out
        }
        None => out,
    }
}
