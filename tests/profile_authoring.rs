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

/// docs/profiles.md against the loader. The accepted keys are asked of the loader itself:
/// every table of every example on the page gets an unknown key, and serde's refusal
/// (`unknown field `zz_probe`, expected one of ...`, from the `deny_unknown_fields` structs
/// in src/profile/raw.rs) lists what that table accepts; a string value replaced by an
/// unknown word lists an enum's values the same way. So a key added to raw.rs fails this
/// test until it is documented, with no list here to keep in step. A new kind of table is
/// probed once the page has an example of it (its parent's new key fails until then).
mod doc_reference {
    use std::collections::{BTreeMap, BTreeSet};

    use enlist::profile::Profile;
    use toml::{Table, Value};

    const DOC: &str = include_str!("../docs/profiles.md");
    const PROBE: &str = "zz_probe";

    fn load(table: &Table) -> Result<Profile, String> {
        let text = toml::to_string(table).expect("serialise");
        Profile::parse(&text, "docs/profiles.md", &|_| Ok("{}".into())).map_err(|e| e.to_string())
    }

    /// Every ```toml block of the page.
    fn blocks() -> Vec<String> {
        DOC.split("```toml\n")
            .skip(1)
            .map(|b| b.split("\n```").next().unwrap_or_default().to_string())
            .collect()
    }

    /// A fragment merged into the complete profile: tables merge key by key, `auth` is
    /// replaced whole (each type has its own keys), a column replaces the one of its name.
    fn merge(base: &mut Table, frag: Table) {
        for (k, v) in frag {
            match (k.as_str(), base.get_mut(&k), v) {
                ("auth", _, v) => {
                    base.insert(k, v);
                }
                ("columns", Some(Value::Array(cols)), Value::Array(new)) => {
                    for c in new {
                        match cols.iter().position(|o| o.get("name") == c.get("name")) {
                            Some(i) => cols[i] = c,
                            None => cols.push(c),
                        }
                    }
                }
                (_, Some(Value::Table(b)), Value::Table(f)) => merge(b, f),
                (_, _, v) => {
                    base.insert(k, v);
                }
            }
        }
    }

    /// Every example as a whole profile: the complete ones as written, fragments merged
    /// into the first complete one.
    fn examples() -> Vec<(String, Table)> {
        let parsed: Vec<(String, Table)> = blocks()
            .into_iter()
            .map(|b| {
                let t: Table = b
                    .parse()
                    .unwrap_or_else(|e| panic!("a TOML block does not parse: {e}\n{b}"));
                (b, t)
            })
            .collect();
        let base = parsed
            .iter()
            .find(|(_, t)| t.contains_key("name"))
            .expect("the page has a complete profile")
            .1
            .clone();
        parsed
            .into_iter()
            .map(|(b, t)| {
                if t.contains_key("name") {
                    (b, t)
                } else {
                    let mut whole = base.clone();
                    merge(&mut whole, t);
                    (b, whole)
                }
            })
            .collect()
    }

    #[derive(Clone)]
    enum Seg {
        Key(String),
        Index(usize),
    }

