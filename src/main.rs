//! The `enlist` binary: parse the command line, run, print the error chain, exit.

use std::process::ExitCode;

use clap::Parser;

// Planning a sheet and running its requests make many small, short-lived allocations
// (cells, values, headers); mimalloc serves them markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = enlist::cmd::Cli::parse();
    // Rows are planned on rayon's threads; named, they can be told apart in a profiler.
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("enlist-plan-{i}"))
        .build_global();
    match enlist::cmd::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("enlist: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
