//! End to end: the real binary against the embedded sandbox, for every built-in profile.
//!
//! Each test starts [`enlist::sandbox`] in-process, runs `enlist run` (or `enlist demo`) on a
//! sheet, and then checks two things against each other: the outcome report, row by row,
//! and what the sandbox stored. The sample sheets and their deliberate mistakes are those of
//! `samples/README.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use enlist::sandbox::{self, RunningSandbox, SandboxConfig, SandboxKind};

use crate::workdir::{Run, Workdir};

async fn sandbox(kind: SandboxKind, tweak: impl FnOnce(&mut SandboxConfig)) -> RunningSandbox {
    let mut cfg = SandboxConfig {
        kind,
        ..SandboxConfig::default()
    };
    tweak(&mut cfg);
    sandbox::start(cfg).await.expect("start sandbox")
}

/// The environment variables the built-in profile reads its credentials from, set to the
/// sandbox's defaults.
fn creds(kind: SandboxKind) -> Vec<(&'static str, &'static str)> {
    match kind {
        SandboxKind::Odin => vec![
            ("ENLIST_ODIN_USERNAME", "admin"),
            ("ENLIST_ODIN_PASSWORD", "sandbox"),
        ],
        SandboxKind::SuperOffice => vec![
            ("ENLIST_SUPEROFFICE_USERNAME", "admin"),
            ("ENLIST_SUPEROFFICE_PASSWORD", "sandbox"),
        ],
        SandboxKind::UsersApi => vec![
            ("ENLIST_USERS_API_USERNAME", "admin"),
            ("ENLIST_USERS_API_PASSWORD", "sandbox"),
        ],
        SandboxKind::Scim => vec![("ENLIST_SCIM_TOKEN", "sandbox-token")],
    }
}

