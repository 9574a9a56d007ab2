//! Leavers: users this state provisioned who are no longer in the sheet, and users who
//! come back after being disabled.
//!
//! A run's rows pass through [`Lifecycle`] on their way to the executor. It notes every key
//! the sheet holds and re-enables (the profile's `enable` request) a row whose user enlist
//! disabled before. Once the sheet's last row has passed, and only with `--leavers`, it
//! decides what happens to the managed users the sheet no longer names ([`decide`]) and
//! hands those on as rows without a source row: disabled, deleted, or held back by a guard.
//!
//! The guards come first because a wrong leaver is an outage for a real person, and a
//! truncated or broken HR export looks exactly like many leavers:
//! - more leavers than the cap (`--max-leavers`, 5 % of managed users by default): none is
//!   touched, each is reported `held`, and the run exits 1;
//! - a sheet with more than [`MAX_INVALID_PERCENT`] % invalid rows: the same (a refused
//!   sheet never gets this far: nothing is sent at all);
//! - protected keys (the profile's `protect`, `--protect FILE`): reported, never touched;
//! - delete only what enlist disabled at least `--delete-after` days ago; others are
//!   disabled first, so an accident can be undone by putting the row back.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::journal::{journal_key, Member, Shard};
use crate::outcome::Status;
use crate::plan::{leaver_row, KnownUser, PlannedRow, Settled};
use crate::profile::{Action, KeyPattern, Profile};

/// Above this share of invalid rows (in %), a sheet never triggers leavers.
pub const MAX_INVALID_PERCENT: u64 = 2;

/// What `--leavers` does with users who left the sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// List them (outcome `skipped`, saying what would happen); send nothing.
    Report,
    /// Disable them.
    Disable,
    /// Disable them, and delete those disabled long enough ago.
    Delete,
}

/// `--max-leavers`: a number of users, or a share of the managed users.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cap {
    Count(u64),
    Percent(f64),
}

impl Default for Cap {
    fn default() -> Cap {
        Cap::Percent(5.0)
    }
}

impl Cap {
    /// `N` or `P%`.
    pub fn parse(s: &str) -> Result<Cap, String> {
        let t = s.trim();
        let bad = || format!("--max-leavers {s:?}: write a number of users (10) or a share (5%)");
        match t.strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if p.is_finite() && (0.0..=100.0).contains(&p) => Ok(Cap::Percent(p)),
                _ => Err(bad()),
            },
            None => t.parse().map(Cap::Count).map_err(|_| bad()),
        }
    }

    /// The most leavers acted on in one run, out of `managed` users (a share is at
    /// least 1, so a small team can still lose one person).
    pub fn limit(self, managed: usize) -> u64 {
        match self {
            Cap::Count(n) => n,
            Cap::Percent(p) => ((managed as f64 * p / 100.0).floor() as u64).max(1),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Cap::Count(n) => format!("--max-leavers {n}"),
            Cap::Percent(p) => format!("--max-leavers {p}%"),
        }
    }
}

/// Everything `--leavers` decides with, checked before the run starts.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub cap: Cap,
    /// The profile's `protect` and the lines of `--protect FILE`.
    pub protect: Vec<KeyPattern>,
    pub delete_after: chrono::Duration,
    pub now: DateTime<Utc>,
}

impl Policy {
    fn protects(&self, key: &str) -> bool {
        self.protect.iter().any(|p| p.matches(key))
    }
}

/// The time leavers are judged at: now, or `ENLIST_TEST_NOW` (RFC 3339) in tests, which
/// cannot wait 30 days for a delete.
pub fn now() -> DateTime<Utc> {
    std::env::var("ENLIST_TEST_NOW")
        .ok()
        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
}

/// What the sheet holds, counted as its rows pass.
#[derive(Debug, Default)]
pub struct Tally {
    /// Journal keys of every row that names a user (invalid rows too: a person whose row
    /// has a typo has not left).
    keys: HashSet<String>,
    pub rows: u64,
    pub invalid: u64,
}

impl Tally {
    /// Notes one row; `key_cell` is where the key sits among the row's cells, so that a
    /// row whose key is unusable still counts the key as typed (a typo never makes
    /// someone a leaver).
    pub fn see(&mut self, row: &PlannedRow, key_cell: Option<usize>) {
        self.rows += 1;
        self.invalid += u64::from(row.is_invalid());
        let typed = key_cell.and_then(|i| row.cells.get(i)).map(String::as_str);
        let key = Some(row.key.as_str())
            .filter(|k| !k.trim().is_empty())
            .or(typed);
        if let Some(k) = key.filter(|k| !k.trim().is_empty()) {
            self.keys.insert(journal_key(k));
        }
    }

    fn holds(&self, key: &str) -> bool {
        self.keys.contains(key)
    }
}

/// What happens to one leaver.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send this (disable or delete).
    Act(Action),
    /// Nothing is sent; the outcome says why.
    Settle(Status, String),
}

