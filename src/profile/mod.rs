//! Profiles: what one target API looks like, described as data.
//!
//! A profile is a TOML file (plus JSON body templates) that says how to reach a target
//! (base URL, authentication), which columns a sheet carries for it (types and rules),
//! and how each request is built (create, update, lookup). Built-in profiles live under
//! `templates/` and are embedded in the binary; a user can point at their own file, so a
//! new target needs a profile, not code.
//!
//! Loading a profile validates it completely (regexes compile, templates only name known
//! columns, requests exist for the default mode) so that a mistake in a profile is found
//! before the first row is read.

mod list;
mod names;
mod raw;
pub mod template;

pub use list::{ListSpec, Paging};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};
use raw::{RawAuth, RawBody, RawColumn, RawEmail, RawProfile, RawRequest, RawRequests, RawStep};
pub use template::Template;

/// The built-in profiles: (name, TOML, [(body file name, JSON)]).
const BUILTINS: &[(&str, &str)] = &[
    ("odin", include_str!("../../templates/odin.toml")),
    (
        "superoffice",
        include_str!("../../templates/superoffice.toml"),
    ),
    ("users-api", include_str!("../../templates/users-api.toml")),
    ("scim", include_str!("../../templates/scim.toml")),
    (
        "pocketbase",
        include_str!("../../templates/pocketbase.toml"),
    ),
    ("synapse", include_str!("../../templates/synapse.toml")),
    ("mailman", include_str!("../../templates/mailman.toml")),
];

/// Body templates of the built-in profiles, by file name.
const BUILTIN_BODIES: &[(&str, &str)] = &[
    (
        "odin.create.json",
        include_str!("../../templates/odin.create.json"),
    ),
    (
        "odin.update.json",
        include_str!("../../templates/odin.update.json"),
    ),
    (
        "superoffice.user.json",
        include_str!("../../templates/superoffice.user.json"),
    ),
    (
        "users-api.create.json",
        include_str!("../../templates/users-api.create.json"),
    ),
    (
        "scim.user.json",
        include_str!("../../templates/scim.user.json"),
    ),
    (
        "pocketbase.person.json",
        include_str!("../../templates/pocketbase.person.json"),
    ),
    (
        "synapse.user.json",
        include_str!("../../templates/synapse.user.json"),
    ),
    (
        "mailman.user.json",
        include_str!("../../templates/mailman.user.json"),
    ),
];

/// Names of the built-in profiles, in the order `enlist profiles` lists them.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(n, _)| *n)
}

/// The built-in profile `spec` names. Built-in names are lower case, so case is ignored
/// (`ODIN` is odin): a name is never mistaken for another, and a caps-lock slip costs
/// nothing. A name that is not found is refused with the closest one, if it is close:
/// the error reads "did you mean odin? built-in profiles are: …".
pub fn builtin(spec: &str) -> std::result::Result<&'static str, String> {
    builtin_entry(spec).map(|(n, _)| *n)
}

fn builtin_entry(spec: &str) -> std::result::Result<&'static (&'static str, &'static str), String> {
    if let Some(b) = BUILTINS.iter().find(|(n, _)| n.eq_ignore_ascii_case(spec)) {
        return Ok(b);
    }
    let names: Vec<_> = builtin_names().collect();
    let guess = did_you_mean(spec, &names);
    Err(format!(
        "{guess}built-in profiles are: {}",
        names.join(", ")
    ))
}

/// "did you mean odin? " when `typed` is a typo of one of `names` (case aside, at most one
/// edit in a short name, two in a longer one), else "".
pub fn did_you_mean(typed: &str, names: &[&str]) -> String {
    let want = typed.to_lowercase();
    let limit = if want.chars().count() <= 4 { 1 } else { 2 };
    names
        .iter()
        .map(|n| (strsim::damerau_levenshtein(&want, n), n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| format!("did you mean {n}? "))
        .unwrap_or_default()
}

/// The TOML text of a built-in profile and its body templates (for `profiles show`).
pub fn builtin_source(name: &str) -> Option<(&'static str, Vec<(&'static str, &'static str)>)> {
    let toml = BUILTINS.iter().find(|(n, _)| *n == name)?.1;
    let prefix = format!("{name}.");
    let bodies = BUILTIN_BODIES
        .iter()
        .filter(|(f, _)| f.starts_with(&prefix))
        .copied()
        .collect();
    Some((toml, bodies))
}

/// What a row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Upsert,
    Skip,
    /// Lock the user out (the profile's `disable` request), keeping the account.
    Disable,
    /// Let a disabled user back in (the profile's `enable` request).
    Enable,
    /// Remove the user (the profile's `delete` request).
    Delete,
}

impl Action {
    /// Every action, in declaration order (`ALL[a as usize] == a`).
    pub const ALL: [Action; 7] = [
        Action::Create,
        Action::Update,
        Action::Upsert,
        Action::Skip,
        Action::Disable,
        Action::Enable,
        Action::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Upsert => "upsert",
            Action::Skip => "skip",
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s.trim().to_ascii_lowercase().as_str() {
            "create" | "new" | "add" => Some(Action::Create),
            "update" | "modify" | "change" => Some(Action::Update),
            "upsert" | "create or update" => Some(Action::Upsert),
            "skip" | "ignore" | "-" => Some(Action::Skip),
            "disable" | "deactivate" | "suspend" => Some(Action::Disable),
            "enable" | "reactivate" => Some(Action::Enable),
            "delete" | "remove" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// The type a column's cells are converted to before rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    #[default]
    String,
    Integer,
    Number,
    Boolean,
    List,
    Json,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "text",
            ColumnType::Integer => "whole number",
            ColumnType::Number => "number",
            ColumnType::Boolean => "true/false",
            ColumnType::List => "list",
            ColumnType::Json => "JSON",
        }
    }
}

