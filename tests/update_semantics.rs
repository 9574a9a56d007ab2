//! Profiles that reach replace-style APIs as they are: what an update body means
//! (`semantics = "merge" | "replace"`), what an empty cell sends (`empty = ...`), a remote
//! id taken from a create's `Location` header, and a changed password noticed without the
//! password being stored.
//!
//! The real binary runs against the embedded users-api sandbox, whose
//! `PUT /users/user/{id}` stores exactly its body with `put_replace` (`enlist sandbox
//! --put replace`) and whose create answers `201` + `Location` only with `create_location`
//! (`--create-answer location`).

use serde_json::{json, Value};

use enlist::sandbox::{self, RunningSandbox, SandboxConfig, SandboxKind};

use crate::workdir::{counted, outcomes, run_bin, status, Run, Workdir};

const BODY: &str = r#"{
  "email": "{{email}}",
  "password": "{{password}}",
  "name": "{{name}}",
  "custom_data": "{{custom_data}}",
  "groups": "{{groups}}"
}"#;

/// A users-api profile with an update by id (PUT) and a lookup by email. `update` and
/// `groups` are extra lines for `[requests.update]` and the groups column; `create` those
/// of `[requests.create]` (its remote id).
fn profile(create: &str, update: &str, groups: &str) -> String {
    format!(
        r#"name = "users-put"
base_url_env = "ENLIST_USERS_API_URL"
key = "email"
rate = 1000.0
concurrency = 4

[auth]
type = "basic"
username_env = "ENLIST_USERS_API_USERNAME"
password_env = "ENLIST_USERS_API_PASSWORD"

[responses]
error_message = ["/econtext/error/message"]

[requests.create]
method = "POST"
path = "/users/user"
body = "body.json"
conflict = [409]
{create}

[requests.update]
method = "PUT"
path = "/users/user/{{{{remote_id}}}}"
body = "body.json"
not_found = [404]
{update}

[requests.lookup]
method = "GET"
path = "/users/user"
query = {{ email = "{{{{email}}}}" }}
list = "/econtext/result/users"
match = "/email"
remote_id = "/id"

[[columns]]
name = "email"
required = true
email = true

[[columns]]
name = "password"
secret = true
required_on_create = true
min_length = 7

[[columns]]
name = "name"
required = true

[[columns]]
name = "custom_data"
type = "json"
default = '{{"team": "none"}}'

[[columns]]
name = "groups"
type = "list"
{groups}
"#
    )
}

const BODY_ID: &str = r#"remote_id = "/econtext/result/user/id""#;

async fn users_api(put_replace: bool, create_location: bool) -> RunningSandbox {
    sandbox::start(SandboxConfig {
        kind: SandboxKind::UsersApi,
        put_replace,
        create_location,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox")
}

const ENV: [(&str, &str); 2] = [
    ("ENLIST_USERS_API_USERNAME", "admin"),
    ("ENLIST_USERS_API_PASSWORD", "sandbox"),
];

/// `enlist run SHEET -p profile.toml --mode upsert` with a JSON lines report.
async fn run(wd: &Workdir, base: &str, sheet: &str, report: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "run",
        sheet,
        "-p",
        "profile.toml",
        "--base-url",
        base,
        "--mode",
        "upsert",
        "--rate",
        "1000",
        "--report",
        report,
    ];
    args.extend_from_slice(extra);
    run_bin(wd, &args, &ENV).await
}

/// The stored user with this email.
fn stored(sb: &RunningSandbox, email: &str) -> Value {
    sb.users()
        .into_iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("no user {email} on the target"))
}