/// The leavers of one run and what happens to each, with the sentence that explains a
/// guard that tripped.
#[derive(Debug, Default)]
pub struct Decision {
    pub leavers: Vec<(Member, Verdict)>,
    /// Users that would be disabled or deleted, against `cap`.
    pub acting: u64,
    pub cap: u64,
    pub held: Option<String>,
}

/// Decides the leavers: `members` (from the journal) that `tally` does not hold.
pub fn decide(members: Vec<Member>, tally: &Tally, policy: &Policy) -> Decision {
    let cap = policy.cap.limit(members.len());
    let mut out = Decision {
        cap,
        ..Decision::default()
    };
    for m in members.into_iter().filter(|m| !tally.holds(&m.key)) {
        let verdict = if policy.protects(&m.key) {
            Verdict::Settle(Status::Protected, "left the sheet, but protected".into())
        } else {
            match (&m.disabled_since, policy.mode) {
                (None, _) => Verdict::Act(Action::Disable),
                (Some(since), Mode::Delete) if due(since, policy) => Verdict::Act(Action::Delete),
                // Disabled already, and not (yet) to be deleted: nothing new to say.
                (Some(_), _) => continue,
            }
        };
        out.acting += u64::from(matches!(verdict, Verdict::Act(_)));
        out.leavers.push((m, verdict));
    }
    let invalid_share = tally.invalid * 100 > tally.rows * MAX_INVALID_PERCENT;
    out.held = if tally.rows == 0 || invalid_share {
        Some(format!(
            "the sheet has {} invalid rows of {} (more than {MAX_INVALID_PERCENT} %): leavers \
             are not acted on until the sheet is fixed",
            tally.invalid, tally.rows
        ))
    } else if out.acting > cap {
        Some(format!(
            "over the cap: {} users left the sheet, {} allows {cap}; nothing was disabled or \
             deleted. If they really left, run again with a higher --max-leavers; if not, fix \
             the sheet",
            out.acting,
            policy.cap.describe()
        ))
    } else {
        None
    };
    for (_, v) in &mut out.leavers {
        let Verdict::Act(a) = *v else { continue };
        let what = if a == Action::Delete {
            "deleted"
        } else {
            "disabled"
        };
        if let Some(why) = &out.held {
            *v = Verdict::Settle(Status::Held, why.clone());
        } else if policy.mode == Mode::Report {
            *v = Verdict::Settle(
                Status::Skipped,
                format!("left the sheet: would be {what} (--leavers report sends nothing)"),
            );
        }
    }
    out
}

/// Whether a user disabled at `since` may be deleted now.
fn due(since: &str, policy: &Policy) -> bool {
    // An unreadable time is never due: deleting is the step that cannot be undone.
    DateTime::parse_from_rfc3339(since)
        .is_ok_and(|t| policy.now.signed_duration_since(t) >= policy.delete_after)
}

/// The rows of a run, then its leavers (see the module's notes).
pub struct Lifecycle<I> {
    rows: I,
    profile: Arc<Profile>,
    /// Users enlist disabled, by journal key: back in the sheet, they are enabled.
    disabled: HashMap<String, Member>,
    /// Every managed user, for `--leavers` (empty without it).
    members: Vec<Member>,
    policy: Option<Policy>,
    shard: Option<Shard>,
    /// Where the key cell sits among a row's cells (a leaver's row shows its key there).
    key_cell: Option<usize>,
    tally: Tally,
    next_seq: u64,
    /// The leavers, once the sheet's rows are through.
    after: Option<VecDeque<PlannedRow>>,
}

impl<I> Lifecycle<I> {
    /// `members`: the journal's users of this target (only the disabled ones are needed
    /// without a `policy`).
    pub fn new(
        rows: I,
        profile: Arc<Profile>,
        members: Vec<Member>,
        policy: Option<Policy>,
        shard: Option<Shard>,
        key_cell: Option<usize>,
    ) -> Lifecycle<I> {
        let disabled = members
            .iter()
            .filter(|m| m.disabled_since.is_some())
            .map(|m| (m.key.clone(), m.clone()))
            .collect();
        Lifecycle {
            rows,
            profile,
            disabled,
            members: if policy.is_some() {
                members
            } else {
                Vec::new()
            },
            policy,
            shard,
            key_cell,
            tally: Tally::default(),
            next_seq: 0,
            after: None,
        }
    }

    /// Leaver candidates other than the journal's users (`--leavers-scope target`: every
    /// user the target lists); re-enables still come from the journal.
    pub fn with_candidates(mut self, candidates: Vec<Member>) -> Lifecycle<I> {
        if self.policy.is_some() {
            self.members = candidates;
        }
        self
    }

    /// A row whose user enlist disabled: its job becomes the enable (the delta sync may
    /// have found its content unchanged; the account is locked all the same).
    fn re_enable(&self, row: &mut PlannedRow) {
        if row.is_invalid() || row.job.is_none() || self.disabled.is_empty() {
            return;
        }
        let Some(m) = self.disabled.get(&journal_key(&row.key)) else {
            return;
        };
        let known = Some(KnownUser {
            remote_id: m.remote_id.clone(),
        });
        if let Some(enable) = leaver_row(&self.profile, row.seq, &row.key, Action::Enable, known) {
            row.action = Action::Enable;
            row.job = enable.job;
            row.settled = None;
        }
    }