/// One column a sheet may carry for this target.
#[derive(Debug, Clone)]
pub struct Column {
    /// The canonical name, used in templates as `{{name}}`.
    pub name: String,
    /// Other header texts that mean this column (matched ignoring case, spaces, `_`, `-`, `.`).
    pub aliases: Vec<String>,
    /// The header a person reads in the template ("First name"); the `name` when the profile
    /// gives none. Also accepted as a header.
    pub label: String,
    pub kind: ColumnType,
    pub required: bool,
    /// Needed when the user is created, not on update (an initial password).
    pub required_on_create: bool,
    /// A regular expression the whole text must match.
    pub pattern: Option<Pattern>,
    /// What the pattern means, for people ("4 to 6 digits").
    pub pattern_hint: Option<String>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// The value must be an email address, under this rule.
    pub email: Option<EmailRule>,
    /// The value must be one of these (matched ignoring case; the canonical spelling is sent).
    pub one_of: Vec<String>,
    /// A password or token: masked in every output.
    pub secret: bool,
    /// Used when the cell is empty; may name other columns (`{{firstName}}`).
    pub default: Option<template::Text>,
    /// Separator for `list` columns (`;` unless the profile says otherwise).
    pub separator: String,
    /// The value is an identifier that must stay text (phone, extension): Excel must not turn it
    /// into a number. Templates format these columns as text.
    pub text_only: bool,
    pub description: String,
    pub example: Option<String>,
    /// What an empty cell sends when no default fills it.
    pub empty: EmptyCell,
}

/// What a column's empty cell sends (the column's `empty` key), when no default fills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmptyCell {
    /// The field is left out (a placeholder that is the whole string), so a merge-style
    /// update never blanks what the sheet did not mention.
    #[default]
    Omit,
    /// `""`.
    EmptyString,
    /// `null`.
    Null,
    /// `[]` (a list the target requires, even when it holds nothing).
    EmptyList,
    /// The column's `default`, on updates too (without this, a default fills creates
    /// only, unless the update's `semantics` is `replace`).
    Default,
}

/// What a create or update body means to the target (the request's `semantics` key). A
/// create's body is the whole new user either way (defaults applied): the two differ on
/// updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Semantics {
    /// The body holds what the sheet says: an update leaves out empty cells and defaults,
    /// so the target keeps what it has (a PATCH, or a PUT that merges).
    #[default]
    Merge,
    /// The body is the whole user (a PUT that stores exactly the body): every column is
    /// sent, defaults included on update, and an update whose row leaves a secret the body
    /// uses empty is not sent (it would clear the stored password).
    Replace,
}

/// Which addresses an email column takes (see [`crate::plan::text::email_problem`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailRule {
    /// ASCII before the `@`, a dotted ASCII domain with a top-level part of 2+ letters
    /// (`email = true` or `email = "strict"`).
    Strict,
    /// SMTPUTF8: UTF-8 before the `@` and an international domain (`email = "permissive"`).
    Permissive,
}

/// A column's `pattern`: as written, and compiled to match the whole text.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: String,
    pub regex: Regex,
}

impl Column {
    pub fn separator(&self) -> &str {
        &self.separator
    }

    /// Every header text that means this column: its name, label and aliases.
    pub fn header_texts(&self) -> impl Iterator<Item = &str> {
        [self.name.as_str(), self.label.as_str()]
            .into_iter()
            .chain(self.aliases.iter().map(String::as_str))
    }

    /// A one-line summary of the rules, for notes and instructions.
    pub fn rules(&self) -> String {
        let mut r = vec![self.kind.as_str().to_string()];
        if self.required {
            r.push("required".into());
        } else if self.required_on_create {
            r.push("required to create".into());
        }
        match self.email {
            Some(EmailRule::Strict) => r.push("email address".into()),
            Some(EmailRule::Permissive) => r.push("email address (UTF-8 allowed)".into()),
            None => {}
        }
        match (self.min_length, self.max_length) {
            (Some(a), Some(b)) => r.push(format!("{a} to {b} characters")),
            (Some(a), None) => r.push(format!("at least {a} characters")),
            (None, Some(b)) => r.push(format!("at most {b} characters")),
            (None, None) => {}
        }
        if let Some(h) = &self.pattern_hint {
            r.push(h.clone());
        } else if let Some(p) = &self.pattern {
            r.push(format!("matches {}", p.text));
        }
        if !self.one_of.is_empty() {
            r.push(format!("one of: {}", self.one_of.join(", ")));
        }
        if self.kind == ColumnType::List {
            r.push(format!("items separated by '{}'", self.separator()));
        }
        if let Some(d) = &self.default {
            r.push(format!("default {}", d.source()));
        }
        if self.secret {
            r.push("secret (masked in reports)".into());
        }
        r.join("; ")
    }
}

/// How to authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// HTTP Basic with a username and password from the environment.
    Basic {
        username_env: String,
        password_env: String,
    },
    /// A static bearer token from the environment.
    Bearer {
        token_env: String,
    },
    /// A static key sent in a header of its own.
    ApiKey {
        header: String,
        key_env: String,
        prefix: String,
    },
    /// A login request whose JSON response holds a token.
    TokenLogin(Box<TokenLogin>),
}

/// A login request whose response carries a token used for every later request.
#[derive(Debug, Clone)]
pub struct TokenLogin {
    pub username_env: String,
    pub password_env: String,
    pub login: RequestSpec,
    /// JSON pointer to the token in the login response (`/token`).
    pub token_pointer: String,
    /// The header that carries the token afterwards (`Authorization` unless the profile
    /// says otherwise).
    pub header: String,
    /// Text put before the token (`Bearer ` unless the profile says otherwise; PocketBase
    /// uses none).
    pub prefix: String,
    /// How long a token lives, in seconds (refreshed or renewed before it ends).
    pub lifetime_secs: Option<u64>,
    /// A request that returns a fresh token (Odin `PUT /auth/token`), run before the lifetime ends.
    pub refresh: Option<RequestSpec>,
}

