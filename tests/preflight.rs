//! `enlist profiles test`: a profile checked against a live target (the embedded sandbox)
//! before a real run. A good profile passes and writes nothing; each common mistake fails
//! with the profile key to fix; `--key` shows what the lookup resolves to; `--canary`
//! creates one throw-away user, and only then.

use enlist::sandbox::{self, RunningSandbox, SandboxConfig, SandboxKind};

use crate::workdir::{counted, Run, Workdir};

const SCIM_TOKEN: &str = "sandbox-token";

async fn sandbox_of(kind: SandboxKind) -> RunningSandbox {
    sandbox::start(SandboxConfig {
        kind,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox")
}

fn env_of(kind: SandboxKind) -> Vec<(&'static str, &'static str)> {
    match kind {
        SandboxKind::Odin => vec![
            ("ENLIST_ODIN_USERNAME", "admin"),
            ("ENLIST_ODIN_PASSWORD", "sandbox"),
        ],
        SandboxKind::SuperOffice => vec![
            ("ENLIST_SUPEROFFICE_USERNAME", "admin"),
            ("ENLIST_SUPEROFFICE_PASSWORD", "sandbox"),
        ],
        _ => vec![("ENLIST_SCIM_TOKEN", SCIM_TOKEN)],
    }
}

/// `enlist profiles test -p PROFILE --base-url URL EXTRA…`, off the runtime the sandbox
/// serves on.
async fn preflight(
    wd: &Workdir,
    sb: &RunningSandbox,
    kind: SandboxKind,
    profile: &str,
    extra: &[&str],
) -> Run {
    let base = sb.base_url();
    let mut args = vec!["profiles", "test", "-p", profile, "--base-url", &base];
    args.extend_from_slice(extra);
    let mut cmd = wd.command(&args);
    for (k, v) in env_of(kind) {
        cmd.env(k, v);
    }
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("run enlist"))
        .await
        .expect("join");
    let run = Run { output };
    let all = format!("{}{}", run.stdout(), run.stderr());
    assert!(!all.contains(SCIM_TOKEN), "a secret was printed:\n{all}");
    run
}

/// Requests that could have written: anything but GET (and the odin login).
fn writes(sb: &RunningSandbox) -> u64 {
    let stats = sb.stats();
    ["POST /Users", "PUT", "PATCH", "DELETE", "POST /users"]
        .iter()
        .map(|p| counted(&stats, p))
        .sum()
}

/// A built-in profile written out to edit: its TOML text and the path to write it back to.
fn profile_copy(wd: &Workdir, name: &str) -> (String, std::path::PathBuf) {
    wd.run(&["profiles", "show", name, "--out", "p"])
        .expect_code(0);
    let path = wd.path(&format!("p/{name}.toml"));
    (
        std::fs::read_to_string(&path).expect("profile written"),
        path,
    )
}

fn edited(wd: &Workdir, name: &str, file: &str, from: &str, to: &str) -> String {
    let (toml, _) = profile_copy(wd, name);
    assert!(toml.contains(from), "{name}.toml no longer has {from:?}");
    let path = wd.write(&format!("p/{file}"), toml.replacen(from, to, 1));
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_scim_and_odin_profiles_pass_and_write_nothing() {
    for (kind, name) in [(SandboxKind::Scim, "scim"), (SandboxKind::Odin, "odin")] {
        let sb = sandbox_of(kind).await;
        let wd = Workdir::new(&format!("preflight-good-{name}"));
        let run = preflight(&wd, &sb, kind, name, &[]).await;
        run.expect_code(0);
        let out = run.stdout();
        assert!(
            out.contains("✓ requests.lookup") && out.contains("not found, as it should"),
            "{out}"
        );
        assert!(out.contains("every check passed"), "{out}");
        assert!(!out.contains('✗'), "{out}");
        if kind == SandboxKind::Odin {
            assert!(out.contains("✓ auth.login"), "{out}");
        }
        assert!(sb.users().is_empty(), "preflight created a user");
        assert_eq!(writes(&sb), 0, "preflight sent a write: {}", sb.stats());
        sb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_login_path_names_auth_login_path() {
    let sb = sandbox_of(SandboxKind::Odin).await;
    let wd = Workdir::new("preflight-login-path");
    let p = edited(
        &wd,
        "odin",
        "bad-path.toml",
        "path = \"/auth/token\", body",
        "path = \"/auth/login\", body",
    );
    let run = preflight(&wd, &sb, SandboxKind::Odin, &p, &[]).await;
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("✗ auth.login: POST /auth/login answered") && out.contains("auth.login.path"),
        "{out}"
    );
    assert!(!out.contains("password"), "{out}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_pointer_names_the_pointer_to_set() {
    let sb = sandbox_of(SandboxKind::Odin).await;
    let wd = Workdir::new("preflight-token-pointer");
    let p = edited(
        &wd,
        "odin",
        "bad-pointer.toml",
        "token_pointer = \"/token\"",
        "token_pointer = \"/access_token\"",
    );
    let run = preflight(&wd, &sb, SandboxKind::Odin, &p, &[]).await;
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("✗ auth.token_pointer /access_token: not in the answer")
            && out.contains("(keys: token)")
            && out.contains("set token_pointer = \"/token\""),
        "{out}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_that_cannot_tell_not_found_is_named() {
    // Odin answers 404 for a user it does not have; a lookup whose not_found says another
    // status (the loader refuses one with none at all) fails, naming the status to set.
    let sb = sandbox_of(SandboxKind::Odin).await;
    let wd = Workdir::new("preflight-not-found");
    let (toml, _) = profile_copy(&wd, "odin");
    let lookup = toml.find("[requests.lookup]").expect("odin has a lookup");
    let (head, tail) = toml.split_at(lookup);
    let tail = tail.replacen("not_found = [404]\n", "not_found = [410]\n", 1);
    let p = wd.write("p/no-not-found.toml", format!("{head}{tail}"));
    let run = preflight(&wd, &sb, SandboxKind::Odin, &p.display().to_string(), &[]).await;
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("✗ requests.lookup: answered 404 for a key that cannot exist")
            && out.contains("set not_found = [404]"),
        "{out}"
    );
    sb.shutdown().await;

    // SCIM answers 200 with an empty list: without list and match, that reads as found.
    let sb = sandbox_of(SandboxKind::Scim).await;
    let (toml, _) = profile_copy(&wd, "scim");
    let lookup = toml.find("[requests.lookup]").expect("scim has a lookup");
    let (head, tail) = toml.split_at(lookup);
    let tail = tail
        .replacen("list = \"/Resources\"\n", "", 1)
        .replacen("match = \"/userName\"\n", "", 1)
        .replacen("remote_id = \"/id\"\n", "", 1);
    let p = wd.write("p/no-list.toml", format!("{head}{tail}"));
    let run = preflight(&wd, &sb, SandboxKind::Scim, &p.display().to_string(), &[]).await;
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("✗ requests.lookup: answered 200 for a key that cannot exist")
            && out.contains("set not_found")
            && out.contains("list and match"),
        "{out}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_shows_the_user_and_remote_id_found() {
    let sb = sandbox_of(SandboxKind::Scim).await;
    let wd = Workdir::new("preflight-key");
    wd.write(
        "users.csv",
        "userName,givenName,familyName,email\nada.lovelace,Ada,Lovelace,ada@example.com\n\
         alan.turing,Alan,Turing,alan@example.com\n",
    );
    let base = sb.base_url();
    let mut cmd = wd.command(&[
        "run",
        "users.csv",
        "-p",
        "scim",
        "--base-url",
        &base,
        "--progress",
        "never",
    ]);
    cmd.env("ENLIST_SCIM_TOKEN", SCIM_TOKEN);
    let seeded = tokio::task::spawn_blocking(move || cmd.output().expect("run enlist"))
        .await
        .expect("join");
    assert!(seeded.status.success(), "{seeded:?}");
    let users = sb.users();
    let ada = users
        .iter()
        .find(|u| u["userName"] == "ada.lovelace")
        .expect("ada stored");
    let id = ada["id"].as_str().expect("an id").to_string();

    let run = preflight(
        &wd,
        &sb,
        SandboxKind::Scim,
        "scim",
        &["--key", "ada.lovelace"],
    )
    .await;
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains(&format!(
            "✓ requests.lookup ada.lovelace: found, remote id {id}"
        )) && out.contains("item 1 has /userName = ada.lovelace"),
        "{out}"
    );

    // A remote_id pointer the item does not have: named, with the keys the item has.
    let (toml, _) = profile_copy(&wd, "scim");
    let lookup = toml.find("[requests.lookup]").expect("scim has a lookup");
    let (head, tail) = toml.split_at(lookup);
    let tail = tail.replacen("remote_id = \"/id\"\n", "remote_id = \"/uid\"\n", 1);
    let p = wd.write("p/bad-id.toml", format!("{head}{tail}"));
    let p = p.display().to_string();
    let run = preflight(&wd, &sb, SandboxKind::Scim, &p, &["--key", "ada.lovelace"]).await;
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("✗ requests.lookup.remote_id /uid: not in the item found for ada.lovelace")
            && out.contains("userName"),
        "{out}"
    );

    let run = preflight(
        &wd,
        &sb,
        SandboxKind::Scim,
        "scim",
        &["--key", "grace.hopper"],
    )
    .await;
    run.expect_code(1);
    assert!(
        run.stdout()
            .contains("✗ requests.lookup grace.hopper: not found"),
        "{}",
        run.stdout()
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_creates_one_user_and_finds_it() {
    // SuperOffice's key column allows 20 characters: the made-up keys fit its rules.
    for (kind, name) in [
        (SandboxKind::Scim, "scim"),
        (SandboxKind::Odin, "odin"),
        (SandboxKind::SuperOffice, "superoffice"),
    ] {
        let sb = sandbox_of(kind).await;
        let wd = Workdir::new(&format!("preflight-canary-{name}"));
        preflight(&wd, &sb, kind, name, &[]).await.expect_code(0);
        assert!(sb.users().is_empty(), "a user was created without --canary");

        let run = preflight(&wd, &sb, kind, name, &["--canary"]).await;
        run.expect_code(0);
        let out = run.stdout();
        let users = sb.users();
        assert_eq!(users.len(), 1, "{out}");
        let key_field = match kind {
            SandboxKind::Odin => "userId",
            SandboxKind::SuperOffice => "Name",
            _ => "userName",
        };
        let key = users[0][key_field].as_str().expect("a key").to_string();
        assert!(
            key.starts_with("enlist-canary-") || key.starts_with("ecy"),
            "{key}"
        );
        assert!(
            out.contains(&format!("✓ requests.create: created the canary user {key}"))
                && out.contains(&format!("✓ requests.lookup: finds the canary {key}"))
                && out.contains(&format!("the canary user {key}"))
                && out.contains("was left on the target"),
            "{out}"
        );
        sb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_name_the_variable_and_never_show() {
    let sb = sandbox_of(SandboxKind::Scim).await;
    let wd = Workdir::new("preflight-credentials");
    let file = wd.write("secrets.env", "ENLIST_SCIM_TOKEN=not-the-token-4711\n");
    let file = file.display().to_string();
    let run = preflight(
        &wd,
        &sb,
        SandboxKind::Scim,
        "scim",
        &["--secret-file", &file],
    )
    .await;
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("✗ auth: the lookup answered 401: check $ENLIST_SCIM_TOKEN"),
        "{out}"
    );
    assert!(
        !format!("{out}{}", run.stderr()).contains("not-the-token-4711"),
        "the token was printed"
    );
    sb.shutdown().await;
}

#[test]
fn a_usage_mistake_exits_2() {
    let wd = Workdir::new("preflight-usage");
    wd.run(&["profiles", "test", "-p", "scim", "--no-such-flag"])
        .expect_code(2);
}
