//! Which request an upsert sends first: the create or the lookup.
//!
//! Looking up first costs two requests a row whether the user is new or not (lookup, then
//! create or update). Creating first costs one for a new user and three for one that exists
//! (create, conflict, lookup to confirm it, update). So creating first wins while more than
//! half the keys are new, and [`Order`] learns that share from what the run has seen so far.
//!
//! Creating first is only safe when the target refuses a second user with the same key,
//! which the profile says with a conflict rule on its create request: without one, an upsert
//! always looks up first.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::profile::Profile;

/// `--upsert-order`: what a user may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpsertOrder {
    /// Send the create first; a conflict falls back to lookup and update.
    CreateFirst,
    /// Look the user up first (then create or update).
    LookupFirst,
    /// Learn from the run's own rows which of the two is cheaper.
    #[default]
    Auto,
}

impl UpsertOrder {
    /// Refuses `create-first` for a profile whose target might accept a duplicate key: the
    /// user asked for it explicitly, and quietly looking up instead would hide why the run
    /// sends twice the requests they expected.
    pub fn check(self, profile: &Profile) -> Result<()> {
        if self == UpsertOrder::CreateFirst && !refuses_duplicates(profile) {
            return Err(Error::Usage(format!(
                "--upsert-order create-first: profile {} declares no conflict rule on its create \
                 request, so the target might accept a second user with the same key; use \
                 lookup-first or auto (which looks up first for this profile), or add \
                 `conflict = [...]` to [requests.create]",
                profile.name
            )));
        }
        Ok(())
    }
}

/// Whether the profile says its target answers a duplicate create with a conflict.
pub(super) fn refuses_duplicates(profile: &Profile) -> bool {
    profile
        .requests
        .create
        .as_ref()
        .is_some_and(|c| !c.conflict.is_empty())
}

/// Fixed-point one, for [`Order::share_new`].
const ONE: u32 = 1 << 16;
/// Each row moves the estimate by 1/32 of the way to what it showed: a few dozen rows
/// settle it, and a sheet whose second half differs from its first is followed.
const WEIGHT_SHIFT: u32 = 5;
/// The estimate before any row: just above one half, so the run starts creating first.
/// A sheet of existing users then pays one extra request for each of its first few rows
/// (about six at this weight, plus the rows already in flight), while a sheet of new users
/// -- the usual reason to run an upsert -- never pays a lookup.
const START: u32 = ONE / 2 + ONE / 10;

/// What the run has learnt about its upserts; shared by every worker.
#[derive(Debug)]
pub struct Order {
    mode: UpsertOrder,
    /// The profile's target refuses a duplicate key.
    allowed: bool,
    /// Moving estimate of the share of upserted keys that are new, in 1/[`ONE`]ths.
    share_new: AtomicU32,
}

impl Order {
    pub fn new(mode: UpsertOrder, profile: &Profile) -> Order {
        Order {
            mode,
            allowed: refuses_duplicates(profile),
            share_new: AtomicU32::new(START),
        }
    }

    /// Whether the next upsert should send its create first.
    pub fn create_first(&self) -> bool {
        self.allowed
            && match self.mode {
                UpsertOrder::CreateFirst => true,
                UpsertOrder::LookupFirst => false,
                UpsertOrder::Auto => self.share_new.load(Ordering::Relaxed) > ONE / 2,
            }
    }

    /// An upsert found its key new (`true`) or existing.
    pub fn saw(&self, new: bool) {
        let target = if new { ONE } else { 0 };
        // A lost race only loses one row's nudge to the estimate: no retry loop needed.
        let _ = self
            .share_new
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                // Steps of at least one, never past `target`.
                Some(match target.cmp(&p) {
                    std::cmp::Ordering::Greater => p + ((target - p) >> WEIGHT_SHIFT).max(1),
                    std::cmp::Ordering::Less => p - ((p - target) >> WEIGHT_SHIFT).max(1),
                    std::cmp::Ordering::Equal => p,
                })
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(mode: UpsertOrder, conflict: bool) -> Order {
        Order {
            mode,
            allowed: conflict,
            share_new: AtomicU32::new(START),
        }
    }

    #[test]
    fn auto_follows_what_the_rows_show() {
        let o = order(UpsertOrder::Auto, true);
        assert!(o.create_first(), "starts creating first");
        for _ in 0..10 {
            o.saw(false);
        }
        assert!(!o.create_first(), "mostly existing: looks up first");
        for _ in 0..200 {
            o.saw(false);
        }
        assert!(!o.create_first());
        for _ in 0..40 {
            o.saw(true);
        }
        assert!(o.create_first(), "new keys again: creates first");
        // A steady mix of 3 new in 4 stays creating first; 1 in 4 looks up.
        for i in 0..400 {
            o.saw(i % 4 != 0);
        }
        assert!(o.create_first());
        for i in 0..400 {
            o.saw(i % 4 == 0);
        }
        assert!(!o.create_first());
    }

    #[test]
    fn forced_orders_and_profiles_without_a_conflict_rule() {
        let o = order(UpsertOrder::CreateFirst, true);
        for _ in 0..100 {
            o.saw(false);
        }
        assert!(o.create_first());
        assert!(!order(UpsertOrder::LookupFirst, true).create_first());
        for mode in [
            UpsertOrder::Auto,
            UpsertOrder::CreateFirst,
            UpsertOrder::LookupFirst,
        ] {
            let o = order(mode, false);
            o.saw(true);
            assert!(!o.create_first(), "{mode:?} without a conflict rule");
        }
    }
}
