//! The command line's small things (issue 16): missing settings named at once, profile
//! names with a "did you mean", `-p/--profile` on every command, shell completions and the
//! man page, and the warning of a resumed run. Each test runs the real binary.

use std::time::Duration;

use enlist::sandbox::{self, SandboxConfig, SandboxKind};

use crate::workdir::{run_bin, Workdir};

const SHEET: &str = "email,password,name\nann@x.io,Secret-11,Ann\n";

/// The users-api sandbox's credentials, under the profile's names.
const CREDENTIALS: [(&str, &str); 2] = [
    ("ENLIST_USERS_API_USERNAME", "admin"),
    ("ENLIST_USERS_API_PASSWORD", "sandbox"),
];

#[test]
fn every_missing_setting_is_named_in_one_refusal() {
    let wd = Workdir::new("missing_settings");
    wd.write("u.csv", SHEET);
    let r = wd.run(&["run", "u.csv", "-p", "odin"]);
    r.expect_code(4);
    assert!(
        r.stderr().contains(
            "profile odin needs ENLIST_ODIN_URL, ENLIST_ODIN_USERNAME and ENLIST_ODIN_PASSWORD, \
             which are not set"
        ),
        "{}",
        r.stderr()
    );
    assert!(r.stderr().contains("--base-url"), "{}", r.stderr());
    assert!(r.stderr().contains("--secret-file"), "{}", r.stderr());

    // What is given is not asked for again: the URL on the command line, a user name in
    // the environment.
    let mut cmd = wd.command(&[
        "run",
        "u.csv",
        "-p",
        "odin",
        "--base-url",
        "http://127.0.0.1:9/api/v2",
    ]);
    cmd.env("ENLIST_ODIN_USERNAME", "admin");
    let out = cmd.output().expect("run enlist");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("profile odin needs ENLIST_ODIN_PASSWORD, which is not set: set it"),
        "{err}"
    );
    assert!(!err.contains("ENLIST_ODIN_URL"), "{err}");

    // `profiles test` reads its settings the same way.
    let r = wd.run(&["profiles", "test", "-p", "users-api"]);
    r.expect_code(4);
    assert!(
        r.stderr().contains(
            "ENLIST_USERS_API_URL, ENLIST_USERS_API_USERNAME and ENLIST_USERS_API_PASSWORD"
        ),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_mistyped_profile_name_suggests_the_closest_and_case_is_ignored() {
    let wd = Workdir::new("profile_typo");
    wd.write("u.csv", SHEET);
    let r = wd.run(&["check", "u.csv", "-p", "odn"]);
    r.expect_code(3);
    assert!(r.stderr().contains("did you mean odin?"), "{}", r.stderr());
    assert!(
        r.stderr().contains("built-in profiles are: odin"),
        "{}",
        r.stderr()
    );
    // Far from every name: no guess, the list.
    let r = wd.run(&["check", "u.csv", "-p", "workday"]);
    r.expect_code(3);
    assert!(!r.stderr().contains("did you mean"), "{}", r.stderr());

    // Built-in names are lower case: any case names the same profile.
    let r = wd.run(&["check", "u.csv", "-p", "USERS-API", "--format", "json"]);
    r.expect_code(0);
    assert!(r.stdout().contains("\"valid\": 1"), "{}", r.stdout());
    wd.run(&["template", "-p", "Scim"]).expect_code(0);
    assert!(wd.path("scim-template.xlsx").exists());

    let r = wd.run(&["profiles", "show", "-p", "scm"]);
    r.expect_code(2);
    assert!(r.stderr().contains("did you mean scim?"), "{}", r.stderr());
    let r = wd.run(&["sandbox", "-p", "odn"]);
    r.expect_code(2);
    assert!(r.stderr().contains("did you mean odin?"), "{}", r.stderr());
}

#[test]
fn every_command_that_takes_a_profile_takes_it_as_dash_p() {
    let wd = Workdir::new("dash_p");
    for cmd in [
        &["check"][..],
        &["run"],
        &["retry"],
        &["template"],
        &["sandbox"],
        &["demo"],
        &["profiles", "show"],
        &["profiles", "test"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let r = wd.run(&args);
        r.expect_code(0);
        assert!(
            r.stdout().contains("-p, --profile"),
            "{cmd:?}: {}",
            r.stdout()
        );
    }
    wd.run(&["template", "-p", "odin", "-o", "flag.xlsx"])
        .expect_code(0);
    // The bare word of earlier versions still works, and both at once are refused.
    wd.run(&["template", "odin", "-o", "word.xlsx"])
        .expect_code(0);
    assert!(wd.path("flag.xlsx").exists() && wd.path("word.xlsx").exists());
    wd.run(&["template", "odin", "-p", "scim"]).expect_code(2);
    let show = wd.run(&["profiles", "show", "-p", "scim"]);
    show.expect_code(0);
    assert!(
        show.stdout().contains("# ---- scim.toml"),
        "{}",
        show.stdout()
    );
    let r = wd.run(&["demo", "-p", "users-api", "--dir", "d"]);
    r.expect_code(0);
    assert!(
        wd.path("d/users-api.outcome.xlsx").exists(),
        "{}",
        r.stderr()
    );
}

#[test]
fn completions_for_every_shell_and_the_man_page_name_the_commands() {
    let wd = Workdir::new("completions");
    let commands = [
        "check", "run", "retry", "profiles", "template", "sandbox", "demo",
    ];
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let r = wd.run(&["completions", shell]);
        r.expect_code(0);
        let text = r.stdout();
        for c in commands {
            assert!(text.contains(c), "{shell} completion lacks {c}");
        }
        // Options too, not only the command names.
        assert!(
            text.contains("--profile"),
            "{shell} completion lacks --profile"
        );
    }
    wd.run(&["completions", "tcsh"]).expect_code(2);

    let man = wd.run(&["man"]);
    man.expect_code(0);
    let page = man.stdout();
    assert!(page.contains(".TH enlist 1"), "{page}");
    for c in commands {
        assert!(
            page.contains(&format!("enlist\\-{c}(1)")),
            "man page lacks {c}"
        );
    }
    wd.run(&["man", "--out", "man1"]).expect_code(0);
    let check = std::fs::read_to_string(wd.path("man1/enlist-check.1")).expect("enlist-check.1");
    assert!(check.contains(".TH enlist-check 1"), "{check}");
    assert!(check.contains("\\-\\-profile"), "{check}");
    assert!(wd.path("man1/enlist.1").exists());
}

/// Starts `enlist run SHEET` and kills it (SIGKILL) once it has opened the journal, before
/// it sent anything: the journal is left with a run that did not finish.
async fn killed_run(wd: &Workdir, sheet: &str, url: &str) {
    let marker = wd.path("paused");
    let mut child = wd
        .command(&["run", sheet, "-p", "users-api", "--base-url", url])
        .args(["--progress", "never"])
        .envs(CREDENTIALS)
        .env("ENLIST_TEST_PAUSE_BETWEEN_PASSES", &marker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn enlist");
    // A bound against a hang, not a measure of speed.
    for _ in 0..6000 {
        if marker.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(marker.exists(), "enlist never paused");
    child.kill().expect("kill -9");
    let _ = child.wait();
    std::fs::remove_file(&marker).expect("remove marker");
}

/// Kills a run of `killed` ([`killed_run`]), writes `edit` into it if given, then runs
/// `sheet` to its end and returns what it printed on stderr.
async fn run_after_kill(
    wd: &Workdir,
    url: &str,
    killed: &str,
    edit: Option<&str>,
    sheet: &str,
) -> String {
    killed_run(wd, killed, url).await;
    if let Some(text) = edit {
        wd.write(killed, text);
    }
    let args = ["run", sheet, "-p", "users-api", "--base-url", url];
    let r = run_bin(wd, &args, &CREDENTIALS).await;
    r.expect_code(0);
    r.stderr()
}

fn assert_says(err: &str, says: &[&str], never: &str) {
    for s in says {
        assert!(err.contains(s), "lacks {s:?}:\n{err}");
    }
    assert!(!err.contains(never), "says {never:?}:\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resume_warning_names_the_unfinished_runs_sheet() {
    let wd = Workdir::new("resume_warning");
    let sb = sandbox::start(SandboxConfig {
        kind: SandboxKind::UsersApi,
        ..SandboxConfig::default()
    })
    .await
    .expect("start sandbox");
    let url = sb.base_url();
    wd.write("first.csv", "email,password,name\nann@x.io,Secret-11,Ann\n");
    wd.write("other.csv", "email,password,name\nbob@x.io,Secret-12,Bob\n");

    // Another sheet after an unfinished run: named as another sheet, not "resuming".
    let err = run_after_kill(&wd, &url, "first.csv", None, "other.csv").await;
    let earlier = "an earlier run of first.csv (started 20";
    assert_says(&err, &[earlier, "other.csv is another sheet"], "resuming");
    // As the warning says, the other sheet's rows were left as they are.
    let emails: Vec<String> = sb
        .users()
        .iter()
        .map(|u| u["email"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(emails, ["bob@x.io"]);

    // The same sheet again: resuming, naming it.
    let last = "the last run of first.csv (started 20";
    let err = run_after_kill(&wd, &url, "first.csv", None, "first.csv").await;
    assert_says(&err, &[last, "did not finish: resuming"], "changed");

    // The same file, edited since (the usual fix after a crash): said so.
    let edited = "email,password,name\nann@x.io,Secret-11,Ann Lee\n";
    let err = run_after_kill(&wd, &url, "first.csv", Some(edited), "first.csv").await;
    assert_says(
        &err,
        &[last, "the file has changed since: resuming"],
        "another",
    );

    // A run that finished leaves nothing to resume.
    let args = ["run", "first.csv", "-p", "users-api", "--base-url", &url];
    let r = run_bin(&wd, &args, &CREDENTIALS).await;
    r.expect_code(0);
    assert!(!r.stderr().contains("did not finish"), "{}", r.stderr());
}
