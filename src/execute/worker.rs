//! One worker: takes rows off the job channel and carries each to a definite outcome.
//!
//! The rules a row follows (create, update, upsert; what a conflict or a missing user
//! means; when a create may be sent again) live here, in one place.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::adaptive::{Permit, Sample};
use super::auth::Known;
use super::client::{failure_message, not_json, Resp, SendError};
use super::{retry, Shared, NOT_SENT};
use crate::error::Error;
use crate::outcome::{now_rfc3339, Outcome, Status, StepLog};
use crate::plan::{Job, PlannedRow, Request, StepJob};
use crate::profile::template::value_text;
use crate::profile::{Action, RequestSpec};

/// Carries one row to its outcome, sent to `out`; `_permit` is the row's room in the
/// concurrency limit, given back when the row is done.
pub(super) async fn work(
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
        None if cx.attempts == 0 => End::new(Status::NotAttempted, NOT_SENT),
        None => End::new(
            Status::Failed,
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

/// Per-row bookkeeping while it is worked on.
struct RowCtx {
    started: Instant,
    /// The row gives up retrying past this instant (`--max-row-time`).
    deadline: Instant,
    /// Requests sent for this row.
    attempts: u32,
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
        let now = Instant::now();
        RowCtx {
            started: now,
            deadline: now + sh.settings.max_row_time,
            attempts: 0,
            http_status: None,
            lookup_id: None,
            looked_up: false,
            known: sh.auth.known(),
            secrets: row
                .job
                .as_ref()
                .map(|j| j.secrets.clone())
                .unwrap_or_default(),
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
            duration_ms: self.started.elapsed().as_millis() as u64,
            message: self.scrub(&end.message),
            remote_id: end.remote_id.or_else(|| self.lookup_id.clone()),
            finished_at: now_rfc3339(),
            cells: row.cells,
            fingerprint: if applied {
                row.job.map(|j| j.fingerprint)
            } else {
                None
            },
            steps: self.steps.clone(),
        }
    }
}

/// Why [`call`] returned no response to act on.
enum CallErr {
    /// Retries used up (or the row's time) on transport failures.
    GaveUp(String),
    /// A non-idempotent request may have been applied (only for those).
    Uncertain(String),
    /// The run cannot go on (re-login refused).
    Fatal(Error),
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
                        return Ok(End::new(
                            Status::Created,
                            "confirmed by lookup: applied by the interrupted run",
                        )
                        .with_id(id_text(&id)))
                    }
                    Found::Yes(id) => return Ok(End::new(
                        Status::Exists,
                        "already exists (found by lookup; create mode changes no existing user)",
                    )
                    .with_id(id_text(&id))),
                    Found::No => {}
                    Found::Failed(end) => return Ok(end),
                }
            }
            create(sh, row, job, cx, false).await
        }
        Action::Update => {
            if let Some(end) = known_update(sh, job, cx).await? {
                return Ok(end);
            }
            if let Some(lk) = &job.lookup {
                match lookup(sh, cx, lk, &row.key).await? {
                    Found::Yes(id) => update(sh, row, job, cx, id).await,
                    Found::No => Ok(not_found(row)),
                    Found::Failed(end) => Ok(end),
                }
            } else {
                update(sh, row, job, cx, None).await
            }
        }
        Action::Upsert => {
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
            let found = lookup(sh, cx, lk, &row.key).await?;
            if plain {
                match found {
                    Found::Yes(_) => sh.order.saw(false),
                    Found::No => sh.order.saw(true),
                    Found::Failed(_) => {}
                }
            }
            match found {
                Found::Yes(id) if job.created_in_flight => Ok(End::new(
                    Status::Created,
                    "confirmed by lookup after a restart: created by the interrupted run",
                )
                .with_id(id_text(&id))),
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
                Found::Failed(end) => Ok(end),
            }
        }
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
                Found::Failed(end) => return Ok(end),
            },
        },
    };
    let req = match &id {
        Some(id) => req.with_remote_id(id),
        None => req.clone(),
    };
    let resp = match call(sh, cx, &req, true).await {
        Ok(r) => r,
        Err(CallErr::Fatal(e)) => return Err(e),
        Err(CallErr::GaveUp(m)) | Err(CallErr::Uncertain(m)) => return Ok(End::failed(m)),
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
    match send_update(sh, job, cx, id).await? {
        Sent::Done(end) => {
            let id = end.remote_id.clone().or_else(|| known.remote_id.clone());
            Ok(Some(end.with_id(id)))
        }
        Sent::Gone => Ok(None),
    }
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
enum Found {
    /// The user exists; its remote id when the profile says where it is.
    Yes(Option<Value>),
    No,
    /// The lookup itself failed: the row ends with this.
    Failed(End),
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
    let resp = match call(sh, cx, req, true).await {
        Ok(r) => r,
        Err(CallErr::Fatal(e)) => return Err(e),
        Err(CallErr::GaveUp(m)) | Err(CallErr::Uncertain(m)) => {
            return Ok(Found::Failed(End::failed(format!("lookup: {m}"))))
        }
    };
    if let Some(kept) = &mut cx.answer {
        *kept = Some(Box::new(resp.clone()));
    }
    if spec.is_success(resp.status) {
        if let Some(m) = not_json(&resp).filter(|_| spec.list.is_some() || spec.remote_id.is_some())
        {
            return Ok(Found::Failed(End::failed(format!("lookup: {m}"))));
        }
        let id = match &spec.list {
            Some(lp) => match resp.json_at(lp) {
                Some(Value::Array(items)) => {
                    let mut exact = items.iter().filter(|item| names_key(spec, item, key));
                    let Some(found) = exact.next() else {
                        return Ok(Found::No);
                    };
                    let more = exact.count();
                    if more > 0 {
                        return Ok(Found::Failed(End::failed(format!(
                            "{} users match {key} on the target; refusing to guess",
                            more + 1
                        ))));
                    }
                    id_at(found, spec.remote_id.as_deref())
                }
                _ => {
                    return Ok(Found::Failed(End::failed(format!(
                        "lookup: the answer ({}) has no list at {lp}",
                        resp.status
                    ))))
                }
            },
            None => {
                if spec.match_field.is_some() {
                    let Ok(answer) = serde_json::from_slice::<Value>(&resp.body) else {
                        return Ok(Found::Failed(End::failed(format!(
                            "lookup: the answer ({}) is not JSON, so its user cannot be checked",
                            resp.status
                        ))));
                    };
                    if !names_key(spec, &answer, key) {
                        return Ok(Found::No);
                    }
                }
                resp_id(&resp, spec.remote_id.as_deref())
            }
        };
        cx.lookup_id = id_text(&id);
        Ok(Found::Yes(id))
    } else if spec.not_found.contains(&resp.status) {
        Ok(Found::No)
    } else {
        Ok(Found::Failed(End::failed(format!(
            "lookup: {}",
            failure_message(&sh.profile, &resp)
        ))))
    }
}

async fn update(
    sh: &Shared,
    row: &PlannedRow,
    job: &Job,
    cx: &mut RowCtx,
    id: Option<Value>,
) -> Result<End, Error> {
    match send_update(sh, job, cx, id).await? {
        Sent::Done(end) => Ok(end),
        Sent::Gone => Ok(not_found(row)),
    }
}

/// How an update ended.
enum Sent {
    Done(End),
    /// The target answered the update spec's `not_found`.
    Gone,
}

async fn send_update(
    sh: &Shared,
    job: &Job,
    cx: &mut RowCtx,
    id: Option<Value>,
) -> Result<Sent, Error> {
    let done = |end| Ok(Sent::Done(end));
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
    let resp = match call(sh, cx, &req, true).await {
        Ok(r) => r,
        Err(CallErr::Fatal(e)) => return Err(e),
        Err(CallErr::GaveUp(m)) | Err(CallErr::Uncertain(m)) => return done(End::failed(m)),
    };
    if spec.is_success(resp.status) {
        let rid = resp_id(&resp, spec.remote_id.as_deref());
        done(End::new(Status::Updated, "updated").with_id(id_text(&rid).or(id_text(&id))))
    } else if spec.not_found.contains(&resp.status) {
        Ok(Sent::Gone)
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
    let max = sh.settings.max_attempts;
    let mut uncertain: Option<String> = None;
    let mut sends = 0u32;
    loop {
        if let Some(why) = &uncertain {
            if sends >= max || Instant::now() >= cx.deadline {
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
                        return Ok(End::new(
                            Status::Created,
                            "confirmed by lookup after an uncertain attempt",
                        )
                        .with_id(id_text(&id)))
                    }
                    Found::No => {}
                    Found::Failed(end) => {
                        return Ok(End::failed(format!(
                            "the create may have been applied ({why}); the lookup to confirm it failed: {}; check this user",
                            end.message
                        )))
                    }
                }
            }
            sh.stats.retry();
            tokio::time::sleep(retry::backoff(sends)).await;
        }
        sends += 1;
        let resp = match call(sh, cx, req, false).await {
            Ok(r) => r,
            Err(CallErr::Uncertain(m)) => {
                uncertain = Some(m);
                continue;
            }
            Err(CallErr::GaveUp(m)) => return Ok(End::failed(m)),
            Err(CallErr::Fatal(e)) => return Err(e),
        };
        if spec.is_success(resp.status) {
            let (header_id, missing) = match &spec.remote_id_header {
                Some(h) => match id_in_header(&resp, h) {
                    Ok(id) => (Some(Value::String(id)), None),
                    Err(m) => (None, Some(m)),
                },
                None => (None, not_json(&resp).filter(|_| spec.remote_id.is_some())),
            };
            if let Some(m) = missing {
                // The status says the create was applied: never sent again. Its id is
                // learnt by lookup where the profile can; otherwise a person should look.
                if let Some(lk) = &job.lookup {
                    if let Found::Yes(id) = Box::pin(lookup(sh, cx, lk, &row.key)).await? {
                        return Ok(End::new(
                            Status::Created,
                            format!("created ({m}; its id was found by lookup)"),
                        )
                        .with_id(id_text(&id)));
                    }
                }
                return Ok(End::failed(format!(
                    "the target answered {} (created), but {m}: the user was probably created without enlist learning its id; check this user before running again",
                    resp.status
                )));
            }
            let rid = header_id.or_else(|| resp_id(&resp, spec.remote_id.as_deref()));
            let msg = if uncertain.is_some() {
                "created (on a retry after an uncertain attempt)"
            } else {
                "created"
            };
            return Ok(End::new(Status::Created, msg).with_id(id_text(&rid)));
        }
        if sh.profile.is_conflict(spec, resp.status, &resp.body) {
            if uncertain.is_some() && job.lookup.is_none() {
                return Ok(End::new(
                    Status::Created,
                    "created: the retry after an uncertain attempt met a conflict, so the first attempt was applied",
                ));
            }
            if let Some(lk) = &job.lookup {
                return Box::pin(confirm_conflict(sh, row, job, cx, lk, &resp, then_update)).await;
            }
            let can_update = job.update.as_ref().is_some_and(|u| !u.needs_remote_id());
            if then_update && can_update {
                return Box::pin(update(sh, row, job, cx, None)).await;
            }
            let server = sh
                .profile
                .error_message(&resp.body)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            return Ok(End::new(Status::Exists, format!("already exists{server}")));
        }
        return Ok(End::failed(failure_message(&sh.profile, &resp)));
    }
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
    match lookup(sh, cx, lk, &row.key).await? {
        Found::Yes(id) if then_update => update(sh, row, job, cx, id).await,
        Found::Yes(id) => {
            cx.http_status = status;
            let server = sh
                .profile
                .error_message(&conflict.body)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            Ok(End::new(Status::Exists, format!("already exists{server}")).with_id(id_text(&id)))
        }
        Found::No => {
            cx.http_status = status;
            Ok(End::failed(format!(
                "{}; no user {} is found on the target, so this is not read as \"already exists\"",
                failure_message(&sh.profile, conflict),
                row.key
            )))
        }
        Found::Failed(end) => {
            cx.http_status = status;
            Ok(End::failed(format!(
                "{}; the lookup to confirm the user exists failed: {}",
                failure_message(&sh.profile, conflict),
                end.message
            )))
        }
    }
}

