//! The SuperOffice CRM WebAPI `User` agent of `superoffice-post-user.md`: create, read by
//! `AssociateId` or by `Name`, update with optimistic concurrency (`If-Unmodified-Since`).
//!
//! A duplicate `Name` is answered 400 with the SuperOffice error body: SuperOffice has no
//! 409 in its documented answers and reports a save that breaks a rule as a bad request
//! with `ErrorType`/`ErrorMessage`, so a client must read the message, not the status.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::{
    api_error, check_fields, json_response, lock, parse_object, App, Record, SandboxKind, Store, Ty,
};

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/User", post(create))
        .route("/api/v1/User/{key}", get(read).put(update))
        .route("/api/v1/Agents/User/SetPassword", post(set_password))
}

fn err(status: StatusCode, message: &str) -> Response {
    api_error(SandboxKind::SuperOffice, status, message)
}

/// The User entity's fields and their types, in the order of the page.
const TYPES: &[(&str, Ty)] = &[
    ("AssociateId", Ty::Int),
    ("Name", Ty::Str),
    ("Rank", Ty::Int),
    ("Tooltip", Ty::Str),
    ("LicenseOwners", Ty::ArrOrNull),
    ("Role", Ty::ObjOrNull),
    ("UserGroup", Ty::ObjOrNull),
    ("OtherGroups", Ty::ArrOrNull),
    ("Person", Ty::ObjOrNull),
    ("Deleted", Ty::Bool),
    ("EjUserId", Ty::Int),
    ("RequestSignature", Ty::Str),
    ("Type", Ty::Str),
    ("IsPersonRetired", Ty::Bool),
    ("IsOnTravel", Ty::Bool),
    ("Credentials", Ty::ArrOrNull),
    ("UserName", Ty::Str),
    ("TicketCategories", Ty::ArrOrNull),
    ("NickName", Ty::Str),
    ("WaitingForApproval", Ty::Bool),
    ("ExtraFields", Ty::ObjOrNull),
    ("CustomFields", Ty::ObjOrNull),
    ("PostSaveCommands", Ty::ArrOrNull),
];

/// Fields the server owns.
const SERVER_OWNED: &[&str] = &["AssociateId", "TableRight", "FieldProperties", "_Links"];

/// The `Type` values of the page.
const USER_TYPES: &[&str] = &[
    "InternalAssociate",
    "ResourceAssociate",
    "ExternalAssociate",
    "AnonymousAssociate",
    "SystemAssociate",
];

/// The entity with every field of `UserWithLinks`, defaults where the client gave none.
/// Dates never set are .NET's `DateTime.MinValue`, as the WebAPI serialises them.
fn new_entity(app: &App, id: i64, body: &Map<String, Value>) -> Value {
    let mut e = json!({
        "AssociateId": id,
        "Name": "",
        "Rank": 0,
        "Tooltip": "",
        "LicenseOwners": [],
        "Role": null,
        "UserGroup": null,
        "OtherGroups": [],
        "Person": null,
        "Deleted": false,
        "Lastlogin": "0001-01-01T00:00:00",
        "Lastlogout": "0001-01-01T00:00:00",
        "EjUserId": 0,
        "RequestSignature": "",
        "Type": "InternalAssociate",
        "IsPersonRetired": false,
        "IsOnTravel": false,
        "Credentials": [],
        "UserName": "",
        "TicketCategories": [],
        "NickName": "",
        "WaitingForApproval": false,
        "ExtraFields": {},
        "CustomFields": {},
        "PostSaveCommands": [],
        "TableRight": null,
        "FieldProperties": {},
        "_Links": {
            "Self": format!("{}/User/{id}", app.base_url),
            "Archive": format!("{}/User", app.base_url),
        },
    });
    if let Value::Object(m) = &mut e {
        merge(m, body);
    }
    e
}

/// Puts the client's fields over the entity (nested objects replaced whole).
fn merge(entity: &mut Map<String, Value>, body: &Map<String, Value>) {
    for (k, v) in body {
        if !SERVER_OWNED.contains(&k.as_str()) && k != "Password" {
            entity.insert(k.clone(), v.clone());
        }
    }
}

fn validate(body: &Map<String, Value>, creating: bool) -> Result<(), String> {
    let required: &[&str] = if creating { &["Name"] } else { &[] };
    check_fields(body, required, TYPES)?;
    if let Some(name) = body.get("Name").and_then(Value::as_str) {
        if name.trim().is_empty() {
            return Err("Name must not be empty".to_string());
        }
    }
    if let Some(t) = body.get("Type").and_then(Value::as_str) {
        if !USER_TYPES.contains(&t) {
            return Err(format!("Type must be one of {}", USER_TYPES.join(", ")));
        }
    }
    Ok(())
}

fn name_of(v: &Value) -> &str {
    v.get("Name").and_then(Value::as_str).unwrap_or("")
}

