//! One row task: carries a row to a definite outcome.
//!
//! The rules a row follows (create, update, upsert; what a conflict or a missing user
//! means; when a create may be sent again) live here, in one place.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::adaptive::{Permit, Sample};
use super::client::{failure_message, not_json, Resp, SendError};
use super::{retry, Shared, NOT_SENT};
use crate::error::Error;
use crate::outcome::{now_rfc3339, Outcome, Status, StepLog};
use crate::plan::{Job, PlannedRow, Request, StepJob};
use crate::profile::template::value_text;
use crate::profile::{Action, RequestSpec};
use crate::scrub::Known;

/// Carries one row to its outcome, sent to `out`; `_permit` is the row's room in the
/// concurrency limit, given back when the row is done.
pub(crate) async fn work(
    sh: Arc<Shared>,
    row: PlannedRow,
    out: mpsc::Sender<Outcome>,
    _permit: Permit,
) {
    let mut cx = RowCtx::new(&sh, &row);
    let result = tokio::select! {
        // A panic ends this row as failed (and the run goes on): never a lost row.
        r = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
            super::test_fault(&row);
            let end = match row.job.as_ref().and_then(|j| j.steps_only.map(|b| (j, b))) {
                Some((job, base)) => steps_pending(job, base),
                None => process(&sh, &row, &mut cx).await?,
            };
            steps(&sh, &row, &mut cx, end).await
        })) => Some(r.unwrap_or_else(|p| Ok(End::failed(super::internal_error(p))))),
        _ = sh.abort.cancelled() => None,
    };
    let end = match result {
        Some(Ok(end)) => end,
        Some(Err(fatal)) => {
            let msg = format!("the run stopped: {fatal}");
            sh.fail(fatal);
            End::new(Status::NotAttempted, msg)
        }
        None if cx.requests == 0 => End::new(Status::NotAttempted, NOT_SENT),
        None => End::failed(
            "the run stopped while this row's request was in flight: \
             whether the target applied it is unknown; check this user",
        ),
    };
    let _ = out.send(cx.outcome(row, end)).await;
}

/// How a row ended.
#[derive(Debug)]
struct End {
    status: Status,
    message: String,
    remote_id: Option<String>,
}

impl End {
    fn new(status: Status, message: impl Into<String>) -> End {
        End {
            status,
            message: message.into(),
            remote_id: None,
        }
    }
    fn failed(message: impl Into<String>) -> End {
        End::new(Status::Failed, message)
    }
    fn with_id(mut self, id: Option<String>) -> End {
        self.remote_id = id;
        self
    }
}

/// A row whose user a lookup found (remote id `id`), ending `status`.
fn found(status: Status, message: impl Into<String>, id: &Option<Value>) -> End {
    End::new(status, message).with_id(id_text(id))
}

/// A create met a conflict: the user exists, in the server's words when it has some.
fn exists(sh: &Shared, conflict: &Resp, id: &Option<Value>) -> End {
    let server = sh
        .profile
        .error_message(&conflict.body)
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    found(Status::Exists, format!("already exists{server}"), id)
}

/// Per-row bookkeeping while it is worked on.
struct RowCtx {
    started: Instant,
    /// The row gives up retrying past this instant (`--max-row-time`).
    deadline: Instant,
    /// Sends of the row's own request (its create or update; the last one sent).
    attempts: u32,
    /// Every request sent for this row: lookups and steps too, logins not.
    requests: u32,
    http_status: Option<u16>,
    /// The remote id a lookup found (used when the update's answer carries none).
    lookup_id: Option<String>,
    /// A lookup was sent for this row.
    looked_up: bool,
    /// The run's secrets and this row's secret cells: masked in any message or log line.
    known: Arc<Known>,
    secrets: Vec<String>,
    /// What the row's follow-up steps did (none ran: `None`).
    steps: Option<Box<StepLog>>,
    /// The last lookup's answer, kept only for `enlist profiles test` (see [`probe_lookup`]).
    answer: Option<Option<Box<Resp>>>,
}

impl RowCtx {
    fn new(sh: &Shared, row: &PlannedRow) -> RowCtx {
        let secrets = row
            .job
            .as_ref()
            .map(|j| j.secrets.clone())
            .unwrap_or_default();
        RowCtx::with_secrets(sh, secrets)
    }

    fn with_secrets(sh: &Shared, secrets: Vec<String>) -> RowCtx {
        let now = Instant::now();
        RowCtx {
            started: now,
            deadline: now + sh.settings.max_row_time,
            attempts: 0,
            requests: 0,
            http_status: None,
            lookup_id: None,
            looked_up: false,
            known: sh.auth.known(),
            secrets,
            steps: None,
            answer: None,
        }
    }