/// One request as the profile describes it, compiled: every row fills it in.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: reqwest::Method,
    /// Path relative to the base URL; `{{column}}` placeholders are URL-encoded.
    pub path: template::Text,
    pub query: Vec<(String, template::Text)>,
    pub headers: Vec<(String, template::Text)>,
    /// The compiled body template (none: the request has no body).
    pub template: Option<Template>,
    /// Statuses that mean success (empty: any 2xx).
    pub success: Vec<u16>,
    /// Statuses that mean "the user already exists" (create).
    pub conflict: Vec<u16>,
    /// Create only: a regular expression (case ignored) that the error body, or the server's
    /// message found by `responses.error_message`, must match for a `conflict` status to
    /// mean "already exists" (`already|taken|unique`). Without it every `conflict` status
    /// counts; with it, such a status whose body does not match fails the row.
    pub conflict_match: Option<Regex>,
    /// Statuses that mean "no such user" (update, lookup).
    pub not_found: Vec<u16>,
    /// JSON pointer to the remote id in a success response.
    pub remote_id: Option<String>,
    /// Lookup only: JSON pointer to a list of matches; an empty list means "not found".
    pub list: Option<String>,
    /// Lookup only: JSON pointer, inside each list item (or the one answer without `list`),
    /// of the field that must equal the row's key. Required with `list`: many APIs search
    /// by substring, so the first item may be another user.
    pub match_field: Option<String>,
    /// How `match` compares: `insensitive` (the default, as keys are compared) or `sensitive`.
    /// Both ignore outer spaces.
    pub match_case: MatchCase,
    /// Create and update: `merge` (the sheet's cells) or `replace` (the whole user).
    pub semantics: Semantics,
    /// Create only: the response header that carries the new user's id (`Location`), and
    /// the pattern whose one capture group is the id (percent-decoded), for targets that
    /// answer `201` with an empty body.
    pub remote_id_header: Option<RemoteIdHeader>,
}

/// Where a create's answer carries the remote id in a header.
#[derive(Debug, Clone)]
pub struct RemoteIdHeader {
    pub name: reqwest::header::HeaderName,
    /// Matches somewhere in the header's value; capture group 1 is the id.
    pub pattern: Regex,
}

impl RemoteIdHeader {
    /// The id in a header value: group 1 of the pattern, percent-decoded; `None` when the
    /// pattern does not match or the id is empty.
    pub fn id_in(&self, value: &str) -> Option<String> {
        let id = self.pattern.captures(value)?.get(1)?.as_str();
        let id = percent_encoding::percent_decode_str(id)
            .decode_utf8()
            .ok()?
            .into_owned();
        (!id.is_empty()).then_some(id)
    }
}

/// How a lookup's `match` field is compared with the row's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchCase {
    /// Ignoring case (and outer spaces), as the duplicate check compares keys.
    #[default]
    Insensitive,
    /// Exactly, outer spaces aside.
    Sensitive,
}

impl MatchCase {
    /// Whether a field's text found on the target names the same user as `key`.
    pub fn same(self, found: &str, key: &str) -> bool {
        match self {
            MatchCase::Insensitive => {
                crate::plan::normal_key(found) == crate::plan::normal_key(key)
            }
            MatchCase::Sensitive => found.trim() == key.trim(),
        }
    }
}

impl RequestSpec {
    pub fn is_success(&self, status: u16) -> bool {
        if self.success.is_empty() {
            (200..300).contains(&status)
        } else {
            self.success.contains(&status)
        }
    }

    /// True when the request names the user by a server-assigned id, so a lookup must
    /// find that id before it is sent.
    pub fn needs_remote_id(&self) -> bool {
        let id = "remote_id";
        self.path.uses(id)
            || self.query.iter().any(|(_, v)| v.uses(id))
            || self.template.as_ref().is_some_and(|t| t.uses(id))
    }
}

/// The requests a profile can make.
#[derive(Debug, Clone)]
pub struct Requests {
    pub create: Option<RequestSpec>,
    pub update: Option<RequestSpec>,
    pub lookup: Option<RequestSpec>,
    /// Locks a user out, keeping the account (SCIM `active=false`). Named by key and
    /// remote id only: a leaver has no row.
    pub disable: Option<RequestSpec>,
    /// Undoes `disable`: required with it, so a user back in the sheet gets back in.
    pub enable: Option<RequestSpec>,
    /// Removes a user.
    pub delete: Option<RequestSpec>,
    /// Reads every user the target has (`--leavers-scope target`).
    pub list: Option<ListSpec>,
}

impl Requests {
    /// Whether a create's answer gives the user's remote id.
    pub fn create_learns_id(&self) -> bool {
        self.create
            .as_ref()
            .is_some_and(|c| c.remote_id.is_some() || c.remote_id_header.is_some())
    }

    /// The request of a disable, enable or delete (`None` for other actions).
    pub fn lifecycle(&self, action: Action) -> Option<&RequestSpec> {
        match action {
            Action::Disable => self.disable.as_ref(),
            Action::Enable => self.enable.as_ref(),
            Action::Delete => self.delete.as_ref(),
            _ => None,
        }
    }
}

/// A key or a glob pattern (`*` any text, `?` one character) of users never touched by
/// `--leavers`: a profile's `protect` list and the lines of `--protect FILE`. Compared as
/// keys are, ignoring case and outer spaces.
#[derive(Debug, Clone)]
pub struct KeyPattern {
    pub text: String,
    regex: Regex,
}

impl KeyPattern {
    pub fn new(text: &str) -> std::result::Result<KeyPattern, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty pattern would protect nobody: remove it".into());
        }
        // A glob is a regex whose only operators are `*` and `?`: escape the rest.
        let body = regex::escape(text).replace(r"\*", ".*").replace(r"\?", ".");
        let regex = regex::RegexBuilder::new(&format!("^(?:{body})$"))
            .case_insensitive(true)
            .build()
            .map_err(|e| format!("{text:?} cannot be used as a pattern: {e}"))?;
        Ok(KeyPattern {
            text: text.to_string(),
            regex,
        })
    }

    pub fn matches(&self, key: &str) -> bool {
        self.regex.is_match(key.trim())
    }
}

/// Profile-wide response handling.
#[derive(Debug, Clone, Default)]
pub struct Responses {
    /// JSON pointers tried in order for the server's error message (`/details`, `/ErrorMessage`).
    pub error_message: Vec<String>,
    /// Extra statuses worth retrying on top of 408, 429, 500, 502, 503, 504.
    pub retry: Vec<u16>,
    /// Statuses never retried, even from that default set (a target whose 500 means a
    /// refused value, say).
    pub no_retry: Vec<u16>,
}

