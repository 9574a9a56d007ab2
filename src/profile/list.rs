//! `[requests.list]`: how to read every user the target has, page by page, for
//! `--leavers-scope target`.
//!
//! A list request has no row, so it names no placeholder: a filter (one group, one
//! domain) is written into its query as it is.

use serde::Deserialize;

use super::raw::RawList;
use super::Load;
use crate::error::Result;

/// Pages read at most by default: a server whose pages never end cannot hold a run.
const MAX_PAGES: u64 = 100_000;

/// A compiled `[requests.list]`.
#[derive(Debug, Clone)]
pub struct ListSpec {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// JSON pointer to the array of users in an answer.
    pub items: String,
    /// JSON pointer, inside an item, to the user's key.
    pub key: String,
    /// JSON pointer, inside an item, to the user's remote id.
    pub remote_id: Option<String>,
    /// `None`: one answer holds every user.
    pub paging: Option<Paging>,
    pub max_pages: u64,
}

/// How the next page is asked for (`paging = { kind = "offset", … }`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Paging {
    /// The answer names the next page's URL (absolute or relative) at `pointer`.
    NextLink { pointer: String },
    /// `offset_param` counts from `start` in items (or in pages, `by_page`), `limit` a
    /// page; the last page is short, or `total` (a pointer) users have been read.
    Offset {
        offset_param: String,
        limit_param: String,
        limit: u64,
        #[serde(default)]
        start: u64,
        #[serde(default)]
        total: Option<String>,
        #[serde(default)]
        by_page: bool,
    },
    /// The answer gives the next page's cursor at `pointer`; sent as `cursor_param`. No
    /// cursor (or an empty one) ends the list.
    Cursor {
        cursor_param: String,
        pointer: String,
    },
}

impl Load<'_> {
    pub(super) fn list(&self, r: RawList) -> Result<ListSpec> {
        if !r.method.trim().eq_ignore_ascii_case("GET") {
            return Err(self.err(format!(
                "requests.list.method = {:?}: a list is read with GET; remove method or write \
                 \"GET\"",
                r.method
            )));
        }
        let texts = std::iter::once(("path", &r.path))
            .chain(r.query.values().map(|v| ("query", v)))
            .chain(r.headers.values().map(|v| ("headers", v)));
        for (k, v) in texts {
            if v.contains("{{") {
                return Err(self.err(format!(
                    "requests.list.{k} holds a placeholder ({v:?}): a list has no row; write \
                     a filter as it is sent"
                )));
            }
        }
        for (k, p) in [("items", Some(&r.items)), ("key", Some(&r.key))]
            .into_iter()
            .chain([("remote_id", r.remote_id.as_ref())])
        {
            if let Some(p) = p {
                self.pointer(&format!("requests.list.{k}"), p)?;
            }
        }
        match &r.paging {
            Some(Paging::NextLink { pointer } | Paging::Cursor { pointer, .. }) => {
                self.pointer("requests.list.paging.pointer", pointer)?
            }
            Some(Paging::Offset { limit: 0, .. }) => {
                return Err(
                    self.err("requests.list.paging.limit = 0: write the page size (100)".into())
                );
            }
            Some(Paging::Offset { total: Some(t), .. }) => {
                self.pointer("requests.list.paging.total", t)?
            }
            _ => {}
        }
        Ok(ListSpec {
            path: r.path,
            query: r.query.into_iter().collect(),
            headers: r.headers.into_iter().collect(),
            items: r.items,
            key: r.key,
            remote_id: r.remote_id,
            paging: r.paging,
            max_pages: r.max_pages.unwrap_or(MAX_PAGES).max(1),
        })
    }
}