    /// `text` (which may quote the server) without any secret of the run or the row.
    fn scrub(&self, text: &str) -> String {
        let run = self.known.get();
        let row = run.with(self.secrets.iter().map(String::as_str));
        row.scrub(text)
    }

    /// The row's outcome; takes the row, so its cells and key move rather than copy.
    fn outcome(&self, row: PlannedRow, end: End) -> Outcome {
        // A step that failed after a create or update: that request was applied.
        let applied = matches!(end.status, Status::Created | Status::Updated)
            || self.steps.as_ref().is_some_and(|s| s.base.is_some());
        Outcome {
            seq: row.seq,
            row: row.row,
            key: row.key,
            status: end.status,
            action: row.action,
            http_status: self.http_status,
            attempts: self.attempts,
            requests: self.requests,
            duration_ms: self.started.elapsed().as_millis() as u64,
            message: self.scrub(&end.message),
            remote_id: end.remote_id.or_else(|| self.lookup_id.clone()),
            finished_at: now_rfc3339(),
            cells: row.cells,
            fingerprint: row.job.filter(|_| applied).map(|j| j.fingerprint),
            steps: self.steps.clone(),
            problem_columns: Vec::new(),
        }
    }
}

/// Why [`call`] returned no response to act on (the run itself goes on).
enum Unsent {
    /// Retries used up (or the row's time) on transport failures.
    GaveUp(String),
    /// A non-idempotent request may have been applied (only for those).
    Uncertain(String),
}

impl Unsent {
    fn message(self) -> String {
        match self {
            Unsent::GaveUp(m) | Unsent::Uncertain(m) => m,
        }
    }
}

async fn process(sh: &Shared, row: &PlannedRow, cx: &mut RowCtx) -> Result<End, Error> {
    let Some(job) = &row.job else {
        return Ok(End::new(Status::Skipped, "nothing to send"));
    };
    match job.action {
        Action::Skip => Ok(End::new(Status::Skipped, "the row asks to be skipped")),
        Action::Disable | Action::Enable | Action::Delete => lifecycle(sh, row, job, cx).await,
        Action::Create => {
            // A resume: the interrupted run may have created this user without recording
            // it, so look before sending the create again. And a target that would take a
            // second create of the same key (no conflict rule: a PUT that creates or
            // replaces, an API that allows duplicates) is always asked first.
            let unguarded = !super::order::refuses_duplicates(&sh.profile);
            if let (true, Some(lk)) = (job.reconcile || unguarded, &job.lookup) {
                // Boxed (only on a resume or for such a target): see `create`.
                match Box::pin(lookup(sh, cx, lk, &row.key)).await? {
                    Found::Yes(id) if job.reconcile => {
                        let how = "confirmed by lookup: applied by the interrupted run";
                        return Ok(found(Status::Created, how, &id));
                    }
                    Found::Yes(id) => {
                        let how = "already exists (found by lookup; create mode changes no \
                                   existing user)";
                        return Ok(found(Status::Exists, how, &id));
                    }
                    Found::No => {}
                    Found::Failed(why) => return Ok(End::failed(why)),
                }
            }
            create(sh, row, job, cx, false).await
        }
        Action::Update => {
            if let Some(end) = known_update(sh, job, cx).await? {
                return Ok(end);
            }
            let Some(lk) = &job.lookup else {
                return update(sh, row, job, cx, None).await;
            };
            match lookup(sh, cx, lk, &row.key).await? {
                Found::Yes(id) => update(sh, row, job, cx, id).await,
                Found::No => Ok(not_found(row)),
                Found::Failed(why) => Ok(End::failed(why)),
            }
        }
        Action::Upsert => upsert(sh, row, job, cx).await,
    }
}

