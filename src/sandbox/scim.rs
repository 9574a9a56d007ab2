//! SCIM 2.0 Users (RFC 7643 / 7644): create, filter, read, full replace, patch, delete;
//! and Groups: list, read, create, and PATCH of their `members` (add, and remove by
//! `members[value eq "id"]`), which is how a client puts a user in a group (§3.5.2).
//! A few groups exist from the start (ids [`SEEDED_GROUPS`]), so a sheet can name them.
//!
//! The sandbox holds each resource as it returns it: the client's attributes (without
//! `password`, which SCIM never returns, and without the read-only `id`, `meta`, `groups`),
//! plus the server's `id` and `meta`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::{check_fields, lock, now_rfc3339, App, Record, Ty};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Attributes the server owns; a client's values for them are ignored.
const READ_ONLY: &[&str] = &["id", "meta", "groups", "password"];

const TYPES: &[(&str, Ty)] = &[
    ("schemas", Ty::StrArr),
    ("userName", Ty::Str),
    ("externalId", Ty::Str),
    ("name", Ty::Obj),
    ("displayName", Ty::Str),
    ("nickName", Ty::Str),
    ("profileUrl", Ty::Str),
    ("title", Ty::Str),
    ("userType", Ty::Str),
    ("preferredLanguage", Ty::Str),
    ("locale", Ty::Str),
    ("timezone", Ty::Str),
    ("active", Ty::Bool),
    ("password", Ty::Str),
    ("emails", Ty::Arr),
    ("phoneNumbers", Ty::Arr),
    ("ims", Ty::Arr),
    ("photos", Ty::Arr),
    ("addresses", Ty::Arr),
    ("entitlements", Ty::Arr),
    ("roles", Ty::Arr),
    ("x509Certificates", Ty::Arr),
];

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/scim/v2/Users", get(list).post(create))
        .route(
            "/scim/v2/Users/{id}",
            get(read).put(replace).patch(patch).delete(remove),
        )
        .route("/scim/v2/Groups", get(list_groups).post(create_group))
        .route("/scim/v2/Groups/{id}", get(read_group).patch(patch_group))
}

/// A response with `application/scim+json`.
fn scim_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/scim+json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// A SCIM error message (RFC 7644 §3.12): `status` is a string.
pub(crate) fn error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.as_str(),
    });
    if let Value::Object(m) = &mut body {
        if let Some(t) = scim_type {
            m.insert("scimType".into(), Value::String(t.to_string()));
        }
        m.insert("detail".into(), Value::String(detail.to_string()));
    }
    scim_json(status, body)
}

fn bad(scim_type: &str, detail: &str) -> Response {
    error(StatusCode::BAD_REQUEST, Some(scim_type), detail)
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        None,
        &format!("Resource {id} not found"),
    )
}

/// Refuses a body that is not JSON by its content type (SCIM wants
/// `application/scim+json`; `application/json` is accepted too; no header is tolerated).
fn check_content_type(headers: &HeaderMap) -> Result<(), Response> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/scim+json" || mime == "application/json" {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            &format!("Unsupported content type {mime:?}: use application/scim+json"),
        ))
    }
}

/// Parses and checks a User body for POST and PUT.
fn parse_user(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, Response> {
    check_content_type(headers)?;
    let body = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(bad(
                "invalidSyntax",
                "The request body must be a JSON object",
            ))
        }
        Err(e) => return Err(bad("invalidSyntax", &format!("Malformed JSON: {e}"))),
    };
    check_fields(&body, &["schemas", "userName"], TYPES).map_err(|m| bad("invalidValue", &m))?;
    let has_schema = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(USER_SCHEMA)));
    if !has_schema {
        return Err(bad(
            "invalidValue",
            &format!("schemas must contain {USER_SCHEMA}"),
        ));
    }
    check_user_name(&body)?;
    Ok(body)
}

fn check_user_name(body: &Map<String, Value>) -> Result<(), Response> {
    match body.get("userName").and_then(Value::as_str) {
        Some(u) if !u.trim().is_empty() => Ok(()),
        _ => Err(bad("invalidValue", "userName must be a non-empty string")),
    }
}

fn user_name(v: &Value) -> &str {
    v.get("userName").and_then(Value::as_str).unwrap_or("")
}

