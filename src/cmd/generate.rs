//! `enlist completions` and `enlist man`: text generated from the command line's own
//! definition (clap_complete, clap_mangen), so they never fall behind a new flag.
//!
//! Both write to stdout, the form a packager's build script takes most simply:
//! `enlist completions bash > enlist.bash`, `enlist man > enlist.1`; `enlist man --out DIR`
//! writes a page per command as well (enlist-check.1, …), which enlist.1 refers to.

use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::error::{exit, Error, Result};

use super::{out, Cli};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

pub fn completions(args: CompletionsArgs) -> Result<u8> {
    let mut text = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "enlist", &mut text);
    out(&String::from_utf8_lossy(&text))?;
    Ok(exit::OK)
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write a page per command instead (enlist.1, enlist-check.1, …) into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The man page enlist(1) in roff, on stdout; with `--out DIR`, one page per command.
pub fn man(args: ManArgs) -> Result<u8> {
    let cmd = Cli::command();
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::input(&dir, format!("cannot make the directory: {e}")))?;
            clap_mangen::generate_to(cmd, &dir)
                .map_err(|e| Error::input(&dir, format!("cannot write the man pages: {e}")))?;
            out(&format!("wrote the man pages into {}\n", dir.display()))?;
        }
        None => {
            let mut text = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut text)?;
            out(&String::from_utf8_lossy(&text))?;
        }
    }
    Ok(exit::OK)
}