/// An upsert: the create first while the run's rows show mostly new keys (and the
/// profile allows it, see [`super::order`]), else the lookup first.
async fn upsert(sh: &Shared, row: &PlannedRow, job: &Job, cx: &mut RowCtx) -> Result<End, Error> {
    let known = job.known.is_some();
    if let Some(end) = known_update(sh, job, cx).await? {
        return Ok(end);
    }
    let Some(lk) = &job.lookup else {
        return create(sh, row, job, cx, true).await;
    };
    // A resumed row keeps looking up first (its reconciliation needs the lookup), as
    // do a row that could not be created and a known user (gone from the target,
    // or with no id the update can use).
    let plain = !(job.reconcile || job.created_in_flight || known);
    if plain && job.missing_for_create.is_empty() && sh.order.create_first() {
        let end = create(sh, row, job, cx, true).await?;
        match end.status {
            Status::Created => sh.order.saw(true),
            Status::Updated | Status::Exists => sh.order.saw(false),
            _ => {}
        }
        // A create the target refused for a reason the profile does not call a
        // conflict (a profile that says 409 where the target answers 400) may
        // still mean the user exists: look before failing the row, as looking up
        // first would have.
        let refused = matches!(cx.http_status, Some(400..=499))
            && !matches!(cx.http_status, Some(401 | 403 | 408 | 429));
        if end.status != Status::Failed || !refused || cx.looked_up {
            return Ok(end);
        }
        let status = cx.http_status;
        return Ok(match Box::pin(lookup(sh, cx, lk, &row.key)).await? {
            Found::Yes(id) => Box::pin(update(sh, row, job, cx, id)).await?,
            Found::No | Found::Failed(_) => {
                cx.http_status = status;
                end
            }
        });
    }
    let found_now = lookup(sh, cx, lk, &row.key).await?;
    if plain {
        match found_now {
            Found::Yes(_) => sh.order.saw(false),
            Found::No => sh.order.saw(true),
            Found::Failed(_) => {}
        }
    }
    match found_now {
        Found::Yes(id) if job.created_in_flight => {
            let how = "confirmed by lookup after a restart: created by the interrupted run";
            Ok(found(Status::Created, how, &id))
        }
        Found::Yes(id) => update(sh, row, job, cx, id).await,
        Found::No if !job.missing_for_create.is_empty() => {
            let cols = job.missing_for_create.join(", ");
            let verb = if job.missing_for_create.len() == 1 {
                "is"
            } else {
                "are"
            };
            Ok(End::failed(format!(
                "no user {:?} yet, and {cols} {verb} required to create this user",
                row.key
            )))
        }
        Found::No => create(sh, row, job, cx, true).await,
        Found::Failed(why) => Ok(End::failed(why)),
    }
}

/// A disable, enable or delete: the job's one request, sent to the user the journal knows
/// (or a lookup finds). A user the target no longer has needs no disable or delete: it is
/// reported `deleted`, saying so.
async fn lifecycle(
    sh: &Shared,
    row: &PlannedRow,
    job: &Job,
    cx: &mut RowCtx,
) -> Result<End, Error> {
    let (Some(req), Some(spec)) = (&job.lifecycle, sh.profile.requests.lifecycle(job.action))
    else {
        return Ok(End::failed(format!(
            "profile {} cannot {} users",
            sh.profile.name,
            job.action.as_str()
        )));
    };
    let known = job.known.as_ref().and_then(|k| k.remote_id.clone());
    let gone = || {
        End::new(
            Status::Deleted,
            format!("not on the target any more (no user with key {})", row.key),
        )
    };
    let id = match (known, req.needs_remote_id()) {
        (_, false) => None,
        (Some(id), true) if !req.body_needs_remote_id() => Some(Value::String(id)),
        (_, true) => match &job.lookup {
            None => return Ok(End::failed("no remote id known and no lookup to find it")),
            Some(lk) => match lookup(sh, cx, lk, &row.key).await? {
                Found::Yes(Some(id)) => Some(id),
                Found::Yes(None) => return Ok(End::failed("the lookup's answer has no remote id")),
                Found::No if job.action == Action::Enable => return Ok(not_found(row)),
                Found::No => return Ok(gone()),
                Found::Failed(why) => return Ok(End::failed(why)),
            },
        },
    };
    let req = match &id {
        Some(id) => req.with_remote_id(id),
        None => req.clone(),
    };
    cx.attempts = 0;
    let resp = match own_call(sh, cx, &req, true).await? {
        Ok(r) => r,
        Err(u) => return Ok(End::failed(u.message())),
    };
    let done = match job.action {
        Action::Disable => (Status::Disabled, "disabled"),
        Action::Enable => (Status::ReEnabled, "enabled again"),
        _ => (Status::Deleted, "deleted"),
    };
    Ok(if spec.is_success(resp.status) {
        End::new(done.0, done.1).with_id(id_text(&id))
    } else if spec.not_found.contains(&resp.status) && job.action != Action::Enable {
        gone().with_id(id_text(&id))
    } else {
        End::failed(failure_message(&sh.profile, &resp))
    })
}

