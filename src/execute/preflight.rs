//! The requests of `enlist profiles test`: a login, lookups and (with `--canary`) one row,
//! each sent exactly as a run sends it (same client, gate, auth and row rules), one at a
//! time. What to make of the answers is the command's business ([`crate::cmd`]).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use super::client::Resp;
pub use super::worker::Looked;
use super::{adaptive, auth, client, limiter, order, worker, RunSettings, Shared, Stats};
use crate::error::Result;
use crate::outcome::Outcome;
use crate::plan::PlannedRow;
use crate::profile::Profile;

/// A run of one row at a time, without the reader, the journal or the collector.
pub struct Preflight {
    sh: Arc<Shared>,
}

impl Preflight {
    /// Builds the client, the gate and the authenticator; sends nothing yet.
    pub fn new(profile: Arc<Profile>, mut settings: RunSettings) -> Result<Preflight> {
        settings.concurrency = super::Concurrency::Fixed(1);
        settings.validate()?;
        let opts = client::ClientOptions {
            concurrency: 1,
            timeout: settings.timeout,
            connect_timeout: settings.connect_timeout,
            ca_pem: settings.ca_pem.clone(),
        };
        let http = client::Http::new(&settings.base_url, &profile.content_type, &opts)?;
        let gate = limiter::Gate::new(settings.rate_mode(), settings.burst);
        let auth = auth::Authenticator::new(&profile, &settings.secrets)?;
        let order = order::Order::new(order::UpsertOrder::LookupFirst, &profile);
        Ok(Preflight {
            sh: Arc::new(Shared {
                profile,
                settings,
                http,
                gate,
                limit: Arc::new(adaptive::Limit::fixed(1)),
                auth,
                stats: Arc::new(Stats::default()),
                order,
                stop: CancellationToken::new(),
                abort: CancellationToken::new(),
                fatal: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Logs in when the profile uses a token login (as a run does before its first row).
    pub async fn login(&self) -> Result<()> {
        let sh = &self.sh;
        sh.auth
            .start(
                &sh.http,
                &sh.gate,
                &sh.stats,
                sh.settings.max_attempts.min(3),
            )
            .await
    }

    /// Looks up `row`'s key with its job's lookup request, as a row of a run would.
    pub async fn lookup(&self, row: &PlannedRow) -> Result<Option<(Looked, Option<Resp>)>> {
        let Some(req) = row.job.as_ref().and_then(|j| j.lookup.as_ref()) else {
            return Ok(None);
        };
        worker::probe_lookup(&self.sh, row, req).await.map(Some)
    }

    /// Carries `row` to its outcome exactly as a run's worker does (`None` only if the
    /// worker was lost, which a worker never is).
    pub async fn send_row(&self, row: PlannedRow) -> Option<Outcome> {
        let (tx, mut rx) = mpsc::channel(1);
        let permit = self.sh.limit.acquire().await;
        worker::work(self.sh.clone(), row, tx, permit).await;
        rx.recv().await
    }

    /// Requests sent so far (logins and retries included).
    pub fn requests(&self) -> u64 {
        self.sh.stats.counts().0
    }

    /// `req`'s URL as it is sent (for messages).
    pub fn url(&self, req: &crate::plan::Request) -> String {
        self.sh.http.url(req)
    }
}
