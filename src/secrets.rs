//! The secrets a profile names (credentials for its auth), read once from a
//! `--secret-file` or the environment before a command starts. The executor builds its auth
//! headers from them ([`crate::execute::auth`]); nothing here prints a value.

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::SecretString;

use crate::error::{Error, Result};
use crate::profile::{Auth, Profile};

/// Named secrets (environment variable name → value). `Debug` prints the names only.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Secrets {
    /// The secret variables `profile` needs.
    pub fn names(profile: &Profile) -> Vec<&str> {
        match &profile.auth {
            Auth::None => vec![],
            Auth::Basic {
                username_env,
                password_env,
            } => vec![username_env, password_env],
            Auth::Bearer { token_env } => vec![token_env],
            Auth::ApiKey { key_env, .. } => vec![key_env],
            Auth::TokenLogin(t) => vec![&t.username_env, &t.password_env],
        }
    }

    /// Reads what `profile` needs from `--secret-file` (lines `NAME=value`; `#` comments),
    /// else from the environment. Returns the names of those found in neither, so that the
    /// caller can name every missing variable in one message.
    pub fn read(profile: &Profile, file: Option<&Path>) -> Result<(Secrets, Vec<String>)> {
        let mut from_file = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::CannotStart(format!("cannot read --secret-file {}: {e}", path.display()))
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let line = line.strip_prefix("export ").unwrap_or(line);
                let Some((k, v)) = line.split_once('=') else {
                    return Err(Error::CannotStart(format!(
                        "--secret-file {} line {}: expected NAME=value",
                        path.display(),
                        i + 1
                    )));
                };
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                from_file.insert(k.trim().to_string(), SecretString::from(v.to_string()));
            }
        }
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for name in Secrets::names(profile) {
            let value = match from_file.remove(name) {
                Some(v) => v,
                None => match std::env::var(name) {
                    Ok(v) if !v.is_empty() => SecretString::from(v),
                    _ => {
                        missing.push(name.to_string());
                        continue;
                    }
                },
            };
            values.insert(name.to_string(), value);
        }
        Ok((Secrets { values }, missing))
    }

    /// Secrets given directly (tests, the in-process demo).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Secrets {
        Secrets {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
                .collect(),
        }
    }

    /// Every value (for masking them in server text).
    pub(crate) fn values(&self) -> impl Iterator<Item = &SecretString> {
        self.values.values()
    }

    pub(crate) fn get(&self, name: &str) -> Result<&SecretString> {
        self.values.get(name).ok_or_else(|| {
            Error::CannotStart(format!(
                "the secret {name} is not set (environment or --secret-file)"
            ))
        })
    }
}
