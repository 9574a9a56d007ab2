//! A row's follow-up steps (`[[steps]]`), rendered with its other requests: which steps
//! the row has (`when`), one request per item of a `for_each` list, and the id under which
//! the journal records each as done.

use std::borrow::Cow;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{hex_text, render_request, Request, RowJson, SecretKey, Values};
use crate::outcome::Status;
use crate::profile::template::{value_text, Name, Scope, Var};
use crate::profile::{Profile, ITEM};

/// One request of one step for one row.
#[derive(Debug, Clone, PartialEq)]
pub struct StepJob {
    /// The step's position among the profile's steps.
    pub step: usize,
    /// The list item this request is for (`for_each`).
    pub item: Option<String>,
    /// Sent after a create / an update (the step's `after`).
    pub after_create: bool,
    pub after_update: bool,
    /// May still hold the remote id placeholder, filled once the row's user is known.
    pub request: Request,
    /// What the journal records once it is done: SHA-256 (hex) of the step's name, the
    /// item and the request with secrets masked and the remote id left as a placeholder,
    /// so the same request on the next run is known as done, and a changed one is not.
    pub id: String,
}

impl StepJob {
    /// Whether this step follows a row's request that ended so (created or updated).
    pub fn runs_after(&self, status: Status) -> bool {
        match status {
            Status::Created => self.after_create,
            Status::Updated => self.after_update,
            _ => false,
        }
    }

    /// `name` or `name: item`, as an outcome lists the step requests done.
    pub fn label(&self, profile: &Profile) -> String {
        let name = &profile.steps[self.step].name;
        match &self.item {
            Some(i) => format!("{name}: {i}"),
            None => name.clone(),
        }
    }
}

/// `name` or `name: a, b` per step, in the order done (a step's items are done one after
/// another), as a row's message says what its steps did.
pub fn steps_done_text(profile: &Profile, done: &[&StepJob]) -> String {
    let parts: Vec<String> = done
        .chunk_by(|a, b| a.step == b.step)
        .map(|run| {
            let name = &profile.steps[run[0].step].name;
            let items: Vec<&str> = run.iter().filter_map(|s| s.item.as_deref()).collect();
            if items.is_empty() {
                name.clone()
            } else {
                format!("{name}: {}", items.join(", "))
            }
        })
        .collect();
    parts.join("; ")
}

/// The row's values, with `{{item}}` as the current item.
struct WithItem<'a> {
    row: &'a dyn Scope,
    item: &'a Value,
}

impl Scope for WithItem<'_> {
    fn var(&self, name: &str) -> Var<'_> {
        if name == ITEM {
            Var::Value(Cow::Borrowed(self.item))
        } else {
            self.row.var(name)
        }
    }

    fn var_of(&self, name: &Name) -> Var<'_> {
        if name.text == ITEM {
            Var::Value(Cow::Borrowed(self.item))
        } else {
            self.row.var_of(name)
        }
    }

    fn json_of(&self, name: &Name) -> Option<&[u8]> {
        if name.text == ITEM {
            None
        } else {
            self.row.json_of(name)
        }
    }
}

/// The step requests of a row with these values (defaults applied), in the profile's order.
/// With a `key`, a step request that carries a secret is recorded under an id that also holds
/// the keyed hash of what it sends, so a changed secret (a new password) sends it again.
pub(super) fn render(
    p: &Profile,
    values: &[Option<Value>],
    json: &RowJson,
    key: Option<&SecretKey>,
) -> Vec<StepJob> {
    let mut out = Vec::new();
    if p.steps.is_empty() {
        return out;
    }
    let scope = |mask: bool| Values {
        profile: p,
        values,
        json: Some(json),
        hide: None,
        mask,
        remote_id: true,
        rules: true,
    };
    let (plain, masked) = (scope(false), scope(true));
    let filled = |c: usize| !matches!(values.get(c), None | Some(None) | Some(Some(Value::Null)));
    for (i, step) in p.steps.iter().enumerate() {
        if step.when.is_some_and(|c| !filled(c)) {
            continue;
        }
        let items: Vec<Option<Value>> = match step.for_each {
            None => vec![None],
            Some(c) => match values.get(c) {
                Some(Some(Value::Array(items))) => items
                    .iter()
                    .filter(|v| !value_text(v).trim().is_empty())
                    .cloned()
                    .map(Some)
                    .collect(),
                Some(Some(Value::Null)) | Some(None) | None => Vec::new(),
                Some(Some(other)) => vec![Some(other.clone())],
            },
        };
        for item in items {
            let (request, shown) = match &item {
                None => (
                    render_request(&step.request, &plain),
                    render_request(&step.request, &masked),
                ),
                Some(v) => (
                    render_request(
                        &step.request,
                        &WithItem {
                            row: &plain,
                            item: v,
                        },
                    ),
                    render_request(
                        &step.request,
                        &WithItem {
                            row: &masked,
                            item: v,
                        },
                    ),
                ),
            };
            let item = item.map(|v| value_text(&v).into_owned());
            let mut id = step_id(&step.name, item.as_deref(), &shown);
            if let Some(key) = key.filter(|_| request != shown) {
                id = keyed_step_id(key, &id, &request);
            }
            out.push(StepJob {
                step: i,
                item,
                after_create: step.after_create,
                after_update: step.after_update,
                request,
                id,
            });
        }
    }
    out
}

/// HMAC-SHA256 of a step's id and the request as sent, secrets and all: what the journal
/// keeps reveals nothing of them.
fn keyed_step_id(key: &SecretKey, id: &str, r: &Request) -> String {
    use hmac::Mac;
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(&key.0[..]) else {
        return id.to_string();
    };
    mac.update(id.as_bytes());
    mac.update(&[0]);
    mac.update(step_id("", None, r).as_bytes());
    hex_text(&mac.finalize().into_bytes())
}

fn step_id(name: &str, item: Option<&str>, r: &Request) -> String {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(item.unwrap_or("").as_bytes());
    h.update([0]);
    h.update(r.method.as_str().as_bytes());
    h.update([0]);
    h.update(r.path.as_bytes());
    for (k, v) in r.query.iter().chain(&r.headers) {
        h.update([1]);
        h.update(k.as_bytes());
        h.update([2]);
        h.update(v.as_bytes());
    }
    h.update([0]);
    if let Some(b) = &r.body {
        h.update(b);
    }
    hex_text(&h.finalize())
}