/// Whether `user_name` is taken (case-insensitively) by a user other than `except_id`.
fn taken(records: &[Record], user_name_: &str, except_id: Option<&str>) -> bool {
    records.iter().any(|r| {
        user_name(&r.user).eq_ignore_ascii_case(user_name_)
            && r.user.get("id").and_then(Value::as_str) != except_id
    })
}

fn conflict(user_name: &str) -> Response {
    error(
        StatusCode::CONFLICT,
        Some("uniqueness"),
        &format!("userName {user_name} is already in use"),
    )
}

/// The resource: `schemas`, `id`, the client's attributes, `meta`.
fn resource(app: &App, id: &str, body: &Map<String, Value>, created: &str, version: u64) -> Value {
    let mut m = Map::new();
    m.insert(
        "schemas".into(),
        body.get("schemas").cloned().unwrap_or(json!([USER_SCHEMA])),
    );
    m.insert("id".into(), Value::String(id.to_string()));
    for (k, v) in body {
        if k != "schemas" && !READ_ONLY.contains(&k.as_str()) {
            m.insert(k.clone(), v.clone());
        }
    }
    m.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": created,
            "lastModified": now_rfc3339(),
            "location": format!("{}/Users/{id}", app.base_url),
            "version": format!("W/\"{version}\""),
        }),
    );
    Value::Object(m)
}

/// The answer with a resource: its `Location` and `ETag`.
fn with_resource(status: StatusCode, resource: Value) -> Response {
    let location = resource["meta"]["location"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let version = resource["meta"]["version"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut resp = scim_json(status, resource);
    for (name, value) in [(header::LOCATION, location), (header::ETAG, version)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

fn version_of(v: &Value) -> u64 {
    v["meta"]["version"]
        .as_str()
        .and_then(|s| s.trim_start_matches("W/").trim_matches('"').parse().ok())
        .unwrap_or(1)
}

async fn create(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match parse_user(&headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = app.new_uuid();
    let created = now_rfc3339();
    let res = resource(&app, &id, &body, &created, 1);
    let mut store = lock(&app.store);
    if taken(&store.records, user_name(&res), None) {
        return conflict(user_name(&res));
    }
    store.records.push(Record {
        user: res.clone(),
        modified: SystemTime::now(),
    });
    drop(store);
    with_resource(StatusCode::CREATED, res)
}

/// A parsed `attr eq "value"` filter.
struct Filter {
    attr: String,
    value: String,
}

fn parse_filter(f: &str) -> Result<Filter, String> {
    let f = f.trim();
    let lower = f.to_ascii_lowercase();
    let Some(pos) = lower.find(" eq ") else {
        return Err(format!(
            "Unsupported filter {f:?}: only `attribute eq \"value\"` is supported"
        ));
    };
    let attr = f[..pos].trim().to_string();
    let raw = f[pos + 4..].trim();
    let value = if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        raw[1..raw.len() - 1]
            .replace("\\\"", "\"")
            .replace("\\\\", "\\")
    } else {
        return Err(format!("Filter value must be a quoted string: {raw}"));
    };
    let known = [
        "username",
        "externalid",
        "id",
        "emails",
        "emails.value",
        "displayname",
    ];
    if !known.contains(&attr.to_ascii_lowercase().as_str()) {
        return Err(format!("Unsupported filter attribute {attr}"));
    }
    Ok(Filter { attr, value })
}

impl Filter {
    /// Whether `user` contains the value anywhere a search box would look (the
    /// `lookup_substring` knob): userName, displayName, the emails.
    fn contained(&self, user: &Value) -> bool {
        let needle = self.value.to_lowercase();
        let has = |v: Option<&str>| v.is_some_and(|t| t.to_lowercase().contains(&needle));
        has(user.get("userName").and_then(Value::as_str))
            || has(user.get("displayName").and_then(Value::as_str))
            || user
                .get("emails")
                .and_then(Value::as_array)
                .is_some_and(|a| {
                    a.iter()
                        .any(|e| has(e.get("value").and_then(Value::as_str)))
                })
    }

    fn matches(&self, user: &Value) -> bool {
        let s = |k: &str| user.get(k).and_then(Value::as_str);
        match self.attr.to_ascii_lowercase().as_str() {
            // userName and emails are case-insensitive (caseExact false); ids are exact.
            "username" => s("userName").is_some_and(|u| u.eq_ignore_ascii_case(&self.value)),
            "externalid" => s("externalId") == Some(self.value.as_str()),
            "id" => s("id") == Some(self.value.as_str()),
            "displayname" => s("displayName") == Some(self.value.as_str()),
            _ => user
                .get("emails")
                .and_then(Value::as_array)
                .is_some_and(|emails| {
                    emails.iter().any(|e| {
                        e.get("value")
                            .and_then(Value::as_str)
                            .is_some_and(|v| v.eq_ignore_ascii_case(&self.value))
                    })
                }),
        }
    }
}

/// `GET /Users[?filter=...][&startIndex=N][&count=N]` → a ListResponse.
async fn list(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let mut filter = None;
    let mut start_index: usize = 1;
    let mut count: Option<usize> = None;
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "filter" => match parse_filter(&v) {
                Ok(f) => filter = Some(f),
                Err(m) => return bad("invalidFilter", &m),
            },
            "startIndex" => match v.parse::<i64>() {
                Ok(n) => start_index = n.max(1) as usize,
                Err(_) => return bad("invalidValue", "startIndex must be an integer"),
            },
            "count" => match v.parse::<i64>() {
                Ok(n) => count = Some(n.max(0) as usize),
                Err(_) => return bad("invalidValue", "count must be an integer"),
            },
            _ => {}
        }
    }
    let matching: Vec<Value> = lock(&app.store)
        .records
        .iter()
        .filter(|r| {
            filter.as_ref().is_none_or(|f| {
                if app.cfg.lookup_substring && f.attr.eq_ignore_ascii_case("userName") {
                    f.contained(&r.user)
                } else {
                    f.matches(&r.user)
                }
            })
        })
        .map(|r| r.user.clone())
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(start_index - 1)
        .take(count.unwrap_or(usize::MAX))
        .collect();
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "Resources": page.clone(),
            "startIndex": start_index,
            "itemsPerPage": page.len(),
        }),
    )
}

