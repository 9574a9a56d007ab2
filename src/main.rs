//! The `enlist` binary: parse the command line, run, print the error chain, exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match enlist::cmd::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(enlist::cmd::refused(e)),
    };
    // Rows are planned on rayon's threads; named, they can be told apart in a profiler.
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("enlist-plan-{i}"))
        .build_global();
    match enlist::cmd::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            enlist::console::error(&e.to_string());
            ExitCode::from(e.exit_code())
        }
    }
}
