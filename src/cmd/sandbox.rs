//! `enlist sandbox`: runs the embedded sandbox in the foreground so that an admin can
//! rehearse a run against a local copy of the target API, faults included.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::sandbox::{self, SandboxConfig, SandboxKind};

/// Serve a local emulation of a target API (for rehearsals and tests).
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Which API to emulate: odin, superoffice, users-api or scim.
    #[arg(short, long, value_name = "NAME", default_value = "odin")]
    pub profile: SandboxKind,

    /// Port on 127.0.0.1 (0 = any free port, printed at start).
    #[arg(long, value_name = "P", default_value_t = 0)]
    pub port: u16,

    /// Refuse requests beyond N per second with 429 (counted over fixed windows aligned to
    /// the clock; see --rate-window).
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,

    /// Length of a rate-limit window in seconds: each window admits N × SECS requests, and
    /// Retry-After is the rest of the window, rounded up to whole seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1, requires = "rate_limit",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub rate_window: u64,

    /// Answer 429 without a Retry-After header.
    #[arg(long, requires = "rate_limit")]
    pub no_retry_after: bool,

    /// Send RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (IETF draft) with
    /// every answer.
    #[arg(long, requires = "rate_limit")]
    pub rate_limit_headers: bool,

    /// Probability (0 to 1) of answering 503 before doing anything.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fail_rate: f64,

    /// Probability (0 to 1) of dropping the connection without an answer; half of these
    /// after the change was applied.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub reset_rate: f64,

    /// Delay added to every request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency: u64,

    /// From SECS seconds after the first API request on, the delay is MS milliseconds
    /// instead (a target that slows down mid-run), e.g. 10:500.
    #[arg(long, value_name = "SECS:MS", value_parser = parse_latency_after)]
    pub latency_after: Option<(Duration, Duration)>,

    /// Lifetime of an Odin token, in seconds.
    #[arg(long, value_name = "S", default_value_t = 24 * 3600)]
    pub token_ttl: u64,

    /// Seed of the fault dice and the generated ids, for repeatable runs.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// User name the sandbox accepts (Odin login, HTTP Basic).
    #[arg(long, default_value = "admin")]
    pub username: String,

    /// Password the sandbox accepts (Odin login, HTTP Basic).
    #[arg(long, default_value = "sandbox")]
    pub password: String,

    /// Static bearer token the SCIM sandbox accepts.
    #[arg(long, default_value = "sandbox-token")]
    pub token: String,

    /// SCIM lookups match by substring over userName, displayName and emails, as many user
    /// APIs search ("lee" also finds "klee"), to rehearse a profile's `match` rule.
    #[arg(long)]
    pub lookup_substring: bool,

    /// users-api: what `PUT /users/user/{id}` does: `merge` changes the fields the body
    /// holds; `replace` stores exactly the body, so a field left out (the password too) is
    /// cleared, and email, name and groups are required.
    #[arg(long, value_name = "STYLE", default_value = "merge",
          value_parser = ["merge", "replace"])]
    pub put: String,

    /// users-api: how a create answers: `body` (200 with the user) or `location` (201 with
    /// a Location header and an empty body).
    #[arg(long, value_name = "STYLE", default_value = "body",
          value_parser = ["body", "location"])]
    pub create_answer: String,
}

impl SandboxArgs {
    /// The sandbox configuration these arguments describe.
    pub fn config(&self) -> Result<SandboxConfig> {
        for (flag, p) in [
            ("--fail-rate", self.fail_rate),
            ("--reset-rate", self.reset_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Usage(format!(
                    "{flag} must be between 0 and 1, got {p}"
                )));
            }
        }
        Ok(SandboxConfig {
            kind: self.profile,
            port: self.port,
            rate_limit: self.rate_limit,
            rate_window: Duration::from_secs(self.rate_window),
            retry_after: !self.no_retry_after,
            rate_limit_headers: self.rate_limit_headers,
            fail_rate: self.fail_rate,
            reset_rate: self.reset_rate,
            latency: Duration::from_millis(self.latency),
            latency_after: self.latency_after,
            token_ttl: Duration::from_secs(self.token_ttl),
            seed: self.seed,
            username: self.username.clone(),
            password: self.password.clone(),
            token: self.token.clone(),
            lookup_substring: self.lookup_substring,
            put_replace: self.put == "replace",
            create_location: self.create_answer == "location",
        })
    }
}

