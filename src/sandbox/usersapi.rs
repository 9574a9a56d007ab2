//! The generic users API of `users-api-post-user.txt`: `POST /users/user` answers with the
//! user wrapped in `econtext.result.user`.
//!
//! The page shows no error; the sandbox answers errors as
//! `{"econtext": {"error": {"message": "..."}}}` with 400 (validation), 401 (auth),
//! 404, 409 (email in use), 429 and 503. The page also shows no read; `GET /users/user?email=`
//! and `GET /users/user/{id}` are sandbox extensions, handy for checks and tests, as is
//! `PUT /users/user/{id}`: by default it changes the fields its body holds; with
//! `--put replace` it stores exactly the body (email, name and groups required, anything
//! left out, the password too, cleared), the replace-style PUT many APIs have. With
//! `--create-answer location` a create answers `201` with a `Location` header and no body.
//! `PUT /users/user/{id}/status` with `{"status": "ENABLED"}` sets the account status a create
//! leaves `UNVERIFIED` (as Stormpath-style account APIs do with a second call).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use serde_json::{json, Value};

use super::{
    api_error, check_fields, json_response, lock, parse_object, App, Record, SandboxKind, Ty,
};

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/users/user", get(find).post(create))
        .route("/users/user/{id}", get(read).put(replace))
        .route("/users/user/{id}/status", put(set_status))
}

fn err(status: StatusCode, message: &str) -> Response {
    api_error(SandboxKind::UsersApi, status, message)
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub(crate) fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// The time format of the page: `2017-04-20 15:55:08.339000+00:00`.
fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f+00:00")
        .to_string()
}

/// An application or group the user is put in: the page shows whole objects in the answer
/// where the request had ids; the sandbox knows no names, so it fills in blanks.
fn linked(id: &str, group: bool, at: &str) -> Value {
    let mut v = json!({
        "status": "ENABLED",
        "href": "",
        "name": "",
        "custom_data": null,
        "created_at": at,
        "modified_at": at,
        "id": id,
        "description": "",
    });
    if group {
        if let Value::Object(m) = &mut v {
            m.insert("application".into(), Value::String(String::new()));
        }
    }
    v
}

fn ok(user: Value, started: Instant) -> Response {
    json_response(
        StatusCode::OK,
        json!({"econtext": {"result": {"user": user}, "elapsed": started.elapsed().as_secs_f64()}}),
    )
}

/// The fields a user may carry, with their types.
const TYPES: [(&str, Ty); 6] = [
    ("email", Ty::Str),
    ("password", Ty::Str),
    ("name", Ty::Str),
    ("custom_data", Ty::ObjOrNull),
    ("applications", Ty::StrArr),
    ("groups", Ty::StrArr),
];

async fn create(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let started = Instant::now();
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    if let Err(m) = check_fields(&body, &["email", "password", "name"], &TYPES) {
        return err(StatusCode::BAD_REQUEST, &m);
    }
    let email = body.get("email").and_then(Value::as_str).unwrap_or("");
    if !valid_email(email) {
        return err(
            StatusCode::BAD_REQUEST,
            &format!("Invalid email address: {email:?}"),
        );
    }
    let password = body.get("password").and_then(Value::as_str).unwrap_or("");
    if password.chars().count() < 7 {
        return err(
            StatusCode::BAD_REQUEST,
            "Password must be at least 7 characters long",
        );
    }
    let at = timestamp();
    let ids = |name: &str| -> Vec<String> {
        body.get(name)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let applications: Vec<Value> = ids("applications")
        .iter()
        .map(|id| linked(id, false, &at))
        .collect();
    let groups: Vec<Value> = ids("groups")
        .iter()
        .map(|id| linked(id, true, &at))
        .collect();
    let id = app.new_uuid();
    let user = json!({
        "username": "",
        "status": "UNVERIFIED",
        "applications": applications,
        "href": format!("api_url:users/user/{id}"),
        "groups": groups,
        "apikeys": [],
        "id": id,
        "name": body.get("name").cloned().unwrap_or(Value::Null),
        "created_at": at,
        "modified_at": at,
        "custom_data": body.get("custom_data").cloned().unwrap_or(Value::Null),
        "email": email,
    });
    let mut store = lock(&app.store);
    let taken = store.records.iter().any(|r| {
        r.user
            .get("email")
            .and_then(Value::as_str)
            .is_some_and(|e| e.eq_ignore_ascii_case(email))
    });
    if taken {
        return err(
            StatusCode::CONFLICT,
            &format!("A user with email {email} already exists"),
        );
    }
    store.records.push(Record {
        user: user.clone(),
        modified: SystemTime::now(),
    });
    store.passwords.insert(id.clone(), password.to_string());
    drop(store);
    if app.cfg.create_location {
        let mut resp = Response::new(axum::body::Body::empty());
        *resp.status_mut() = StatusCode::CREATED;
        let location = format!("{}/users/user/{id}", app.base_url);
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return resp;
    }
    ok(user, started)
}

/// Sandbox extension: `PUT /users/user/{id}`, merging or replacing (see the module).
async fn replace(State(app): State<Arc<App>>, Path(id): Path<String>, body: Bytes) -> Response {
    let started = Instant::now();
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    let replace = app.cfg.put_replace;
    let required: &[&str] = if replace {
        &["email", "name", "groups"]
    } else {
        &[]
    };
    if let Err(m) = check_fields(&body, required, &TYPES) {
        return err(StatusCode::BAD_REQUEST, &m);
    }
    let email = body.get("email").and_then(Value::as_str);
    if let Some(e) = email.filter(|e| !valid_email(e)) {
        return err(
            StatusCode::BAD_REQUEST,
            &format!("Invalid email address: {e:?}"),
        );
    }
    let password = body.get("password").and_then(Value::as_str);
    if password.is_some_and(|p| p.chars().count() < 7) {
        return err(
            StatusCode::BAD_REQUEST,
            "Password must be at least 7 characters long",
        );
    }
    let at = timestamp();
    let mut store = lock(&app.store);
    let same = |r: &Record| r.user.get("id").and_then(Value::as_str) == Some(id.as_str());
    if let Some(e) = email {
        let taken = store.records.iter().any(|r| {
            !same(r)
                && r.user
                    .get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.eq_ignore_ascii_case(e))
        });
        if taken {
            return err(
                StatusCode::CONFLICT,
                &format!("A user with email {e} already exists"),
            );
        }
    }
    let Some(record) = store.records.iter_mut().find(|r| same(r)) else {
        return err(StatusCode::NOT_FOUND, &format!("User not found: {id}"));
    };
    let linked_list = |name: &str, group: bool| -> Option<Value> {
        let ids = body.get(name)?.as_array()?;
        Some(Value::Array(
            ids.iter()
                .filter_map(Value::as_str)
                .map(|i| linked(i, group, &at))
                .collect(),
        ))
    };
    let user = &mut record.user;
    if replace {
        // The body is the whole user: what it leaves out is gone.
        user["applications"] = linked_list("applications", false).unwrap_or(json!([]));
        user["custom_data"] = body.get("custom_data").cloned().unwrap_or(Value::Null);
    } else {
        if let Some(v) = linked_list("applications", false) {
            user["applications"] = v;
        }
        if let Some(v) = body.get("custom_data") {
            user["custom_data"] = v.clone();
        }
    }
    if let Some(v) = linked_list("groups", true) {
        user["groups"] = v;
    }
    for name in ["email", "name"] {
        if let Some(v) = body.get(name) {
            user[name] = v.clone();
        }
    }
    user["modified_at"] = Value::String(at.clone());
    let user = user.clone();
    record.modified = SystemTime::now();
    match password {
        Some(p) => {
            store.passwords.insert(id.clone(), p.to_string());
        }
        None if replace => {
            store.passwords.remove(&id);
        }
        None => {}
    }
    drop(store);
    ok(user, started)
}

