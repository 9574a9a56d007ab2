//! A profile file with a mistake is refused when it loads, before any row is read: the
//! message names the file, the key and what to write instead. Nothing falls back silently.

use crate::workdir::Workdir;

/// A small valid profile; `edit` changes its text before it is written.
fn profile(edit: impl FnOnce(String) -> String) -> String {
    edit(
        r#"
name = "acme"
base_url_env = "ENLIST_ACME_URL"
key = "email"

[auth]
type = "none"

[requests.create]
method = "POST"
path = "/users"
body = { email = "{{email}}", name = "{{name}}" }
remote_id = "/id"

[requests.update]
method = "PUT"
path = "/users/{{remote_id}}"
body = { email = "{{email}}", name = "{{name}}" }
not_found = [404]

[requests.lookup]
method = "GET"
path = "/users"
query = { email = "{{email}}" }
list = "/items"
match = "/email"
remote_id = "/id"

[[columns]]
name = "email"

[[columns]]
name = "name"
"#
        .to_string(),
    )
}

/// Runs `enlist check` with the profile; returns the exit code and what it printed.
fn check(name: &str, text: &str) -> (i32, String) {
    let wd = Workdir::new(name);
    wd.write("acme.toml", text);
    wd.write("u.csv", "email,name\nann@example.org,Ann\n");
    let run = wd.run(&["check", "u.csv", "--profile", "./acme.toml"]);
    (run.code(), format!("{}{}", run.stdout(), run.stderr()))
}

/// The profile is refused (exit 3, as input enlist refuses; nothing checked) with a message that contains `needles`.
fn refused(name: &str, text: &str, needles: &[&str]) {
    let (code, out) = check(name, text);
    assert_eq!(code, 3, "a broken profile must be refused:\n{out}");
    assert!(out.contains("acme.toml"), "names the profile file:\n{out}");
    for n in needles {
        assert!(out.contains(n), "says {n:?}:\n{out}");
    }
}

#[test]
fn the_valid_profile_loads() {
    let (code, out) = check("pl_valid", &profile(|t| t));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_misspelt_method_is_refused_not_sent_as_post() {
    let text = profile(|t| t.replacen("method = \"POST\"", "method = \"PSOT\"", 1));
    refused(
        "pl_method",
        &text,
        &["requests.create.method", "PSOT", "POST, PUT, PATCH"],
    );
}

#[test]
fn a_login_method_is_checked_like_the_others() {
    let text = profile(|t| {
        t.replace(
            "[auth]\ntype = \"none\"",
            "[auth]\ntype = \"token-login\"\nusername_env = \"U\"\npassword_env = \"P\"\n\
             token_pointer = \"/token\"\nlogin = { method = \"SEND\", path = \"/login\" }",
        )
    });
    refused("pl_login", &text, &["auth.login.method", "SEND"]);
}

#[test]
fn a_key_that_is_no_column_is_refused_not_taken_from_the_first() {
    let text = profile(|t| t.replace("key = \"email\"", "key = \"mail\""));
    refused("pl_key", &text, &["key = \"mail\"", "email, name"]);
}

#[test]
fn a_pointer_without_a_slash_is_refused() {
    let text = profile(|t| t.replacen("remote_id = \"/id\"", "remote_id = \"id\"", 1));
    refused(
        "pl_pointer",
        &text,
        &["requests.create.remote_id", "leading slash", "\"/id\""],
    );
}

#[test]
fn a_status_that_is_no_http_status_is_refused() {
    let text = profile(|t| t.replace("not_found = [404]", "not_found = [44]"));
    refused("pl_status", &text, &["requests.update.not_found", "44"]);
}

#[test]
fn a_header_name_with_a_space_is_refused() {
    let text = profile(|t| {
        t.replace(
            "path = \"/users\"\nbody",
            "path = \"/users\"\nheaders = { \"X Tenant\" = \"a\" }\nbody",
        )
    });
    refused("pl_header", &text, &["requests.create.headers", "X Tenant"]);
}

#[test]
fn a_content_type_that_cannot_be_a_header_is_refused() {
    let text = profile(|t| {
        t.replace(
            "key = \"email\"",
            "key = \"email\"\ncontent_type = \"application/json\\n\"",
        )
    });
    refused("pl_ctype", &text, &["content_type", "application/json"]);
}

#[test]
fn lengths_the_wrong_way_round_are_refused() {
    let text = profile(|t| {
        t.replace(
            "name = \"name\"",
            "name = \"name\"\nmin_length = 5\nmax_length = 2",
        )
    });
    refused(
        "pl_lengths",
        &text,
        &["column name: min_length", "max_length"],
    );
}

#[test]
fn a_pattern_that_does_not_compile_names_its_column() {
    let text = profile(|t| t.replace("name = \"name\"", "name = \"name\"\npattern = \"[a-\""));
    refused("pl_pattern", &text, &["column name: pattern"]);
}

#[test]
fn every_built_in_profile_loads_and_shows() {
    let wd = Workdir::new("pl_builtins");
    let list = wd.run(&["profiles"]);
    list.expect_code(0);
    for name in enlist::profile::builtin_names() {
        assert!(list.stdout().contains(name), "{}", list.stdout());
        wd.run(&["profiles", "show", name]).expect_code(0);
    }
}