/// A target, fully loaded and checked: every value decided, nothing left to fall back on.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// Where the API documentation for this target lives (for people).
    pub docs: Option<String>,
    /// Environment variable holding the base URL (`--base-url` overrides).
    pub base_url_env: String,
    /// An example base URL, shown in help and templates.
    pub base_url_example: Option<String>,
    /// The column that identifies a user.
    pub key: String,
    /// Its position among `columns`.
    key_index: usize,
    /// The mode when neither the row nor `--mode` says (the profile's `default_mode`, else
    /// upsert with a lookup and an update, else create, else update).
    pub default_mode: Action,
    /// Requests per second when `--rate` is not given.
    pub rate: f64,
    /// Concurrent requests when `--concurrency` is not given.
    pub concurrency: usize,
    /// Content type of request bodies (default `application/json`).
    pub content_type: String,
    /// The text that blanks a field on purpose (default `<clear>`).
    pub clear_marker: String,
    pub auth: Auth,
    pub responses: Responses,
    pub columns: Vec<Column>,
    pub requests: Requests,
    /// Where the profile came from (a built-in name or a file path).
    pub origin: String,
    /// Follow-up requests after a create and/or an update, in the order they run.
    pub steps: Vec<Step>,
    /// Per column: used by steps only (not by create, update, lookup or a default). Left
    /// out of the row's fingerprint: the journal tracks each step's requests itself, so a
    /// changed group list sends the missing memberships, not an update.
    pub step_only: Vec<bool>,
    /// Users `--leavers` never disables or deletes (`protect = ["admin", "svc-*"]`).
    pub protect: Vec<KeyPattern>,
}

/// A follow-up request (`[[steps]]`): after the create and/or update of a row succeeded,
/// once, or once per item of a list column (`{{item}}`), only when its `when` cell is filled.
#[derive(Debug, Clone)]
pub struct Step {
    /// Named in outcomes and the journal ("add to groups").
    pub name: String,
    pub after_create: bool,
    pub after_update: bool,
    /// Column index: the step is sent only when this cell is filled.
    pub when: Option<usize>,
    /// Column index of a list column: one request per item.
    pub for_each: Option<usize>,
    /// `success` (default any 2xx) means done; `conflict` means done already (a member
    /// already in the group); anything else fails the row, naming the step.
    pub request: RequestSpec,
}

/// The placeholder that names the current item of a `for_each` step.
pub const ITEM: &str = "item";

/// Normalises a header or column name for matching: lower case, without spaces, `_`, `-`, `.`.
pub fn normalize_header(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '.' | '\u{a0}' | '*'))
        .flat_map(char::to_lowercase)
        .collect()
}

impl Profile {
    /// Loads a built-in profile by name, or a profile file by path.
    pub fn load(spec: &str) -> Result<Profile> {
        let path = Path::new(spec);
        // An exact built-in name wins over a file of that name; a file wins over a
        // built-in name in other case.
        let builtin = match BUILTINS.iter().find(|(n, _)| *n == spec) {
            Some(b) => Some(b),
            None if path.exists() => None,
            None => Some(builtin_entry(spec).map_err(|why| {
                let why = format!(
                    "no such built-in profile or file; {why} (or give a path to a .toml file)"
                );
                Error::profile(spec, why)
            })?),
        };
        if let Some((name, text)) = builtin {
            let lookup = |file: &str| {
                BUILTIN_BODIES
                    .iter()
                    .find(|(f, _)| *f == file)
                    .map(|(_, b)| b.to_string())
                    .ok_or_else(|| format!("no built-in body template named {file}"))
            };
            return Profile::parse(text, name, &lookup);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::profile(spec, format!("cannot read the profile file: {e}")))?;
        let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let lookup = |file: &str| {
            let p = dir.join(file);
            std::fs::read_to_string(&p)
                .map_err(|e| format!("cannot read body template {}: {e}", p.display()))
        };
        Profile::parse(&text, spec, &lookup)
    }

    /// Parses and checks a profile; `body_file` resolves body template file names. Whatever
    /// is wrong is refused here, naming the key and what to write instead.
    pub fn parse(
        text: &str,
        origin: &str,
        body_file: &dyn Fn(&str) -> std::result::Result<String, String>,
    ) -> Result<Profile> {
        let raw: RawProfile =
            toml::from_str(text).map_err(|e| Error::profile(origin, e.to_string()))?;
        let load = Load {
            origin,
            body_file,
            known: raw.columns.iter().map(|c| c.name.clone()).collect(),
            key: raw.key.clone(),
            kinds: raw.columns.iter().map(|c| c.kind).collect(),
        };
        load.profile(raw)
    }

    /// The action for rows that say nothing and when `--mode` is not given.
    pub fn default_action(&self) -> Action {
        self.default_mode
    }