/// An update of a user the journal knows, sent without a lookup: `None` when the row must
/// take the usual way (nothing known, no usable id, or the target no longer has the user).
async fn known_update(sh: &Shared, job: &Job, cx: &mut RowCtx) -> Result<Option<End>, Error> {
    let (Some(known), Some(req), Some(_)) = (&job.known, &job.update, &job.lookup) else {
        // Without a lookup the update goes straight out anyway.
        return Ok(None);
    };
    if job.created_in_flight {
        return Ok(None);
    }
    let id = match (&known.remote_id, req.needs_remote_id()) {
        (_, false) => None,
        // The journal keeps the id as text: a body that carries it typed gets it from a
        // lookup, as the target gives it.
        (Some(id), true) if !req.body_needs_remote_id() => Some(Value::String(id.clone())),
        (_, true) => return Ok(None),
    };
    let end = send_update(sh, job, cx, id).await?;
    Ok(end.map(|end| {
        let id = end.remote_id.clone().or_else(|| known.remote_id.clone());
        end.with_id(id)
    }))
}

fn not_found(row: &PlannedRow) -> End {
    End::failed(format!("not found: no user with key {}", row.key))
}

/// A remote id as found; null and "" mean none.
fn usable_id(found: Value) -> Option<Value> {
    match found {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        other => Some(other),
    }
}

/// The remote id found at `pointer` in `v`.
fn id_at(v: &Value, pointer: Option<&str>) -> Option<Value> {
    v.pointer(pointer?).cloned().and_then(usable_id)
}

/// The remote id found at `pointer` in a response's JSON body.
fn resp_id(resp: &Resp, pointer: Option<&str>) -> Option<Value> {
    resp.json_at(pointer?).and_then(usable_id)
}

/// The remote id a create's answer carries in the header the profile names; why not, in
/// words, when it does not.
fn id_in_header(resp: &Resp, h: &crate::profile::RemoteIdHeader) -> Result<String, String> {
    let Some(value) = resp.headers.get(&h.name) else {
        return Err(format!("its answer has no {} header", h.name));
    };
    let text = value.to_str().unwrap_or("");
    h.id_in(text).ok_or_else(|| {
        format!(
            "its {} header {text:?} has no id matching {:?}",
            h.name,
            h.pattern.as_str()
        )
    })
}

fn id_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(|v| value_text(v).into_owned())
}

/// What a lookup said.
#[derive(Debug)]
pub(crate) enum Found {
    /// The user exists; its remote id when the profile says where it is.
    Yes(Option<Value>),
    No,
    /// The lookup itself failed: why (the row fails with it).
    Failed(String),
}

/// Whether a user found by a lookup is the one `key` names: its `match` field equals the
/// key (a lookup without `match` trusts the server).
fn names_key(spec: &RequestSpec, item: &Value, key: &str) -> bool {
    match &spec.match_field {
        None => true,
        Some(ptr) => item
            .pointer(ptr)
            .filter(|v| !matches!(v, Value::Null | Value::Array(_) | Value::Object(_)))
            .is_some_and(|v| spec.match_case.same(&value_text(v), key)),
    }
}

/// Looks the row's user up. A list answer counts only the items whose `match` field
/// equals `key`: none is "not found", more than one fails the row.
async fn lookup(sh: &Shared, cx: &mut RowCtx, req: &Request, key: &str) -> Result<Found, Error> {
    let Some(spec) = sh.profile.requests.lookup.as_ref() else {
        return Ok(Found::No);
    };
    cx.looked_up = true;
    let resp = match call(sh, cx, req, true).await? {
        Ok(r) => r,
        Err(u) => return Ok(Found::Failed(format!("lookup: {}", u.message()))),
    };
    if let Some(kept) = &mut cx.answer {
        *kept = Some(Box::new(resp.clone()));
    }
    let found = if spec.is_success(resp.status) {
        user_in(spec, &resp, key)
    } else if spec.not_found.contains(&resp.status) {
        Found::No
    } else {
        Found::Failed(format!("lookup: {}", failure_message(&sh.profile, &resp)))
    };
    if let Found::Yes(id) = &found {
        cx.lookup_id = id_text(id);
    }
    Ok(found)
}

/// The user `key` names in a lookup's successful answer (see [`lookup`]).
fn user_in(spec: &RequestSpec, resp: &Resp, key: &str) -> Found {
    let status = resp.status;
    if let Some(m) = not_json(resp).filter(|_| spec.list.is_some() || spec.remote_id.is_some()) {
        return Found::Failed(format!("lookup: {m}"));
    }
    let Some(lp) = &spec.list else {
        if spec.match_field.is_some() {
            let Ok(answer) = serde_json::from_slice::<Value>(&resp.body) else {
                return Found::Failed(format!(
                    "lookup: the answer ({status}) is not JSON, so its user cannot be checked"
                ));
            };
            if !names_key(spec, &answer, key) {
                return Found::No;
            }
        }
        return Found::Yes(resp_id(resp, spec.remote_id.as_deref()));
    };
    let Some(Value::Array(items)) = resp.json_at(lp) else {
        return Found::Failed(format!("lookup: the answer ({status}) has no list at {lp}"));
    };
    let mut exact = items.iter().filter(|item| names_key(spec, item, key));
    let Some(user) = exact.next() else {
        return Found::No;
    };
    match exact.count() {
        0 => Found::Yes(id_at(user, spec.remote_id.as_deref())),
        more => Found::Failed(format!(
            "{} users match {key} on the target; refusing to guess",
            more + 1
        )),
    }
}

