//! The one HTTP client of a run, and what "sending a request" can end in.
//!
//! Transport failures are split by what they mean for the target's state: a request that
//! certainly never left ([`SendError::NotSent`], for example connection refused) can be sent
//! again whatever it does; one that may have been applied ([`SendError::Uncertain`]: a
//! timeout, a connection dropped after the request was written, a body cut short) must not
//! be replayed blindly when it creates something.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::error::{Error, Result};
use crate::plan::Request;

/// Checks the base URL: http(s) only, and plain http only to this machine unless allowed.
pub fn check_base_url(text: &str, allow_insecure_http: bool) -> Result<url::Url> {
    let url = url::Url::parse(text.trim()).map_err(|e| {
        Error::Usage(format!(
            "base URL {text:?} is not a URL ({e}); give it like https://host/api"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Usage(
            "the base URL must not carry credentials; the profile's auth settings provide them"
                .into(),
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_insecure_http || is_loopback(&url) => Ok(url),
        "http" => Err(Error::Usage(format!(
            "refusing plain http:// to {} (credentials and personal data would travel unencrypted); \
             use https:// or pass --allow-insecure-http",
            url.host_str().unwrap_or("?")
        ))),
        s => Err(Error::Usage(format!(
            "base URL scheme {s}: only https:// (and http:// to loopback) are supported"
        ))),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Client settings (a subset of the run settings).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub concurrency: usize,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// PEM text of extra CA certificates.
    pub ca_pem: Option<Vec<u8>>,
}

/// A response, read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Why a request got no usable response.
#[derive(Debug, Clone)]
pub enum SendError {
    /// The request certainly did not reach the server (connection refused, DNS, TLS).
    NotSent(String),
    /// The server may have received and applied it.
    Uncertain(String),
}

impl SendError {
    pub fn message(&self) -> &str {
        match self {
            SendError::NotSent(m) | SendError::Uncertain(m) => m,
        }
    }
}

/// The run's HTTP client and base URL.
pub struct Http {
    client: reqwest::Client,
    /// The base URL without a trailing slash; request paths start with `/`.
    base: String,
    /// The same, parsed once: each request's URL is this with its path set, so the host
    /// is not parsed again for every request.
    base_url: url::Url,
    content_type: HeaderValue,
}

impl Http {
    pub fn new(base: &url::Url, content_type: &str, opts: &ClientOptions) -> Result<Http> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .pool_max_idle_per_host(opts.concurrency)
            .timeout(opts.timeout)
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("enlist/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &opts.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                Error::CannotStart(format!("--ca-file holds no usable PEM certificate: {e}"))
            })?;
            if certs.is_empty() {
                return Err(Error::CannotStart(
                    "--ca-file holds no PEM certificate".into(),
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| Error::CannotStart(format!("cannot set up the HTTP client: {e}")))?;
        let content_type = HeaderValue::from_str(content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/json"));
        Ok(Http {
            client,
            base: base.as_str().trim_end_matches('/').to_string(),
            base_url: base.clone(),
            content_type,
        })
    }

    /// The URL a request goes to (query added by the caller).
    fn request_url(&self, path: &str) -> std::result::Result<url::Url, SendError> {
        if path.contains(['?', '#']) {
            // A profile path with its own query: parsed whole, as written.
            return url::Url::parse(&format!("{}{path}", self.base))
                .map_err(|e| SendError::NotSent(format!("the request URL is not valid: {e}")));
        }
        let mut url = self.base_url.clone();
        let full = format!("{}{path}", self.base_url.path().trim_end_matches('/'));
        url.set_path(&full);
        url.set_query(None);
        Ok(url)
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
        let mut rb = self.client.request(req.method.clone(), url);
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
        let body = resp.bytes().await.map_err(|e| {
            SendError::Uncertain(format!(
                "the response ({status}) was cut short: {}",
                describe(&e)
            ))
        })?;
        Ok(Resp {
            status,
            headers,
            body: body.to_vec(),
        })
    }
}

/// Sorts a reqwest error into "never sent" and "may have been applied".
fn classify(e: reqwest::Error) -> SendError {
    let text = describe(&e);
    if e.is_connect() && text.contains("certificate") {
        SendError::NotSent(format!(
            "cannot connect: {text} (the target's TLS certificate is not trusted; if it comes \
             from your organisation's own CA, pass that CA with --ca-file)"
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
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.contains(&s) {
            parts.push(s);
        }
        cur = c.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

/// The server's message for a failed response: the profile's error pointers, else the
/// status text and a short excerpt of the body (never the request, which may hold secrets).
pub fn failure_message(profile: &crate::profile::Profile, resp: &Resp) -> String {
    let reason = reqwest::StatusCode::from_u16(resp.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    if let Some(m) = profile.error_message(&resp.body) {
        return format!("{} {reason}: {m}", resp.status);
    }
    let text = String::from_utf8_lossy(&resp.body);
    let excerpt: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let excerpt: String = excerpt.chars().take(200).collect();
    if excerpt.is_empty() {
        format!("{} {reason}", resp.status)
    } else {
        format!("{} {reason}: {excerpt}", resp.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_base_url_rules() {
        assert!(check_base_url("http://127.0.0.1:8080/api", false).is_ok());
        assert!(check_base_url("http://localhost/api", false).is_ok());
        assert!(check_base_url("http://[::1]:9/", false).is_ok());
        assert!(check_base_url("https://example.com/api", false).is_ok());
        let e = check_base_url("http://example.com/api", false).unwrap_err();
        assert!(e.to_string().contains("--allow-insecure-http"));
        assert!(check_base_url("http://example.com/api", true).is_ok());
        assert!(check_base_url("ftp://example.com", true).is_err());
        assert!(check_base_url("https://u:p@example.com", true).is_err());
    }
}
