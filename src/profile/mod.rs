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

pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};
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
];

/// Names of the built-in profiles, in the order `enlist profiles` lists them.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(n, _)| *n)
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
}

impl Action {
    /// Every action, in declaration order (`ALL[a as usize] == a`).
    pub const ALL: [Action; 4] = [Action::Create, Action::Update, Action::Upsert, Action::Skip];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Upsert => "upsert",
            Action::Skip => "skip",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s.trim().to_ascii_lowercase().as_str() {
            "create" | "new" | "add" => Some(Action::Create),
            "update" | "modify" | "change" => Some(Action::Update),
            "upsert" | "create or update" => Some(Action::Upsert),
            "skip" | "ignore" | "-" => Some(Action::Skip),
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// The canonical name, used in templates as `{{name}}`.
    pub name: String,
    /// Other header texts that mean this column (matched ignoring case, spaces, `_`, `-`, `.`).
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default, rename = "type")]
    pub kind: ColumnType,
    #[serde(default)]
    pub required: bool,
    /// Needed when the user is created, not on update (an initial password).
    #[serde(default)]
    pub required_on_create: bool,
    /// A regular expression the whole text must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// What the pattern means, for people ("4 to 6 digits").
    #[serde(default)]
    pub pattern_hint: Option<String>,
    #[serde(default)]
    pub min_length: Option<usize>,
    #[serde(default)]
    pub max_length: Option<usize>,
    /// The value must be an email address.
    #[serde(default)]
    pub email: bool,
    /// The value must be one of these (matched ignoring case; the canonical spelling is sent).
    #[serde(default)]
    pub one_of: Vec<String>,
    /// A password or token: masked in every output.
    #[serde(default)]
    pub secret: bool,
    /// Used when the cell is empty; may name other columns (`{{firstName}}`).
    #[serde(default)]
    pub default: Option<String>,
    /// Separator for `list` columns (default `;`).
    #[serde(default)]
    pub separator: Option<String>,
    /// The value is an identifier that must stay text (phone, extension): Excel must not turn it
    /// into a number. Templates format these columns as text.
    #[serde(default)]
    pub text_only: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub example: Option<String>,
    /// Compiled `pattern`.
    #[serde(skip)]
    pub regex: Option<Regex>,
    /// Compiled `default`.
    #[serde(skip)]
    pub default_text: Option<template::Text>,
}

impl Column {
    pub fn separator(&self) -> &str {
        self.separator.as_deref().unwrap_or(";")
    }

    /// A one-line summary of the rules, for notes and instructions.
    pub fn rules(&self) -> String {
        let mut r = vec![self.kind.as_str().to_string()];
        if self.required {
            r.push("required".into());
        } else if self.required_on_create {
            r.push("required to create".into());
        }
        if self.email {
            r.push("email address".into());
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
            r.push(format!("matches {p}"));
        }
        if !self.one_of.is_empty() {
            r.push(format!("one of: {}", self.one_of.join(", ")));
        }
        if self.kind == ColumnType::List {
            r.push(format!("items separated by '{}'", self.separator()));
        }
        if let Some(d) = &self.default {
            r.push(format!("default {d}"));
        }
        if self.secret {
            r.push("secret (masked in reports)".into());
        }
        r.join("; ")
    }
}

/// How to authenticate.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
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
        #[serde(default)]
        prefix: String,
    },
    /// A login request whose JSON response holds a token.
    TokenLogin(Box<TokenLogin>),
}

/// A login request whose response carries a token used for every later request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLogin {
    pub username_env: String,
    pub password_env: String,
    pub login: RequestSpec,
    /// JSON pointer to the token in the login response (`/token`).
    pub token_pointer: String,
    /// The header that carries the token afterwards (default `Authorization`).
    #[serde(default = "default_auth_header")]
    pub header: String,
    /// Text put before the token (default `Bearer `; PocketBase uses none).
    #[serde(default = "default_bearer_prefix")]
    pub prefix: String,
    /// How long a token lives, in seconds (refreshed or renewed before it ends).
    #[serde(default)]
    pub lifetime_secs: Option<u64>,
    /// A request that returns a fresh token (Odin `PUT /auth/token`), run before the lifetime ends.
    #[serde(default)]
    pub refresh: Option<RequestSpec>,
}

fn default_auth_header() -> String {
    "Authorization".into()
}
fn default_bearer_prefix() -> String {
    "Bearer ".into()
}

