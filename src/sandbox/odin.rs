//! The Odin API (Cisco BroadWorks) as described in `odin-post-user.md`, `odin-put-user.md`
//! and the notes in `shared/seeds/README.md`: token login, create/update/read a user, and
//! password generation.
//!
//! The pages show the user entity inside a one-element list; the sandbox answers with the
//! object itself, as the brief for the sandbox asks (the client accepts both).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::{
    api_error, check_fields, json_response, lock, parse_object, App, Record, SandboxKind, Ty,
};

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v2/auth/token", post(login).put(refresh))
        .route("/api/v2/users", get(read).post(create).put(update))
        .route("/api/v2/password/generate", get(password_generate))
        .route(
            "/api/v2/users/services",
            get(read_services).put(put_services),
        )
}

fn err(status: StatusCode, details: &str) -> Response {
    api_error(SandboxKind::Odin, status, details)
}

/// The fields whose type the sandbox checks (any other field is stored as given).
const TYPES: &[(&str, Ty)] = &[
    ("serviceProviderId", Ty::Str),
    ("groupId", Ty::Str),
    ("userId", Ty::Str),
    ("firstName", Ty::Str),
    ("lastName", Ty::Str),
    ("extension", Ty::Str),
    ("password", Ty::Str),
    ("callingLineIdFirstName", Ty::Str),
    ("callingLineIdLastName", Ty::Str),
    ("hiraganaFirstName", Ty::Str),
    ("hiraganaLastName", Ty::Str),
    ("language", Ty::Str),
    ("timeZone", Ty::Str),
    ("timeZoneDisplayName", Ty::Str),
    ("emailAddress", Ty::Str),
    ("phoneNumber", Ty::Str),
    ("callingLineIdPhoneNumber", Ty::Str),
    ("countryCode", Ty::Str),
    ("nationalPrefix", Ty::Str),
    ("title", Ty::Str),
    ("mobile", Ty::Str),
    ("pager", Ty::Str),
    ("addressLocation", Ty::Str),
    ("allowVideo", Ty::Bool),
    ("aliases", Ty::StrArr),
    ("address", Ty::Obj),
    ("department", Ty::Obj),
];

/// Fields a caller may not set: the identity of the user, and what the server owns.
const IMMUTABLE: &[&str] = &[
    "serviceProviderId",
    "groupId",
    "userId",
    "password",
    "domain",
];

fn str_field<'a>(body: &'a Map<String, Value>, name: &str) -> &'a str {
    body.get(name).and_then(Value::as_str).unwrap_or("")
}

/// The display name BroadWorks shows for a few common time zones; others show the zone id.
fn time_zone_display_name(tz: &str) -> String {
    match tz {
        "Europe/London" => "(GMT+01:00) Greenwich Mean Time".to_string(),
        "Europe/Paris" | "Europe/Berlin" | "Europe/Amsterdam" | "Europe/Oslo"
        | "Europe/Stockholm" | "Europe/Madrid" | "Europe/Rome" => {
            "(GMT+02:00) Central European Time".to_string()
        }
        "America/New_York" => "(GMT-04:00) (US) Eastern Time".to_string(),
        "America/Chicago" => "(GMT-05:00) (US) Central Time".to_string(),
        "America/Denver" => "(GMT-06:00) (US) Mountain Time".to_string(),
        "America/Los_Angeles" => "(GMT-07:00) (US) Pacific Time".to_string(),
        other => other.to_string(),
    }
}

impl App {
    /// A new bearer token, valid for `token_ttl`; expired tokens are forgotten on the way.
    fn new_token(&self) -> String {
        let token = self.random_string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            48,
        );
        let now = Instant::now();
        let mut tokens = lock(&self.tokens);
        // An expired token stays known for a while so that it is reported as expired.
        tokens.retain(|_, expires| {
            expires
                .checked_add(std::time::Duration::from_secs(3600))
                .is_none_or(|t| t > now)
        });
        // A huge TTL (from the command line) means "never expires", not an overflow panic.
        let expires = now
            .checked_add(self.cfg.token_ttl)
            .or_else(|| now.checked_add(std::time::Duration::from_secs(100 * 365 * 86_400)))
            .unwrap_or(now);
        tokens.insert(token.clone(), expires);
        token
    }
}

