//! The integration tests: one binary, one module per area. Each test gets its own
//! working directory through [`workdir::Workdir`] and runs the real `enlist` binary.

mod adaptive;
mod book_xml;
mod check;
mod cli;
mod console;
mod e2e;
mod feedback;
mod hostile_input;
mod hostile_server;
mod keys;
mod leavers;
mod lookup;
mod nightly;
mod preflight;
mod profile_authoring;
mod profile_load;
mod reader;
mod real;
mod real_more;
mod report;
mod requests_per_row;
mod retry;
mod run;
mod sandbox;
mod sandbox_knobs;
mod sinks;
mod steps;
mod steps_more;
mod template;
mod update_semantics;
mod workdir;
