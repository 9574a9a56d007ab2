//! `enlist template`: write an input workbook (or CSV) made for one profile.
//!
//! The workbook itself is built by [`crate::template_book`]; this file only turns the
//! arguments into a path and refuses to overwrite somebody's filled-in sheet.

use std::path::PathBuf;

use clap::Args;

use crate::error::{exit, Error, Result};
use crate::profile::Profile;
use crate::template_book;

use super::out;

#[derive(Debug, Args)]
pub struct TemplateArgs {
    #[command(flatten)]
    pub profile: super::ProfileArg,
    /// Where to write (default: `<profile>-template.xlsx`, or `.csv` with --csv, in the current directory).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write a CSV (UTF-8 with BOM): the header line only.
    #[arg(long)]
    pub csv: bool,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: TemplateArgs) -> Result<u8> {
    let profile = Profile::load(args.profile.spec())?;
    let path = args.output.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-template.{}",
            profile.name,
            if args.csv { "csv" } else { "xlsx" }
        ))
    });
    // A template is often written next to the sheet somebody already filled in.
    if path.exists() && !args.force {
        return Err(Error::Usage(format!(
            "{} already exists; choose another name with -o or pass --force to overwrite it",
            path.display()
        )));
    }
    if args.csv {
        template_book::write_csv_template(&profile, &path)?;
    } else {
        template_book::write_template(&profile, &path)?;
    }
    out(&format!(
        "wrote {} for profile {}; fill it in, then run: enlist check {} --profile {}\n",
        path.display(),
        profile.name,
        path.display(),
        args.profile.spec()
    ))?;
    Ok(exit::OK)
}