/// Parses `SECS:MS` (seconds after the first request, then the new latency in ms).
fn parse_latency_after(s: &str) -> std::result::Result<(Duration, Duration), String> {
    let (secs, ms) = s
        .split_once(':')
        .ok_or_else(|| format!("expected SECS:MS (e.g. 10:500), got {s:?}"))?;
    let secs: f64 = secs
        .trim()
        .parse()
        .map_err(|_| format!("SECS in {s:?} is not a number of seconds"))?;
    let after = Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("SECS in {s:?} must be zero or more seconds"))?;
    let ms: u64 = ms
        .trim()
        .parse()
        .map_err(|_| format!("MS in {s:?} is not a whole number of milliseconds"))?;
    Ok((after, Duration::from_millis(ms)))
}

/// What to tell the admin: where the sandbox is, how to log in, what to export.
fn banner(cfg: &SandboxConfig, base_url: &str, addr: std::net::SocketAddr) -> String {
    let mut out = format!(
        "enlist sandbox ({}) listening on http://{addr}\n\
         base URL: {base_url}\n",
        cfg.kind
    );
    match cfg.kind {
        SandboxKind::Scim => {
            out.push_str(&format!("bearer token: {}\n", cfg.token));
        }
        _ => {
            out.push_str(&format!(
                "username: {}\npassword: {}\n",
                cfg.username, cfg.password
            ));
        }
    }
    // The variable names are those of the built-in profile templates (`templates/*.toml`).
    let prefix = match cfg.kind {
        SandboxKind::Odin => "ENLIST_ODIN",
        SandboxKind::SuperOffice => "ENLIST_SUPEROFFICE",
        SandboxKind::UsersApi => "ENLIST_USERS_API",
        SandboxKind::Scim => "ENLIST_SCIM",
    };
    out.push_str("these credentials are for the sandbox only; for the built-in profile:\n");
    out.push_str(&format!("  export {prefix}_URL={base_url}\n"));
    match cfg.kind {
        SandboxKind::Scim => out.push_str(&format!("  export {prefix}_TOKEN={}\n", cfg.token)),
        _ => {
            out.push_str(&format!("  export {prefix}_USERNAME={}\n", cfg.username));
            out.push_str(&format!("  export {prefix}_PASSWORD={}\n", cfg.password));
        }
    }
    out.push_str(&format!(
        "inspect: http://{addr}/_sandbox/state and http://{addr}/_sandbox/stats\n"
    ));
    let mut faults = Vec::new();
    if let Some(n) = cfg.rate_limit {
        let header = if cfg.retry_after {
            "with Retry-After"
        } else {
            "without Retry-After"
        };
        let window = match cfg.rate_window.as_secs() {
            0 | 1 => String::new(),
            w => format!(" over {w} s windows"),
        };
        let extra = if cfg.rate_limit_headers {
            ", RateLimit-* headers"
        } else {
            ""
        };
        faults.push(format!("rate limit {n}/s{window} ({header}{extra})"));
    }
    if cfg.fail_rate > 0.0 {
        faults.push(format!("503 rate {}", cfg.fail_rate));
    }
    if cfg.reset_rate > 0.0 {
        faults.push(format!("reset rate {}", cfg.reset_rate));
    }
    if !cfg.latency.is_zero() {
        faults.push(format!("latency {} ms", cfg.latency.as_millis()));
    }
    if let Some((after, latency)) = cfg.latency_after {
        faults.push(format!(
            "latency {} ms from {} s after the first request",
            latency.as_millis(),
            after.as_secs_f64()
        ));
    }
    if cfg.kind == SandboxKind::UsersApi {
        let put = if cfg.put_replace { "replace" } else { "merge" };
        let create = if cfg.create_location {
            "201 + Location"
        } else {
            "200 + the user"
        };
        out.push_str(&format!(
            "PUT /users/user/{{id}}: {put}; a create answers {create}\n"
        ));
    }
    if !faults.is_empty() {
        out.push_str(&format!(
            "faults: {} (seed {})\n",
            faults.join(", "),
            cfg.seed
        ));
    }
    out.push_str("press Ctrl-C to stop\n");
    out
}

/// Starts the sandbox, prints where and how to reach it, and serves until Ctrl-C.
pub async fn run(args: SandboxArgs) -> Result<()> {
    let cfg = args.config()?;
    let running = sandbox::start(cfg.clone()).await.map_err(|e| {
        Error::CannotStart(format!(
            "cannot start the sandbox on 127.0.0.1:{}: {e}",
            cfg.port
        ))
    })?;
    print!("{}", banner(&cfg, &running.base_url(), running.addr));
    tokio::signal::ctrl_c().await?;
    let stats = running.stats();
    running.shutdown().await;
    eprintln!(
        "sandbox stopped after {} requests",
        stats["requests"].as_u64().unwrap_or(0)
    );
    Ok(())
}