/// Sends one request with the run's auth, through the gate, retrying what is safe to
/// retry. Returns the final response (success or not) for the caller to interpret.
///
/// `idempotent` false (a create): an attempt that may have been applied is not repeated
/// here but returned as [`CallErr::Uncertain`].
async fn call(
    sh: &Shared,
    cx: &mut RowCtx,
    req: &Request,
    idempotent: bool,
) -> Result<Resp, CallErr> {
    let mut tries = 0u32;
    let mut replayed = false;
    loop {
        let cred = sh
            .auth
            .credential(&sh.http, &sh.gate, &sh.stats)
            .await
            .map_err(CallErr::Fatal)?;
        sh.gate.acquire().await;
        tries += 1;
        cx.attempts += 1;
        sh.stats.request();
        let mut wait = None;
        let sent_at = Instant::now();
        let answer = sh.http.send(req, cred.header.as_ref()).await;
        let overload = match &answer {
            Ok(r) => r.status == 429 || r.status >= 500,
            Err(_) => true,
        };
        sh.sample(
            sent_at.elapsed(),
            if overload {
                Sample::Overload
            } else {
                Sample::Ok
            },
        );
        if let Some(b) = answer.as_ref().ok().and_then(|r| retry::budget(&r.headers)) {
            let in_flight = sh.limit.current() as u64;
            sh.gate.budget(b, sh.settings.max_pause, in_flight);
        }
        let (failure, last) = match answer {
            Ok(resp) => {
                cx.http_status = Some(resp.status);
                if resp.status == 401 && !replayed {
                    let renewed = sh
                        .auth
                        .on_unauthorized(&sh.http, &sh.gate, &sh.stats, cred.generation)
                        .await
                        .map_err(CallErr::Fatal)?;
                    if renewed {
                        replayed = true;
                        tries -= 1;
                        sh.stats.retry();
                        continue;
                    }
                }
                if resp.status == 429 {
                    sh.stats.throttle();
                    sh.gate.throttled();
                    if let Some(asked) = retry::server_wait(&resp.headers, SystemTime::now()) {
                        let left = cx.deadline.saturating_duration_since(Instant::now());
                        let s = &sh.settings;
                        let d = retry::server_pause(asked, s.max_pause, left, s.max_row_time)
                            .map_err(CallErr::GaveUp)?;
                        sh.gate.pause_for(d);
                        wait = Some(d);
                    }
                }
                if !sh.profile.is_retryable(resp.status) {
                    sh.gate.success();
                    return Ok(resp);
                }
                if !idempotent && matches!(resp.status, 500 | 502 | 504) {
                    return Err(CallErr::Uncertain(format!(
                        "{}: the target may have applied it",
                        failure_message(&sh.profile, &resp)
                    )));
                }
                (failure_message(&sh.profile, &resp), Some(resp))
            }
            Err(SendError::Uncertain(m)) if !idempotent => return Err(CallErr::Uncertain(m)),
            Err(SendError::Refused(m)) => return Err(CallErr::GaveUp(m)),
            Err(e) => (e.message().to_string(), None),
        };
        // The server's own wait is honoured by the gate (nobody sends until then); the
        // backoff only spreads the retries that follow.
        let delay = if wait.is_some() {
            Duration::ZERO
        } else {
            retry::backoff(tries)
        };
        let ready_at = Instant::now() + delay + wait.unwrap_or_default();
        if tries >= sh.settings.max_attempts || ready_at > cx.deadline {
            return match last {
                Some(resp) => Ok(resp),
                None => Err(CallErr::GaveUp(format!(
                    "gave up after {tries} attempts: {failure}"
                ))),
            };
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(tries, "retrying: {}", cx.scrub(&failure));
        }
        sh.stats.retry();
        tokio::time::sleep(delay).await;
    }
}