async fn login(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    let user = body.get("username").and_then(Value::as_str);
    let pass = body.get("password").and_then(Value::as_str);
    if user == Some(app.cfg.username.as_str()) && pass == Some(app.cfg.password.as_str()) {
        json_response(StatusCode::OK, json!({"token": app.new_token()}))
    } else {
        err(StatusCode::UNAUTHORIZED, "Invalid credentials")
    }
}

/// `PUT /auth/token`: the middleware has checked the bearer; the old token keeps working
/// until its own expiry.
async fn refresh(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, json!({"token": app.new_token()}))
}

/// The user entity exactly as `odin-post-user.md` shows it, with the given fields on top.
fn new_entity(body: &Map<String, Value>) -> Value {
    let user_id = str_field(body, "userId");
    let domain = user_id.split_once('@').map(|(_, d)| d).unwrap_or("");
    let first = str_field(body, "firstName");
    let last = str_field(body, "lastName");
    let mut e = json!({
        "serviceProviderId": str_field(body, "serviceProviderId"),
        "groupId": str_field(body, "groupId"),
        "userId": user_id,
        "lastName": last,
        "firstName": first,
        "callingLineIdLastName": last,
        "callingLineIdFirstName": first,
        "hiraganaLastName": last,
        "hiraganaFirstName": first,
        "extension": str_field(body, "extension"),
        "language": "English",
        "timeZone": "Europe/London",
        "timeZoneDisplayName": "(GMT+01:00) Greenwich Mean Time",
        "defaultAlias": user_id,
        "countryCode": "1",
        "allowVideo": true,
        "callingLineIdPhoneNumber": "",
        "phoneNumber": "",
        "domain": domain,
        "endpointType": "none",
        "aliases": [],
        "accessDeviceEndpoint": {"contacts": []},
        "trunkAddressing": {"trunkGroupDeviceEndpoint": {"contacts": []}},
        "department": {"serviceProviderId": "", "groupId": "", "name": ""},
        "emailAddress": "",
        "nationalPrefix": "",
        "phoneNumberActivated": false,
        "isEnterprise": true,
        "passwordExpiresDays": "-2147483648",
    });
    if let Value::Object(map) = &mut e {
        for (k, v) in body {
            if k != "password" && k != "domain" {
                map.insert(k.clone(), v.clone());
            }
        }
        if body.contains_key("timeZone") && !body.contains_key("timeZoneDisplayName") {
            let tz = time_zone_display_name(str_field(body, "timeZone"));
            map.insert("timeZoneDisplayName".into(), Value::String(tz));
        }
    }
    e
}

async fn create(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    let required = [
        "serviceProviderId",
        "groupId",
        "userId",
        "firstName",
        "lastName",
        "extension",
        "password",
    ];
    if let Err(m) = check_fields(&body, &required, TYPES) {
        return err(StatusCode::BAD_REQUEST, &m);
    }
    let user_id = str_field(&body, "userId");
    if !user_id.contains('@') || user_id.starts_with('@') || user_id.ends_with('@') {
        return err(
            StatusCode::BAD_REQUEST,
            &format!("Invalid userId: {user_id} (expected user@domain)"),
        );
    }
    for name in [
        "serviceProviderId",
        "groupId",
        "firstName",
        "lastName",
        "extension",
    ] {
        if str_field(&body, name).trim().is_empty() {
            return err(
                StatusCode::BAD_REQUEST,
                &format!("Field {name} must not be empty"),
            );
        }
    }
    let entity = new_entity(&body);
    let mut store = lock(&app.store);
    // BroadWorks user ids are case-sensitive.
    if store
        .records
        .iter()
        .any(|r| r.user.get("userId").and_then(Value::as_str) == Some(user_id))
    {
        return err(
            StatusCode::CONFLICT,
            &format!("User already exists: {user_id}"),
        );
    }
    store.records.push(Record {
        user: entity.clone(),
        modified: SystemTime::now(),
    });
    drop(store);
    json_response(StatusCode::OK, entity)
}