fn find<'a>(records: &'a mut [Record], id: &str) -> Option<&'a mut Record> {
    records
        .iter_mut()
        .find(|r| r.user.get("id").and_then(Value::as_str) == Some(id))
}

async fn read(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let mut store = lock(&app.store);
    match find(&mut store.records, &id) {
        Some(r) => with_resource(StatusCode::OK, r.user.clone()),
        None => not_found(&id),
    }
}

/// `PUT /Users/{id}`: full replace; attributes left out are removed, `id` and
/// `meta.created` are kept, `meta.version` goes up.
async fn replace(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match parse_user(&headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut store = lock(&app.store);
    let new_name = body.get("userName").and_then(Value::as_str).unwrap_or("");
    let exists = find(&mut store.records, &id).is_some();
    if !exists {
        return not_found(&id);
    }
    if taken(&store.records, new_name, Some(&id)) {
        return conflict(new_name);
    }
    let Some(record) = find(&mut store.records, &id) else {
        return not_found(&id);
    };
    let created = record.user["meta"]["created"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let res = resource(&app, &id, &body, &created, version_of(&record.user) + 1);
    record.user = res.clone();
    record.modified = SystemTime::now();
    drop(store);
    with_resource(StatusCode::OK, res)
}

/// Applies one PatchOp operation to the attributes (without `id`/`meta`). Supports paths
/// `attr` and `attr.sub`, not value filters (`emails[type eq "work"]`).
fn apply_op(attrs: &mut Map<String, Value>, op: &Value) -> Result<(), Response> {
    let kind = op
        .get("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| bad("invalidSyntax", "Each operation needs an op"))?;
    let path = op.get("path").and_then(Value::as_str);
    let value = op.get("value");
    if path.is_some_and(|p| p.contains('[')) {
        return Err(bad(
            "invalidPath",
            "Value filters in paths are not supported by the sandbox",
        ));
    }
    let path = path.map(|p| {
        p.strip_prefix(USER_SCHEMA)
            .map(|s| s.trim_start_matches(':'))
            .unwrap_or(p)
    });
    if path.is_some_and(|p| READ_ONLY.contains(&p) || p == "schemas") {
        return Err(bad("mutability", "That attribute cannot be changed"));
    }
    match (kind.as_str(), path, value) {
        ("add" | "replace", None, Some(Value::Object(v))) => {
            for (k, v) in v {
                if !READ_ONLY.contains(&k.as_str()) && k != "schemas" {
                    attrs.insert(k.clone(), v.clone());
                }
            }
        }
        ("add" | "replace", Some(p), Some(v)) => match p.split_once('.') {
            None => {
                if kind == "add" {
                    if let (Some(Value::Array(old)), Value::Array(new)) = (attrs.get_mut(p), v) {
                        old.extend(new.iter().cloned());
                        return Ok(());
                    }
                }
                attrs.insert(p.to_string(), v.clone());
            }
            Some((parent, sub)) => {
                let entry = attrs
                    .entry(parent.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                match entry {
                    Value::Object(m) => {
                        m.insert(sub.to_string(), v.clone());
                    }
                    _ => return Err(bad("invalidPath", &format!("{parent} is not complex"))),
                }
            }
        },
        ("remove", Some(p), _) => match p.split_once('.') {
            None => {
                attrs.remove(p);
            }
            Some((parent, sub)) => {
                if let Some(Value::Object(m)) = attrs.get_mut(parent) {
                    m.remove(sub);
                }
            }
        },
        ("remove", None, _) => return Err(bad("noTarget", "remove needs a path")),
        _ => return Err(bad("invalidSyntax", &format!("Unsupported operation {op}"))),
    }
    Ok(())
}

/// The `Operations` of a PatchOp body, or the SCIM error that refuses the request (a
/// content type, JSON, schema or Operations that is not a PatchOp's).
fn patch_ops(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Value>, Response> {
    check_content_type(headers)?;
    let body = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(bad(
                "invalidSyntax",
                "The request body must be a JSON object",
            ))
        }
        Err(e) => return Err(bad("invalidSyntax", &format!("Malformed JSON: {e}"))),
    };
    let is_patch = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(PATCH_SCHEMA)));
    if !is_patch {
        return Err(bad(
            "invalidSyntax",
            &format!("schemas must contain {PATCH_SCHEMA}"),
        ));
    }
    match body.get("Operations").and_then(Value::as_array) {
        Some(ops) => Ok(ops.clone()),
        None => Err(bad("invalidSyntax", "Operations must be an array")),
    }
}

/// `PATCH /Users/{id}` with a PatchOp body → 200 with the resource.
async fn patch(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ops = match patch_ops(&headers, &body) {
        Ok(ops) => ops,
        Err(r) => return r,
    };
    let ops = &ops;
    let mut store = lock(&app.store);
    let Some(record) = find(&mut store.records, &id) else {
        return not_found(&id);
    };
    let mut attrs = match &record.user {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for op in ops {
        if let Err(r) = apply_op(&mut attrs, op) {
            return r;
        }
    }
    if let Err(r) = check_fields(&attrs, &["userName"], TYPES)
        .map_err(|m| bad("invalidValue", &m))
        .and_then(|_| check_user_name(&attrs))
    {
        return r;
    }
    let created = record.user["meta"]["created"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let version = version_of(&record.user) + 1;
    let res = resource(&app, &id, &attrs, &created, version);
    let new_name = user_name(&res).to_string();
    if taken(&store.records, &new_name, Some(&id)) {
        return conflict(&new_name);
    }
    if let Some(record) = find(&mut store.records, &id) {
        record.user = res.clone();
        record.modified = SystemTime::now();
    }
    drop(store);
    with_resource(StatusCode::OK, res)
}

async fn remove(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let mut store = lock(&app.store);
    let before = store.records.len();
    store
        .records
        .retain(|r| r.user.get("id").and_then(Value::as_str) != Some(id.as_str()));
    if store.records.len() == before {
        return not_found(&id);
    }
    StatusCode::NO_CONTENT.into_response()
}

// ---- Groups ----

const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// The groups a fresh sandbox holds: id and displayName alike.
pub const SEEDED_GROUPS: &[&str] = &["staff", "sales", "support", "engineering", "finance"];

fn group_resource(base_url: &str, id: &str, name: &str) -> Value {
    let now = now_rfc3339();
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": id,
        "displayName": name,
        "members": [],
        "meta": {
            "resourceType": "Group",
            "created": now,
            "lastModified": now,
            "location": format!("{base_url}/Groups/{id}"),
            "version": "W/\"1\"",
        },
    })
}

pub(crate) fn seed_groups(base_url: &str) -> Vec<Value> {
    SEEDED_GROUPS
        .iter()
        .map(|g| group_resource(base_url, g, g))
        .collect()
}

fn group_id(g: &Value) -> &str {
    g.get("id").and_then(Value::as_str).unwrap_or("")
}

/// `GET /Groups[?filter=displayName eq "x"]`.
async fn list_groups(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let mut name = None;
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        if k == "filter" {
            match parse_filter(&v) {
                Ok(f) if f.attr.eq_ignore_ascii_case("displayName") => name = Some(f.value),
                Ok(f) => {
                    return bad(
                        "invalidFilter",
                        &format!("Unsupported filter attribute {}", f.attr),
                    )
                }
                Err(m) => return bad("invalidFilter", &m),
            }
        }
    }
    let groups: Vec<Value> = lock(&app.store)
        .groups
        .iter()
        .filter(|g| {
            name.as_deref()
                .is_none_or(|n| g["displayName"].as_str() == Some(n))
        })
        .cloned()
        .collect();
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": groups.len(),
            "Resources": groups,
            "startIndex": 1,
            "itemsPerPage": groups.len(),
        }),
    )
}

