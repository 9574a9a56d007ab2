//! The command line, as clap types. Nothing outside `cmd` looks at these: each command turns
//! its arguments into the library's own settings (an [`InputSpec`], run settings) first.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::input::InputSpec;
use crate::plan::PlanOptions;
use crate::profile::{Action, Profile};
use crate::source::SourceOptions;

#[derive(Debug, Parser)]
#[command(
    name = "enlist",
    version,
    about = "Provision users in bulk from the spreadsheets people actually hand over",
    long_about = None,
    after_help = "Exit codes: 0 all rows fine, 1 some rows failed or were invalid, 2 usage error, \
                  3 input or profile refused, 4 run could not start, 5 state locked, 6 interrupted, \
                  7 an outcome could not be recorded (journal or report)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a sheet and render its requests without sending anything.
    Check(super::check::CheckArgs),
    /// Send the sheet's rows to the target: create, update or upsert each user.
    Run(super::run::RunArgs),
    /// Re-run the rows of an outcome workbook that failed, were invalid or were not attempted.
    Retry(super::run::RunArgs),
    /// List the built-in profiles, or print one to copy and adapt.
    Profiles(super::profiles::ProfilesArgs),
    /// Serve an emulation of a target API on 127.0.0.1 to rehearse against.
    Sandbox(super::sandbox::SandboxArgs),
    /// Write an input workbook (or CSV) made for a profile, ready to fill in.
    Template(super::template::TemplateArgs),
    /// Run a sample sheet against the embedded sandbox: no setup, no credentials.
    Demo(super::demo::DemoArgs),
    /// Print a shell completion script: `enlist completions bash > /etc/bash_completion.d/enlist`.
    Completions(super::generate::CompletionsArgs),
    /// Print the man page (roff): `enlist man > enlist.1`; `--out DIR` writes one per command.
    Man(super::generate::ManArgs),
}

/// `-p/--profile` for commands that took the profile as a bare word before (`enlist
/// template odin`, `enlist profiles show odin`): that word is still accepted, unlisted, so
/// that scripts and notes written for it keep working.
#[derive(Debug, Clone, Args)]
pub struct ProfileArg {
    /// A built-in profile name (see `enlist profiles`) or the path of a profile .toml file.
    #[arg(short, long, value_name = "PROFILE", required_unless_present = "word")]
    profile: Option<String>,
    /// The profile given without -p, as earlier versions took it.
    #[arg(value_name = "PROFILE", hide = true, conflicts_with = "profile")]
    word: Option<String>,
}

impl ProfileArg {
    /// The profile as given (clap makes sure one of the two forms is there).
    pub fn spec(&self) -> &str {
        self.profile
            .as_deref()
            .or(self.word.as_deref())
            .unwrap_or_default()
    }
}

/// Which action a row takes when it does not say.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    Create,
    Update,
    Upsert,
}

/// Arguments shared by every command that reads a sheet.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// The sheet: CSV (any delimiter, UTF-8/UTF-16/Windows-1252) or Excel (xlsx, xlsm, xlsb, xls, ods).
    pub sheet: PathBuf,
    /// A built-in profile name (see `enlist profiles`) or the path of a profile .toml file.
    #[arg(short, long, env = "ENLIST_PROFILE")]
    pub profile: String,
    /// CSV delimiter: `,` `;` `|` or `tab` (default: detected from the header line).
    #[arg(long)]
    pub delimiter: Option<String>,
    /// CSV encoding, e.g. utf-8, utf-16le, windows-1252 (default: detected).
    #[arg(long)]
    pub encoding: Option<String>,
    /// Excel sheet name (default: the first sheet with a matching header row).
    #[arg(long = "sheet")]
    pub sheet_name: Option<String>,
    /// Spreadsheet row number of the header row (default: found automatically).
    #[arg(long)]
    pub header_row: Option<u64>,
    /// Action for rows without an `action` cell (default: the profile's, usually upsert).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Refuse a sheet with more data rows than this (default 10,000,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rows: Option<u64>,
    /// Refuse a workbook whose parts expand to more than this many MiB (default 512).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_expanded_mib: Option<u64>,
}

impl InputArgs {
    /// Validates the arguments and loads the profile.
    pub fn spec(&self) -> Result<InputSpec> {
        let profile = Arc::new(Profile::load(&self.profile)?);
        let delimiter = match self.delimiter.as_deref() {
            None => None,
            Some("tab") | Some("\\t") | Some("\t") => Some(b'\t'),
            Some(d) if d.len() == 1 && d.is_ascii() => Some(d.as_bytes()[0]),
            Some(d) => {
                return Err(Error::Usage(format!(
                    "--delimiter {d:?}: give one character such as , ; | or the word tab"
                )))
            }
        };
        let encoding = match self.encoding.as_deref() {
            None => None,
            Some(label) => Some(encoding_rs::Encoding::for_label(label.as_bytes()).ok_or_else(|| {
                Error::Usage(format!(
                    "--encoding {label:?} is not an encoding name; try utf-8, utf-16le, utf-16be or windows-1252"
                ))
            })?),
        };
        if self.header_row == Some(0) {
            return Err(Error::Usage(
                "--header-row counts from 1, as spreadsheets do".into(),
            ));
        }
        let mode = self.mode.map(|m| match m {
            Mode::Create => Action::Create,
            Mode::Update => Action::Update,
            Mode::Upsert => Action::Upsert,
        });
        if let Some(m) = mode {
            profile.supports(m).map_err(Error::Usage)?;
        }
        Ok(InputSpec {
            path: self.sheet.clone(),
            source: SourceOptions {
                delimiter,
                encoding,
                sheet: self.sheet_name.clone(),
                header_row: self.header_row,
                max_rows: self.max_rows,
                max_expanded_mib: self.max_expanded_mib,
                ..SourceOptions::default()
            },
            plan: PlanOptions {
                mode,
                fingerprint: true,
                without_cells: false,
                secret_key: None,
            },
            profile,
        })
    }
}

/// Output format for machine-readable results.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}