/// A body given inline (a TOML table) or as the name of a JSON file beside the profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BodySpec {
    File(String),
    Inline(serde_json::Value),
}

/// One request as the profile describes it, before any row fills it in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    pub method: String,
    /// Path relative to the base URL; `{{column}}` placeholders are URL-encoded.
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<BodySpec>,
    /// Statuses that mean success (default: any 2xx).
    #[serde(default)]
    pub success: Vec<u16>,
    /// Statuses that mean "the user already exists" (create) .
    #[serde(default)]
    pub conflict: Vec<u16>,
    /// Create only: a regular expression (case ignored) that the error body, or the server's
    /// message found by `responses.error_message`, must match for a `conflict` status to
    /// mean "already exists" (`already|taken|unique`). Without it every `conflict` status
    /// counts; with it, such a status whose body does not match fails the row.
    #[serde(default)]
    pub conflict_match: Option<String>,
    /// Compiled `conflict_match`.
    #[serde(skip)]
    pub conflict_regex: Option<Regex>,
    /// Statuses that mean "no such user" (update, lookup).
    #[serde(default)]
    pub not_found: Vec<u16>,
    /// JSON pointer to the remote id in a success response.
    #[serde(default)]
    pub remote_id: Option<String>,
    /// Lookup only: JSON pointer to a list of matches; an empty list means "not found".
    #[serde(default)]
    pub list: Option<String>,
    /// Lookup only: JSON pointer, inside each list item (or the one answer without `list`),
    /// of the field that must equal the row's key. Required with `list`: many APIs search
    /// by substring, so the first item may be another user.
    #[serde(default, rename = "match")]
    pub match_field: Option<String>,
    /// How `match` compares: `insensitive` (the default, as keys are compared) or `sensitive`.
    /// Both ignore outer spaces.
    #[serde(default)]
    pub match_case: MatchCase,
    /// The compiled body template.
    #[serde(skip)]
    pub template: Option<Template>,
    /// Method, path, query and headers parsed once (set when the profile loads).
    #[serde(skip)]
    pub compiled: Option<CompiledRequest>,
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

/// The parts of a [`RequestSpec`] every row fills in, parsed once.
#[derive(Debug, Clone)]
pub struct CompiledRequest {
    pub method: reqwest::Method,
    pub path: template::Text,
    pub query: Vec<(String, template::Text)>,
    pub headers: Vec<(String, template::Text)>,
}

impl RequestSpec {
    /// Method, path, query and headers parsed for rows to fill; `slot` numbers the
    /// placeholders that name columns.
    pub fn compile_parts(
        &self,
        method: reqwest::Method,
        slot: &dyn Fn(&str) -> Option<usize>,
    ) -> CompiledRequest {
        let text = |s: &str| template::Text::with_slots(s, slot);
        let pairs =
            |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| (k.clone(), text(v))).collect();
        CompiledRequest {
            method,
            path: text(&self.path),
            query: pairs(&self.query),
            headers: pairs(&self.headers),
        }
    }

    pub fn is_success(&self, status: u16) -> bool {
        if self.success.is_empty() {
            (200..300).contains(&status)
        } else {
            self.success.contains(&status)
        }
    }

    /// True when the request names the user without a server-assigned id, so it can be
    /// sent without a lookup first.
    pub fn needs_remote_id(&self) -> bool {
        let uses = |s: &str| s.contains("{{remote_id}}");
        uses(&self.path)
            || self.query.values().any(|v| uses(v))
            || self.template.as_ref().is_some_and(|t| t.uses("remote_id"))
    }
}

/// The requests a profile can make.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    pub create: Option<RequestSpec>,
    pub update: Option<RequestSpec>,
    pub lookup: Option<RequestSpec>,
}

/// Profile-wide response handling.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Responses {
    /// JSON pointers tried in order for the server's error message (`/details`, `/ErrorMessage`).
    #[serde(default)]
    pub error_message: Vec<String>,
    /// Extra statuses worth retrying on top of 408, 429, 500, 502, 503, 504.
    #[serde(default)]
    pub retry: Vec<u16>,
    /// Statuses never retried, even from that default set (a target whose 500 means a
    /// refused value, say).
    #[serde(default)]
    pub no_retry: Vec<u16>,
}

