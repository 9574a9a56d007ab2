//! `enlist check` and `enlist profiles`: what a user sees before anything is sent.

use serde_json::Value;

use crate::workdir::Workdir;

const ODIN_HEADER: &str = "Service Provider,Group,User ID,First Name,Last Name,Extension,Web Password,Email,Department,City,Postal Code,Time Zone,Aliases";

fn check_json(wd: &Workdir, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let run = wd.run(&all);
    let v: Value = serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", run.stdout(), run.stderr()));
    (run.code(), v)
}

/// The problems of a check as `row N, column C` strings.
fn problem_lines(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            format!(
                "{} row {}, column {}: {}",
                p["severity"].as_str().unwrap_or(""),
                p["row"],
                p["column"].as_str().unwrap_or("-"),
                p["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn profiles_lists_and_shows_the_builtins() {
    let wd = Workdir::new("profiles");
    let run = wd.run(&["profiles"]);
    run.expect_code(0);
    for name in ["odin", "superoffice", "users-api", "scim", "pocketbase"] {
        assert!(
            run.stdout().contains(name),
            "{name} missing:\n{}",
            run.stdout()
        );
    }
    let show = wd.run(&["profiles", "show", "odin"]);
    show.expect_code(0);
    assert!(show.stdout().contains("token_pointer = \"/token\""));
    assert!(show.stdout().contains("odin.create.json"));
    wd.run(&["profiles", "show", "nope"]).expect_code(2);
}

#[test]
fn a_copied_profile_file_loads_with_its_body_templates() {
    let wd = Workdir::new("profile_file");
    let show = wd.run(&["profiles", "show", "users-api"]).stdout();
    // Split the printed sections back into files, as a user would.
    let mut current: Option<String> = None;
    let mut files: Vec<(String, String)> = Vec::new();
    for line in show.lines() {
        if let Some(rest) = line.strip_prefix("# ---- ") {
            let name = rest.split_whitespace().next().unwrap_or("").to_string();
            files.push((name.clone(), String::new()));
            current = Some(name);
        } else if current.is_some() {
            let last = files.last_mut().expect("section");
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    for (name, text) in &files {
        wd.write(&format!("targets/{name}"), text);
    }
    wd.write(
        "u.csv",
        "email,password,name\nann@acme.example,Secret99,Ann\n",
    );
    wd.run(&["check", "u.csv", "--profile", "./targets/users-api.toml"])
        .expect_code(0);
}

#[test]
fn odin_requests_follow_the_seed_documents() {
    let wd = Workdir::new("odin_render");
    wd.write(
        "users.csv",
        format!(
            "{ODIN_HEADER}\nacme-sp,acme-london,john.smith@acme.example,John,\"O\"\"Neil\",0123,Welcome-2024!,john@acme.example,Sales,Cincinnati,04520,Europe/London,js@acme.example;j2@acme.example\n"
        ),
    );
    let (code, v) = check_json(
        &wd,
        &[
            "users.csv",
            "-p",
            "odin",
            "--show-requests",
            "3",
            "--base-url",
            "https://odin.example.com/api/v2",
        ],
    );
    assert_eq!(code, 0, "{v:#}");
    let reqs = v["requests"].as_array().expect("requests");
    let by = |name: &str| {
        reqs.iter()
            .find(|r| r["request"] == name)
            .unwrap_or_else(|| panic!("{name} in {v:#}"))
    };

    let lookup = by("lookup");
    assert_eq!(lookup["method"], "GET");
    assert_eq!(
        lookup["url"],
        "https://odin.example.com/api/v2/users?userId=john.smith%40acme.example"
    );

    let create = by("create");
    assert_eq!(create["method"], "POST");
    assert_eq!(create["url"], "https://odin.example.com/api/v2/users");
    assert_eq!(create["headers"]["Authorization"], "Bearer ********");
    let b = &create["body"];
    assert_eq!(b["serviceProviderId"], "acme-sp");
    assert_eq!(b["groupId"], "acme-london");
    assert_eq!(b["userId"], "john.smith@acme.example");
    assert_eq!(b["lastName"], "O\"Neil");
    assert_eq!(
        b["extension"], "0123",
        "extension stays text with its leading zero"
    );
    assert_eq!(
        b["password"], "********",
        "secrets are masked in shown requests"
    );
    assert_eq!(
        b["callingLineIdFirstName"], "John",
        "calling line id defaults to the first name"
    );
    assert_eq!(b["callingLineIdLastName"], "O\"Neil");
    assert_eq!(b["emailAddress"], "john@acme.example");
    assert_eq!(
        b["aliases"],
        serde_json::json!(["js@acme.example", "j2@acme.example"])
    );
    assert_eq!(
        b["department"],
        serde_json::json!({"serviceProviderId": "acme-sp", "groupId": "acme-london", "name": "Sales"})
    );
    assert_eq!(
        b["address"],
        serde_json::json!({"city": "Cincinnati", "zipOrPostalCode": "04520"})
    );
    assert_eq!(b["timeZone"], "Europe/London");
    assert!(
        b.get("phoneNumber").is_none(),
        "an empty cell leaves its field out: {b:#}"
    );
    assert!(b.get("language").is_none());

    let update = by("update");
    assert_eq!(update["method"], "PUT");
    assert_eq!(update["url"], "https://odin.example.com/api/v2/users");
    assert_eq!(
        update["body"]["userId"], "john.smith@acme.example",
        "the user is named in the body"
    );
    assert!(
        update["body"].get("password").is_none(),
        "updates never resend the password"
    );

    let all = format!("{v}");
    assert!(!all.contains("Welcome-2024!"), "the password leaked: {all}");
}

#[test]
fn superoffice_requests_follow_the_seed_documents() {
    let wd = Workdir::new("so_render");
    wd.write(
        "so.csv",
        "Name;First name;Last name;Email;Rank;Role;User group;Initial password\nJSM;John;Smith;john@acme.example;3;1;2;Welcome-2024\n",
    );
    let (code, v) = check_json(
        &wd,
        &[
            "so.csv",
            "-p",
            "superoffice",
            "--show-requests",
            "3",
            "--base-url",
            "https://crm.example.com/SO/api/v1",
        ],
    );
    assert_eq!(code, 0, "{v:#}");
    let reqs = v["requests"].as_array().expect("requests");
    let by = |name: &str| reqs.iter().find(|r| r["request"] == name).expect(name);
    assert_eq!(
        by("lookup")["url"],
        "https://crm.example.com/SO/api/v1/User/JSM"
    );
    let create = by("create");
    assert_eq!(create["url"], "https://crm.example.com/SO/api/v1/User");
    assert_eq!(create["headers"]["Authorization"], "Basic ********");
    let b = &create["body"];
    assert_eq!(b["Name"], "JSM");
    assert_eq!(b["Rank"], 3, "integer columns are sent as numbers");
    assert_eq!(b["Type"], "InternalAssociate", "default type");
    assert_eq!(b["Role"], serde_json::json!({"Id": 1}));
    assert_eq!(b["UserGroup"], serde_json::json!({"Id": 2}));
    assert_eq!(b["Person"]["Firstname"], "John");
    assert_eq!(
        b["Person"]["Emails"],
        serde_json::json!([{"Value": "john@acme.example", "Description": "Work"}])
    );
    assert_eq!(b["Credentials"][0]["Value"], "********");
    assert!(
        b.get("AssociateId").is_none(),
        "a create carries no AssociateId"
    );
    let update = by("update");
    assert_eq!(update["method"], "PUT");
    assert!(
        update["url"]
            .as_str()
            .unwrap_or("")
            .ends_with("/User/%7B%7Bremote_id%7D%7D")
            || update["url"]
                .as_str()
                .unwrap_or("")
                .ends_with("/User/{{remote_id}}"),
        "{update:#}"
    );
}

#[test]
fn users_api_and_scim_requests_follow_the_seed_documents() {
    let wd = Workdir::new("ua_scim_render");
    wd.write(
        "ua.csv",
        "email,password,name,custom_data,applications,groups\nann@acme.example,Secret99,Ann Lee,\"{\"\"tier\"\": 9}\",app-1;app-2,grp-1\n",
    );
    let (code, v) = check_json(
        &wd,
        &[
            "ua.csv",
            "-p",
            "users-api",
            "--show-requests",
            "1",
            "--base-url",
            "https://u.example.com",
        ],
    );
    assert_eq!(code, 0, "{v:#}");
    let create = &v["requests"][0];
    assert_eq!(create["request"], "create");
    assert_eq!(create["url"], "https://u.example.com/users/user");
    assert_eq!(
        create["body"],
        serde_json::json!({"email": "ann@acme.example", "password": "********", "name": "Ann Lee",
                           "custom_data": {"tier": 9}, "applications": ["app-1", "app-2"], "groups": ["grp-1"]})
    );
    assert_eq!(v["by_action"]["create"], 1, "users-api is create-only");

    wd.write("scim.csv", "userName,givenName,familyName,email,active\nbjensen,Barbara,Jensen,bjensen@example.com,no\n");
    let (code, v) = check_json(
        &wd,
        &[
            "scim.csv",
            "-p",
            "scim",
            "--show-requests",
            "3",
            "--base-url",
            "https://idp.example.com/scim/v2",
        ],
    );
    assert_eq!(code, 0, "{v:#}");
    let reqs = v["requests"].as_array().expect("requests");
    let by = |name: &str| reqs.iter().find(|r| r["request"] == name).expect(name);
    assert_eq!(
        by("lookup")["url"],
        "https://idp.example.com/scim/v2/Users?filter=userName+eq+%22bjensen%22"
    );
    let b = &by("create")["body"];
    assert_eq!(
        b["schemas"],
        serde_json::json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
    assert_eq!(
        b["name"],
        serde_json::json!({"givenName": "Barbara", "familyName": "Jensen"})
    );
    assert_eq!(b["displayName"], "Barbara Jensen");
    assert_eq!(b["active"], false);
    assert_eq!(
        b["emails"],
        serde_json::json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
    );
    assert!(
        b.get("phoneNumbers").is_none(),
        "no phone, no phoneNumbers array: {b:#}"
    );
    assert_eq!(
        by("create")["headers"]["Content-Type"],
        "application/scim+json"
    );
}

#[test]
fn every_validation_rule_names_row_and_column() {
    let wd = Workdir::new("rules");
    // Row numbers are spreadsheet rows: the header is row 1.
    let csv = format!(
        "{ODIN_HEADER},Language,action\n\
         acme,lon,ok.one@acme.example,Ann,Lee,1001,Passw0rd-1,ann@acme.example,,,,,,English,\n\
         acme,lon,bad-user-id,Bob,Ray,12a4,short,not-an-email,,,,Mars,,Klingon,\n\
         acme,lon,dup@acme.example,Cy,Dee,1003,Passw0rd-3,,,,,,,,\n\
         acme,,dup@acme.example,Di,Eve,1004,Passw0rd-4,,,,,,,,\n\
         acme,lon,skip.me@acme.example,,,,,,,,,,,,skip\n\
         acme,lon,act@acme.example,Ed,Fox,1006,Passw0rd-6,,,,,,,,crate\n\
         acme,lon,clear@acme.example,Fay,Gee,1007,Passw0rd-7,<clear>,,,,,,,update\n\
         acme,lon,nopw@acme.example,Gus,Hay,1008,,,,,,,,,create\n\
         acme,lon,{long}@acme.example,Hal,Ivy,1009,Passw0rd-9,,,,,,,,\n",
        long = "x".repeat(170)
    );
    wd.write("rules.csv", csv);
    let (code, v) = check_json(&wd, &["rules.csv", "--profile", "odin"]);
    assert_eq!(code, 1, "invalid rows give exit 1: {v:#}");
    let lines = problem_lines(&v);
    let has = |needle: &str| {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "no problem like {needle:?} in\n{}",
            lines.join("\n")
        );
    };
    has("error row 3, column User ID: \"bad-user-id\" is not the full user id");
    has("error row 3, column Extension: \"12a4\" is not 2 to 10 digits");
    has("error row 3, column Web Password: is 5 characters long; it must be at least 8; the value is not at least one digit");
    has("error row 3, column Email: \"not-an-email\" is not an email address");
    has("error row 3, column Time Zone: \"Mars\" is not an IANA time zone");
    has("error row 3, column Language: \"Klingon\" is not one of: English");
    has("error row 4, column User ID: \"dup@acme.example\" appears more than once in the sheet (also on row 5)");
    has("error row 5, column User ID: \"dup@acme.example\" appears more than once in the sheet (also on row 4)");
    has("error row 5, column Group: is required: fill it in");
    has("error row 7, column action: \"crate\" is not an action");
    has("error row 9, column Web Password: is required to create a user");
    has("error row 10, column User ID: is 183 characters long; it must be at most 161");
    // Every problem of row 3 is reported at once, each once: a filled but wrong cell is not
    // also called missing.
    assert_eq!(
        lines.iter().filter(|l| l.contains("row 3,")).count(),
        6,
        "{}",
        lines.join("\n")
    );
    assert!(!lines
        .iter()
        .any(|l| l.contains("row 3,") && l.contains("is required")));
    // The skipped row is not checked; the clear marker on an optional column is fine.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("row 6,") || l.contains("row 8,")),
        "{}",
        lines.join("\n")
    );
    assert_eq!(v["rows"], 9);
    assert_eq!(v["skipped"], 1);
    assert_eq!(v["invalid"], 6);
    assert_eq!(v["valid"], 2);
    let all = format!("{v}");
    for secret in ["Passw0rd-1", "short"] {
        assert!(!all.contains(secret), "secret {secret} leaked");
    }
}

#[test]
fn typed_columns_reject_what_they_cannot_hold() {
    let wd = Workdir::new("types");
    wd.write(
        "so.csv",
        "Name,Firstname,Lastname,Rank,Type,RoleId\nA1,Ann,Lee,x7,InternalAssociate,1\nB2,Bob,Ray,2.0,resourceassociate,\n",
    );
    let (code, v) = check_json(
        &wd,
        &["so.csv", "-p", "superoffice", "--show-requests", "9"],
    );
    assert_eq!(code, 1);
    let lines = problem_lines(&v);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("row 2, column Rank: \"x7\" is not a whole number")),
        "{lines:?}"
    );
    // 2.0 is a whole number; one-of values are sent in their canonical spelling.
    let create = v["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["request"] == "create")
        .expect("create");
    assert_eq!(create["body"]["Rank"], 2);
    assert_eq!(create["body"]["Type"], "ResourceAssociate");

    wd.write(
        "ua.csv",
        "email,password,name,custom_data\nann@acme.example,Secret99,Ann,{not json\n",
    );
    let (_, v) = check_json(&wd, &["ua.csv", "-p", "users-api"]);
    assert!(problem_lines(&v)
        .iter()
        .any(|l| l.contains("row 2, column custom_data: is not valid JSON")));

    wd.write(
        "scim.csv",
        "userName,givenName,familyName,active\nann,Ann,Lee,maybe\n",
    );
    let (_, v) = check_json(&wd, &["scim.csv", "-p", "scim"]);
    assert!(problem_lines(&v)
        .iter()
        .any(|l| l.contains("row 2, column active: \"maybe\" is not true or false")));
}

#[test]
fn the_clear_marker_blanks_a_field_on_purpose() {
    let wd = Workdir::new("clear");
    wd.write("c.csv", "userId,serviceProviderId,groupId,firstName,lastName,extension,emailAddress\nx@acme.example,sp,g,A,B,100,<clear>\n");
    let (code, v) = check_json(
        &wd,
        &[
            "c.csv",
            "-p",
            "odin",
            "--mode",
            "update",
            "--show-requests",
            "5",
        ],
    );
    assert_eq!(code, 0, "{v:#}");
    let update = v["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["request"] == "update")
        .expect("update");
    assert_eq!(update["body"]["emailAddress"], Value::Null);
    assert!(
        update["body"].get("callingLineIdFirstName").is_none(),
        "defaults are for creates: an update never resets what the target holds: {update:#}"
    );

    wd.write("c2.csv", "userId,serviceProviderId,groupId,firstName,lastName,extension\nx@acme.example,sp,g,<clear>,B,100\n");
    let (code, v) = check_json(&wd, &["c2.csv", "-p", "odin"]);
    assert_eq!(code, 1);
    assert!(
        problem_lines(&v)
            .iter()
            .any(|l| l.contains("column firstName: cannot be cleared")),
        "{v:#}"
    );
}

#[test]
fn a_sheet_without_required_columns_is_refused_before_any_row() {
    let wd = Workdir::new("missing_cols");
    wd.write(
        "m.csv",
        "User ID,Frist Name,Last Name,Favourite colour\na@acme.example,Ann,Lee,blue\n",
    );
    let run = wd.run(&["check", "m.csv", "--profile", "odin"]);
    run.expect_code(3);
    let err = run.stderr();
    assert!(err.contains("m.csv"), "names the file: {err}");
    assert!(err.contains("serviceProviderId"), "{err}");
    assert!(err.contains("groupId"), "{err}");
    assert!(err.contains("extension"), "{err}");
    assert!(
        err.contains("firstName (the closest header found is \"Frist Name\")"),
        "{err}"
    );
}

#[test]
fn unknown_columns_warn_but_do_not_fail() {
    let wd = Workdir::new("unknown_cols");
    wd.write(
        "u.csv",
        "email,password,name,Shoe size\nann@acme.example,Secret99,Ann,42\n",
    );
    let run = wd.run(&["check", "u.csv", "--profile", "users-api"]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("warning: column \"Shoe size\" is not used by profile users-api"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout()
            .contains("1 rows read: 1 valid (create 1), 0 skipped, 0 invalid"),
        "{}",
        run.stdout()
    );
}

#[test]
fn usage_errors_and_unknown_profiles() {
    let wd = Workdir::new("usage");
    wd.write(
        "u.csv",
        "email,password,name\nann@acme.example,Secret99,Ann\n",
    );
    wd.run(&["check", "u.csv", "-p", "users-api", "--delimiter", "ab"])
        .expect_code(2);
    wd.run(&["check", "u.csv", "-p", "users-api", "--mode", "update"])
        .expect_code(2);
    let r = wd.run(&["check", "u.csv", "-p", "no-such-profile"]);
    r.expect_code(3);
    assert!(
        r.stderr().contains("built-in profiles are: odin"),
        "{}",
        r.stderr()
    );
    let r = wd.run(&["check", "missing.csv", "-p", "users-api"]);
    r.expect_code(3);
    assert!(r.stderr().contains("missing.csv"), "{}", r.stderr());
}

#[test]
fn a_broken_profile_is_refused_with_the_reason() {
    let wd = Workdir::new("bad_profile");
    wd.write(
        "p.toml",
        r#"name = "acme"
base_url_env = "ACME_URL"
key = "login"
[auth]
type = "none"
[[columns]]
name = "login"
[requests.create]
method = "POST"
path = "/users"
body = { login = "{{login}}", mail = "{{email}}" }
"#,
    );
    wd.write("u.csv", "login\nann\n");
    let r = wd.run(&["check", "u.csv", "-p", "./p.toml"]);
    r.expect_code(3);
    assert!(
        r.stderr()
            .contains("{{email}}, which is not a column of this profile"),
        "{}",
        r.stderr()
    );
}
