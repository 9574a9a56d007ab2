//! The settings of a run: the command line, the profile and the environment (base URL,
//! credentials) made into one validated value before any work starts. The executor
//! ([`crate::execute`]) only reads them; nothing downstream looks at flags or variables.

use std::sync::Arc;
use std::time::Duration;

use crate::collect::Progress;
use crate::error::{Error, Result};
use crate::execute::{check_base_url, CreateLog};
use crate::profile::Profile;
use crate::secrets::Secrets;

/// How many rows may be in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// `--concurrency N`.
    Fixed(usize),
    /// `--concurrency auto` (the default): from `start` (the profile's `concurrency`), as
    /// the target's answers allow, never above `max` (`--max-concurrency`).
    Auto { start: usize, max: usize },
}

/// Everything a run needs besides the profile and the rows, validated before any work.
/// `Debug` is safe to print: [`Secrets`] shows names only.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The target's base URL (already checked: https, or http to loopback / when allowed).
    pub base_url: url::Url,
    /// Rows in flight at once: fixed, or adaptive (see [`crate::execute::adaptive`]).
    pub concurrency: Concurrency,
    /// Requests per second, all requests of the run together (with `auto_rate`: where
    /// the probing starts).
    pub rate: f64,
    /// `--rate auto`: find the rate the target allows (see [`crate::execute::limiter`]).
    pub auto_rate: bool,
    /// Requests that may start back to back after an idle spell.
    pub burst: u32,
    /// Most sends of one request (the first included), refusals (429, 503 + wait) not counted.
    pub max_attempts: u32,
    /// Most time one row may take, retries and waits included.
    pub max_row_time: Duration,
    /// Longest pause a server's `Retry-After` / `RateLimit-Reset` can impose (`--max-pause`).
    pub max_pause: Duration,
    /// Whole-request timeout (connect, send, read).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// After a stop: how long requests in flight may take before they are abandoned.
    pub drain_timeout: Duration,
    /// Extra CA certificates (PEM) to trust.
    pub ca_pem: Option<Vec<u8>>,
    pub secrets: Secrets,
    pub progress: Progress,
    /// Rows the run will account for, when known: the bar shows a total and an ETA.
    pub total_rows: Option<u64>,
    /// Filled into the summary.
    pub input_file: String,
    pub input_sha256: String,
    pub command_line: String,
    /// Told of every create an upsert is about to send (the journal keeps it, so that a
    /// resume after a crash can tell "created by the interrupted run" from "was there").
    pub create_log: Option<Arc<dyn CreateLog>>,
    /// `--upsert-order`: whether an upsert sends its create or its lookup first.
    pub upsert_order: crate::execute::order::UpsertOrder,
}

/// "A", "A and B", "A, B and C".
fn and_list(items: &[String]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.join(""),
    }
}

impl RunSettings {
    /// Settings with the profile's defaults, the credentials read from `secret_file` or the
    /// environment ([`Secrets::read`]) and the base URL from `base_url` or the environment.
    /// Every variable that is missing is named in one error, with the profile's names for
    /// them, so that a first run is not a round of one fix per attempt.
    pub fn from_env(
        profile: &Profile,
        base_url: Option<&str>,
        allow_insecure_http: bool,
        secret_file: Option<&std::path::Path>,
    ) -> Result<RunSettings> {
        let (secrets, mut missing) = Secrets::read(profile, secret_file)?;
        let url = match base_url {
            Some(b) => Some(b.to_string()),
            None => std::env::var(&profile.base_url_env)
                .ok()
                .filter(|v| !v.trim().is_empty()),
        };
        let url_missing = url.is_none();
        if url_missing {
            missing.insert(0, profile.base_url_env.clone());
        }
        if let (Some(url), true) = (&url, missing.is_empty()) {
            return RunSettings::new(profile, url, allow_insecure_http, secrets);
        }
        let secrets_missing = missing.len() > usize::from(url_missing);
        let example = || {
            let e = profile.base_url_example.as_deref();
            format!(
                "--base-url (for example {})",
                e.unwrap_or("https://host/api")
            )
        };
        let (which, them) = if missing.len() == 1 {
            ("is", "it")
        } else {
            ("are", "them")
        };
        let or = match (url_missing, secrets_missing) {
            (true, false) => format!("pass {}", example()),
            (false, _) => format!("put {them} in a --secret-file as NAME=value lines"),
            (true, true) => format!(
                "pass {} and put the secrets in a --secret-file as NAME=value lines",
                example()
            ),
        };
        Err(Error::CannotStart(format!(
            "profile {} needs {}, which {which} not set: set {them} in the environment, or {or}",
            profile.name,
            and_list(&missing),
        )))
    }

    /// Settings with the profile's defaults, against `base_url` (checked here).
    pub fn new(
        profile: &Profile,
        base_url: &str,
        allow_insecure_http: bool,
        secrets: Secrets,
    ) -> Result<RunSettings> {
        let base_url = check_base_url(base_url, allow_insecure_http)?;
        Ok(RunSettings {
            base_url,
            concurrency: Concurrency::Auto {
                start: profile.concurrency,
                max: crate::execute::adaptive::MAX,
            },
            rate: profile.rate,
            auto_rate: false,
            burst: 1,
            max_attempts: 5,
            max_row_time: Duration::from_secs(120),
            max_pause: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            ca_pem: None,
            secrets,
            progress: Progress::Off,
            total_rows: None,
            input_file: String::new(),
            input_sha256: String::new(),
            command_line: String::new(),
            create_log: None,
            upsert_order: crate::execute::order::UpsertOrder::Auto,
        })
    }

    /// Checks the numbers (after flags have been applied).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Usage(m.to_string()));
        let (Concurrency::Fixed(n) | Concurrency::Auto { max: n, .. }) = self.concurrency;
        if n == 0 || n > 1024 {
            return bad("--concurrency and --max-concurrency must be between 1 and 1024");
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return bad("--rate must be above zero");
        }
        if self.burst == 0 {
            return bad("--burst must be at least 1");
        }
        if self.max_attempts == 0 {
            return bad("--max-attempts must be at least 1");
        }
        if self.timeout.is_zero()
            || self.connect_timeout.is_zero()
            || self.max_row_time.is_zero()
            || self.max_pause.is_zero()
        {
            return bad("timeouts must be above zero");
        }
        Ok(())
    }
}