fn id_of(v: &Value) -> Option<i64> {
    v.get("AssociateId").and_then(Value::as_i64)
}

/// Finds a user by `AssociateId` (a numeric key) or by `Name` (case-insensitive).
fn find_index(store: &Store, key: &str) -> Option<usize> {
    match key.parse::<i64>() {
        Ok(id) => store
            .records
            .iter()
            .position(|r| id_of(&r.user) == Some(id)),
        Err(_) => store
            .records
            .iter()
            .position(|r| name_of(&r.user).eq_ignore_ascii_case(key)),
    }
}

fn name_in_use(name: &str) -> Response {
    err(
        StatusCode::BAD_REQUEST,
        &format!("The user name (initials) '{name}' is already in use by another user"),
    )
}

/// The entity with a `Last-Modified` header (HTTP dates have whole seconds).
fn entity_response(entity: Value, modified: SystemTime) -> Response {
    let mut resp = json_response(StatusCode::OK, entity);
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        resp.headers_mut().insert(header::LAST_MODIFIED, v);
    }
    resp
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

async fn create(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    if let Err(m) = validate(&body, true) {
        return err(StatusCode::BAD_REQUEST, &m);
    }
    let name = body.get("Name").and_then(Value::as_str).unwrap_or("");
    let mut store = lock(&app.store);
    if store
        .records
        .iter()
        .any(|r| name_of(&r.user).eq_ignore_ascii_case(name))
    {
        return name_in_use(name);
    }
    let id = store.next_id;
    store.next_id += 1;
    let entity = new_entity(&app, id, &body);
    let modified = SystemTime::now();
    store.records.push(Record {
        user: entity.clone(),
        modified,
    });
    drop(store);
    entity_response(entity, modified)
}

async fn read(State(app): State<Arc<App>>, Path(key): Path<String>) -> Response {
    let store = lock(&app.store);
    match find_index(&store, &key) {
        Some(i) => entity_response(store.records[i].user.clone(), store.records[i].modified),
        None => err(StatusCode::NOT_FOUND, &format!("User {key} not found")),
    }
}

/// `PUT /User/{AssociateId or Name}`: merges the given fields. With `If-Unmodified-Since`,
/// a record changed after that date gives 412.
async fn update(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    if let Err(m) = validate(&body, false) {
        return err(StatusCode::BAD_REQUEST, &m);
    }
    let unmodified_since = match headers.get(header::IF_UNMODIFIED_SINCE) {
        None => None,
        Some(v) => match v
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok())
        {
            Some(t) => Some(t),
            None => return err(StatusCode::BAD_REQUEST, "Invalid If-Unmodified-Since date"),
        },
    };
    let mut store = lock(&app.store);
    let Some(i) = find_index(&store, &key) else {
        return err(StatusCode::NOT_FOUND, &format!("User {key} not found"));
    };
    if let Some(since) = unmodified_since {
        if whole_seconds(store.records[i].modified) > since {
            return err(
                StatusCode::PRECONDITION_FAILED,
                &format!(
                    "User {key} was modified after {}",
                    httpdate::fmt_http_date(since)
                ),
            );
        }
    }
    let id = id_of(&store.records[i].user);
    if let Some(name) = body.get("Name").and_then(Value::as_str) {
        let clash = store
            .records
            .iter()
            .any(|r| id_of(&r.user) != id && name_of(&r.user).eq_ignore_ascii_case(name));
        if clash {
            return name_in_use(name);
        }
    }
    let record = &mut store.records[i];
    if let Value::Object(m) = &mut record.user {
        merge(m, &body);
    }
    record.modified = SystemTime::now();
    let (entity, modified) = (record.user.clone(), record.modified);
    drop(store);
    entity_response(entity, modified)
}

/// `POST /Agents/User/SetPassword` (the User agent's own password call): `AssociateId` and
/// `Password` (`AssociateId` a number, or a number in a string); answers `true`. The password is kept (never shown) by `AssociateId`; an unknown
/// `AssociateId` is 404.
async fn set_password(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    // The WebAPI reads JSON with Json.NET, which takes a number in a string for an Integer
    // (a step's `{{remote_id}}` comes as text from the journal).
    let id = match body.get("AssociateId") {
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(v) => v.as_i64(),
        None => None,
    };
    let Some(id) = id else {
        return err(
            StatusCode::BAD_REQUEST,
            "AssociateId is required and must be an integer",
        );
    };
    let password = match body.get("Password").and_then(Value::as_str) {
        Some(p) if !p.is_empty() => p,
        _ => return err(StatusCode::BAD_REQUEST, "Password is required"),
    };
    let mut store = lock(&app.store);
    if !store.records.iter().any(|r| id_of(&r.user) == Some(id)) {
        return err(StatusCode::NOT_FOUND, &format!("User {id} not found"));
    }
    store.passwords.insert(id.to_string(), password.to_string());
    drop(store);
    json_response(StatusCode::OK, Value::Bool(true))
}
