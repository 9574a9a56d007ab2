//! `enlist profiles`: list the built-in profiles, or print one to copy and adapt.

use std::path::{Path, PathBuf};

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
        #[command(flatten)]
        profile: super::ProfileArg,
        /// Write NAME.toml and its body templates into this directory (made if missing) as
        /// separate files, ready to edit and pass with --profile DIR/NAME.toml.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// With --out: replace files that are already there.
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Check a profile against the live target before a real run: log in, look up a key
    /// that cannot exist (and `--key KEY`), and with --canary create a throw-away user.
    /// Exit 0 when every check passed, 1 when one failed.
    Test(super::preflight::TestArgs),
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
            t.push_str("\n`enlist profiles show NAME` prints one; `--out DIR` writes it with its body templates to edit, then pass --profile DIR/NAME.toml\n");
            out(&t)?;
        }
        Some(ProfilesCommand::Show {
            profile: spec,
            out: out_dir,
            force,
        }) => {
            let name = profile::builtin(spec.spec()).map_err(|why| {
                Error::Usage(format!("no built-in profile {:?}; {why}", spec.spec()))
            })?;
            let (toml, bodies) = profile::builtin_source(name).unwrap_or_default();
            if let Some(dir) = out_dir {
                let toml_file = format!("{name}.toml");
                let files: Vec<(&str, &str)> = std::iter::once((toml_file.as_str(), toml))
                    .chain(bodies)
                    .collect();
                return write_out(&dir, name, &files, force);
            }
            let mut t = format!("# ---- {name}.toml\n{toml}");
            for (file, body) in bodies {
                t.push_str(&format!(
                    "\n# ---- {file} (save beside the profile)\n{body}"
                ));
            }
            out(&t)?;
        }
        Some(ProfilesCommand::Test(a)) => return super::preflight::run(a),
    }
    Ok(exit::OK)
}

/// Writes a profile's files into `dir`. Without `force`, a file already there is refused
/// before anything is written, so a half-replaced copy never mixes two versions.
fn write_out(dir: &Path, name: &str, files: &[(&str, &str)], force: bool) -> Result<u8> {
    if !force {
        if let Some((f, _)) = files.iter().find(|(f, _)| dir.join(f).exists()) {
            return Err(Error::Usage(format!(
                "{} already exists: edit it, write elsewhere with --out, or pass --force to \
                 replace it",
                dir.join(f).display()
            )));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::input(dir, format!("cannot make the directory: {e}")))?;
    let mut written = Vec::new();
    for (f, text) in files {
        let path = dir.join(f);
        std::fs::write(&path, text)
            .map_err(|e| Error::input(&path, format!("cannot write the file: {e}")))?;
        written.push(path.display().to_string());
    }
    out(&format!(
        "wrote {}\nedit them, then: enlist check SHEET --profile {}\n",
        written.join(", "),
        dir.join(format!("{name}.toml")).display()
    ))?;
    Ok(exit::OK)
}
