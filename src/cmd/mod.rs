//! One file per command (after xsv): each has its clap `Args` and a `run` function.

mod args;
pub mod check;
pub mod demo;
pub mod generate;
pub mod leavers;
pub mod preflight;
pub mod profiles;
pub mod run;
pub mod sandbox;
pub mod template;

use crate::error::Result;
pub use args::{Cli, Command, Format, InputArgs, Mode, ProfileArg};

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Profiles(a) => profiles::run(a),
        Command::Sandbox(a) => {
            runtime()?.block_on(sandbox::run(a))?;
            Ok(crate::error::exit::OK)
        }
        Command::Template(a) => template::run(a),
        Command::Run(a) => run::run(a),
        Command::Retry(a) => run::retry(a),
        Command::Demo(a) => demo::run(a),
        Command::Completions(a) => generate::completions(a),
        Command::Man(a) => generate::man(a),
    }
}

/// A command line clap refused (or `--help`, `--version`), as the process exit code.
/// clap prints it itself, except for `run` and `retry`, which schedulers watch: there the
/// error goes through the console (one JSON line with `--log-format json`) and stdout gets
/// the summary line that every run ends with.
pub fn refused(e: clap::Error) -> u8 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.iter().find(|a| !a.starts_with('-'));
    if !e.use_stderr() || !command.is_some_and(|c| c == "run" || c == "retry") {
        let _ = e.print();
        return u8::try_from(e.exit_code()).unwrap_or(crate::error::exit::USAGE);
    }
    let json = args.iter().any(|a| a == "--log-format=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--log-format" && w[1] == "json");
    crate::console::init(json);
    let e = crate::error::Error::Usage(e.render().to_string().trim().to_string());
    crate::console::error(&e.to_string());
    let _ = out(&format!(
        "{}\n",
        run::fatal_line(&e, std::time::Duration::ZERO)
    ));
    e.exit_code()
}

/// Writes to stdout, treating a closed pipe (`enlist check ... | head`) as success.
pub(crate) fn out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// The tokio runtime for commands that talk to the network.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The command line for summaries and reports, with secret-looking option values masked.
pub(crate) fn command_line() -> String {
    crate::report::mask_command_line(&std::env::args().collect::<Vec<_>>().join(" "))
}
