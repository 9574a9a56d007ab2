//! The subcommands of the `enlist` CLI, one module each. `main.rs` parses the command
//! line and hands the parsed arguments to the matching `run` function.

pub mod sandbox;
