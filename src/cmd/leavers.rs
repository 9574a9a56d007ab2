//! The `--leavers` flags that `run` and `check` share, turned into a [`Policy`] once,
//! before anything is read or sent.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use crate::error::{Error, Result};
use crate::journal::{journal_key, Journal, Member, Shard};
use crate::leavers::{Cap, Decision, Lifecycle, Mode, Policy, Verdict};
use crate::listing::Listed;
use crate::plan::PlannedRow;
use crate::profile::{Action, KeyPattern, Profile};

/// `--leavers`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LeaversArg {
    Report,
    Disable,
    Delete,
}

/// `--leavers-scope`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum ScopeArg {
    /// The users this state created or updated (the journal).
    #[default]
    State,
    /// Every user the target lists (the profile's `[requests.list]`).
    Target,
}

#[derive(Debug, Args, Default)]
pub struct LeaverArgs {
    /// Users this state created or updated on the target who are no longer in the sheet:
    /// list them (report), disable them, or disable them and delete those disabled at
    /// least --delete-after days ago (delete).
    #[arg(long, value_enum, value_name = "ACTION")]
    pub leavers: Option<LeaversArg>,
    /// The most leavers one run acts on: a number, or a share of the managed users
    /// (default 5%, at least 1). Above it no leaver is touched and the run exits 1.
    #[arg(long, value_name = "N|P%", value_parser = Cap::parse, requires = "leavers")]
    pub max_leavers: Option<Cap>,
    /// Keys or patterns (`*`, `?`) of users never disabled or deleted, one a line
    /// (`#` starts a comment); added to the profile's `protect` list.
    #[arg(long, value_name = "FILE", requires = "leavers")]
    pub protect: Option<PathBuf>,
    /// With `--leavers delete`: days a user must have been disabled by enlist before it
    /// is deleted.
    #[arg(long, value_name = "DAYS", default_value_t = 30, requires = "leavers")]
    pub delete_after: u32,
    /// Whom --leavers compares the sheet with: the users this state provisioned (state),
    /// or every user the target lists with the profile's `[requests.list]` (target; this
    /// reads the target, so it needs the base URL and credentials, in `check` too). The cap
    /// counts against the listed users.
    #[arg(long, value_enum, value_name = "SCOPE", default_value_t = ScopeArg::State, requires = "leavers")]
    pub leavers_scope: ScopeArg,
}

impl LeaverArgs {
    /// The policy of `--leavers` (`None` without it), refusing what the profile cannot do.
    pub fn policy(&self, profile: &Profile) -> Result<Option<Policy>> {
        let Some(arg) = self.leavers else {
            return Ok(None);
        };
        let mode = match arg {
            LeaversArg::Report => Mode::Report,
            LeaversArg::Disable => Mode::Disable,
            LeaversArg::Delete => Mode::Delete,
        };
        let needs: &[Action] = match mode {
            Mode::Report => &[],
            Mode::Disable => &[Action::Disable],
            Mode::Delete => &[Action::Disable, Action::Delete],
        };
        for a in needs {
            profile
                .supports(*a)
                .map_err(|why| Error::Usage(format!("--leavers {}: {why}", a.as_str())))?;
        }
        if self.leavers_scope == ScopeArg::Target && profile.requests.list.is_none() {
            return Err(Error::Usage(format!(
                "--leavers-scope target needs [requests.list] in profile {} (how to list the \
                 target's users): add it, or use --leavers-scope state",
                profile.name
            )));
        }
        let mut protect = profile.protect.clone();
        if let Some(file) = &self.protect {
            protect.extend(read_protect(file)?);
        }
        Ok(Some(Policy {
            mode,
            cap: self.max_leavers.unwrap_or_default(),
            protect,
            delete_after: chrono::Duration::days(i64::from(self.delete_after)),
            now: crate::leavers::now(),
        }))
    }
}

/// The patterns of a `--protect` file.
fn read_protect(file: &std::path::Path) -> Result<Vec<KeyPattern>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::input(file, format!("cannot read the protect list: {e}")))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(n, l)| KeyPattern::new(l).map_err(|e| Error::input(file, format!("line {n}: {e}"))))
        .collect()
}

/// A run's rows with re-enables and, with a policy, its leavers after them.
pub fn lifecycle(
    rows: impl Iterator<Item = PlannedRow> + Send + 'static,
    journal: &Journal,
    profile: Arc<Profile>,
    policy: Option<Policy>,
    shard: Option<Shard>,
    key_cell: Option<usize>,
    listed: Option<Vec<Listed>>,
) -> Result<impl Iterator<Item = PlannedRow> + Send + 'static> {
    let members = journal.members(policy.is_none())?;
    let candidates = listed.map(|l| listed_members(l, &members));
    let lifecycle = Lifecycle::new(rows, profile, members, policy, shard, key_cell);
    Ok(match candidates {
        Some(c) => lifecycle.with_candidates(c),
        None => lifecycle,
    })
}

/// The users the target listed, as leaver candidates: by journal key, once each, with the
/// time enlist disabled them when the journal knows it (so a user disabled before is not
/// disabled again, and may be deleted after --delete-after).
pub fn listed_members(listed: Vec<Listed>, journal: &[Member]) -> Vec<Member> {
    let disabled: HashMap<&str, &Option<String>> = journal
        .iter()
        .map(|m| (m.key.as_str(), &m.disabled_since))
        .collect();
    let mut seen = HashSet::new();
    listed
        .into_iter()
        .filter_map(|(key, remote_id)| {
            let key = journal_key(&key);
            let disabled_since = disabled.get(key.as_str()).and_then(|d| (*d).clone());
            seen.insert(key.clone()).then_some(Member {
                key,
                remote_id,
                disabled_since,
            })
        })
        .collect()
}

/// With `--leavers-scope target`: every user the target lists (`None` otherwise).
pub fn list_target(
    args: &LeaverArgs,
    policy: Option<&Policy>,
    profile: &Arc<Profile>,
    settings: &crate::execute::RunSettings,
) -> Result<Option<Vec<Listed>>> {
    if policy.is_none() || args.leavers_scope != ScopeArg::Target {
        return Ok(None);
    }
    let runtime = super::runtime()
        .map_err(|e| Error::CannotStart(format!("cannot start the async runtime: {e}")))?;
    let listed = runtime.block_on(crate::listing::list_users(
        profile.clone(),
        settings.clone(),
    ))?;
    tracing::info!("the target lists {} users", listed.len());
    Ok(Some(listed))
}

/// What `check --leavers` prints: each leaver and what would happen, with the count
/// against the cap.
pub fn describe(decision: &Decision, managed: usize) -> String {
    let mut t = format!(
        "\nleavers: {} of {managed} managed users left the sheet; {} would be disabled or \
         deleted (the cap allows {})\n",
        decision.leavers.len(),
        decision.acting,
        decision.cap
    );
    for (m, v) in &decision.leavers {
        let what = match v {
            Verdict::Act(Action::Delete) => "would be deleted".to_string(),
            Verdict::Act(_) => "would be disabled".to_string(),
            Verdict::Settle(crate::outcome::Status::Held, _) => "held (below)".to_string(),
            Verdict::Settle(s, why) => format!("{s}: {why}"),
        };
        t.push_str(&format!("  {}: {what}\n", m.key));
    }
    if let Some(why) = &decision.held {
        t.push_str(&format!("leavers held: {why}\n"));
    }
    t
}
