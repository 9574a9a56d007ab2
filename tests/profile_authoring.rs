//! Writing a profile: every placeholder resolves when it loads, email rules the target
//! agrees with, a built-in profile written out to edit, and the reference in
//! docs/profiles.md that names every key the loader accepts.

use crate::workdir::Workdir;

/// A small valid profile with a token login; `edit` changes its text before it is written.
fn profile(edit: impl FnOnce(String) -> String) -> String {
    edit(
        r#"
name = "acme"
base_url_env = "ENLIST_ACME_URL"
key = "email"

[auth]
type = "token-login"
username_env = "ACME_USER"
password_env = "ACME_PASSWORD"
token_pointer = "/token"
login = { method = "POST", path = "/login", body = { user = "{{auth.username}}", password = "{{auth.password}}" } }

[requests.create]
method = "POST"
path = "/users"
body = { email = "{{email}}", name = "{{name}}" }

[[columns]]
name = "email"
email = true

[[columns]]
name = "name"
"#
        .to_string(),
    )
}

/// `enlist check` of a one-row sheet with the profile: exit code and all it printed.
fn check(wd: &Workdir, text: &str) -> (i32, String) {
    wd.write("acme.toml", text);
    let run = wd.run(&["check", "u.csv", "--profile", "./acme.toml"]);
    (run.code(), format!("{}{}", run.stdout(), run.stderr()))
}

#[test]
fn a_placeholder_that_names_nothing_is_refused_before_the_sheet_is_read() {
    let wd = Workdir::new("pa_names");
    // No sheet at all: the profile must be refused before enlist looks for one.
    let (code, out) = check(
        &wd,
        &profile(|t| t.replace("{{auth.password}}", "{{auth.pasword}}")),
    );
    assert_eq!(code, 3, "{out}");
    for needle in [
        "acme.toml",
        "auth.login.body",
        "{{auth.pasword}}",
        "did you mean {{auth.password}}?",
    ] {
        assert!(out.contains(needle), "says {needle:?}:\n{out}");
    }
    assert!(!out.contains("u.csv"), "the sheet was not read:\n{out}");

    let (code, out) = check(&wd, &profile(|t| t.replace("{{name}}", "{{nmae}}")));
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("requests.create.body uses {{nmae}}") && out.contains("{{name}}?"),
        "{out}"
    );

    let text = profile(|t| t.replace("path = \"/users\"", "path = \"/t/{{env.TENANT}}/users\""));
    let (code, out) = check(&wd, &text);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("requests.create.path") && out.contains("no namespace \"env\""),
        "{out}"
    );

    wd.write("u.csv", "email,name\nann@example.org,Ann\n");
    let (code, out) = check(&wd, &profile(|t| t));
    assert_eq!(code, 0, "the profile as written loads:\n{out}");
}

#[test]
fn strict_email_refuses_what_servers_refuse_and_permissive_takes_utf8() {
    let wd = Workdir::new("pa_email");
    wd.write(
        "u.csv",
        "email,name\nx@ex\u{e4}mple.com,A\nx@example.c,B\nz\u{f6}e@example.com,C\nann@example.org,D\n",
    );
    let (code, out) = check(&wd, &profile(|t| t));
    assert_eq!(code, 1, "{out}");
    for needle in [
        "row 2, column email: \"x@ex\u{e4}mple.com\" is not an email address: the domain \
         \"ex\u{e4}mple.com\" is not ASCII: write it as punycode, \"xn--exmple-cua.com\"",
        "row 3, column email: \"x@example.c\" is not an email address: the domain needs a \
         top-level part of 2+ letters, like example.com",
        "row 4, column email: \"z\u{f6}e@example.com\" is not an email address: the part \
         before the @ holds '\u{f6}'",
    ] {
        assert!(out.contains(needle), "says {needle:?}:\n{out}");
    }
    assert!(!out.contains("row 5"), "{out}");

    let permissive = profile(|t| t.replace("email = true", "email = \"permissive\""));
    let (code, out) = check(&wd, &permissive);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("row 3, column email"), "{out}");
    assert!(
        !out.contains("row 2,") && !out.contains("row 4,"),
        "permissive takes UTF-8 addresses:\n{out}"
    );

    let (code, out) = check(
        &wd,
        &profile(|t| t.replace("email = true", "email = \"lax\"")),
    );
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("column email: email = \"lax\" is not an email rule"),
        "{out}"
    );
}

/// The built-in profiles still take their own samples: the only email refused in
/// samples/*.csv is row 6's, the mistake each sheet makes on purpose (samples/README.md).
#[test]
fn the_samples_pass_the_strict_email_rule() {
    let wd = Workdir::new("pa_samples");
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    for name in enlist::profile::builtin_names() {
        let csv = samples.join(format!("{name}.csv"));
        if !csv.exists() {
            continue;
        }
        let csv = csv.to_string_lossy().into_owned();
        let run = wd.run(&["check", &csv, "--profile", name]);
        let out = format!("{}{}", run.stdout(), run.stderr());
        let refused: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("is not an email address"))
            .collect();
        assert!(
            refused.len() == 1 && refused[0].contains("row 6,"),
            "{name}:\n{out}"
        );
    }
}

/// Problem lines of a `check` output: what it says about rows, without the lines that name
/// the profile or the time taken.
fn findings(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("row ") || l.contains("rows"))
        .filter(|l| !l.contains(" in ") && !l.contains("rows/s"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_profile_written_out_loads_from_disk_and_checks_the_same() {
    let wd = Workdir::new("pa_out");
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/odin.csv");
    let sample = sample.to_string_lossy().into_owned();
    let run = wd.run(&["profiles", "show", "odin", "--out", "mine"]);
    run.expect_code(0);
    for f in ["odin.toml", "odin.create.json", "odin.update.json"] {
        assert!(wd.path("mine").join(f).is_file(), "{f}: {}", run.stdout());
    }
    assert!(
        run.stdout().contains("--profile mine/odin.toml"),
        "{}",
        run.stdout()
    );

    let builtin = wd.run(&["check", &sample, "--profile", "odin"]);
    let copy = wd.run(&["check", &sample, "--profile", "mine/odin.toml"]);
    assert_eq!(copy.code(), builtin.code(), "{}", copy.stdout());
    let (b, c) = (findings(&builtin.stdout()), findings(&copy.stdout()));
    assert!(!b.is_empty(), "{}", builtin.stdout());
    assert_eq!(c, b);

    // An edit to the copy is what loads: the body file beside it is read.
    let body = wd.read("mine/odin.create.json");
    wd.write(
        "mine/odin.create.json",
        body.replacen("{{firstName}}", "{{frstName}}", 1),
    );
    let edited = wd.run(&["check", &sample, "--profile", "mine/odin.toml"]);
    edited.expect_code(3);
    assert!(
        edited.stderr().contains("did you mean {{firstName}}?"),
        "{}",
        edited.stderr()
    );

    // A second write refuses to replace the edited file, and writes nothing.
    let again = wd.run(&["profiles", "show", "odin", "--out", "mine"]);
    again.expect_code(2);
    assert!(again.stderr().contains("already exists") && again.stderr().contains("--force"));
    assert!(wd.read("mine/odin.create.json").contains("{{frstName}}"));
    wd.run(&["profiles", "show", "odin", "--out", "mine", "--force"])
        .expect_code(0);
    assert_eq!(wd.read("mine/odin.create.json"), body);
}
