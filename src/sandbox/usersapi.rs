//! The generic users API of `users-api-post-user.txt`: `POST /users/user` answers with the
//! user wrapped in `econtext.result.user`.
//!
//! The page shows no error; the sandbox answers errors as
//! `{"econtext": {"error": {"message": "..."}}}` with 400 (validation), 401 (auth),
//! 404, 409 (email in use), 429 and 503. The page also shows no read; `GET /users/user?email=`
//! and `GET /users/user/{id}` are sandbox extensions, handy for checks and tests.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{
    api_error, check_fields, json_response, lock, parse_object, App, Record, SandboxKind, Ty,
};

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/users/user", get(find).post(create))
        .route("/users/user/{id}", get(read))
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

async fn create(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let started = Instant::now();
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    let types = [
        ("email", Ty::Str),
        ("password", Ty::Str),
        ("name", Ty::Str),
        ("custom_data", Ty::ObjOrNull),
        ("applications", Ty::StrArr),
        ("groups", Ty::StrArr),
    ];
    if let Err(m) = check_fields(&body, &["email", "password", "name"], &types) {
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
    drop(store);
    ok(user, started)
}

/// Sandbox extension: `GET /users/user?email=` (all users without `email`).
async fn find(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let email = url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "email")
        .map(|(_, v)| v.into_owned());
    let users: Vec<Value> = lock(&app.store)
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
    json_response(
        StatusCode::OK,
        json!({"econtext": {"result": {"users": users}, "elapsed": started.elapsed().as_secs_f64()}}),
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