async fn update(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    if let Err(m) = check_fields(&body, &["serviceProviderId", "groupId", "userId"], TYPES) {
        return err(StatusCode::BAD_REQUEST, &m);
    }
    let sp = str_field(&body, "serviceProviderId");
    let group = str_field(&body, "groupId");
    let user_id = str_field(&body, "userId");
    let mut store = lock(&app.store);
    let record = store.records.iter_mut().find(|r| {
        r.user.get("userId").and_then(Value::as_str) == Some(user_id)
            && r.user.get("serviceProviderId").and_then(Value::as_str) == Some(sp)
            && r.user.get("groupId").and_then(Value::as_str) == Some(group)
    });
    let Some(record) = record else {
        return err(
            StatusCode::NOT_FOUND,
            &format!("User not found: {user_id} in group {sp}/{group}"),
        );
    };
    if let Value::Object(map) = &mut record.user {
        for (k, v) in &body {
            if !IMMUTABLE.contains(&k.as_str()) {
                map.insert(k.clone(), v.clone());
            }
        }
        if body.contains_key("timeZone") && !body.contains_key("timeZoneDisplayName") {
            let tz = time_zone_display_name(str_field(&body, "timeZone"));
            map.insert("timeZoneDisplayName".into(), Value::String(tz));
        }
    }
    record.modified = SystemTime::now();
    let entity = record.user.clone();
    drop(store);
    json_response(StatusCode::OK, entity)
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `GET /users?userId=`: the user object, or 404. Without `userId`,
/// `GET /users?serviceProviderId=&groupId=` lists the group's users (an array).
/// Query values are form-decoded, so a `+` in a user id must be sent as `%2B` (as on the
/// real server).
async fn read(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let q = query.as_deref();
    let Some(user_id) = query_param(q, "userId") else {
        let (Some(sp), Some(group)) = (
            query_param(q, "serviceProviderId"),
            query_param(q, "groupId"),
        ) else {
            return err(
                StatusCode::BAD_REQUEST,
                "Missing query parameter: userId, or serviceProviderId and groupId",
            );
        };
        let users: Vec<Value> = lock(&app.store)
            .records
            .iter()
            .filter(|r| {
                r.user.get("serviceProviderId").and_then(Value::as_str) == Some(sp.as_str())
                    && r.user.get("groupId").and_then(Value::as_str) == Some(group.as_str())
            })
            .map(|r| r.user.clone())
            .collect();
        return json_response(StatusCode::OK, Value::Array(users));
    };
    let store = lock(&app.store);
    match store
        .records
        .iter()
        .find(|r| r.user.get("userId").and_then(Value::as_str) == Some(user_id.as_str()))
    {
        Some(r) => json_response(StatusCode::OK, r.user.clone()),
        None => err(StatusCode::NOT_FOUND, &format!("User not found: {user_id}")),
    }
}

/// `GET /password/generate?serviceProviderId=&groupId=[&limit=N]`.
async fn password_generate(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let q = query.as_deref();
    if query_param(q, "serviceProviderId").is_none() || query_param(q, "groupId").is_none() {
        return err(
            StatusCode::BAD_REQUEST,
            "Missing query parameter: serviceProviderId and groupId are required",
        );
    }
    let one = || {
        // Mixed classes so that it meets a typical group password policy.
        let body = app.random_string(b"abcdefghijkmnpqrstuvwxyz", 6);
        let upper = app.random_string(b"ABCDEFGHJKLMNPQRSTUVWXYZ", 2);
        let digits = app.random_string(b"23456789", 3);
        let special = app.random_string(b"!#$%*+-=?", 1);
        format!("{upper}{body}{digits}{special}")
    };
    match query_param(q, "limit") {
        None => json_response(StatusCode::OK, json!({"password": one()})),
        Some(limit) => match limit.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => {
                let passwords: Vec<String> = (0..n).map(|_| one()).collect();
                json_response(StatusCode::OK, json!({"passwords": passwords}))
            }
            _ => err(
                StatusCode::BAD_REQUEST,
                &format!("Invalid limit: {limit} (expected 1 to 1000)"),
            ),
        },
    }
}