    fn leavers(&mut self) -> VecDeque<PlannedRow> {
        let Some(policy) = &self.policy else {
            return VecDeque::new();
        };
        let members = std::mem::take(&mut self.members)
            .into_iter()
            .filter(|m| self.shard.is_none_or(|s| s.owns(&m.key)))
            .collect();
        let decision = decide(members, &self.tally, policy);
        if let Some(why) = &decision.held {
            tracing::warn!("leavers held: {why}");
        }
        let mut seq = self.next_seq;
        decision
            .leavers
            .into_iter()
            .filter_map(|(m, v)| {
                let known = KnownUser {
                    remote_id: m.remote_id.clone(),
                };
                let mut row = match v {
                    Verdict::Act(a) => leaver_row(&self.profile, seq, &m.key, a, Some(known))?,
                    Verdict::Settle(status, message) => PlannedRow {
                        seq,
                        row: 0,
                        key: m.key,
                        action: Action::Disable,
                        cells: Vec::new(),
                        findings: Vec::new(),
                        job: None,
                        settled: Some(Settled {
                            status,
                            message,
                            remote_id: m.remote_id,
                        }),
                    },
                };
                if let Some(at) = self.key_cell {
                    row.cells = vec![String::new(); at + 1];
                    row.cells[at] = row.key.clone();
                }
                seq += 1;
                Some(row)
            })
            .collect()
    }
}

impl<I: Iterator<Item = PlannedRow>> Iterator for Lifecycle<I> {
    type Item = PlannedRow;

    fn next(&mut self) -> Option<PlannedRow> {
        if let Some(after) = &mut self.after {
            return after.pop_front();
        }
        match self.rows.next() {
            Some(mut row) => {
                // Without --leavers the sheet's keys are not needed: a run of a million rows
                // keeps no set of them.
                if self.policy.is_some() {
                    self.tally.see(&row, self.key_cell);
                }
                self.next_seq = self.next_seq.max(row.seq + 1);
                self.re_enable(&mut row);
                Some(row)
            }
            None => {
                let mut after = self.leavers();
                let first = after.pop_front();
                self.after = Some(after);
                first
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(key: &str, disabled_since: Option<&str>) -> Member {
        Member {
            key: key.into(),
            remote_id: Some(format!("id-{key}")),
            disabled_since: disabled_since.map(str::to_string),
        }
    }

    fn policy(mode: Mode) -> Policy {
        Policy {
            mode,
            cap: Cap::default(),
            protect: vec![KeyPattern::new("admin*").expect("pattern")],
            delete_after: chrono::Duration::days(30),
            now: DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
                .expect("time")
                .with_timezone(&Utc),
        }
    }

    fn tally(keys: &[&str], invalid: u64) -> Tally {
        Tally {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            rows: keys.len() as u64 + invalid,
            invalid,
        }
    }

    #[test]
    fn caps_read_as_counts_or_shares_and_a_share_allows_one() {
        assert_eq!(Cap::parse("10"), Ok(Cap::Count(10)));
        assert_eq!(Cap::parse(" 2.5% "), Ok(Cap::Percent(2.5)));
        assert!(Cap::parse("ten").is_err() && Cap::parse("120%").is_err());
        assert_eq!(Cap::Percent(5.0).limit(200), 10);
        assert_eq!(Cap::Percent(5.0).limit(3), 1);
    }

    #[test]
    fn only_what_enlist_disabled_long_enough_ago_is_deleted() {
        let members = vec![
            member("ann", None),
            member("bob", Some("2026-01-01T00:00:00Z")),
            member("cyd", Some("2026-02-20T00:00:00Z")),
            member("admin-1", None),
        ];
        let keys: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut p = policy(Mode::Delete);
        p.cap = Cap::Count(2);
        let d = decide(members, &tally(&keys, 0), &p);
        let got: Vec<(&str, &Verdict)> = d.leavers.iter().map(|(m, v)| (&*m.key, v)).collect();
        assert_eq!(
            got,
            [
                ("ann", &Verdict::Act(Action::Disable)),
                ("bob", &Verdict::Act(Action::Delete)),
                (
                    "admin-1",
                    &Verdict::Settle(Status::Protected, "left the sheet, but protected".into())
                ),
            ]
        );
        assert_eq!(d.held, None);
    }

    #[test]
    fn a_sheet_with_too_many_invalid_rows_holds_every_leaver() {
        let members = vec![member("ann", None), member("bob", None)];
        let keys: Vec<String> = (0..97).map(|i| format!("u{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut p = policy(Mode::Disable);
        p.cap = Cap::Count(10);
        let d = decide(members.clone(), &tally(&keys, 3), &p);
        assert!(d
            .held
            .as_deref()
            .is_some_and(|w| w.contains("3 invalid rows of 100")));
        assert!(d
            .leavers
            .iter()
            .all(|(_, v)| matches!(v, Verdict::Settle(Status::Held, _))));
        let d = decide(members, &tally(&keys, 1), &p);
        assert_eq!(d.held, None);
    }
}