async fn update(
    sh: &Shared,
    row: &PlannedRow,
    job: &Job,
    cx: &mut RowCtx,
    id: Option<Value>,
) -> Result<End, Error> {
    let end = send_update(sh, job, cx, id).await?;
    Ok(end.unwrap_or_else(|| not_found(row)))
}

/// Sends the update; `None` when the target answered its `not_found` (the user is gone).
async fn send_update(
    sh: &Shared,
    job: &Job,
    cx: &mut RowCtx,
    id: Option<Value>,
) -> Result<Option<End>, Error> {
    let done = |end| Ok(Some(end));
    let (Some(req), Some(spec)) = (&job.update, sh.profile.requests.update.as_ref()) else {
        return done(End::failed(format!(
            "the user exists and profile {} cannot update users",
            sh.profile.name
        )));
    };
    if !job.missing_for_update.is_empty() {
        let cols = job.missing_for_update.join(", ");
        return done(End::failed(format!(
            "the user exists, and its update replaces the whole user, but this row's {cols} \
             is empty: fill it in (nothing was sent, so the stored {cols} is kept)"
        )));
    }
    let req = match (&id, req.needs_remote_id()) {
        (Some(id), true) => req.with_remote_id(id),
        (None, true) => {
            return done(End::failed(format!(
                "the lookup found the user but its answer has no remote id at {}",
                sh.profile
                    .requests
                    .lookup
                    .as_ref()
                    .and_then(|l| l.remote_id.as_deref())
                    .unwrap_or("(no remote_id pointer)")
            )))
        }
        (_, false) => req.clone(),
    };
    cx.attempts = 0;
    let resp = match own_call(sh, cx, &req, true).await? {
        Ok(r) => r,
        Err(u) => return done(End::failed(u.message())),
    };
    if spec.is_success(resp.status) {
        let rid = resp_id(&resp, spec.remote_id.as_deref());
        done(End::new(Status::Updated, "updated").with_id(id_text(&rid).or(id_text(&id))))
    } else if spec.not_found.contains(&resp.status) {
        Ok(None)
    } else {
        done(End::failed(failure_message(&sh.profile, &resp)))
    }
}

