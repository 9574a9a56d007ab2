//! A profile as its TOML file says it: every key as the user wrote it, with the defaults
//! the format documents. Nothing here is checked beyond what serde checks; the compiled
//! [`Profile`](super::Profile) is built from it once, in [`super::Profile::parse`], and
//! nothing else reads it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Action, ColumnType, EmptyCell, MatchCase, Semantics};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub docs: Option<String>,
    pub base_url_env: String,
    #[serde(default)]
    pub base_url_example: Option<String>,
    pub key: String,
    #[serde(default)]
    pub default_mode: Option<RawMode>,
    #[serde(default = "default_rate")]
    pub rate: f64,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    #[serde(default = "default_clear_marker")]
    pub clear_marker: String,
    pub auth: RawAuth,
    #[serde(default)]
    pub responses: RawResponses,
    pub columns: Vec<RawColumn>,
    pub requests: RawRequests,
    #[serde(default)]
    pub steps: Vec<RawStep>,
    #[serde(default)]
    pub protect: Vec<String>,
}

/// `default_mode`: the actions a row may take without saying so. Disable, enable and delete
/// are never a default: a sheet without an action column must not lock everyone out.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawMode {
    Create,
    Update,
    Upsert,
    Skip,
}

impl From<RawMode> for Action {
    fn from(m: RawMode) -> Action {
        match m {
            RawMode::Create => Action::Create,
            RawMode::Update => Action::Update,
            RawMode::Upsert => Action::Upsert,
            RawMode::Skip => Action::Skip,
        }
    }
}

fn default_rate() -> f64 {
    10.0
}
fn default_concurrency() -> usize {
    4
}
fn default_content_type() -> String {
    "application/json".into()
}
fn default_clear_marker() -> String {
    "<clear>".into()
}
fn default_auth_header() -> String {
    "Authorization".into()
}
fn default_bearer_prefix() -> String {
    "Bearer ".into()
}
fn default_separator() -> String {
    ";".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawColumn {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: ColumnType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub required_on_create: bool,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub pattern_hint: Option<String>,
    #[serde(default)]
    pub min_length: Option<usize>,
    #[serde(default)]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub email: RawEmail,
    #[serde(default)]
    pub one_of: Vec<String>,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default)]
    pub text_only: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub example: Option<String>,
    #[serde(default)]
    pub empty: EmptyCell,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub(super) enum RawAuth {
    None,
    Basic {
        username_env: String,
        password_env: String,
    },
    Bearer {
        token_env: String,
    },
    ApiKey {
        header: String,
        key_env: String,
        #[serde(default)]
        prefix: String,
    },
    TokenLogin(Box<RawTokenLogin>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokenLogin {
    pub username_env: String,
    pub password_env: String,
    pub login: RawRequest,
    pub token_pointer: String,
    #[serde(default = "default_auth_header")]
    pub header: String,
    #[serde(default = "default_bearer_prefix")]
    pub prefix: String,
    #[serde(default)]
    pub lifetime_secs: Option<u64>,
    #[serde(default)]
    pub refresh: Option<RawRequest>,
}

/// A body given inline (a TOML table) or as the name of a JSON file beside the profile.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawBody {
    File(String),
    Inline(serde_json::Value),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequest {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<RawBody>,
    #[serde(default)]
    pub success: Vec<u16>,
    #[serde(default)]
    pub conflict: Vec<u16>,
    #[serde(default)]
    pub conflict_match: Option<String>,
    #[serde(default)]
    pub not_found: Vec<u16>,
    #[serde(default)]
    pub remote_id: Option<String>,
    #[serde(default)]
    pub list: Option<String>,
    #[serde(default, rename = "match")]
    pub match_field: Option<String>,
    #[serde(default)]
    pub match_case: MatchCase,
    #[serde(default)]
    pub semantics: Option<Semantics>,
    #[serde(default)]
    pub remote_id_header: Option<String>,
    #[serde(default)]
    pub remote_id_pattern: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequests {
    pub create: Option<RawRequest>,
    pub update: Option<RawRequest>,
    pub lookup: Option<RawRequest>,
    pub disable: Option<RawRequest>,
    pub enable: Option<RawRequest>,
    pub delete: Option<RawRequest>,
    pub list: Option<RawList>,
}

/// `[requests.list]`: every user the target has, page by page (`--leavers-scope target`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawList {
    #[serde(default = "default_get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub items: String,
    pub key: String,
    #[serde(default)]
    pub remote_id: Option<String>,
    #[serde(default)]
    pub paging: Option<super::Paging>,
    #[serde(default)]
    pub max_pages: Option<u64>,
}

fn default_get() -> String {
    "GET".into()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResponses {
    #[serde(default)]
    pub error_message: Vec<String>,
    #[serde(default)]
    pub retry: Vec<u16>,
    #[serde(default)]
    pub no_retry: Vec<u16>,
}

/// `[[steps]]`: a follow-up request after a create and/or an update (group membership, a
/// service pack). The request keys are those of a request; `serde(flatten)` would lose
/// `deny_unknown_fields`, so they are spelled out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub name: String,
    pub after: Vec<String>,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub for_each: Option<String>,
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<RawBody>,
    #[serde(default)]
    pub success: Vec<u16>,
    #[serde(default)]
    pub conflict: Vec<u16>,
    #[serde(default)]
    pub not_found: Vec<u16>,
}

/// A column's `email`: `true` (the strict rule), `false`, or a rule's name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawEmail {
    On(bool),
    Rule(String),
}

impl Default for RawEmail {
    fn default() -> RawEmail {
        RawEmail::On(false)
    }
}
