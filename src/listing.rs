//! Every user the target lists (`[requests.list]`), page by page, for
//! `--leavers-scope target`: a client of the executor (like `profiles test`), not part of it.
//!
//! Pages go through the run's machinery (client, auth, rate gate, retries), one after the
//! other. Every loop is bounded: at most the profile's `max_pages`, and a page that names
//! the same next link or cursor as the page before ends the list (a server that repeats
//! itself would otherwise be read for ever).

use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::execute::client::{failure_message, Resp};
use crate::execute::{send_alone, RunSettings, Shared};
use crate::plan::Request;
use crate::profile::template::value_text;
use crate::profile::{ListSpec, Paging, Profile};

/// A listed user: its key as the target spells it, and its remote id.
pub type Listed = (String, Option<String>);

/// Logs in and reads every user `profile`'s list request returns. Fails (nothing decided)
/// when a page cannot be read: a partial list would make everyone else a leaver.
pub async fn list_users(profile: Arc<Profile>, settings: RunSettings) -> Result<Vec<Listed>> {
    let Some(spec) = profile.requests.list.clone() else {
        return Err(Error::Usage(format!(
            "--leavers-scope target needs [requests.list] in profile {}: add it, or use \
             --leavers-scope state",
            profile.name
        )));
    };
    let sh = Shared::new(
        profile,
        settings,
        Default::default(),
        CancellationToken::new(),
    )?;
    sh.login().await?;
    list_all(&sh, &spec).await
}

/// Reads every page of `spec` (see the module's notes).
pub(crate) async fn list_all(sh: &Shared, spec: &ListSpec) -> Result<Vec<Listed>> {
    let mut req = Request {
        method: reqwest::Method::GET,
        path: spec.path.clone(),
        query: spec.query.clone(),
        headers: spec.headers.clone(),
        body: None,
    };
    let mut users = Vec::new();
    let mut offset = match &spec.paging {
        Some(Paging::Offset {
            offset_param,
            limit_param,
            limit,
            start,
            ..
        }) => {
            req.query.push((offset_param.clone(), start.to_string()));
            req.query.push((limit_param.clone(), limit.to_string()));
            *start
        }
        _ => 0,
    };
    let mut previous: Option<String> = None;
    let mut read = 0u64;
    for _ in 0..spec.max_pages {
        let url = sh.net.http.url(&req);
        let fail = |why: String| {
            let why = sh.auth.known().get().scrub(&why);
            Error::CannotStart(format!(
                "the target's list of users could not be read ({url}): {why}; no leaver was \
                 decided"
            ))
        };
        let resp = send_alone(sh, &req).await?.map_err(&fail)?;
        let body = page_body(sh, &resp).map_err(&fail)?;
        let Some(Value::Array(items)) = body.pointer(&spec.items) else {
            return Err(fail(format!(
                "the answer has no list at {} (requests.list.items)",
                spec.items
            )));
        };
        let count = items.len() as u64;
        users.extend(items.iter().filter_map(|item| {
            let key = item.pointer(&spec.key).map(value_text)?.into_owned();
            let id = spec
                .remote_id
                .as_deref()
                .and_then(|p| item.pointer(p))
                .map(|v| value_text(v).into_owned());
            Some((key, id))
        }));
        let Some(paging) = &spec.paging else {
            return Ok(users);
        };
        let next = match paging {
            // Compared as resolved, so a link to the page itself repeats however spelled.
            Paging::NextLink { pointer } => text_at(&body, pointer)
                .map(|link| next_link(sh.net.http.base(), &link))
                .transpose()
                .map_err(&fail)?
                .inspect(|path| {
                    req.path = path.clone();
                    req.query.clear();
                }),
            Paging::Cursor {
                cursor_param,
                pointer,
            } => text_at(&body, pointer).inspect(|c| {
                req.query.retain(|(k, _)| k != cursor_param);
                req.query.push((cursor_param.clone(), c.clone()));
            }),
            Paging::Offset {
                offset_param,
                limit,
                total,
                by_page,
                ..
            } => {
                read += count;
                // A server may send fewer than asked (SCIM's own cap): with a total, only
                // the total (or an empty page) ends the list.
                let more = match total
                    .as_deref()
                    .map(|t| body.pointer(t).and_then(Value::as_u64))
                {
                    Some(Some(t)) => read < t && count > 0,
                    _ => count >= *limit,
                };
                more.then(|| {
                    offset += if *by_page { 1 } else { count };
                    for (k, v) in &mut req.query {
                        if k == offset_param {
                            *v = offset.to_string();
                        }
                    }
                    offset.to_string()
                })
            }
        };
        match next {
            None => return Ok(users),
            Some(n) if previous.as_ref() == Some(&n) => {
                tracing::warn!(
                    "the target named the same next page twice ({n}); the list ends there"
                );
                return Ok(users);
            }
            Some(n) => previous = Some(n),
        }
    }
    Err(Error::CannotStart(format!(
        "the target's list of users has more than {} pages (requests.list.max_pages); no \
         leaver was decided",
        spec.max_pages
    )))
}

/// A successful page's JSON, or why it is not one.
fn page_body(sh: &Shared, resp: &Resp) -> std::result::Result<Value, String> {
    if !(200..300).contains(&resp.status) {
        return Err(failure_message(&sh.profile, resp));
    }
    resp.json()
        .ok_or_else(|| format!("the answer ({}) is not JSON", resp.status))
}

/// The non-empty text at `pointer` (a next link or cursor; none ends the list).
fn text_at(body: &Value, pointer: &str) -> Option<String> {
    body.pointer(pointer)
        .filter(|v| !v.is_null())
        .map(|v| value_text(v).into_owned())
        .filter(|t| !t.trim().is_empty())
}

/// The path (after the base URL) of a next link, absolute or relative. A link that leaves
/// the base URL is refused: the run's credentials go to the target only.
fn next_link(base: &str, link: &str) -> std::result::Result<String, String> {
    let joined = url::Url::parse(&format!("{base}/"))
        .and_then(|b| b.join(link))
        .map_err(|e| format!("the next link {link:?} is not a URL: {e}"))?;
    joined
        .as_str()
        .strip_prefix(base)
        .filter(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "the next link {link:?} leaves the base URL {base}: enlist sends the \
                 credentials to the target only"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn next_links_resolve_under_the_base_url_only() {
        let base = "http://127.0.0.1:9/api";
        assert_eq!(
            next_link(base, "/api/users?page=2").as_deref(),
            Ok("/users?page=2")
        );
        assert_eq!(
            next_link(base, "http://127.0.0.1:9/api/users?page=3").as_deref(),
            Ok("/users?page=3")
        );
        assert_eq!(
            next_link(base, "users?page=4").as_deref(),
            Ok("/users?page=4")
        );
        assert!(next_link(base, "http://evil.example/api/users").is_err());
        assert!(next_link(base, "/other").is_err());
    }
}