/// Sends the create, never blindly twice: after an attempt that may have been applied,
/// the user is looked up first (when the profile can), and a conflict on a repeat is read
/// as the first attempt having worked. `then_update`: a conflict means "update instead"
/// (upsert without a lookup) when the update needs no remote id.
async fn create(
    sh: &Shared,
    row: &PlannedRow,
    job: &Job,
    cx: &mut RowCtx,
    then_update: bool,
) -> Result<End, Error> {
    let (Some(req), Some(spec)) = (&job.create, sh.profile.requests.create.as_ref()) else {
        return Ok(End::failed(format!(
            "profile {} cannot create users",
            sh.profile.name
        )));
    };
    if then_update {
        if let Some(log) = &sh.settings.create_log {
            log.creating(&row.key, &job.fingerprint);
        }
    }
    let mut uncertain: Option<String> = None;
    let mut sends = 0u32;
    cx.attempts = 0;
    let resp = loop {
        if let Some(why) = &uncertain {
            if sends >= sh.settings.max_attempts || Instant::now() >= cx.deadline {
                return Ok(End::failed(format!(
                    "gave up after {sends} create attempts; the last may or may not have been applied ({why}); check this user"
                )));
            }
            if let Some(lk) = &job.lookup {
                // The rare paths of a create (this lookup, the update after a conflict) are
                // boxed: inline, their state would sit in every row's future, which is
                // built and moved for every row.
                match Box::pin(lookup(sh, cx, lk, &row.key)).await? {
                    Found::Yes(id) => {
                        let how = "confirmed by lookup after an uncertain attempt";
                        return Ok(found(Status::Created, how, &id));
                    }
                    Found::No => {}
                    Found::Failed(lost) => {
                        return Ok(End::failed(format!(
                            "the create may have been applied ({why}); the lookup to confirm it failed: {lost}; check this user"
                        )))
                    }
                }
            }
            sh.net.stats.retry();
            tokio::time::sleep(retry::backoff(sends)).await;
        }
        sends += 1;
        match own_call(sh, cx, req, false).await? {
            Ok(r) => break r,
            Err(Unsent::Uncertain(m)) => uncertain = Some(m),
            Err(Unsent::GaveUp(m)) => return Ok(End::failed(m)),
        }
    };
    if spec.is_success(resp.status) {
        let id = match &spec.remote_id_header {
            Some(h) => id_in_header(&resp, h).map(|id| Some(Value::String(id))),
            None => match not_json(&resp).filter(|_| spec.remote_id.is_some()) {
                Some(m) => Err(m),
                None => Ok(resp_id(&resp, spec.remote_id.as_deref())),
            },
        };
        let missing = match id {
            Ok(id) if uncertain.is_some() => {
                let how = "created (on a retry after an uncertain attempt)";
                return Ok(found(Status::Created, how, &id));
            }
            Ok(id) => return Ok(found(Status::Created, "created", &id)),
            Err(m) => m,
        };
        // The status says the create was applied: never sent again. Its id is learnt by
        // lookup where the profile can; otherwise a person should look.
        if let Some(lk) = &job.lookup {
            if let Found::Yes(id) = Box::pin(lookup(sh, cx, lk, &row.key)).await? {
                let how = format!("created ({missing}; its id was found by lookup)");
                return Ok(found(Status::Created, how, &id));
            }
        }
        return Ok(End::failed(format!(
            "the target answered {} (created), but {missing}: the user was probably created without enlist learning its id; check this user before running again",
            resp.status
        )));
    }
    if !sh.profile.is_conflict(spec, resp.status, &resp.body) {
        return Ok(End::failed(failure_message(&sh.profile, &resp)));
    }
    if let Some(lk) = &job.lookup {
        return Box::pin(confirm_conflict(sh, row, job, cx, lk, &resp, then_update)).await;
    }
    if uncertain.is_some() {
        return Ok(End::new(
            Status::Created,
            "created: the retry after an uncertain attempt met a conflict, so the first attempt was applied",
        ));
    }
    let can_update = job.update.as_ref().is_some_and(|u| !u.needs_remote_id());
    if then_update && can_update {
        return Box::pin(update(sh, row, job, cx, None)).await;
    }
    Ok(exists(sh, &resp, &None))
}

/// A create met a conflict and the profile can look users up: the user exists only if the
/// lookup finds it (then `exists`, or updated for an upsert); otherwise the row fails with
/// the server's own words, since a "conflict" status can also mean a refused value.
async fn confirm_conflict(
    sh: &Shared,
    row: &PlannedRow,
    job: &Job,
    cx: &mut RowCtx,
    lk: &Request,
    conflict: &Resp,
    then_update: bool,
) -> Result<End, Error> {
    let status = cx.http_status;
    let found_now = match lookup(sh, cx, lk, &row.key).await? {
        Found::Yes(id) if then_update => return update(sh, row, job, cx, id).await,
        other => other,
    };
    // The row reports the create's answer, not the lookup's.
    cx.http_status = status;
    let refused = failure_message(&sh.profile, conflict);
    Ok(match found_now {
        Found::Yes(id) => exists(sh, conflict, &id),
        Found::No => End::failed(format!(
            "{refused}; no user {} is found on the target, so this is not read as \"already exists\"",
            row.key
        )),
        Found::Failed(why) => End::failed(format!(
            "{refused}; the lookup to confirm the user exists failed: {why}"
        )),
    })
}

/// [`call`] for the row's own request (its create or update): its sends are the row's
/// attempts, while [`RowCtx::requests`] counts every request.
async fn own_call(
    sh: &Shared,
    cx: &mut RowCtx,
    req: &Request,
    idempotent: bool,
) -> Result<Result<Resp, Unsent>, Error> {
    let before = cx.requests;
    let r = call(sh, cx, req, idempotent).await;
    cx.attempts += cx.requests - before;
    r
}

