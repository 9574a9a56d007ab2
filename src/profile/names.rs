//! What a `{{placeholder}}` may name, by where it sits in the profile.
//!
//! Every placeholder is resolved when the profile loads: one that names nothing would render
//! as an empty value for every row (a login without its password, a body without a field),
//! and nothing at run time could tell a typo from an empty cell. The namespaces:
//! - a column's name, in the requests of a row and in a column's `default`;
//! - `remote_id`, the id the target gave the user: in the path, query and headers of every
//!   request sent after the user was found or created (the update, and any later step), and
//!   in any row's body (a body shared by create and update leaves the field out on create,
//!   as an empty cell does), never in a create's or lookup's path, query or headers, which
//!   would name no user;
//! - `auth.username` and `auth.password`, in `auth.login` and `auth.refresh` only: the
//!   credentials are never put into a user's request, and a login has no row;
//! - in `requests.disable`, `enable` and `delete`, only the key column and `remote_id`: a
//!   leaver (a user no longer in the sheet) has no row, only the key and id the journal kept.

/// The namespace a text draws its placeholders from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// `auth.login`, `auth.refresh`: the credentials.
    Login,
    /// A request of a row, or a column default: the columns, and `remote_id` when the user's
    /// id is known by the time it is sent.
    Row { remote_id: bool },
    /// `requests.disable`, `enable`, `delete`: the key column (the only column given) and
    /// `remote_id`.
    Leaver,
}

/// The credentials a login may name.
const AUTH: [&str; 2] = ["auth.username", "auth.password"];
const REMOTE_ID: &str = "remote_id";

impl Place {
    /// The place of the request at `at` (`requests.create`, `auth.login`, ...). A create and
    /// a lookup run before the id is known; every other request of a row runs after.
    pub(super) fn of_request(at: &str) -> Place {
        if at.starts_with("auth.") {
            Place::Login
        } else if matches!(
            at,
            "requests.disable" | "requests.enable" | "requests.delete"
        ) {
            Place::Leaver
        } else {
            Place::Row {
                remote_id: !matches!(at, "requests.create" | "requests.lookup"),
            }
        }
    }

    /// The place of a body at `self`: a row's body may name `remote_id` wherever it is sent,
    /// since an empty one leaves its field out (see the module's note).
    pub(super) fn body(self) -> Place {
        match self {
            Place::Row { .. } => Place::Row { remote_id: true },
            other => other,
        }
    }

    /// Every name a placeholder may use here.
    fn names(self, columns: &[String]) -> Vec<String> {
        match self {
            Place::Login => AUTH.iter().map(|s| s.to_string()).collect(),
            Place::Row { remote_id } => {
                let mut v = columns.to_vec();
                if remote_id {
                    v.push(REMOTE_ID.into());
                }
                v
            }
            Place::Leaver => {
                let mut v = columns.to_vec();
                v.push(REMOTE_ID.into());
                v
            }
        }
    }
}

/// Why `{{name}}` cannot be used at `at` (a `place`), or `None` when it names something.
#[cfg(test)]
pub(super) fn refusal(at: &str, place: Place, name: &str, columns: &[String]) -> Option<String> {
    refusal_among(at, place, name, columns, columns)
}

/// [`refusal`] where `columns` are those `place` may use and `all_columns` the profile's
/// (a leaver's request may use only the key, yet another column is no typo).
pub(super) fn refusal_among(
    at: &str,
    place: Place,
    name: &str,
    columns: &[String],
    all_columns: &[String],
) -> Option<String> {
    let allowed = place.names(columns);
    if allowed.iter().any(|a| a == name) {
        return None;
    }
    let what = match place {
        Place::Login => "A login may use {{auth.username}} and {{auth.password}}".to_string(),
        Place::Row { remote_id } => format!(
            "It may use the columns ({}){}",
            columns.join(", "),
            if remote_id { " and {{remote_id}}" } else { "" }
        ),
        Place::Leaver => format!(
            "It may use the key ({}) and {{{{remote_id}}}}",
            columns.join(", ")
        ),
    };
    let why = match place {
        Place::Row { .. } | Place::Leaver if name.starts_with("auth.") => {
            ", which belongs to auth.login and \
             auth.refresh: the credentials are never put into a user's request"
                .to_string()
        }
        Place::Row { remote_id: false } if name == REMOTE_ID => {
            if at.ends_with("default") {
                ", which a default cannot use: defaults are filled in before anything is sent"
                    .to_string()
            } else {
                format!(
                    ", which is not known when {at} is sent: it would name no user \
                     (requests.update may use it)"
                )
            }
        }
        Place::Leaver if all_columns.iter().any(|c| c == name) => {
            ", which a leaver does not have: a \
             user who left the sheet has no row, only the key and the remote id the journal \
             kept"
                .to_string()
        }
        Place::Login if columns.iter().any(|c| c == name) || name == REMOTE_ID => {
            ", which belongs to a user's request: a login has no row".to_string()
        }
        _ => {
            let nothing = match place {
                Place::Login => ", which names nothing in a login",
                Place::Row { .. } | Place::Leaver => ", which is not a column of this profile",
            };
            match (closest(name, &allowed), name.split_once('.')) {
                (Some(near), _) => format!("{nothing}: did you mean {{{{{near}}}}}?"),
                (None, Some((ns, _))) if ns != "auth" => format!(
                    "{nothing}: there is no namespace {ns:?} (a placeholder names a column, \
                     remote_id, auth.username or auth.password)"
                ),
                _ => nothing.to_string(),
            }
        }
    };
    Some(format!("{at} uses {{{{{name}}}}}{why}. {what}"))
}