async fn read_group(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let store = lock(&app.store);
    match store.groups.iter().find(|g| group_id(g) == id) {
        Some(g) => with_resource(StatusCode::OK, g.clone()),
        None => not_found(&id),
    }
}

/// `POST /Groups` with a displayName (unique): 201 with the new group.
async fn create_group(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check_content_type(&headers) {
        return r;
    }
    let name = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => match v.get("displayName").and_then(Value::as_str) {
            Some(n) if !n.trim().is_empty() => n.to_string(),
            _ => return bad("invalidValue", "displayName must be a non-empty string"),
        },
        Err(e) => return bad("invalidSyntax", &format!("Malformed JSON: {e}")),
    };
    let id = app.new_uuid();
    let group = group_resource(&app.base_url, &id, &name);
    let mut store = lock(&app.store);
    if store
        .groups
        .iter()
        .any(|g| g["displayName"].as_str() == Some(name.as_str()))
    {
        return error(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            &format!("displayName {name} is already in use"),
        );
    }
    store.groups.push(group.clone());
    drop(store);
    with_resource(StatusCode::CREATED, group)
}

/// `PATCH /Groups/{id}`: `add` to `members` (each value a user id; a member already there
/// stays once) and `remove` of `members[value eq "id"]`. An unknown group is 404; a member
/// that is no user is 400 `invalidValue`.
async fn patch_group(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ops = match patch_ops(&headers, &body) {
        Ok(ops) => ops,
        Err(r) => return r,
    };
    let ops = &ops;
    let mut store = lock(&app.store);
    let Some(gi) = store.groups.iter().position(|g| group_id(g) == id) else {
        return not_found(&id);
    };
    let mut members: Vec<Value> = store.groups[gi]["members"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        match (kind.as_str(), path) {
            ("add", "members") => {
                let Some(values) = op.get("value").and_then(Value::as_array) else {
                    return bad("invalidValue", "add members needs a list of {\"value\": id}");
                };
                for v in values {
                    let Some(uid) = v.get("value").and_then(Value::as_str) else {
                        return bad("invalidValue", "each member needs a value (a user id)");
                    };
                    let user = store
                        .records
                        .iter()
                        .find(|r| r.user.get("id").and_then(Value::as_str) == Some(uid));
                    let Some(user) = user else {
                        return bad("invalidValue", &format!("No user with id {uid}"));
                    };
                    let display = user_name(&user.user).to_string();
                    if !members.iter().any(|m| m["value"].as_str() == Some(uid)) {
                        members.push(json!({
                            "value": uid,
                            "display": display,
                            "$ref": format!("{}/Users/{uid}", app.base_url),
                        }));
                    }
                }
            }
            ("remove", p) if p.starts_with("members[") => {
                let Ok(f) = parse_filter(p.trim_start_matches("members[").trim_end_matches(']'))
                else {
                    return bad("invalidFilter", &format!("Unsupported path {p}"));
                };
                members.retain(|m| m["value"].as_str() != Some(f.value.as_str()));
            }
            _ => {
                return bad(
                    "invalidPath",
                    &format!("The sandbox patches members only (add, or remove members[value eq \"id\"]), not {kind} {path}"),
                )
            }
        }
    }
    let group = &mut store.groups[gi];
    group["members"] = Value::Array(members);
    let version = version_of(group) + 1;
    group["meta"]["version"] = Value::String(format!("W/\"{version}\""));
    group["meta"]["lastModified"] = Value::String(now_rfc3339());
    let group = group.clone();
    drop(store);
    with_resource(StatusCode::OK, group)
}
