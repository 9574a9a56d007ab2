//! `enlist profiles`: list the built-in profiles, or print one to copy and adapt.

use clap::{Args, Subcommand};

use crate::error::{exit, Error, Result};
use crate::profile::{self, Profile};

use super::out;

#[derive(Debug, Args)]
pub struct ProfilesArgs {
    #[command(subcommand)]
    pub command: Option<ProfilesCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// Print a built-in profile (TOML and its JSON body templates) to copy and adapt.
    Show {
        /// The profile name.
        name: String,
    },
}

pub fn run(args: ProfilesArgs) -> Result<u8> {
    match args.command {
        None => {
            let mut t = String::new();
            for name in profile::builtin_names() {
                let p = Profile::load(name)?;
                t.push_str(&format!(
                    "{:<12} {}\n{:<12} key {}, default {}, base URL from ${}\n",
                    p.name,
                    p.description,
                    "",
                    p.key,
                    p.default_action().as_str(),
                    p.base_url_env
                ));
            }
            t.push_str("\n`enlist profiles show NAME` prints one; save it with its body templates and pass --profile ./file.toml\n");
            out(&t)?;
        }
        Some(ProfilesCommand::Show { name }) => {
            let Some((toml, bodies)) = profile::builtin_source(&name) else {
                return Err(Error::Usage(format!(
                    "no built-in profile {name:?}; `enlist profiles` lists them"
                )));
            };
            let mut t = format!("# ---- {name}.toml\n{toml}");
            for (file, body) in bodies {
                t.push_str(&format!(
                    "\n# ---- {file} (save beside the profile)\n{body}"
                ));
            }
            out(&t)?;
        }
    }
    Ok(exit::OK)
}
