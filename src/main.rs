//! The `enlist` binary: parse the command line, run, print the error chain, exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = enlist::cli::Cli::parse();
    match enlist::cmd::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("enlist: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