/// Runs `enlist run SHEET --profile KIND --base-url URL --report REPORT EXTRA...` off the
/// async runtime (the sandbox lives on it and must keep serving).
async fn run_enlist(
    wd: &Workdir,
    kind: SandboxKind,
    url: &str,
    sheet: &str,
    report: &str,
    extra: &[&str],
) -> Run {
    let mut args: Vec<String> = [
        "run",
        sheet,
        "--profile",
        kind.name(),
        "--base-url",
        url,
        "--report",
        report,
        "--progress",
        "never",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The profiles' production rates (10/s) would only slow the tests down.
    if !extra.contains(&"--rate") {
        args.extend(["--rate".to_string(), "200".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = wd.command(&[]);
    cmd.args(&args);
    for (k, v) in creds(kind) {
        cmd.env(k, v);
    }
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("run enlist"))
        .await
        .expect("join");
    Run { output }
}

/// The outcome lines of a JSON lines report (the summary line left out).
fn outcomes(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read report");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("report line is JSON"))
        .filter(|v| v.get("summary").is_none())
        .collect()
}

/// Spreadsheet row → status.
fn status_by_row(outs: &[Value]) -> BTreeMap<u64, String> {
    outs.iter()
        .map(|o| {
            (
                o["row"].as_u64().expect("row"),
                o["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

/// What samples/README.md says each of rows 2–26 must end as.
fn expected(invalid: &[u64]) -> BTreeMap<u64, String> {
    (2..=26)
        .map(|r| {
            let s = if invalid.contains(&r) {
                "invalid"
            } else if r == 25 {
                "skipped"
            } else {
                "created"
            };
            (r, s.to_string())
        })
        .collect()
}

fn sample_csv(kind: SandboxKind) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(format!("{}.csv", kind.name()));
    std::fs::read_to_string(p).expect("read sample")
}

/// The stored user whose `field` (a JSON pointer) is `value`.
fn find<'a>(users: &'a [Value], pointer: &str, value: &str) -> &'a Value {
    users
        .iter()
        .find(|u| u.pointer(pointer).and_then(Value::as_str) == Some(value))
        .unwrap_or_else(|| panic!("no stored user with {pointer} = {value}: {users:#?}"))
}

/// Runs the sample CSV of `kind` against a fresh sandbox and checks outcome against
/// samples/README.md and the state against the outcome. Returns the sandbox and workdir
/// for further runs.
async fn sample_run(kind: SandboxKind, invalid: &[u64], key: &str) -> (RunningSandbox, Workdir) {
    let sb = sandbox(kind, |_| {}).await;
    let wd = Workdir::new(&format!("e2e_{}", kind.name()));
    wd.write("sheet.csv", sample_csv(kind));
    let r = run_enlist(&wd, kind, &sb.base_url(), "sheet.csv", "out.jsonl", &[]).await;
    // The deliberate mistakes make a faithful run exit 1.
    r.expect_code(1);
    let outs = outcomes(&wd.path("out.jsonl"));
    assert_eq!(status_by_row(&outs), expected(invalid), "{}", r.stderr());
    let users = sb.users();
    let created: Vec<&str> = outs
        .iter()
        .filter(|o| o["status"] == "created")
        .map(|o| o["key"].as_str().expect("key"))
        .collect();
    assert_eq!(
        users.len(),
        created.len(),
        "state holds exactly the created rows"
    );
    for k in &created {
        find(&users, key, k);
    }
    (sb, wd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odin_sample_end_to_end_then_update() {
    let kind = SandboxKind::Odin;
    let (sb, wd) = sample_run(kind, &[6, 9, 13, 19, 22], "/userId").await;
    let users = sb.users();
    let zoe = find(&users, "/userId", "zoe.mueller@acme.example");
    // Text "0420" survives as text: the leading zero is the point.
    assert_eq!(zoe["extension"], "0420");
    assert_eq!(zoe["firstName"], "Zoë");
    assert_eq!(zoe["lastName"], "Müller");
    // Calling line id names were not in the sheet: the profile defaults them to the names.
    assert_eq!(zoe["callingLineIdFirstName"], "Zoë");
    assert_eq!(zoe["callingLineIdLastName"], "Müller");
    assert_eq!(zoe["department"]["name"], "Engineering");
    assert_eq!(zoe["language"], "German");
    assert_eq!(zoe["phoneNumber"], "+442079460420");
    assert_eq!(zoe["address"]["zipOrPostalCode"], "EC2M 2PP");
    let max = find(&users, "/userId", "max.devries@acme.example");
    assert_eq!(max["lastName"], "de Vries");
    assert_eq!(max["groupId"], "acme-london");
    assert!(users.iter().all(|u| u.get("password").is_none()));

    // Update: Oliver moves to Support; his email cell is blank, which must keep the stored
    // address (an empty cell means "no change", not "clear").
    let before = find(&users, "/userId", "oliver.bennett@acme.example").clone();
    let header = sample_csv(kind).lines().next().expect("header").to_string();
    let row = "acme-sp,acme-london,oliver.bennett@acme.example,Oliver,Bennett,2001,,,Support,+442079462001,English,Europe/London,1 Finsbury Avenue,London,Greater London,EC2M 2PP,GB,";
    wd.write("edit.csv", format!("{header}\n{row}\n"));
    let r = run_enlist(
        &wd,
        kind,
        &sb.base_url(),
        "edit.csv",
        "edit.jsonl",
        &["--mode", "update"],
    )
    .await;
    r.expect_code(0);
    assert_eq!(
        status_by_row(&outcomes(&wd.path("edit.jsonl"))),
        BTreeMap::from([(2, "updated".to_string())])
    );
    let users = sb.users();
    let after = find(&users, "/userId", "oliver.bennett@acme.example");
    assert_eq!(after["department"]["name"], "Support");
    assert_eq!(after["emailAddress"], before["emailAddress"]);
    assert_eq!(after["emailAddress"], "oliver.bennett@acme.example");
    assert_changed_only(&before, after, &["/department"]);
    assert_eq!(users.len(), 19, "an update creates nobody");
    sb.shutdown().await;
}

/// Every top-level field other than those under `changed` (and bookkeeping such as
/// modification times) is the same before and after.
fn assert_changed_only(before: &Value, after: &Value, changed: &[&str]) {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        panic!("users are objects");
    };
    let ignored = ["lastModified", "meta", "Updated", "UpdatedDate", "version"];
    for k in b.keys().chain(a.keys()) {
        let p = format!("/{k}");
        if changed.contains(&p.as_str()) || ignored.contains(&k.as_str()) {
            continue;
        }
        assert_eq!(
            b.get(k),
            a.get(k),
            "field {k} changed but the sheet did not say so"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_sample_end_to_end_then_update() {
    let kind = SandboxKind::Scim;
    let (sb, wd) = sample_run(kind, &[6, 9, 13, 19, 20, 22], "/userName").await;
    let users = sb.users();
    let alan = find(&users, "/userName", "alan.turing@example.com");
    assert_eq!(alan["name"]["givenName"], "Alan");
    assert_eq!(alan["name"]["familyName"], "Turing");
    // Display name not in the sheet: defaulted from the names.
    assert_eq!(alan["displayName"], "Alan Turing");
    assert_eq!(alan["emails"][0]["value"], "alan.turing@example.com");
    assert_eq!(alan["phoneNumbers"][0]["value"], "+1 555 010 1003");
    assert_eq!(alan["externalId"], "E1002");
    assert_eq!(alan["active"], true);
    let anita = find(&users, "/userName", "anita.borg@example.com");
    assert_eq!(anita["active"], false);
    assert_eq!(anita["displayName"], "Anita Borg");
    assert!(users.iter().all(|u| u.get("password").is_none()));

    // Update: Alan's title changes; his phone cell is blank and must keep the stored number.
    let before = alan.clone();
    let header = sample_csv(kind).lines().next().expect("header").to_string();
    let row = "alan.turing@example.com,Alan,Turing,,alan.turing@example.com,,Principal Researcher,E1002,yes,,";
    wd.write("edit.csv", format!("{header}\n{row}\n"));
    let r = run_enlist(
        &wd,
        kind,
        &sb.base_url(),
        "edit.csv",
        "edit.jsonl",
        &["--mode", "update"],
    )
    .await;
    r.expect_code(0);
    assert_eq!(
        status_by_row(&outcomes(&wd.path("edit.jsonl"))),
        BTreeMap::from([(2, "updated".to_string())])
    );
    let users = sb.users();
    let after = find(&users, "/userName", "alan.turing@example.com");
    assert_eq!(after["title"], "Principal Researcher");
    assert_eq!(after["phoneNumbers"], before["phoneNumbers"]);
    assert_changed_only(&before, after, &["/title"]);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superoffice_sample_end_to_end_then_update() {
    let kind = SandboxKind::SuperOffice;
    let (sb, wd) = sample_run(kind, &[6, 9, 13, 16, 19, 22], "/Name").await;
    let users = sb.users();
    let anna = find(&users, "/Name", "ABE");
    assert_eq!(anna["Person"]["Firstname"], "Anna");
    assert_eq!(anna["Person"]["Lastname"], "Berg");
    assert_eq!(anna["UserName"], "Anna.Berg@acme.example");
    assert_eq!(anna["Tooltip"], "Sales, Oslo");
    let bjorn = find(&users, "/Name", "BKR");
    assert_eq!(bjorn["Person"]["Firstname"], "Bjørn");
    // AssociateId: assigned by the target, distinct per user.
    let mut ids: Vec<i64> = users
        .iter()
        .map(|u| u["AssociateId"].as_i64().expect("AssociateId is a number"))
        .collect();
    assert!(ids.iter().all(|i| *i > 0));
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), users.len());

    // Update: Anna's tooltip changes; her nickname cell is blank and must stay "anna2".
    let before = anna.clone();
    let header = sample_csv(kind).lines().next().expect("header").to_string();
    let row = "ABE,Anna.Berg@acme.example,Anna,Berg,Anna.Berg@acme.example,InternalAssociate,,\"Sales, Bergen\",1,1,2,,";
    wd.write("edit.csv", format!("{header}\n{row}\n"));
    let r = run_enlist(
        &wd,
        kind,
        &sb.base_url(),
        "edit.csv",
        "edit.jsonl",
        &["--mode", "update"],
    )
    .await;
    r.expect_code(0);
    assert_eq!(
        status_by_row(&outcomes(&wd.path("edit.jsonl"))),
        BTreeMap::from([(2, "updated".to_string())])
    );
    let users = sb.users();
    let after = find(&users, "/Name", "ABE");
    assert_eq!(after["Tooltip"], "Sales, Bergen");
    assert_eq!(after["NickName"], "anna2");
    assert_eq!(after["AssociateId"], before["AssociateId"]);
    assert_changed_only(&before, after, &["/Tooltip"]);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_api_sample_end_to_end() {
    let kind = SandboxKind::UsersApi;
    let (sb, _wd) = sample_run(kind, &[6, 9, 13, 19, 22], "/email").await;
    let users = sb.users();
    let jane = find(&users, "/email", "jane.doe@example.com");
    assert_eq!(jane["name"], "Jane Doe");
    assert_eq!(jane["custom_data"]["employeeNumber"], "E1002");
    assert_eq!(jane["custom_data"]["plan"], "basic");
    // The API answers with group and application objects built from the ids sent.
    assert_eq!(jane["groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        jane["groups"][0]["id"],
        "5fb6f5d6-3a6d-4e1d-83bb-7445274745bf"
    );
    assert_eq!(jane["applications"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        jane["applications"][0]["id"],
        "609543d6-1cca-4039-9c1a-c843bda15ba4"
    );
    // Marcus has no group: nothing was sent, so he is in none (not in a group "").
    let marcus = find(&users, "/email", "marcus.reed@example.com");
    assert_eq!(marcus["groups"], serde_json::json!([]), "{marcus}");
    assert!(users.iter().all(|u| u.get("password").is_none()));
    sb.shutdown().await;
}

/// 2,000 rows through 503s, dropped connections (some after the change was applied) and a
/// rate limit: every row ends created exactly once, and the report agrees with the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_run_creates_every_row_exactly_once() {
    let kind = SandboxKind::Scim;
    let sb = sandbox(kind, |c| {
        c.fail_rate = 0.1;
        c.reset_rate = 0.02;
        c.rate_limit = Some(120);
        c.seed = 42;
    })
    .await;
    let wd = Workdir::new("e2e_faults");
    let mut csv = String::from("User Name,First Name,Last Name,Work Email\n");
    for i in 0..2000 {
        csv.push_str(&format!(
            "user{i:04}@example.com,First{i},Last{i},user{i:04}@example.com\n"
        ));
    }
    wd.write("many.csv", csv);
    let r = run_enlist(
        &wd,
        kind,
        &sb.base_url(),
        "many.csv",
        "many.jsonl",
        &[
            // Over the sandbox's 120/s so that some requests meet the 429, by a margin a
            // busy machine still reaches.
            "--rate",
            "160",
            "--concurrency",
            "8",
            "--max-attempts",
            "8",
            "--timeout",
            "5",
        ],
    )
    .await;
    r.expect_code(0);
    let outs = outcomes(&wd.path("many.jsonl"));
    assert_eq!(outs.len(), 2000);
    // After a reset past the change, the retry finds the user already there: with upsert
    // the row still ends created or updated, never twice.
    let statuses: HashMap<&str, usize> = outs.iter().fold(HashMap::new(), |mut m, o| {
        *m.entry(o["status"].as_str().expect("status")).or_default() += 1;
        m
    });
    let users = sb.users();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for u in &users {
        *by_key
            .entry(u["userName"].as_str().expect("userName"))
            .or_default() += 1;
    }
    assert_eq!(users.len(), 2000, "statuses {statuses:?}");
    assert_eq!(by_key.len(), 2000, "no duplicates");
    for o in &outs {
        let key = o["key"].as_str().expect("key");
        assert_eq!(by_key.get(key), Some(&1), "{key} stored exactly once");
        assert!(
            o["status"] == "created",
            "row {} ended {} ({})",
            o["row"],
            o["status"],
            o["message"]
        );
        let id = o["remote_id"].as_str().expect("remote id");
        let stored = find(&users, "/userName", key);
        assert_eq!(stored["id"], id, "the report's id is the stored one");
    }
    let stats = sb.stats();
    sb.shutdown().await;
    // The faults really happened (otherwise this test proves little).
    for knob in ["rate_limited", "resets", "failures"] {
        assert!(stats[knob].as_u64() > Some(0), "no {knob}: {stats}");
    }
    // Resets after the change: the create happened but the client never heard; the retry
    // must not have created the user a second time (checked above) nor ended failed.
    assert!(
        stats["by_path_status"]["POST /scim/v2/Users reset-after"].as_u64() > Some(0),
        "{stats}"
    );
}

#[test]
fn demo_runs_in_a_temp_dir_and_exits_0() {
    let wd = Workdir::new("e2e_demo");
    let r = wd.run(&["demo", "--dir", "d"]);
    r.expect_code(0);
    let err = r.stderr();
    assert!(err.contains("rows were invalid on purpose"), "{err}");
    assert!(err.contains("sandbox now holds 19 users"), "{err}");
    assert!(err.contains("odin.outcome.jsonl"), "{err}");
    let outs = outcomes(&wd.path("d/odin.outcome.jsonl"));
    assert_eq!(outs.len(), 25, "one outcome per sample row");
    assert_eq!(status_by_row(&outs), expected(&[6, 9, 13, 19, 22]));
    // A second demo keeps the first report and writes another.
    wd.run(&["demo", "--dir", "d", "--profile", "odin"])
        .expect_code(0);
    assert!(wd.path("d/odin.outcome-2.jsonl").exists());
    assert_eq!(outcomes(&wd.path("d/odin.outcome.jsonl")).len(), 25);
}