// ---- follow-up steps (`[[steps]]`) ----

/// A row whose content the journal shows applied, with steps left to do: nothing is sent
/// for the user itself; [`steps`] sends what is missing.
fn steps_pending(job: &Job, base: Status) -> End {
    let how = if base == Status::Created {
        "created"
    } else {
        "updated"
    };
    End::new(
        Status::Updated,
        format!("updated: only the steps left to do (the user was {how} by an earlier run)"),
    )
    .with_id(job.known.as_ref().and_then(|k| k.remote_id.clone()))
}

/// `name` or `name: a, b` per step, in the order done.
fn steps_done_text(sh: &Shared, done: &[&StepJob]) -> String {
    let mut parts: Vec<(usize, Vec<&str>)> = Vec::new();
    for s in done {
        match parts.iter_mut().find(|(i, _)| *i == s.step) {
            Some((_, items)) => items.extend(s.item.as_deref()),
            None => parts.push((s.step, s.item.as_deref().into_iter().collect())),
        }
    }
    parts
        .iter()
        .map(|(i, items)| {
            let name = &sh.profile.steps[*i].name;
            if items.is_empty() {
                name.clone()
            } else {
                format!("{name}: {}", items.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
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
    let mut log = StepLog {
        base: Some(base),
        ..StepLog::default()
    };
    let mut done: Vec<&StepJob> = Vec::new();
    let mut id = end
        .remote_id
        .clone()
        .or_else(|| cx.lookup_id.clone())
        .map(Value::String);
    let mut failed = None;
    for s in todo {
        let spec = &sh.profile.steps[s.step];
        let req = if s.request.needs_remote_id() {
            if id.is_none() {
                if let Some(lk) = &job.lookup {
                    match Box::pin(lookup(sh, cx, lk, &row.key)).await? {
                        Found::Yes(found) => id = found,
                        Found::No => {}
                        Found::Failed(f) => {
                            failed = Some((
                                s,
                                format!("the user's remote id is unknown ({})", f.message),
                            ));
                            break;
                        }
                    }
                }
            }
            match &id {
                Some(v) => s.request.with_remote_id(v),
                None => {
                    failed = Some((s, "the user's remote id is unknown".to_string()));
                    break;
                }
            }
        } else {
            s.request.clone()
        };
        let idempotent = spec.request.method != reqwest::Method::POST;
        match call(sh, cx, &req, idempotent).await {
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
            Err(CallErr::Fatal(e)) => return Err(e),
            Err(CallErr::GaveUp(m)) | Err(CallErr::Uncertain(m)) => {
                failed = Some((s, m));
                break;
            }
        }
    }
    log.ids = done.iter().map(|s| s.id.clone()).collect();
    log.done = done
        .iter()
        .map(|s| {
            let name = &sh.profile.steps[s.step].name;
            match &s.item {
                Some(i) => format!("{name}: {i}"),
                None => name.clone(),
            }
        })
        .collect();
    let done_text = steps_done_text(sh, &done);
    let remote_id = end
        .remote_id
        .clone()
        .or_else(|| id.as_ref().and_then(|v| id_text(&Some(v.clone()))));
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

/// What one lookup outside a run made of a key (see [`probe_lookup`]).
#[derive(Debug)]
pub enum Looked {
    /// Found; the remote id as text, when the answer carries one where the profile says.
    Found(Option<String>),
    NotFound,
    /// The lookup failed: why, as a row would say it.
    Failed(String),
}

/// One lookup of `row`'s key, as a run sends it (gate, auth, retries, the list/match rules),
/// for `enlist profiles test`: what it made of the key, and the answer it read.
pub(super) async fn probe_lookup(
    sh: &Shared,
    row: &PlannedRow,
    req: &Request,
) -> Result<(Looked, Option<Resp>), Error> {
    let mut cx = RowCtx::new(sh, row);
    cx.answer = Some(None);
    let looked = match lookup(sh, &mut cx, req, &row.key).await? {
        Found::Yes(id) => Looked::Found(id_text(&id)),
        Found::No => Looked::NotFound,
        Found::Failed(end) => Looked::Failed(cx.scrub(&end.message)),
    };
    Ok((looked, cx.answer.flatten().map(|b| *b)))
}