fn group_ids(u: &Value) -> Vec<String> {
    u["groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

const CREATED: &str = "email,password,name,custom_data,groups\n\
    ann@example.com,Secret-ann1,Ann,\"{\"\"team\"\": \"\"red\"\"}\",g1;g2\n\
    bob@example.com,Secret-bob1,Bob,,g1;g2\n\
    cid@example.com,Secret-cid1,Cid,,g1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_update_clears_a_replace_servers_password_and_needs_every_list() {
    let sb = users_api(true, false).await;
    let base = sb.base_url();
    let wd = Workdir::new("semantics-merge");
    wd.write("body.json", BODY);
    wd.write("profile.toml", profile(BODY_ID, "", ""));
    wd.write("first.csv", CREATED);
    run(&wd, &base, "first.csv", "first.jsonl", &[])
        .await
        .expect_code(0);
    assert!(sb.password_matches("ann@example.com", "Secret-ann1"));

    // The sheet of changes a person hands over: no password column, one groups cell empty.
    wd.write(
        "second.csv",
        "email,name,groups\n\
         ann@example.com,Ann Renamed,g1;g2\n\
         bob@example.com,Bob Renamed,\n",
    );
    let r = run(&wd, &base, "second.csv", "second.jsonl", &[]).await;
    r.expect_code(1);
    let outs = outcomes(&wd.path("second.jsonl"));
    // The problem a replace server shows: the update "worked", and the password is gone,
    // the custom data too.
    assert_eq!(status(&outs, "ann@example.com"), "updated");
    let ann = stored(&sb, "ann@example.com");
    assert_eq!(ann["name"], "Ann Renamed");
    assert!(!sb.password_matches("ann@example.com", "Secret-ann1"));
    assert_eq!(ann["custom_data"], Value::Null);
    // And a list the server requires cannot be left out.
    assert_eq!(status(&outs, "bob@example.com"), "failed");
    let msg = outs["bob@example.com"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("groups"), "{msg}");
    assert_eq!(stored(&sb, "bob@example.com")["name"], "Bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replace_update_keeps_the_password_and_an_empty_list_cell_sends_an_empty_list() {
    let sb = users_api(true, false).await;
    let base = sb.base_url();
    let wd = Workdir::new("semantics-replace");
    wd.write("body.json", BODY);
    wd.write(
        "profile.toml",
        profile(
            BODY_ID,
            r#"semantics = "replace""#,
            r#"empty = "empty-list""#,
        ),
    );
    wd.write("first.csv", CREATED);
    run(&wd, &base, "first.csv", "first.jsonl", &[])
        .await
        .expect_code(0);
    assert_eq!(
        stored(&sb, "bob@example.com")["custom_data"],
        json!({"team": "none"})
    );

    wd.write(
        "second.csv",
        "email,password,name,custom_data,groups\n\
         ann@example.com,Secret-ann1,Ann Renamed,\"{\"\"team\"\": \"\"red\"\"}\",g1;g2\n\
         bob@example.com,Secret-bob1,Bob,,\n\
         cid@example.com,,Cid Renamed,,g1\n",
    );
    let r = run(&wd, &base, "second.csv", "second.jsonl", &[]).await;
    r.expect_code(1);
    let outs = outcomes(&wd.path("second.jsonl"));

    assert_eq!(status(&outs, "ann@example.com"), "updated");
    let ann = stored(&sb, "ann@example.com");
    assert_eq!(ann["name"], "Ann Renamed");
    assert!(sb.password_matches("ann@example.com", "Secret-ann1"));
    assert_eq!(ann["custom_data"], json!({"team": "red"}));
    assert_eq!(group_ids(&ann), ["g1", "g2"]);

    // An empty groups cell sends [] (the server requires the list), and the default
    // custom data is sent on the update too, so the stored one is not cleared.
    assert_eq!(status(&outs, "bob@example.com"), "updated");
    let bob = stored(&sb, "bob@example.com");
    assert_eq!(group_ids(&bob), Vec::<String>::new());
    assert_eq!(bob["custom_data"], json!({"team": "none"}));
    assert!(sb.password_matches("bob@example.com", "Secret-bob1"));

    // No password cell: the whole-user update is not sent, and the row says why.
    assert_eq!(status(&outs, "cid@example.com"), "failed");
    let msg = outs["cid@example.com"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("password") && msg.contains("empty"), "{msg}");
    assert_eq!(stored(&sb, "cid@example.com")["name"], "Cid");
    assert!(sb.password_matches("cid@example.com", "Secret-cid1"));
}

/// Requests the sandbox has answered so far.
fn requests(sb: &RunningSandbox) -> u64 {
    sb.stats()["requests"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_id_from_the_location_header_serves_later_updates() {
    let sb = users_api(false, true).await;
    let base = sb.base_url();
    let wd = Workdir::new("semantics-location");
    wd.write("body.json", BODY);
    wd.write(
        "profile.toml",
        profile(
            "success = [201]\nremote_id_header = \"Location\"\n\
             remote_id_pattern = '/users/user/([^/]+)$'",
            "",
            "",
        ),
    );
    let sheet = |renamed: usize| {
        let mut s = String::from("email,password,name,groups\n");
        for i in 0..20 {
            let name = if i < renamed {
                format!("User {i} Renamed")
            } else {
                format!("User {i}")
            };
            s.push_str(&format!("u{i}@example.com,Secret-{i:03},{name},g{i}\n"));
        }
        s
    };
    wd.write("users.csv", sheet(0));
    let state = ["--state", "state"];
    let first = ["--state", "state", "--upsert-order", "create-first"];
    let r = run(&wd, &base, "users.csv", "first.jsonl", &first).await;
    r.expect_code(0);
    let outs = outcomes(&wd.path("first.jsonl"));
    assert_eq!(outs.len(), 20);
    for (key, o) in &outs {
        let id = stored(&sb, key)["id"].clone();
        assert_eq!(o["status"], "created", "{key}: {o}");
        assert_eq!(o["remote_id"], id, "{key}: the id in the Location header");
    }
    // One create each: the empty 201 answer was enough, no lookup to learn the id.
    assert_eq!(counted(&sb.stats(), "POST /users/user 201"), 20);
    assert_eq!(counted(&sb.stats(), "GET "), 0);

    wd.write("users.csv", sheet(5));
    let before = sb.stats();
    let r = run(&wd, &base, "users.csv", "second.jsonl", &state).await;
    r.expect_code(0);
    let after = sb.stats();
    let outs = outcomes(&wd.path("second.jsonl"));
    for i in 0..20 {
        let key = format!("u{i}@example.com");
        let want = if i < 5 { "updated" } else { "unchanged" };
        assert_eq!(status(&outs, &key), want, "{key}");
    }
    // Five changed rows, one PUT each to the id the journal kept, nothing else.
    let sent = after["requests"].as_u64().unwrap_or(0) - before["requests"].as_u64().unwrap_or(0);
    assert_eq!(sent, 5);
    assert_eq!(
        counted(&after, "PUT /users/user/") - counted(&before, "PUT /users/user/"),
        5
    );
    for i in 0..5 {
        let u = stored(&sb, &format!("u{i}@example.com"));
        assert_eq!(u["name"], format!("User {i} Renamed"));
    }
    assert_eq!(sb.users().len(), 20);
}

#[test]
fn a_remote_id_pattern_needs_one_group_and_each_new_key_is_checked_at_load() {
    let wd = Workdir::new("semantics-pattern");
    wd.write("body.json", BODY);
    wd.write(
        "users.csv",
        "email,password,name\na@example.com,Secret-1,A\n",
    );
    for (create, says) in [
        (
            "remote_id_header = \"Location\"\nremote_id_pattern = '/users/user/[^/]+$'",
            "0 capture groups",
        ),
        (
            "remote_id_header = \"Location\"\nremote_id_pattern = '/(users)/user/([^/]+)$'",
            "2 capture groups",
        ),
        (
            "remote_id_pattern = '/users/user/([^/]+)$'",
            "needs remote_id_header",
        ),
    ] {
        wd.write("profile.toml", profile(create, "", ""));
        let r = wd.run(&["check", "users.csv", "-p", "profile.toml"]);
        r.expect_code(3);
        assert!(
            r.stderr().contains("remote_id_pattern") && r.stderr().contains(says),
            "{create}: {}",
            r.stderr()
        );
    }
    // The other keys of this module, each refused where it means nothing.
    let on_lookup = profile(BODY_ID, "", "").replace(
        "match = \"/email\"",
        "match = \"/email\"\nsemantics = \"replace\"",
    );
    for (text, says) in [
        (profile(BODY_ID, "", "empty = \"nothing\""), "nothing"),
        (
            profile(BODY_ID, "", "empty = \"default\""),
            "column groups: empty = \"default\" but the column has no default",
        ),
        (
            profile(BODY_ID, "remote_id_header = \"Location\"", ""),
            "remote_id_header belongs to requests.create",
        ),
        (
            profile(
                &format!("{BODY_ID}\nremote_id_header = \"Location\""),
                "",
                "",
            ),
            "both remote_id and remote_id_header",
        ),
        (
            on_lookup,
            "semantics belongs to requests.create and requests.update",
        ),
    ] {
        wd.write("profile.toml", text);
        let r = wd.run(&["check", "users.csv", "-p", "profile.toml"]);
        r.expect_code(3);
        assert!(r.stderr().contains(says), "{says}: {}", r.stderr());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_resends_its_row_and_only_a_keyed_hash_is_kept() {
    let sb = users_api(false, false).await;
    let base = sb.base_url();
    let wd = Workdir::new("semantics-password");
    wd.write("body.json", BODY);
    wd.write("profile.toml", profile(BODY_ID, "", ""));
    let sheet = |bob: &str| {
        format!(
            "email,password,name\n\
             ann@example.com,Secret-ann1,Ann\n\
             bob@example.com,{bob},Bob\n\
             cid@example.com,Secret-cid1,Cid\n"
        )
    };
    let state = ["--state", "state"];
    wd.write("users.csv", sheet("Secret-bob1"));
    run(&wd, &base, "users.csv", "1.jsonl", &state)
        .await
        .expect_code(0);
    let n = requests(&sb);
    assert_eq!(sb.users().len(), 3);

    run(&wd, &base, "users.csv", "2.jsonl", &state)
        .await
        .expect_code(0);
    assert_eq!(requests(&sb), n, "an unchanged sheet sends nothing");

    wd.write("users.csv", sheet("Secret-bob2"));
    run(&wd, &base, "users.csv", "3.jsonl", &state)
        .await
        .expect_code(0);
    assert_eq!(requests(&sb), n + 1, "exactly the changed password's row");
    let outs = outcomes(&wd.path("3.jsonl"));
    assert_eq!(status(&outs, "bob@example.com"), "updated");
    assert_eq!(status(&outs, "ann@example.com"), "unchanged");
    assert!(sb.password_matches("bob@example.com", "Secret-bob2"));

    run(&wd, &base, "users.csv", "4.jsonl", &state)
        .await
        .expect_code(0);
    assert_eq!(requests(&sb), n + 1, "and then nothing again");

    use std::os::unix::fs::PermissionsExt;
    let key = wd.path("state/secret-hash.key");
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read(&key).expect("read key").len(), 32);
    for entry in std::fs::read_dir(wd.path("state")).expect("state dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read state file");
        for secret in ["Secret-ann1", "Secret-bob1", "Secret-bob2"] {
            assert!(
                memchr::memmem::find(&bytes, secret.as_bytes()).is_none(),
                "{} holds a password",
                path.display()
            );
        }
    }

    // A key others can read is refused, with what to do.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let r = run(&wd, &base, "users.csv", "5.jsonl", &state).await;
    assert_ne!(r.code(), 0);
    assert!(
        r.stderr().contains("secret-hash.key") && r.stderr().contains("chmod 600"),
        "{}",
        r.stderr()
    );
    assert_eq!(requests(&sb), n + 1);
}

#[test]
fn each_empty_rule_sends_what_it_names_on_an_update() {
    let wd = Workdir::new("semantics-empty-rules");
    wd.write(
        "body.json",
        r#"{"email": "{{email}}", "name": "{{name}}", "nick": "{{nick}}", "note": "{{note}}",
            "team": "{{team}}", "groups": "{{groups}}", "display": "{{name}} ({{nick}})"}"#,
    );
    wd.write(
        "profile.toml",
        r#"name = "rules"
base_url_env = "X_URL"
key = "email"
[auth]
type = "none"
[requests.update]
method = "PATCH"
path = "/users/{{email}}"
body = "body.json"
[[columns]]
name = "email"
required = true
[[columns]]
name = "name"
default = "nobody"
[[columns]]
name = "nick"
empty = "empty-string"
[[columns]]
name = "note"
empty = "null"
[[columns]]
name = "team"
default = "none"
empty = "default"
[[columns]]
name = "groups"
type = "list"
empty = "empty-list"
"#,
    );
    wd.write(
        "users.csv",
        "email,name,nick,note,team,groups\na@example.com,,,,,\nb@example.com,Bo,,,,\n",
    );
    let r = wd.run(&[
        "check",
        "users.csv",
        "-p",
        "profile.toml",
        "--show-requests",
        "2",
    ]);
    r.expect_code(0);
    let out = r.stdout();
    // The JSON bodies, in row order.
    let bodies: Vec<Value> = out
        .split("Content-Type: application/json\n")
        .skip(1)
        .map(|rest| {
            let end = rest.find("\n}").map(|i| i + 2).unwrap_or(rest.len());
            serde_json::from_str(&rest[..end]).expect("body is JSON")
        })
        .collect();
    // A merge update leaves the name's default out; `empty` decides the rest, and mixed
    // text renders its empty part as "".
    assert_eq!(
        bodies,
        [
            json!({"email": "a@example.com", "nick": "", "note": null, "team": "none",
                   "groups": [], "display": " ()"}),
            json!({"email": "b@example.com", "name": "Bo", "nick": "", "note": null,
                   "team": "none", "groups": [], "display": "Bo ()"}),
        ],
        "{out}"
    );
}
