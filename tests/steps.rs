//! Follow-up steps (`[[steps]]`): the SCIM profile puts each user in the groups of its
//! `groups` column (one `PATCH /Groups/{id}` add-member per group, RFC 7644 §3.5.2), the
//! Odin profile assigns service packs (`PUT /users/services`). Checked in the sandbox's own
//! state; a step that fails names row, step and group and makes the run fail; re-runs send
//! only the step requests not yet done, and never a second create.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use enlist::sandbox::{start, RunningSandbox, SandboxConfig, SandboxKind};

use crate::workdir::{counted, outcomes, run_bin, user_names_once, Run, Workdir};

async fn sandbox(kind: SandboxKind) -> RunningSandbox {
    start(SandboxConfig {
        kind,
        seed: 15,
        ..Default::default()
    })
    .await
    .expect("sandbox")
}

/// A SCIM sheet of `n` users; user `i` is in the groups `groups(i)`.
fn scim_sheet(n: usize, groups: impl Fn(usize) -> String) -> String {
    let mut s = String::from("userName,givenName,familyName,groups\n");
    for i in 0..n {
        s.push_str(&format!(
            "u{i}@example.com,Given{i},Family{i},{}\n",
            groups(i)
        ));
    }
    s
}

/// Every group's members, as userNames.
fn memberships(sb: &RunningSandbox) -> BTreeMap<String, BTreeSet<String>> {
    let names: BTreeMap<String, String> = sb
        .users()
        .iter()
        .map(|u| {
            (
                u["id"].as_str().unwrap_or("").to_string(),
                u["userName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    sb.groups()
        .iter()
        .map(|g| {
            let members = g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    let id = m["value"].as_str().unwrap_or("");
                    names.get(id).cloned().unwrap_or_else(|| format!("?{id}"))
                })
                .collect();
            (g["id"].as_str().unwrap_or("").to_string(), members)
        })
        .collect()
}

/// One `enlist run` of users.csv against `sb`, and the requests the sandbox counted for it
/// (the stats before and after). The credentials of every sandbox profile are set.
pub(crate) async fn run(
    wd: &Workdir,
    sb: &RunningSandbox,
    profile: &str,
    report: &str,
) -> (Run, Value, Value) {
    let before = sb.stats();
    let url = sb.base_url();
    let r = run_bin(
        wd,
        &[
            "run",
            "users.csv",
            "--profile",
            profile,
            "--base-url",
            &url,
            "--rate",
            "5000",
            "--report",
            report,
        ],
        &[
            ("ENLIST_SCIM_TOKEN", "sandbox-token"),
            ("ENLIST_ODIN_USERNAME", "admin"),
            ("ENLIST_ODIN_PASSWORD", "sandbox"),
            ("ENLIST_USERS_API_USERNAME", "admin"),
            ("ENLIST_USERS_API_PASSWORD", "sandbox"),
            ("ENLIST_SUPEROFFICE_USERNAME", "admin"),
            ("ENLIST_SUPEROFFICE_PASSWORD", "sandbox"),
        ],
    )
    .await;
    (r, before, sb.stats())
}

pub(crate) fn cost(before: &Value, after: &Value, prefix: &str) -> u64 {
    counted(after, prefix) - counted(before, prefix)
}

pub(crate) fn requests(before: &Value, after: &Value) -> u64 {
    after["requests"].as_u64().unwrap_or(0) - before["requests"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_users_land_in_their_groups() {
    let sb = sandbox(SandboxKind::Scim).await;
    let wd = Workdir::new("steps_groups");
    let groups = |i: usize| {
        if i.is_multiple_of(2) {
            "staff;sales".to_string()
        } else {
            "staff;support;engineering".to_string()
        }
    };
    wd.write("users.csv", scim_sheet(30, groups));
    let (r, before, after) = run(&wd, &sb, "scim", "first.jsonl").await;
    r.expect_code(0);
    assert!(r.stdout().contains("created=30"), "{}", r.stdout());
    assert_eq!(user_names_once(&sb).len(), 30);
    assert_eq!(
        cost(&before, &after, "PATCH /scim/v2/Groups/"),
        15 * 2 + 15 * 3
    );
    let m = memberships(&sb);
    for i in 0..30 {
        let name = format!("u{i}@example.com");
        for g in groups(i).split(';') {
            assert!(m[g].contains(&name), "{name} is not in {g}: {m:?}");
        }
    }
    assert_eq!(m["staff"].len(), 30);
    assert_eq!(m["finance"].len(), 0);
    let outs = outcomes(&wd.path("first.jsonl"));
    assert!(
        outs["u1@example.com"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("add to groups: staff, support, engineering")),
        "{:?}",
        outs["u1@example.com"]
    );

    // Nothing changed: nothing is sent.
    let (r, before, after) = run(&wd, &sb, "scim", "again.jsonl").await;
    r.expect_code(0);
    assert!(r.stdout().contains("unchanged=30"), "{}", r.stdout());
    assert_eq!(requests(&before, &after), 0, "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_names_its_group_and_a_rerun_sends_only_what_is_missing() {
    let sb = sandbox(SandboxKind::Scim).await;
    let wd = Workdir::new("steps_failed");
    // Row 9 (user 7) names a group the target does not have.
    let first = |i: usize| {
        if i == 7 {
            "staff;no-such-group;sales".to_string()
        } else {
            "staff;sales".to_string()
        }
    };
    wd.write("users.csv", scim_sheet(30, first));
    let (r, ..) = run(&wd, &sb, "scim", "first.jsonl").await;
    r.expect_code(1);
    let outs = outcomes(&wd.path("first.jsonl"));
    let bad = &outs["u7@example.com"];
    assert_eq!(bad["status"], "failed", "{bad}");
    assert_eq!(bad["row"], 9, "{bad}");
    let msg = bad["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("created; step 'add to groups' failed for 'no-such-group': 404"),
        "{msg}"
    );
    assert!(msg.contains("done: add to groups: staff"), "{msg}");
    assert_eq!(bad["steps"]["base"], "created", "{bad}");
    assert_eq!(
        bad["steps"]["done"],
        serde_json::json!(["add to groups: staff"])
    );
    assert_eq!(user_names_once(&sb).len(), 30);
    let m = memberships(&sb);
    assert!(m["staff"].contains("u7@example.com"));
    assert!(
        !m["sales"].contains("u7@example.com"),
        "steps stop at the failure"
    );

    // The sheet is fixed (the group it meant is "support"): only the two memberships
    // missing are sent, no create and no update.
    let fixed = |i: usize| {
        if i == 7 {
            "staff;support;sales".to_string()
        } else {
            "staff;sales".to_string()
        }
    };
    wd.write("users.csv", scim_sheet(30, fixed));
    let (r, before, after) = run(&wd, &sb, "scim", "fixed.jsonl").await;
    r.expect_code(0);
    assert!(
        r.stdout().contains("updated=1 ") && r.stdout().contains("unchanged=29"),
        "{}",
        r.stdout()
    );
    assert_eq!(
        cost(&before, &after, "PATCH /scim/v2/Groups/support 200"),
        1,
        "{after}"
    );
    assert_eq!(
        cost(&before, &after, "PATCH /scim/v2/Groups/sales 200"),
        1,
        "{after}"
    );
    assert_eq!(requests(&before, &after), 2, "{after}");
    let m = memberships(&sb);
    for g in ["staff", "support", "sales"] {
        assert!(m[g].contains("u7@example.com"), "{g}: {m:?}");
    }
    assert_eq!(m["staff"].len(), 30);
    assert_eq!(user_names_once(&sb).len(), 30);

    // And then nothing is left to send.
    let (r, before, after) = run(&wd, &sb, "scim", "last.jsonl").await;
    r.expect_code(0);
    assert_eq!(requests(&before, &after), 0, "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odin_assigns_service_packs_after_the_create() {
    let sb = sandbox(SandboxKind::Odin).await;
    let wd = Workdir::new("steps_odin");
    let mut s = String::from(
        "serviceProviderId,groupId,userId,firstName,lastName,extension,password,servicePacks\n",
    );
    for i in 0..10 {
        let packs = if i == 3 { "" } else { "Basic;Voicemail" };
        s.push_str(&format!(
            "sp,grp,u{i}@acme.example,F{i},L{i},{},Welcome-2024-{i},{packs}\n",
            100 + i
        ));
    }
    wd.write("users.csv", &s);
    let (r, before, after) = run(&wd, &sb, "odin", "odin.jsonl").await;
    r.expect_code(0);
    assert!(r.stdout().contains("created=10"), "{}", r.stdout());
    assert_eq!(cost(&before, &after, "PUT /api/v2/users/services 200"), 18);
    let packs = sb.service_packs();
    for i in 0..10 {
        let got = packs
            .get(&format!("u{i}@acme.example"))
            .cloned()
            .unwrap_or_default();
        if i == 3 {
            assert!(got.is_empty(), "{got:?}");
        } else {
            assert_eq!(got, ["Basic", "Voicemail"], "user {i}");
        }
    }
    // A pack added to one row: one request, for it alone.
    wd.write(
        "users.csv",
        s.replace("Welcome-2024-3,", "Welcome-2024-3,Premium"),
    );
    let (r, before, after) = run(&wd, &sb, "odin", "odin2.jsonl").await;
    r.expect_code(0);
    assert_eq!(
        cost(&before, &after, "PUT /api/v2/users/services 200"),
        1,
        "{after}"
    );
    assert_eq!(cost(&before, &after, "POST /api/v2/users "), 0, "{after}");
    assert_eq!(sb.service_packs()["u3@acme.example"], ["Premium"]);
}

/// A profile with one step (`step` is its TOML, after `[[steps]]`), loaded.
fn load_with_step(step: &str) -> Result<enlist::profile::Profile, String> {
    let text = format!(
        r#"
name = "t"
base_url_env = "T_URL"
key = "user"
[auth]
type = "none"
[requests.create]
method = "POST"
path = "/users"
body = {{ user = "{{{{user}}}}" }}
remote_id = "/id"
[[columns]]
name = "user"
[[columns]]
name = "groups"
type = "list"
[[columns]]
name = "title"
[[steps]]
{step}
"#
    );
    enlist::profile::Profile::parse(&text, "t.toml", &|f| Err(format!("no file {f}")))
        .map_err(|e| e.to_string())
}

#[test]
fn step_mistakes_are_refused_when_the_profile_loads() {
    let ok = load_with_step(
        r#"name = "join"
after = ["create"]
for_each = "groups"
method = "PATCH"
path = "/groups/{{item}}"
body = { add = "{{remote_id}}" }"#,
    );
    let p = ok.expect("a good step loads");
    assert_eq!(p.steps.len(), 1);
    // The list only steps use is no part of what the create sends, so it stays out of the
    // row's fingerprint (a new group is one step request, not an update).
    assert!(p.is_step_only("groups") && !p.is_step_only("user") && !p.is_step_only("title"));

    for (step, says) in [
        (
            "name = \"s\"\nafter = [\"created\"]\nmethod = \"POST\"\npath = \"/x\"",
            "steps[1] (\"s\").after lists \"created\"",
        ),
        (
            "name = \"s\"\nafter = [\"create\"]\nwhen = \"titel\"\nmethod = \"POST\"\npath = \"/x\"",
            "steps[1] (\"s\").when = \"titel\" is not a column",
        ),
        (
            "name = \"s\"\nafter = [\"create\"]\nfor_each = \"title\"\nmethod = \"POST\"\npath = \"/x/{{item}}\"",
            "for_each = \"title\": that column is not a list",
        ),
        (
            "name = \"s\"\nafter = [\"update\"]\nmethod = \"POST\"\npath = \"/x/{{item}}\"",
            "uses {{item}}, which is not a column",
        ),
        (
            "name = \"s\"\nafter = [\"create\"]\nfor_each = \"groups\"\nmethod = \"POST\"\npath = \"/x\"\nbody = { g = \"{{grups}}\" }",
            "uses {{grups}}, which is not a column",
        ),
        (
            "name = \"s\"\nafter = [\"create\"]\nmethod = \"SEND\"\npath = \"/x\"",
            "steps[1] (\"s\").method = \"SEND\"",
        ),
        (
            "name = \"s\"\nafter = [\"create\"]\nmethod = \"POST\"\npath = \"/x\"\nretry = [500]",
            "unknown field `retry`",
        ),
    ] {
        match load_with_step(step) {
            Ok(_) => panic!("loaded: {step}"),
            Err(e) => assert!(e.contains(says), "{e}\n(expected {says:?})"),
        }
    }
}

/// A profile of the user's own: a create, and a second call that sets the title only for
/// rows that have one (`when`).
const TITLE_PROFILE: &str = r#"
name = "scim-title"
base_url_env = "ENLIST_SCIM_URL"
key = "userName"
content_type = "application/scim+json"
[auth]
type = "bearer"
token_env = "ENLIST_SCIM_TOKEN"
[requests.create]
method = "POST"
path = "/Users"
body = { schemas = ["urn:ietf:params:scim:schemas:core:2.0:User"], userName = "{{userName}}" }
remote_id = "/id"
[[steps]]
name = "set title"
after = ["create"]
when = "title"
method = "PATCH"
path = "/Users/{{remote_id}}"
body = { schemas = ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations = [{ op = "replace", path = "title", value = "{{title}}" }] }
[[columns]]
name = "userName"
[[columns]]
name = "title"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_with_when_is_sent_only_for_rows_that_fill_the_column() {
    let sb = sandbox(SandboxKind::Scim).await;
    let wd = Workdir::new("steps_when");
    wd.write("title.toml", TITLE_PROFILE);
    let mut s = String::from("userName,title\n");
    for i in 0..12usize {
        let title = if i.is_multiple_of(3) { "Engineer" } else { "" };
        s.push_str(&format!("w{i}@example.com,{title}\n"));
    }
    wd.write("users.csv", &s);
    let profile = wd.path("title.toml").display().to_string();
    let (r, before, after) = run(&wd, &sb, &profile, "when.jsonl").await;
    r.expect_code(0);
    assert_eq!(cost(&before, &after, "POST /scim/v2/Users 201"), 12);
    assert_eq!(cost(&before, &after, "PATCH /scim/v2/Users/{id} 200"), 4);
    for u in sb.users() {
        let n: usize = u["userName"].as_str().unwrap_or("")[1..]
            .split('@')
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(99);
        let want = if n.is_multiple_of(3) {
            Some("Engineer")
        } else {
            None
        };
        assert_eq!(u["title"].as_str(), want, "{u}");
    }
}