/// The allowed name nearest `name` when it is close enough to be a typo: case and `_`/`-`
/// aside, at most two edits (one for short names).
fn closest<'a>(name: &str, allowed: &'a [String]) -> Option<&'a str> {
    let fold = |s: &str| super::normalize_header(s);
    let want = fold(name);
    let limit = if want.chars().count() <= 4 { 1 } else { 2 };
    allowed
        .iter()
        .map(|a| (strsim::damerau_levenshtein(&want, &fold(a)), a))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<String> {
        ["userId", "firstName", "email"].map(String::from).to_vec()
    }

    #[test]
    fn a_typo_in_the_auth_namespace_is_refused_with_the_name_it_could_be() {
        let e = refusal("auth.login.body", Place::Login, "auth.pasword", &cols()).unwrap();
        assert!(e.contains("auth.login.body uses {{auth.pasword}}"), "{e}");
        assert!(e.contains("did you mean {{auth.password}}?"), "{e}");
        assert_eq!(
            refusal("auth.login.body", Place::Login, "auth.password", &cols()),
            None
        );
    }

    #[test]
    fn a_column_typo_suggests_the_column() {
        let row = Place::of_request("requests.create");
        let e = refusal("requests.create.body", row, "firstname_", &cols()).unwrap();
        assert!(e.contains("did you mean {{firstName}}?"), "{e}");
        let e = refusal("requests.create.body", row, "colum_typo", &cols()).unwrap();
        assert!(e.contains("{{colum_typo}}, which is not a column"), "{e}");
        assert!(e.contains("userId, firstName, email"), "{e}");
        assert_eq!(refusal("requests.create.body", row, "email", &cols()), None);
    }

    #[test]
    fn an_unknown_namespace_is_named() {
        let row = Place::of_request("requests.update");
        let e = refusal("requests.update.path", row, "env.HOME", &cols()).unwrap();
        assert!(e.contains("no namespace \"env\""), "{e}");
    }

    #[test]
    fn each_namespace_stays_where_it_has_a_value() {
        let create = Place::of_request("requests.create");
        let update = Place::of_request("requests.update");
        assert_eq!(
            refusal("requests.update.path", update, "remote_id", &cols()),
            None
        );
        let e = refusal("requests.create.path", create, "remote_id", &cols()).unwrap();
        assert!(
            e.contains("not known when requests.create.path is sent"),
            "{e}"
        );
        assert_eq!(
            refusal("requests.create.body", create.body(), "remote_id", &cols()),
            None
        );
        let e = refusal("requests.create.body", create, "auth.password", &cols()).unwrap();
        assert!(e.contains("never put into a user's request"), "{e}");
        let login = Place::of_request("auth.refresh");
        let e = refusal("auth.refresh.body", login, "userId", &cols()).unwrap();
        assert!(e.contains("a login has no row"), "{e}");
    }
    /// Through the loader: each place a placeholder can sit is checked, and the message
    /// names the key it sits in.
    #[test]
    fn the_loader_checks_every_place_a_placeholder_sits() {
        let base = r#"
name = "t"
base_url_env = "U"
key = "userId"
[auth]
type = "token-login"
username_env = "A"
password_env = "B"
token_pointer = "/token"
login = { method = "POST", path = "/login", body = { u = "{{auth.username}}" } }
[requests.create]
method = "POST"
path = "/users"
query = { tenant = "x" }
headers = { X-Tenant = "x" }
body = { id = "{{userId}}" }
[[columns]]
name = "userId"
[[columns]]
name = "firstName"
default = "x"
"#;
        let load = |t: &str| super::super::Profile::parse(t, "t.toml", &|_| Ok("{}".into()));
        assert!(load(base).is_ok());
        for (from, to, says) in [
            (
                "{{auth.username}}",
                "{{auth.usernme}}",
                "auth.login.body uses {{auth.usernme}}",
            ),
            (
                "path = \"/users\"",
                "path = \"/u/{{usrId}}\"",
                "requests.create.path uses",
            ),
            (
                "tenant = \"x\"",
                "tenant = \"{{usrId}}\"",
                "requests.create.query.tenant",
            ),
            (
                "X-Tenant = \"x\"",
                "X-Tenant = \"{{usrId}}\"",
                "requests.create.headers.X-Tenant",
            ),
            (
                "default = \"x\"",
                "default = \"{{usrId}}\"",
                "column firstName: default uses",
            ),
            (
                "id = \"{{userId}}\"",
                "id = \"{{usrId}}\"",
                "requests.create.body uses",
            ),
        ] {
            let text = base.replacen(from, to, 1);
            let e = load(&text).expect_err(to).to_string();
            assert!(e.contains(says), "{to}: {e}");
            assert!(e.contains("t.toml") && e.contains("did you mean"), "{e}");
        }
    }
}