/// Sends one request with the run's auth, through the gate, retrying what is safe to
/// retry. Returns the final response (success or not) for the caller to interpret; `Err`
/// only when the run cannot go on (a re-login refused).
///
/// `idempotent` false (a create): an attempt that may have been applied is not repeated
/// here but returned as [`Unsent::Uncertain`].
async fn call(
    sh: &Shared,
    cx: &mut RowCtx,
    req: &Request,
    idempotent: bool,
) -> Result<Result<Resp, Unsent>, Error> {
    let mut tries = 0u32;
    // The refusals among the tries (a 429, or a 503 that says when to come back): the
    // target applied nothing and asked for less or later. They do not use up
    // --max-attempts (a run faster than the target allows must not fail rows for it);
    // --max-row-time bounds them, and a target that has refused everything for that long
    // stops the run.
    let mut refused = 0u32;
    let mut replayed = false;
    loop {
        let cred = sh.auth.credential(&sh.net).await?;
        sh.net.gate.acquire().await;
        tries += 1;
        cx.requests += 1;
        sh.net.stats.request();
        let mut wait = None;
        let sent_at = Instant::now();
        let answer = sh.net.http.send(req, cred.header.as_ref()).await;
        let what = match &answer {
            Ok(r) if r.status != 429 && r.status < 500 => Sample::Ok,
            _ => Sample::Overload,
        };
        sh.sample(sent_at.elapsed(), what);
        if let Some(b) = answer
            .as_ref()
            .ok()
            .and_then(|r| crate::headers::budget(&r.headers))
        {
            let in_flight = sh.limit.current() as u64;
            sh.net.gate.budget(b, sh.settings.max_pause, in_flight);
        }
        let (failure, last) = match answer {
            Ok(resp) => {
                cx.http_status = Some(resp.status);
                if resp.status == 401
                    && !replayed
                    && sh.auth.on_unauthorized(&sh.net, cred.generation).await?
                {
                    replayed = true;
                    tries -= 1;
                    sh.net.stats.retry();
                    continue;
                }
                // "Come back later": a 429, or a 503 that says when. Nothing was applied.
                let asked = retry::come_back_in(&resp);
                if resp.status == 429 {
                    sh.net.stats.throttle();
                    sh.net.gate.throttled();
                }
                if resp.status == 429 || asked.is_some() {
                    refused += 1;
                    let refusing = sh.net.gate.refusing_for();
                    if refusing >= sh.settings.max_row_time {
                        return Err(Error::CannotStart(format!(
                            "the target has refused every request for {} (429 Too Many \
                             Requests, or 503 with a time to come back; --max-row-time {}s), \
                             so nothing more is sent: run again later (a re-run sends only \
                             what is not done) or with a lower --rate",
                            crate::headers::words(refusing),
                            sh.settings.max_row_time.as_secs_f64()
                        )));
                    }
                }
                if let Some(asked) = asked {
                    let left = cx.deadline.saturating_duration_since(Instant::now());
                    let s = &sh.settings;
                    let d = match retry::server_pause(asked, s.max_pause, left, s.max_row_time) {
                        Ok(d) => d,
                        Err(m) => return Ok(Err(Unsent::GaveUp(m))),
                    };
                    sh.net.gate.pause_for(d);
                    wait = Some(d);
                }
                if !sh.profile.is_retryable(resp.status) {
                    sh.net.gate.success();
                    return Ok(Ok(resp));
                }
                if !idempotent && matches!(resp.status, 500 | 502 | 504) {
                    return Ok(Err(Unsent::Uncertain(format!(
                        "{}: the target may have applied it",
                        failure_message(&sh.profile, &resp)
                    ))));
                }
                (failure_message(&sh.profile, &resp), Some(resp))
            }
            Err(SendError::Uncertain(m)) if !idempotent => return Ok(Err(Unsent::Uncertain(m))),
            Err(SendError::Refused(m)) => return Ok(Err(Unsent::GaveUp(m))),
            Err(e) => (e.message().to_string(), None),
        };
        // The server's own wait is honoured by the gate (nobody sends until then); the
        // backoff only spreads the retries that follow.
        let delay = wait.map_or_else(|| retry::backoff(tries), |_| Duration::ZERO);
        let ready_at = Instant::now() + delay + wait.unwrap_or_default();
        if tries - refused >= sh.settings.max_attempts || ready_at > cx.deadline {
            return Ok(match last {
                // Only the row's time can end a row the target keeps refusing.
                Some(resp) if resp.status == 429 || wait.is_some() => Err(Unsent::GaveUp(format!(
                    "{failure} (still, after {refused} refusals in this row's \
                         --max-row-time {}s)",
                    sh.settings.max_row_time.as_secs_f64()
                ))),
                Some(resp) => Ok(resp),
                None => Err(Unsent::GaveUp(format!(
                    "gave up after {tries} attempts: {failure}"
                ))),
            });
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(tries, "retrying: {}", cx.scrub(&failure));
        }
        sh.net.stats.retry();
        tokio::time::sleep(delay).await;
    }
}

// ---- follow-up steps (`[[steps]]`) ----

/// A row whose content the journal shows applied, with steps left to do: nothing is sent
/// for the user itself; [`steps`] sends what is missing.
fn steps_pending(job: &Job, base: Status) -> End {
    // The journal keeps only created or updated rows' steps to do.
    let how = base.as_str();
    End::new(
        Status::Updated,
        format!("updated: only the steps left to do (the user was {how} by an earlier run)"),
    )
    .with_id(job.known.as_ref().and_then(|k| k.remote_id.clone()))
}