/// Sandbox extension: `GET /users/user?email=` (all users without `email`), a page at a
/// time with `limit` (and `cursor`, the opaque `next_cursor` of the page before; the last
/// page has none).
async fn find(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let (mut email, mut limit, mut cursor) = (None, None, 0usize);
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        let number = || v.parse::<usize>().ok();
        let bad = match k.as_ref() {
            "email" => {
                email = Some(v.to_string());
                false
            }
            "limit" => number().map(|n| limit = Some(n.max(1))).is_none(),
            "cursor" => number().map(|n| cursor = n).is_none(),
            _ => false,
        };
        if bad {
            return err(StatusCode::BAD_REQUEST, &format!("{k} must be a number"));
        }
    }
    let matching: Vec<Value> = lock(&app.store)
        .records
        .iter()
        .filter(|r| match &email {
            None => true,
            Some(e) => r
                .user
                .get("email")
                .and_then(Value::as_str)
                .is_some_and(|u| u.eq_ignore_ascii_case(e)),
        })
        .map(|r| r.user.clone())
        .collect();
    let end = limit.map_or(matching.len(), |l| (cursor + l).min(matching.len()));
    let users = matching.get(cursor.min(end)..end).unwrap_or_default();
    let mut result = json!({"users": users});
    if end < matching.len() {
        result["next_cursor"] = json!(end.to_string());
    }
    json_response(
        StatusCode::OK,
        json!({"econtext": {"result": result, "elapsed": started.elapsed().as_secs_f64()}}),
    )
}

/// Sandbox extension: `GET /users/user/{id}`.
async fn read(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let started = Instant::now();
    let found = lock(&app.store)
        .records
        .iter()
        .find(|r| r.user.get("id").and_then(Value::as_str) == Some(id.as_str()))
        .map(|r| r.user.clone());
    match found {
        Some(user) => ok(user, started),
        None => err(StatusCode::NOT_FOUND, &format!("User not found: {id}")),
    }
}

/// The account statuses `PUT /users/user/{id}/status` accepts.
const STATUSES: [&str; 3] = ["ENABLED", "DISABLED", "UNVERIFIED"];

/// `PUT /users/user/{id}/status`: sets the user's `status`; 404 for an unknown id.
async fn set_status(State(app): State<Arc<App>>, Path(id): Path<String>, body: Bytes) -> Response {
    let started = Instant::now();
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    let status = match body.get("status").and_then(Value::as_str) {
        Some(s) if STATUSES.contains(&s) => s.to_string(),
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                &format!("status must be one of {}", STATUSES.join(", ")),
            )
        }
    };
    let mut store = lock(&app.store);
    let Some(record) = store
        .records
        .iter_mut()
        .find(|r| r.user.get("id").and_then(Value::as_str) == Some(id.as_str()))
    else {
        return err(StatusCode::NOT_FOUND, &format!("User not found: {id}"));
    };
    record.user["status"] = Value::String(status);
    record.user["modified_at"] = Value::String(timestamp());
    record.modified = SystemTime::now();
    let user = record.user.clone();
    drop(store);
    ok(user, started)
}