/// A target, fully loaded and checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Where the API documentation for this target lives (for people).
    #[serde(default)]
    pub docs: Option<String>,
    /// Environment variable holding the base URL (`--base-url` overrides).
    pub base_url_env: String,
    /// An example base URL, shown in help and templates.
    #[serde(default)]
    pub base_url_example: Option<String>,
    /// The column that identifies a user.
    pub key: String,
    /// The mode when neither the row nor `--mode` says (default: upsert with a lookup, else create).
    #[serde(default)]
    pub default_mode: Option<Action>,
    /// Requests per second when `--rate` is not given.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Concurrent requests when `--concurrency` is not given.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Content type of request bodies (default `application/json`).
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// The text that blanks a field on purpose (default `<clear>`).
    #[serde(default = "default_clear_marker")]
    pub clear_marker: String,
    pub auth: Auth,
    #[serde(default)]
    pub responses: Responses,
    pub columns: Vec<Column>,
    pub requests: Requests,
    /// Where the profile came from (a built-in name or a file path).
    #[serde(skip)]
    pub origin: String,
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
        if let Some((_, text)) = BUILTINS.iter().find(|(n, _)| *n == spec) {
            let lookup = |file: &str| {
                BUILTIN_BODIES
                    .iter()
                    .find(|(f, _)| *f == file)
                    .map(|(_, b)| b.to_string())
                    .ok_or_else(|| format!("no built-in body template named {file}"))
            };
            return Profile::parse(text, spec, &lookup);
        }
        let path = Path::new(spec);
        if !path.exists() {
            let names: Vec<_> = builtin_names().collect();
            return Err(Error::profile(
                spec,
                format!(
                    "no such built-in profile or file; built-in profiles are: {} (or give a path to a .toml file)",
                    names.join(", ")
                ),
            ));
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

    /// Parses and checks a profile; `body_file` resolves body template file names.
    pub fn parse(
        text: &str,
        origin: &str,
        body_file: &dyn Fn(&str) -> std::result::Result<String, String>,
    ) -> Result<Profile> {
        let mut p: Profile =
            toml::from_str(text).map_err(|e| Error::profile(origin, e.to_string()))?;
        p.origin = origin.to_string();
        let err = |m: String| Error::profile(origin, m);

        let mut seen = HashMap::new();
        for (i, c) in p.columns.iter_mut().enumerate() {
            if let Some(pat) = &c.pattern {
                let anchored = format!("^(?:{pat})$");
                c.regex = Some(Regex::new(&anchored).map_err(|e| {
                    err(format!("column {}: pattern does not compile: {e}", c.name))
                })?);
            }
            for n in std::iter::once(&c.name).chain(c.aliases.iter()) {
                if let Some(j) = seen.insert(normalize_header(n), i) {
                    if j != i {
                        return Err(err(format!(
                            "the header text {n:?} would match two columns; make aliases unique"
                        )));
                    }
                }
            }
        }
        if p.column_index(&p.key).is_none() {
            return Err(err(format!(
                "key column {:?} is not among the columns",
                p.key
            )));
        }
        if !p.rate.is_finite() || p.rate <= 0.0 || p.concurrency == 0 {
            return Err(err("rate and concurrency must be above zero".into()));
        }
        let known: Vec<String> = p.columns.iter().map(|c| c.name.clone()).collect();
        let check_names = |what: &str, names: Vec<String>| -> Result<()> {
            for n in names {
                let ok = known.contains(&n) || n == "remote_id" || n.starts_with("auth.");
                if !ok {
                    return Err(err(format!(
                        "{what} uses {{{{{n}}}}}, which is not a column of this profile"
                    )));
                }
            }
            Ok(())
        };
        let slot = |name: &str| known.iter().position(|c| c == name);
        for c in &mut p.columns {
            if let Some(d) = &c.default {
                check_names(
                    &format!("column {} default", c.name),
                    template::placeholders(d),
                )?;
                c.default_text = Some(template::Text::with_slots(d, &slot));
            }
        }
        let compile = |which: &str, spec: &mut RequestSpec| -> Result<()> {
            spec.method = spec.method.to_ascii_uppercase();
            let method = reqwest::Method::from_bytes(spec.method.as_bytes())
                .map_err(|_| err(format!("requests.{which}: unknown method {}", spec.method)))?;
            spec.compiled = Some(spec.compile_parts(method, &slot));
            let body = match &spec.body {
                None => None,
                Some(BodySpec::Inline(v)) => Some(v.clone()),
                Some(BodySpec::File(f)) => {
                    let text = body_file(f).map_err(|e| err(format!("requests.{which}: {e}")))?;
                    Some(serde_json::from_str(&text).map_err(|e| {
                        err(format!(
                            "requests.{which}: body template {f} is not valid JSON: {e}"
                        ))
                    })?)
                }
            };
            if let Some(b) = body {
                let mut t = Template::compile(&b);
                t.resolve(&slot);
                check_names(&format!("requests.{which} body"), t.names())?;
                spec.template = Some(t);
            }
            let mut names = template::placeholders(&spec.path);
            for v in spec.query.values().chain(spec.headers.values()) {
                names.extend(template::placeholders(v));
            }
            check_names(&format!("requests.{which}"), names)
        };
        for (which, spec) in [
            ("create", &mut p.requests.create),
            ("update", &mut p.requests.update),
        ] {
            if let Some(s) = spec.as_mut() {
                compile(which, s)?;
                if s.list.is_some() || s.match_field.is_some() {
                    return Err(err(format!(
                        "requests.{which}: list and match belong to requests.lookup"
                    )));
                }
            }
        }
        if let Some(s) = p.requests.create.as_mut() {
            if let Some(pat) = &s.conflict_match {
                if s.conflict.is_empty() {
                    return Err(err(
                        "requests.create: conflict_match needs the statuses it refines: conflict = [400, 409]".into(),
                    ));
                }
                s.conflict_regex = Some(
                    regex::RegexBuilder::new(pat)
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| {
                            err(format!(
                                "requests.create: conflict_match does not compile: {e}"
                            ))
                        })?,
                );
            }
        }
        for (which, spec) in [
            ("update", &p.requests.update),
            ("lookup", &p.requests.lookup),
        ] {
            if spec.as_ref().is_some_and(|s| s.conflict_match.is_some()) {
                return Err(err(format!(
                    "requests.{which}: conflict_match belongs to requests.create"
                )));
            }
        }
        if let Some(s) = p.requests.lookup.as_mut() {
            compile("lookup", s)?;
            if s.not_found.is_empty() && s.list.is_none() {
                return Err(err(
                    "requests.lookup must say what \"not found\" looks like: not_found = [404] or list = \"/pointer\"".into(),
                ));
            }
            if s.list.is_some() && s.match_field.is_none() {
                return Err(err(format!(
                    "requests.lookup has list = {:?} but no match: say which field of each item must equal the key {:?}, for example match = \"/{}\" (a list lookup never takes the first item on trust)",
                    s.list.as_deref().unwrap_or(""),
                    p.key,
                    p.key
                )));
            }
            if let Some(m) = &s.match_field {
                if !m.starts_with('/') {
                    return Err(err(format!(
                        "requests.lookup: match = {m:?} must be a JSON pointer starting with /"
                    )));
                }
            }
        }
        if let Auth::TokenLogin(tl) = &mut p.auth {
            compile("login", &mut tl.login)?;
            if let Some(r) = tl.refresh.as_mut() {
                compile("refresh", r)?;
            }
        }
        if p.requests.create.is_none() && p.requests.update.is_none() {
            return Err(err(
                "a profile needs at least a create or an update request".into(),
            ));
        }
        let mode = p.default_action();
        if p.supports(mode).is_err() {
            return Err(err(format!(
                "default_mode {} is not possible with its requests",
                mode.as_str()
            )));
        }
        Ok(p)
    }

    /// The action for rows that say nothing and when `--mode` is not given.
    pub fn default_action(&self) -> Action {
        self.default_mode.unwrap_or(
            if self.requests.lookup.is_some() && self.requests.update.is_some() {
                Action::Upsert
            } else if self.requests.create.is_some() {
                Action::Create
            } else {
                Action::Update
            },
        )
    }

    /// Whether this profile can carry out `action`; the error says why not.
    pub fn supports(&self, action: Action) -> std::result::Result<(), String> {
        let r = &self.requests;
        match action {
            Action::Skip => Ok(()),
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
                let upd = r
                    .update
                    .as_ref()
                    .map(RequestSpec::needs_remote_id)
                    .unwrap_or(false);
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
        self.columns.iter().position(|c| {
            normalize_header(&c.name) == h || c.aliases.iter().any(|a| normalize_header(a) == h)
        })
    }

    pub fn key_index(&self) -> usize {
        // Checked in `parse`.
        self.column_index(&self.key).unwrap_or(0)
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
        let Some(re) = &spec.conflict_regex else {
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