/// After the row's create or update succeeded: its steps for that, in order, each through
/// [`call`] (the gate, the retry policy) like any request. The first step that fails ends
/// the row as failed, naming the step and item; the steps done are recorded either way.
async fn steps(sh: &Shared, row: &PlannedRow, cx: &mut RowCtx, end: End) -> Result<End, Error> {
    let Some(job) = row.job.as_ref().filter(|j| !j.steps.is_empty()) else {
        return Ok(end);
    };
    let base = job.steps_only.unwrap_or(end.status);
    let todo: Vec<&StepJob> = job.steps.iter().filter(|s| s.runs_after(base)).collect();
    if todo.is_empty() {
        return Ok(end);
    }
    let mut done: Vec<&StepJob> = Vec::new();
    let mut id = end
        .remote_id
        .clone()
        .or_else(|| cx.lookup_id.clone())
        .map(Value::String);
    let mut failed = None;
    for s in todo {
        let spec = &sh.profile.steps[s.step];
        let needs_id = s.request.needs_remote_id();
        if let (true, None, Some(lk)) = (needs_id, &id, &job.lookup) {
            match Box::pin(lookup(sh, cx, lk, &row.key)).await? {
                Found::Yes(found) => id = found,
                Found::No => {}
                Found::Failed(why) => {
                    failed = Some((s, format!("the user's remote id is unknown ({why})")));
                    break;
                }
            }
        }
        let req = match (&id, needs_id) {
            (_, false) => s.request.clone(),
            (Some(v), true) => s.request.with_remote_id(v),
            (None, true) => {
                failed = Some((s, "the user's remote id is unknown".to_string()));
                break;
            }
        };
        let idempotent = spec.request.method != reqwest::Method::POST;
        match call(sh, cx, &req, idempotent).await? {
            Ok(resp)
                if spec.request.is_success(resp.status)
                    || spec.request.conflict.contains(&resp.status) =>
            {
                if let Some(log) = &sh.settings.create_log {
                    log.step_done(&row.key, &s.id);
                }
                done.push(s);
            }
            Ok(resp) => {
                failed = Some((s, failure_message(&sh.profile, &resp)));
                break;
            }
            Err(u) => {
                failed = Some((s, u.message()));
                break;
            }
        }
    }
    let mut log = StepLog {
        base: Some(base),
        ids: done.iter().map(|s| s.id.clone()).collect(),
        done: done.iter().map(|s| s.label(&sh.profile)).collect(),
        failed: None,
    };
    let done_text = crate::plan::steps_done_text(&sh.profile, &done);
    let remote_id = end.remote_id.clone().or_else(|| id_text(&id));
    let end = match failed {
        None => End::new(end.status, format!("{}; {done_text}", end.message)).with_id(remote_id),
        Some((s, why)) => {
            let name = &sh.profile.steps[s.step].name;
            let item = s
                .item
                .as_ref()
                .map(|i| format!(" for '{i}'"))
                .unwrap_or_default();
            let before = if done.is_empty() {
                String::new()
            } else {
                format!(" (done: {done_text})")
            };
            let failure = format!("step '{name}' failed{item}: {why}{before}");
            log.failed = Some(failure.clone());
            End::failed(format!("{}; {failure}", end.message)).with_id(remote_id)
        }
    };
    cx.steps = Some(Box::new(log));
    Ok(end)
}

/// One lookup of `row`'s key, as a run sends it (gate, auth, retries, the list/match rules),
/// for `enlist profiles test`: what it made of the key (a failure's words scrubbed), and the
/// answer it read.
pub(crate) async fn probe_lookup(
    sh: &Shared,
    row: &PlannedRow,
    req: &Request,
) -> Result<(Found, Option<Resp>), Error> {
    let mut cx = RowCtx::new(sh, row);
    cx.answer = Some(None);
    let found = match lookup(sh, &mut cx, req, &row.key).await? {
        Found::Failed(why) => Found::Failed(cx.scrub(&why)),
        other => other,
    };
    Ok((found, cx.answer.flatten().map(|b| *b)))
}

/// One request that belongs to no row (a page of `[requests.list]`), sent as a row's are
/// (auth, gate, retries): its answer, or why there is none (scrubbed).
pub(crate) async fn send_alone(
    sh: &Shared,
    req: &Request,
) -> Result<std::result::Result<Resp, String>, Error> {
    let mut cx = RowCtx::with_secrets(sh, Vec::new());
    let answer = call(sh, &mut cx, req, true).await?;
    Ok(answer.map_err(|u| cx.scrub(&u.message())))
}