    /// The paths of every table below `t` (arrays of tables included).
    fn tables(t: &Table, at: &[Seg], out: &mut Vec<Vec<Seg>>) {
        for (k, v) in t {
            let mut here = at.to_vec();
            here.push(Seg::Key(k.clone()));
            match v {
                Value::Table(inner) => {
                    out.push(here.clone());
                    tables(inner, &here, out);
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Table(inner) = item {
                            let mut one = here.clone();
                            one.push(Seg::Index(i));
                            out.push(one.clone());
                            tables(inner, &one, out);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn table_at<'a>(t: &'a mut Table, path: &[Seg]) -> &'a mut Table {
        let mut v: &mut Table = t;
        let mut i = 0;
        while i < path.len() {
            let Seg::Key(k) = &path[i] else {
                unreachable!()
            };
            let next = v.get_mut(k).expect("path");
            v = match (next, path.get(i + 1)) {
                (Value::Array(a), Some(Seg::Index(n))) => {
                    i += 1;
                    a[*n].as_table_mut().expect("table")
                }
                (Value::Table(t), _) => t,
                _ => unreachable!(),
            };
            i += 1;
        }
        v
    }

    fn name(path: &[Seg]) -> String {
        path.iter()
            .filter_map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The backquoted words serde lists after `needle` in the loader's refusal.
    fn expected(err: &str, needle: &str) -> Option<BTreeSet<String>> {
        let line = err.lines().find(|l| l.contains(needle))?;
        let rest = &line[line.find(needle)? + needle.len()..];
        Some(
            rest.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect(),
        )
    }

    /// (table, key) -> the values serde names for it when it is an enum (empty: not one).
    fn accepted() -> BTreeMap<(String, String), BTreeSet<String>> {
        let mut keys = BTreeMap::new();
        for (block, doc) in examples() {
            if let Err(e) = load(&doc) {
                panic!("an example on the page does not load: {e}\n{block}");
            }
            let mut paths = vec![vec![]];
            tables(&doc, &[], &mut paths);
            for path in paths {
                let mut probed = doc.clone();
                table_at(&mut probed, &path).insert(PROBE.into(), Value::Integer(1));
                let err = load(&probed).err().unwrap_or_default();
                // No refusal: a free-form table (a body, query or headers).
                let Some(fields) = expected(&err, &format!("unknown field `{PROBE}`")) else {
                    continue;
                };
                for f in fields {
                    keys.entry((name(&path), f)).or_insert_with(BTreeSet::new);
                }
                let strings: Vec<String> = table_at(&mut doc.clone(), &path)
                    .iter()
                    .filter(|(_, v)| v.is_str())
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in strings {
                    let mut probed = doc.clone();
                    table_at(&mut probed, &path).insert(k.clone(), Value::String(PROBE.into()));
                    let err = load(&probed).err().unwrap_or_default();
                    if let Some(values) = expected(&err, &format!("unknown variant `{PROBE}`")) {
                        keys.entry((name(&path), k)).or_default().extend(values);
                    }
                }
            }
        }
        keys
    }

    /// The section of the page that documents the keys of a table. A new kind of table
    /// (one the loader accepts after this was written) is looked for anywhere on the page:
    /// add its section here when it gets one.
    fn section(table: &str) -> Option<&'static str> {
        Some(match table {
            "" => "## Top level",
            "auth" => "## `[auth]`",
            "responses" => "## `[responses]`",
            "columns" => "## `[[columns]]`",
            "requests" | "auth.login" | "auth.refresh" => "## Requests",
            t if t.starts_with("requests.") => "## Requests",
            "steps" => "## `[[steps]]`",
            _ => return None,
        })
    }

    /// The reference rows of a section (or of the whole page): first cell's key -> row.
    fn rows(heading: Option<&str>) -> BTreeMap<String, String> {
        let text = match heading {
            None => DOC,
            Some(h) => {
                let start = DOC
                    .find(&format!("{h}\n"))
                    .unwrap_or_else(|| panic!("no {h}"));
                let body = &DOC[start + h.len()..];
                &body[..body.find("\n## ").unwrap_or(body.len())]
            }
        };
        text.lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| {
                let key = l[3..].split('`').next()?;
                Some((key.to_string(), l.to_string()))
            })
            .collect()
    }

    #[test]
    fn every_key_the_loader_accepts_is_documented_with_its_values() {
        let keys = accepted();
        // The probe reached the tables it must: a broken probe must not pass quietly.
        for (t, k) in [
            ("", "clear_marker"),
            ("auth", "token_pointer"),
            ("auth", "key_env"),
            ("auth", "type"),
            ("auth.login", "match_case"),
            ("responses", "no_retry"),
            ("requests", "lookup"),
            ("requests.lookup", "match"),
            ("columns", "type"),
        ] {
            assert!(
                keys.contains_key(&(t.into(), k.into())),
                "{t}.{k}: {keys:?}"
            );
        }
        let mut missing = Vec::new();
        for ((table, key), values) in &keys {
            let rows = rows(section(table));
            match rows.get(key) {
                None => missing.push(format!("{table} {key}")),
                Some(row) => {
                    for v in values {
                        if !row.contains(&format!("`{v}`")) {
                            missing.push(format!("{table} {key} = {v:?}"));
                        }
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "docs/profiles.md does not document these keys (table, key) the loader accepts: \
             {missing:#?}"
        );
    }

    #[test]
    fn every_toml_example_on_the_page_loads() {
        let all = examples();
        assert!(all.len() >= 8, "{}", all.len());
        for (block, doc) in all {
            if let Err(e) = load(&doc) {
                panic!("{e}\n{block}");
            }
        }
    }
}