    /// Whether this profile can carry out `action`; the error says why not.
    pub fn supports(&self, action: Action) -> std::result::Result<(), String> {
        let r = &self.requests;
        match action {
            Action::Skip => Ok(()),
            Action::Disable | Action::Enable | Action::Delete => {
                let verb = action.as_str();
                match r.lifecycle(action) {
                    None => Err(format!(
                        "profile {} cannot {verb} users (it has no [requests.{verb}])",
                        self.name
                    )),
                    // The journal keeps the id a create answered with: a leaver is named by it.
                    Some(s) if s.needs_remote_id() && r.lookup.is_none() && !r.create_learns_id() => {
                        Err(format!(
                            "profile {} names users by remote id to {verb} them but has no lookup to find it",
                            self.name
                        ))
                    }
                    Some(_) => Ok(()),
                }
            }
            Action::Create if r.create.is_none() => Err(format!(
                "profile {} cannot create users (it has no create request)",
                self.name
            )),
            Action::Update => match &r.update {
                None => Err(format!(
                    "profile {} cannot update users (it has no update request)",
                    self.name
                )),
                Some(u) if u.needs_remote_id() && r.lookup.is_none() => Err(format!(
                    "profile {} updates by remote id but has no lookup request to find it",
                    self.name
                )),
                _ => Ok(()),
            },
            Action::Upsert => {
                if r.create.is_none() || r.update.is_none() {
                    return Err(format!(
                        "profile {} cannot upsert: it needs both a create and an update request",
                        self.name
                    ));
                }
                let upd = r.update.as_ref().is_some_and(RequestSpec::needs_remote_id);
                if r.lookup.is_none() && upd {
                    return Err(format!(
                        "profile {} cannot upsert: updates need a remote id and there is no lookup",
                        self.name
                    ));
                }
                Ok(())
            }
            Action::Create => Ok(()),
        }
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The column a header text means, if any.
    pub fn match_header(&self, header: &str) -> Option<usize> {
        let h = normalize_header(header);
        if h.is_empty() {
            return None;
        }
        self.columns
            .iter()
            .position(|c| c.header_texts().any(|n| normalize_header(n) == h))
    }

    /// Whether column `name` is used by steps only (see [`Profile::step_only`]).
    pub fn is_step_only(&self, name: &str) -> bool {
        // Asked per column of every row's fingerprint: free for a profile without steps.
        !self.steps.is_empty()
            && self
                .step_only
                .iter()
                .zip(&self.columns)
                .any(|(only, c)| *only && c.name == name)
    }

    /// The position of the key column among `columns`.
    pub fn key_index(&self) -> usize {
        self.key_index
    }

    /// Statuses worth retrying.
    pub fn is_retryable(&self, status: u16) -> bool {
        if self.responses.no_retry.contains(&status) {
            return false;
        }
        matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            || self.responses.retry.contains(&status)
    }

    /// Whether a create's answer says "this user already exists": a `conflict` status and,
    /// when the profile has a `conflict_match`, a body (or server message) that matches it.
    pub fn is_conflict(&self, spec: &RequestSpec, status: u16, body: &[u8]) -> bool {
        if !spec.conflict.contains(&status) {
            return false;
        }
        let Some(re) = &spec.conflict_match else {
            return true;
        };
        re.is_match(&String::from_utf8_lossy(body))
            || self.error_message(body).is_some_and(|m| re.is_match(&m))
    }

    /// The server's error message from an error body, using the profile's pointers.
    pub fn error_message(&self, body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        for p in &self.responses.error_message {
            match v.pointer(p) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => return Some(s.clone()),
                Some(serde_json::Value::Null) | None => {}
                Some(serde_json::Value::String(_)) => {}
                Some(other) => return Some(other.to_string()),
            }
        }
        None
    }
}

/// The HTTP methods a request may use.
const METHODS: [reqwest::Method; 5] = [
    reqwest::Method::GET,
    reqwest::Method::POST,
    reqwest::Method::PUT,
    reqwest::Method::PATCH,
    reqwest::Method::DELETE,
];

/// What compiling one profile needs: where it came from (for messages), how to read its
/// body files, and its column names (what placeholders may name).
struct Load<'a> {
    origin: &'a str,
    body_file: &'a dyn Fn(&str) -> std::result::Result<String, String>,
    known: Vec<String>,
    /// The profile's `key`, for examples in messages.
    key: String,
    /// Each column's type, by position (steps' `for_each` needs a list).
    kinds: Vec<ColumnType>,
}

