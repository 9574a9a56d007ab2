//! # enlist
//!
//! Provisions users in bulk from the spreadsheets people actually hand over.
//!
//! # Layout
//!
//! Data flows one way: **source → plan → execute → report**.
//!
//! - [`cell`]: the typed value of one spreadsheet cell.
//! - [`source`]: reads CSV and Excel files into rows of cells, finding the header row.
//! - [`plan`]: rows of cells become validated jobs with rendered requests.
//! - [`execute`]: jobs become rate-limited, retried HTTP requests under an adaptive limit of rows in flight;
//!   every row ends in one [`outcome::Outcome`].
//! - [`headers`]: what a server's `Retry-After` and `RateLimit-*` headers ask for.
//! - [`collect`]: the one task that receives outcomes, shows progress and feeds the sinks.
//! - [`console`]: stderr for people and log collectors: log lines, the bar, progress lines.
//! - [`report`]: sinks that write outcomes (JSON lines).
//! - [`error`]: the crate's error type and the exit codes.
//! - [`settings`]: flags, profile and environment made into one validated [`settings::RunSettings`].
//! - [`secrets`]: the credentials a profile names, from the environment or a `--secret-file`.
//! - [`listing`]: every user the target lists, page by page (`--leavers-scope target`).
//! - [`leavers`]: users who left the sheet (disable, delete, guarded) and users who come back.
//! - [`scrub`]: takes the run's secrets out of server text before it is stored or printed.
//! - [`sandbox`]: an embedded HTTP server that emulates the target APIs, with fault knobs.
//! - [`cmd`]: the subcommands of the CLI.
//! - [`tls`]: the HTTP client's certificate trust (`--ca-file`).
//! - [`template_book`]: input workbooks made for one profile (`enlist template`).
pub mod cell;
pub mod cmd;
pub mod collect;
pub mod console;
pub mod error;
pub mod execute;
pub mod headers;
pub mod input;
pub mod journal;
pub mod leavers;
pub mod listing;
pub mod outcome;
pub mod plan;
pub mod profile;
pub mod report;
pub mod sandbox;
pub mod scrub;
pub mod secrets;
pub mod settings;
pub mod source;
pub mod template_book;
pub mod tls;