// ---- services (odins_spear `put.user_services()`, `get.user_services_assigned()`) ----

/// The service packs the sandbox's system offers; any other name is refused.
pub const SERVICE_PACKS: &[&str] = &["Basic", "Standard", "Premium", "Voicemail", "Mobility"];

/// The user's assignments as Odin lists them.
fn services_answer(user_id: &str, packs: &[String]) -> Value {
    json!({
        "userId": user_id,
        "userServices": [],
        "servicePackServices": packs
            .iter()
            .map(|p| json!({"serviceName": p, "assigned": true}))
            .collect::<Vec<_>>(),
    })
}

/// `PUT /users/services` with `{userId, servicePackServices: [{serviceName, assigned}]}`:
/// assigns (or with `assigned: false` unassigns) service packs. An unknown user is 404,
/// an unknown service pack 400, as BroadWorks refuses it.
async fn put_services(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    let user_id = str_field(&body, "userId").to_string();
    if user_id.is_empty() {
        return err(StatusCode::BAD_REQUEST, "Missing field: userId");
    }
    let mut changes = Vec::new();
    for key in ["servicePackServices", "userServices"] {
        let Some(list) = body.get(key) else { continue };
        let Some(list) = list.as_array() else {
            return err(StatusCode::BAD_REQUEST, &format!("{key} must be a list"));
        };
        for s in list {
            let name = s.get("serviceName").and_then(Value::as_str).unwrap_or("");
            let assigned = s.get("assigned").and_then(Value::as_bool).unwrap_or(true);
            if key == "userServices" || !SERVICE_PACKS.contains(&name) {
                return err(
                    StatusCode::BAD_REQUEST,
                    &format!("[Error 4008] Service not authorized or not found: {name:?}"),
                );
            }
            changes.push((name.to_string(), assigned));
        }
    }
    let mut store = lock(&app.store);
    let exists = store
        .records
        .iter()
        .any(|r| r.user.get("userId").and_then(Value::as_str) == Some(user_id.as_str()));
    if !exists {
        return err(StatusCode::NOT_FOUND, &format!("User not found: {user_id}"));
    }
    let packs = store.service_packs.entry(user_id.clone()).or_default();
    for (name, assigned) in changes {
        packs.retain(|p| *p != name);
        if assigned {
            packs.push(name);
        }
    }
    let answer = services_answer(&user_id, packs);
    drop(store);
    json_response(StatusCode::OK, answer)
}

/// `GET /users/services?userId=`: what is assigned.
async fn read_services(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let Some(user_id) = query_param(query.as_deref(), "userId") else {
        return err(StatusCode::BAD_REQUEST, "Missing query parameter: userId");
    };
    let store = lock(&app.store);
    if !store
        .records
        .iter()
        .any(|r| r.user.get("userId").and_then(Value::as_str) == Some(user_id.as_str()))
    {
        return err(StatusCode::NOT_FOUND, &format!("User not found: {user_id}"));
    }
    let packs = store
        .service_packs
        .get(&user_id)
        .cloned()
        .unwrap_or_default();
    drop(store);
    json_response(StatusCode::OK, services_answer(&user_id, &packs))
}