impl Load<'_> {
    fn err(&self, message: String) -> Error {
        Error::profile(self.origin, message)
    }

    /// The column a placeholder names, by position.
    fn slot(&self, name: &str) -> Option<usize> {
        self.known.iter().position(|c| c == name)
    }

    fn text(&self, s: &str) -> template::Text {
        template::Text::with_slots(s, &|n| self.slot(n))
    }

    /// Refuses a placeholder that names nothing where it sits (see [`names`]).
    fn check_names(&self, what: &str, place: names::Place, found: Vec<String>) -> Result<()> {
        let allowed = match place {
            names::Place::Leaver => std::slice::from_ref(&self.key),
            _ => &self.known[..],
        };
        match found
            .iter()
            .find_map(|n| names::refusal_among(what, place, n, allowed, &self.known))
        {
            Some(why) => Err(self.err(why)),
            None => Ok(()),
        }
    }

    /// Refuses a JSON pointer that cannot point anywhere.
    fn pointer(&self, key: &str, p: &str) -> Result<()> {
        if p.starts_with('/') {
            return Ok(());
        }
        Err(self.err(format!(
            "{key} = {p:?} is not a JSON pointer: write it with a leading slash, as \"/{}\"",
            p.trim_start_matches(['.', '$'])
        )))
    }

    /// Refuses a number that is not an HTTP status.
    fn statuses(&self, key: &str, list: &[u16]) -> Result<()> {
        match list.iter().find(|s| !(100..=599).contains(*s)) {
            None => Ok(()),
            Some(s) => Err(self.err(format!(
                "{key} lists {s}, which is not an HTTP status: write statuses from 100 to 599"
            ))),
        }
    }

    fn header_name(&self, key: &str, name: &str) -> Result<()> {
        reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map(drop)
            .map_err(|_| {
                self.err(format!(
                    "{key} = {name:?} is not a header name: write letters, digits and \
                     dashes, as \"X-Api-Key\""
                ))
            })
    }

    fn profile(&self, raw: RawProfile) -> Result<Profile> {
        let mut columns = Vec::with_capacity(raw.columns.len());
        let mut seen = HashMap::new();
        for (i, c) in raw.columns.into_iter().enumerate() {
            for n in std::iter::once(&c.name)
                .chain(&c.label)
                .chain(c.aliases.iter())
            {
                if let Some(j) = seen.insert(normalize_header(n), i) {
                    if j != i {
                        return Err(self.err(format!(
                            "the header text {n:?} would match two columns; make aliases unique"
                        )));
                    }
                }
            }
            columns.push(self.column(c)?);
        }
        let Some(key_index) = self.slot(&raw.key) else {
            return Err(self.err(format!(
                "key = {:?} is not among the columns: write one of {}",
                raw.key,
                self.known.join(", ")
            )));
        };
        if !raw.rate.is_finite() || raw.rate <= 0.0 {
            return Err(self.err(format!(
                "rate = {} must be a number of requests per second above zero, as rate = 10",
                raw.rate
            )));
        }
        if raw.concurrency == 0 {
            return Err(self.err(
                "concurrency = 0: write how many requests may be in flight at once, as \
                 concurrency = 4"
                    .into(),
            ));
        }
        if reqwest::header::HeaderValue::from_str(&raw.content_type).is_err() {
            return Err(self.err(format!(
                "content_type = {:?} cannot be sent as a header: write a media type, as \
                 \"application/json\"",
                raw.content_type
            )));
        }
        for p in &raw.responses.error_message {
            self.pointer("responses.error_message", p)?;
        }
        self.statuses("responses.retry", &raw.responses.retry)?;
        self.statuses("responses.no_retry", &raw.responses.no_retry)?;
        let requests = self.requests(raw.requests)?;
        let auth = self.auth(raw.auth)?;
        let default_mode = raw.default_mode.map(Action::from).unwrap_or(
            if requests.lookup.is_some() && requests.update.is_some() {
                Action::Upsert
            } else if requests.create.is_some() {
                Action::Create
            } else {
                Action::Update
            },
        );
        let p = Profile {
            name: raw.name,
            description: raw.description,
            docs: raw.docs,
            base_url_env: raw.base_url_env,
            base_url_example: raw.base_url_example,
            key: raw.key,
            key_index,
            default_mode,
            rate: raw.rate,
            concurrency: raw.concurrency,
            content_type: raw.content_type,
            clear_marker: raw.clear_marker,
            auth,
            responses: Responses {
                error_message: raw.responses.error_message,
                retry: raw.responses.retry,
                no_retry: raw.responses.no_retry,
            },
            step_only: self.step_only(&columns, &requests, &raw.steps),
            steps: self.steps(raw.steps, &requests)?,
            columns,
            requests,
            origin: self.origin.to_string(),
            protect: raw
                .protect
                .iter()
                .map(|p| KeyPattern::new(p).map_err(|e| self.err(format!("protect: {e}"))))
                .collect::<Result<_>>()?,
        };
        if let Err(why) = p.supports(default_mode) {
            return Err(self.err(format!(
                "default_mode = \"{}\" is not possible: {why}",
                default_mode.as_str()
            )));
        }
        Ok(p)
    }

    fn column(&self, c: RawColumn) -> Result<Column> {
        let key = |k: &str| format!("column {}: {k}", c.name);
        let pattern = match c.pattern {
            None => None,
            Some(text) => {
                let regex = Regex::new(&format!("^(?:{text})$"))
                    .map_err(|e| self.err(format!("{} does not compile: {e}", key("pattern"))))?;
                Some(Pattern { text, regex })
            }
        };
        if let (Some(a), Some(b)) = (c.min_length, c.max_length) {
            if a > b {
                return Err(self.err(format!(
                    "{} = {a} is above max_length = {b}: write the smaller number first",
                    key("min_length")
                )));
            }
        }
        if c.kind == ColumnType::List && c.separator.is_empty() {
            return Err(self.err(format!(
                "{} is empty: write the text between items, as separator = \";\"",
                key("separator")
            )));
        }
        if c.empty == EmptyCell::Default && c.default.is_none() {
            return Err(self.err(format!(
                "{} = \"default\" but the column has no default: add default = \"...\" or \
                 choose omit, empty-string, null or empty-list",
                key("empty")
            )));
        }
        let email = match &c.email {
            RawEmail::On(false) => None,
            RawEmail::On(true) => Some(EmailRule::Strict),
            RawEmail::Rule(r) if r == "strict" => Some(EmailRule::Strict),
            RawEmail::Rule(r) if r == "permissive" => Some(EmailRule::Permissive),
            RawEmail::Rule(r) => {
                return Err(self.err(format!(
                    "{} = {r:?} is not an email rule: write email = true (or \"strict\": ASCII \
                     addresses, what every mail server takes) or email = \"permissive\" \
                     (UTF-8 addresses, for a target that takes SMTPUTF8)",
                    key("email")
                )))
            }
        };
        let default = match c.default {
            None => None,
            Some(d) => {
                let place = names::Place::Row { remote_id: false };
                self.check_names(&key("default"), place, template::placeholders(&d))?;
                Some(self.text(&d))
            }
        };
        Ok(Column {
            label: c.label.unwrap_or_else(|| c.name.clone()),
            name: c.name,
            aliases: c.aliases,
            kind: c.kind,
            required: c.required,
            required_on_create: c.required_on_create,
            pattern,
            pattern_hint: c.pattern_hint,
            min_length: c.min_length,
            max_length: c.max_length,
            email,
            one_of: c.one_of,
            secret: c.secret,
            default,
            separator: c.separator,
            text_only: c.text_only,
            description: c.description,
            example: c.example,
            empty: c.empty,
        })
    }

    fn requests(&self, r: RawRequests) -> Result<Requests> {
        if r.create.is_none() && r.update.is_none() {
            return Err(self.err(
                "a profile needs at least a create or an update request: add [requests.create] \
                 or [requests.update]"
                    .into(),
            ));
        }
        let compile = |which: &str, spec: Option<RawRequest>| {
            spec.map(|s| self.request(&format!("requests.{which}"), s))
                .transpose()
        };
        if r.disable.is_some() && r.enable.is_none() {
            return Err(self.err(
                "[requests.disable] needs [requests.enable]: a user disabled as a leaver who \
                 comes back in the sheet is enabled again"
                    .into(),
            ));
        }
        Ok(Requests {
            create: compile("create", r.create)?,
            update: compile("update", r.update)?,
            lookup: compile("lookup", r.lookup)?,
            disable: compile("disable", r.disable)?,
            enable: compile("enable", r.enable)?,
            delete: compile("delete", r.delete)?,
            list: r.list.map(|l| self.list(l)).transpose()?,
        })
    }

    fn auth(&self, a: RawAuth) -> Result<Auth> {
        Ok(match a {
            RawAuth::None => Auth::None,
            RawAuth::Basic {
                username_env,
                password_env,
            } => Auth::Basic {
                username_env,
                password_env,
            },
            RawAuth::Bearer { token_env } => Auth::Bearer { token_env },
            RawAuth::ApiKey {
                header,
                key_env,
                prefix,
            } => {
                self.header_name("auth.header", &header)?;
                Auth::ApiKey {
                    header,
                    key_env,
                    prefix,
                }
            }
            RawAuth::TokenLogin(t) => {
                let t = *t;
                self.header_name("auth.header", &t.header)?;
                self.pointer("auth.token_pointer", &t.token_pointer)?;
                Auth::TokenLogin(Box::new(TokenLogin {
                    username_env: t.username_env,
                    password_env: t.password_env,
                    login: self.request("auth.login", t.login)?,
                    token_pointer: t.token_pointer,
                    header: t.header,
                    prefix: t.prefix,
                    lifetime_secs: t.lifetime_secs,
                    refresh: t
                        .refresh
                        .map(|r| self.request("auth.refresh", r))
                        .transpose()?,
                }))
            }
        })
    }

    /// One request; `at` is where it sits in the file (`requests.create`).
    fn request(&self, at: &str, s: RawRequest) -> Result<RequestSpec> {
        let key = |k: &str| format!("{at}.{k}");
        let upper = s.method.trim().to_ascii_uppercase();
        let Some(method) = METHODS.iter().find(|m| m.as_str() == upper).cloned() else {
            let names: Vec<&str> = METHODS.iter().map(reqwest::Method::as_str).collect();
            return Err(self.err(format!(
                "{} = {:?} is not an HTTP method enlist sends: write one of {}",
                key("method"),
                s.method,
                names.join(", ")
            )));
        };
        let lookup = at == "requests.lookup";
        let create = at == "requests.create";
        if !lookup && (s.list.is_some() || s.match_field.is_some()) {
            return Err(self.err(format!(
                "{at}: list and match belong to requests.lookup; remove them here"
            )));
        }
        if !create && s.conflict_match.is_some() {
            return Err(self.err(format!(
                "{at}: conflict_match belongs to requests.create; remove it here"
            )));
        }
        let writes = create || at == "requests.update";
        if !writes && s.semantics.is_some() {
            return Err(self.err(format!(
                "{at}: semantics belongs to requests.create and requests.update; remove it here"
            )));
        }
        let remote_id_header = self.remote_id_header(at, create, &s)?;
        let place = names::Place::of_request(at);
        self.check_names(&key("path"), place, template::placeholders(&s.path))?;
        for (k, m) in [("query", &s.query), ("headers", &s.headers)] {
            for (name, v) in m {
                let at = format!("{at}.{k}.{name}");
                self.check_names(&at, place, template::placeholders(v))?;
            }
        }
        for name in s.headers.keys() {
            self.header_name(&key("headers"), name)?;
        }
        self.statuses(&key("success"), &s.success)?;
        self.statuses(&key("conflict"), &s.conflict)?;
        self.statuses(&key("not_found"), &s.not_found)?;
        for (k, p) in [
            ("remote_id", &s.remote_id),
            ("list", &s.list),
            ("match", &s.match_field),
        ] {
            if let Some(p) = p {
                self.pointer(&key(k), p)?;
            }
        }
        let conflict_match = match &s.conflict_match {
            None => None,
            Some(_) if s.conflict.is_empty() => {
                return Err(self.err(format!(
                    "{}: conflict_match needs the statuses it refines: conflict = [400, 409]",
                    at
                )))
            }
            Some(pat) => Some(
                regex::RegexBuilder::new(pat)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| {
                        self.err(format!("{} does not compile: {e}", key("conflict_match")))
                    })?,
            ),
        };
        if lookup {
            if s.not_found.is_empty() && s.list.is_none() {
                return Err(self.err(
                    "requests.lookup must say what \"not found\" looks like: not_found = [404] or list = \"/pointer\"".into(),
                ));
            }
            if s.list.is_some() && s.match_field.is_none() {
                return Err(self.err(format!(
                    "requests.lookup has list = {:?} but no match: say which field of each item must equal the key {:?}, for example match = \"/{}\" (a list lookup never takes the first item on trust)",
                    s.list.as_deref().unwrap_or(""),
                    self.key,
                    self.key
                )));
            }
        }
        let body = match s.body {
            None => None,
            Some(RawBody::Inline(v)) => Some(v),
            Some(RawBody::File(f)) => {
                let text = (self.body_file)(&f).map_err(|e| self.err(format!("{at}: {e}")))?;
                Some(serde_json::from_str(&text).map_err(|e| {
                    self.err(format!("{at}: body template {f} is not valid JSON: {e}"))
                })?)
            }
        };
        let template = match body {
            None => None,
            Some(b) => {
                let mut t = Template::compile(&b);
                t.resolve(&|n| self.slot(n));
                self.check_names(&key("body"), place.body(), t.names())?;
                Some(t)
            }
        };
        let pairs = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| (k.clone(), self.text(v)))
                .collect::<Vec<_>>()
        };
        Ok(RequestSpec {
            method,
            path: self.text(&s.path),
            query: pairs(&s.query),
            headers: pairs(&s.headers),
            template,
            success: s.success,
            conflict: s.conflict,
            conflict_match,
            not_found: s.not_found,
            remote_id: s.remote_id,
            list: s.list,
            match_field: s.match_field,
            match_case: s.match_case,
            semantics: s.semantics.unwrap_or_default(),
            remote_id_header,
        })
    }

    /// A create's `remote_id_header` and `remote_id_pattern`, checked together.
    fn remote_id_header(
        &self,
        at: &str,
        create: bool,
        s: &RawRequest,
    ) -> Result<Option<RemoteIdHeader>> {
        let key = |k: &str| format!("{at}.{k}");
        let (header, pattern) = match (&s.remote_id_header, &s.remote_id_pattern) {
            (None, None) => return Ok(None),
            (None, Some(_)) => {
                return Err(self.err(format!(
                    "{} needs remote_id_header: say which header carries the id, as \
                     remote_id_header = \"Location\"",
                    key("remote_id_pattern")
                )))
            }
            (Some(h), p) => (h, p),
        };
        if !create {
            return Err(self.err(format!(
                "{at}: remote_id_header belongs to requests.create (a create answered with \
                 201 and a Location header); remove it here"
            )));
        }
        if s.remote_id.is_some() {
            return Err(self.err(format!(
                "{at} has both remote_id and remote_id_header: keep the one where the \
                 target puts the new user's id"
            )));
        }
        self.header_name(&key("remote_id_header"), header)?;
        let name = reqwest::header::HeaderName::from_bytes(header.as_bytes())
            .map_err(|e| self.err(format!("{}: {e}", key("remote_id_header"))))?;
        let text = pattern.as_deref().unwrap_or("^(.+)$");
        let regex = Regex::new(text).map_err(|e| {
            self.err(format!(
                "{} does not compile: {e}",
                key("remote_id_pattern")
            ))
        })?;
        let groups = regex.captures_len() - 1;
        if groups != 1 {
            return Err(self.err(format!(
                "{} = {text:?} has {groups} capture groups; write exactly one around the id, \
                 as '/users/([^/]+)$' (use (?:...) for other groups)",
                key("remote_id_pattern")
            )));
        }
        Ok(Some(RemoteIdHeader {
            name,
            pattern: regex,
        }))
    }
}

impl Load<'_> {
    /// Compiles `[[steps]]`, refusing what cannot work: an unknown `after`, a `when` or
    /// `for_each` that names no column (or a column that is not a list), `{{item}}` outside
    /// a `for_each` step, two steps of one name, and `{{remote_id}}` in a profile that never
    /// learns one.
    fn steps(&self, raw: Vec<RawStep>, requests: &Requests) -> Result<Vec<Step>> {
        let mut out: Vec<Step> = Vec::with_capacity(raw.len());
        for (i, s) in raw.into_iter().enumerate() {
            let at = format!("steps[{}] ({:?})", i + 1, s.name);
            if s.name.trim().is_empty() {
                return Err(self.err(format!(
                    "steps[{}]: name is empty: write what the step does, as name = \"add to groups\"",
                    i + 1
                )));
            }
            if out.iter().any(|o| o.name == s.name) {
                return Err(self.err(format!(
                    "{at}: two steps are named {:?}; the journal tells steps apart by name, so give each its own",
                    s.name
                )));
            }
            let (mut after_create, mut after_update) = (false, false);
            for a in &s.after {
                match a.trim().to_ascii_lowercase().as_str() {
                    "create" => after_create = true,
                    "update" => after_update = true,
                    _ => {
                        return Err(self.err(format!(
                            "{at}.after lists {a:?}: write [\"create\"], [\"update\"] or [\"create\", \"update\"]"
                        )))
                    }
                }
            }
            if !after_create && !after_update {
                return Err(self.err(format!(
                    "{at}.after is empty: write [\"create\"], [\"update\"] or [\"create\", \"update\"]"
                )));
            }
            let column = |key: &str, name: &Option<String>| -> Result<Option<usize>> {
                let Some(n) = name else { return Ok(None) };
                match self.slot(n) {
                    Some(c) => Ok(Some(c)),
                    None => Err(self.err(format!(
                        "{at}.{key} = {n:?} is not a column of this profile; the columns are: {}",
                        self.known.join(", ")
                    ))),
                }
            };
            let when = column("when", &s.when)?;
            let for_each = column("for_each", &s.for_each)?;
            if let Some(c) = for_each {
                if self.kinds[c] != ColumnType::List {
                    return Err(self.err(format!(
                        "{at}.for_each = {:?}: that column is not a list; add type = \"list\" (and its separator) to the column",
                        self.known[c]
                    )));
                }
                if self.slot(ITEM).is_some() {
                    return Err(self.err(format!(
                        "{at}: a column is named {ITEM:?}, which {{{{{ITEM}}}}} of for_each would hide; rename the column"
                    )));
                }
            }
            let request = RawRequest {
                method: s.method,
                path: s.path,
                query: s.query,
                headers: s.headers,
                body: s.body,
                success: s.success,
                conflict: s.conflict,
                not_found: s.not_found,
                ..Default::default()
            };
            // `{{item}}` is a name only inside a for_each step.
            let mut known = self.known.clone();
            if for_each.is_some() {
                known.push(ITEM.to_string());
            }
            let load = Load {
                origin: self.origin,
                body_file: self.body_file,
                known,
                key: self.key.clone(),
                kinds: self.kinds.clone(),
            };
            let request = load.request(&at, request)?;
            if request.needs_remote_id() {
                let learns = requests
                    .create
                    .as_ref()
                    .is_some_and(|c| c.remote_id.is_some() || c.remote_id_header.is_some())
                    || requests
                        .lookup
                        .as_ref()
                        .is_some_and(|l| l.remote_id.is_some());
                if !learns {
                    return Err(self.err(format!(
                        "{at} uses {{{{remote_id}}}}, but no request says where the remote id is: add remote_id = \"/id\" to requests.create or requests.lookup"
                    )));
                }
            }
            out.push(Step {
                name: s.name,
                after_create,
                after_update,
                when,
                for_each,
                request,
            });
        }
        Ok(out)
    }

    /// Per column: named by a step (placeholder, `when`, `for_each`) and by nothing else.
    fn step_only(&self, columns: &[Column], requests: &Requests, steps: &[RawStep]) -> Vec<bool> {
        let in_steps = |name: &str| {
            steps.iter().any(|s| {
                s.when.as_deref() == Some(name)
                    || s.for_each.as_deref() == Some(name)
                    || template::placeholders(&s.path).iter().any(|p| p == name)
                    || s.query
                        .values()
                        .chain(s.headers.values())
                        .any(|v| template::placeholders(v).iter().any(|p| p == name))
                    || match &s.body {
                        Some(RawBody::Inline(v)) => Template::compile(v).uses(name),
                        Some(RawBody::File(f)) => (self.body_file)(f)
                            .ok()
                            .and_then(|t| serde_json::from_str(&t).ok())
                            .is_some_and(|v| Template::compile(&v).uses(name)),
                        None => false,
                    }
            })
        };
        let in_requests = |name: &str| {
            [&requests.create, &requests.update, &requests.lookup]
                .into_iter()
                .flatten()
                .any(|r| {
                    r.path.uses(name)
                        || r.query.iter().chain(&r.headers).any(|(_, v)| v.uses(name))
                        || r.template.as_ref().is_some_and(|t| t.uses(name))
                })
                || columns
                    .iter()
                    .any(|c| c.default.as_ref().is_some_and(|d| d.uses(name)))
        };
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| i != self.key_index() && in_steps(&c.name) && !in_requests(&c.name))
            .collect()
    }

    fn key_index(&self) -> usize {
        self.slot(&self.key).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_gives_its_id_percent_decoded() {
        let h = RemoteIdHeader {
            name: reqwest::header::LOCATION,
            pattern: Regex::new("/users/([^/?]+)/?(?:\\?.*)?$").expect("pattern"),
        };
        assert_eq!(
            h.id_in("https://api.example/v1/users/a%40b.example")
                .as_deref(),
            Some("a@b.example")
        );
        assert_eq!(h.id_in("/users/42/?x=1").as_deref(), Some("42"));
        assert_eq!(h.id_in("/groups/42"), None);
        assert_eq!(h.id_in("/users/%FF"), None, "not UTF-8 once decoded");
    }
}
